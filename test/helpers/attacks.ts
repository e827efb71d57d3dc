/**
 * For the negative security suite: a tally of attacks (tried, rejected as expected), raw
 * gRPC streams to the distributor, hand-made JWTs (expired, wrong audience, alg none,
 * signed by a stranger's key) and GitHub webhook signatures.
 */
import assert from "node:assert/strict";
import { createHmac, createPrivateKey } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import { ConnectError, Code } from "@connectrpc/connect";
import { SignJWT } from "jose";
import { ConnectRequestSchema, type ConnectResponse, DistributorService, type Hello } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { grpcServiceDefinition } from "../../services/common/grpc/service-definition.js";

export class Tally {
  private readonly rows = new Map<string, { tried: number; rejected: number }>();

  /** Runs one attempt; it counts as rejected when the outcome is the expected refusal. */
  async attempt(attack: string, expected: string | number, run: () => Promise<string | number>, note = ""): Promise<void> {
    const row = this.rows.get(attack) ?? { tried: 0, rejected: 0 };
    this.rows.set(attack, row);
    row.tried++;
    const outcome = await run();
    if (outcome === expected) row.rejected++;
    assert.equal(outcome, expected, `${attack}${note === "" ? "" : ` (${note})`}: expected ${expected}, got ${outcome}`);
  }

  /** The closing note's table: attack → tried → rejected. */
  table(): string {
    const lines = ["| attack | tried | rejected |", "|---|---:|---:|"];
    let tried = 0;
    let rejected = 0;
    for (const [attack, row] of this.rows) {
      lines.push(`| ${attack} | ${row.tried} | ${row.rejected} |`);
      tried += row.tried;
      rejected += row.rejected;
    }
    lines.push(`| **total** | **${tried}** | **${rejected}** |`);
    return lines.join("\n");
  }
}

/** The Connect code of a call ("OK" when it succeeded). */
export async function connectOutcome(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
    return "OK";
  } catch (error) {
    return Code[ConnectError.from(error).code] ?? "Unknown";
  }
}

type ConnectStream = grpc.ClientDuplexStream<ReturnType<typeof create<typeof ConnectRequestSchema>>, ConnectResponse>;

export function streamClient(target: string, channelOptions: grpc.ChannelOptions = {}): { open(token: string | undefined): ConnectStream; close(): void } {
  const Client = grpc.makeGenericClientConstructor(grpcServiceDefinition(DistributorService), "DistributorService");
  const client = new Client(target, grpc.credentials.createInsecure(), { "grpc.max_receive_message_length": 64 * 1024 * 1024, ...channelOptions });
  return {
    open(token) {
      const metadata = new grpc.Metadata();
      if (token !== undefined) metadata.set("authorization", `Bearer ${token}`);
      return (client as unknown as { connect(metadata: grpc.Metadata): ConnectStream }).connect(metadata);
    },
    close: () => client.close(),
  };
}

/** Sends a Hello; resolves "OK" on Welcome, else the gRPC status name the stream ended with. */
export function helloOutcome(stream: ConnectStream, hello: Partial<Omit<Hello, "$typeName" | "$unknown">>): Promise<string> {
  return new Promise((resolve) => {
    const done = (outcome: string): void => {
      stream.removeAllListeners();
      stream.on("error", () => undefined);
      stream.cancel();
      resolve(outcome);
    };
    stream.on("data", (response: ConnectResponse) => {
      if (response.message.case === "welcome") done("OK");
    });
    stream.on("error", (error: grpc.ServiceError) => done(grpc.status[error.code] ?? String(error.code)));
    stream.on("end", () => done("ENDED"));
    stream.write(create(ConnectRequestSchema, { message: { case: "hello", value: { clientId: "attacker", topics: ["policy_data"], scope: "default", ...hello } } }));
  });
}

const AUDIENCE = "https://api.opal.ac/v1/";
const ISSUER = "https://opal.ac/";

export interface ForgeOptions {
  privatePem: string;
  kid?: string;
  claims?: Record<string, unknown>;
  audience?: string;
  issuer?: string;
  /** Seconds from now; negative for an expired token. */
  expiresIn?: number;
}

/** A token signed with the given key: ours (to test claims) or a stranger's (a forgery). */
export async function forgeToken(options: ForgeOptions): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const expires = now + (options.expiresIn ?? 3_600);
  return new SignJWT({ peer_type: "client", ...options.claims })
    .setProtectedHeader({ alg: "RS256", typ: "JWT", ...(options.kid === undefined ? {} : { kid: options.kid }) })
    .setSubject("0123456789abcdef0123456789abcdef")
    .setAudience(options.audience ?? AUDIENCE)
    .setIssuer(options.issuer ?? ISSUER)
    .setIssuedAt(Math.min(now, expires - 60))
    .setExpirationTime(expires)
    .sign(createPrivateKey(options.privatePem));
}

/** A token with `alg: none` and no signature, claiming whatever it likes. */
export function unsignedToken(claims: Record<string, unknown>): string {
  const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  return `${encode({ alg: "none", typ: "JWT" })}.${encode({ aud: AUDIENCE, iss: ISSUER, sub: "0123456789abcdef0123456789abcdef", iat: now, exp: now + 3_600, ...claims })}.`;
}

export function githubSignature(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}
