/**
 * OPAL's JWTs (jose): the server signs client / datasource / listener tokens (and, for
 * its own processes, service tokens); everyone verifies against the public keys, the
 * current one and, during a rollover, the previous ones, chosen by `kid`. Only the
 * asymmetric algorithms are accepted: never "none", never HS*.
 */
import { createPublicKey, type KeyObject, randomUUID } from "node:crypto";
import { calculateJwkThumbprint, exportJWK, type JWK, jwtVerify, SignJWT, errors as joseErrors, decodeProtectedHeader } from "jose";
import { algorithmFor } from "./keys.js";

export type PeerType = "client" | "datasource" | "listener" | "service";
export const PEER_TYPES: readonly PeerType[] = ["client", "datasource", "listener", "service"];

export interface Principal {
  subject: string;
  peerType: PeerType;
  /** Topics the peer may subscribe or publish to (hierarchical); undefined = any. */
  permittedTopics: string[] | undefined;
  /** Scopes the peer may use; undefined = any. */
  allowedScopes: string[] | undefined;
  claims: Record<string, unknown>;
}

export class AuthError extends Error {
  override readonly name = "AuthError";
  constructor(
    message: string,
    /** 401: who are you; 403: not allowed. */
    readonly status: 401 | 403,
  ) {
    super(message);
  }
}

export interface Audience {
  audience: string;
  issuer: string;
}

export async function keyId(key: KeyObject): Promise<string> {
  return calculateJwkThumbprint(await exportJWK(key));
}

export class TokenSigner {
  private constructor(
    private readonly key: KeyObject,
    private readonly kid: string,
    private readonly algorithm: "RS256" | "ES256",
    private readonly audience: Audience,
  ) {}

  static async create(privateKey: KeyObject, audience: Audience): Promise<TokenSigner> {
    return new TokenSigner(privateKey, await keyId(createPublicKey(privateKey)), algorithmFor(privateKey), audience);
  }

  async sign(request: { peerType: PeerType; id?: string; ttlSeconds: number; claims?: Record<string, unknown> }): Promise<{ token: string; id: string; expiresAt: Date }> {
    const id = request.id ?? randomUUID().replaceAll("-", "");
    const now = Math.floor(Date.now() / 1000);
    const { sub: _sub, peer_type: _peerType, ...claims } = request.claims ?? {};
    const token = await new SignJWT({ ...claims, peer_type: request.peerType })
      .setProtectedHeader({ alg: this.algorithm, kid: this.kid, typ: "JWT" })
      .setSubject(id)
      .setIssuedAt(now)
      .setExpirationTime(now + request.ttlSeconds)
      .setAudience(this.audience.audience)
      .setIssuer(this.audience.issuer)
      .sign(this.key);
    return { token, id, expiresAt: new Date((now + request.ttlSeconds) * 1000) };
  }
}

export class TokenVerifier {
  private constructor(
    private readonly keys: Map<string, { key: KeyObject; algorithm: "RS256" | "ES256" }>,
    private readonly audience: Audience,
    readonly jwks: { keys: JWK[] },
  ) {}

  /** The first key is the current one; the others stay valid during a rollover. */
  static async create(publicKeys: readonly KeyObject[], audience: Audience): Promise<TokenVerifier> {
    const keys = new Map<string, { key: KeyObject; algorithm: "RS256" | "ES256" }>();
    const jwks: JWK[] = [];
    for (const key of publicKeys) {
      const kid = await keyId(key);
      const algorithm = algorithmFor(key);
      keys.set(kid, { key, algorithm });
      jwks.push({ ...(await exportJWK(key)), kid, alg: algorithm, use: "sig" });
    }
    return new TokenVerifier(keys, audience, { keys: jwks });
  }

  async verify(token: string): Promise<Principal> {
    let header;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw new AuthError("the token is not a JWT", 401);
    }
    if (header.alg === undefined || header.alg === "none" || !["RS256", "ES256"].includes(header.alg)) {
      throw new AuthError(`tokens signed with ${JSON.stringify(header.alg ?? "no algorithm")} are not accepted`, 401);
    }
    // With a kid, that key; without one (older tokens), any current key.
    const candidates = header.kid !== undefined ? [this.keys.get(header.kid)].filter((key) => key !== undefined) : [...this.keys.values()];
    if (candidates.length === 0) throw new AuthError("the token was signed with a key this server does not trust", 401);
    let lastError: unknown;
    for (const candidate of candidates) {
      try {
        const { payload } = await jwtVerify(token, candidate.key, { algorithms: [candidate.algorithm], audience: this.audience.audience, issuer: this.audience.issuer });
        return principalFrom(payload);
      } catch (error) {
        lastError = error;
      }
    }
    throw new AuthError(describe(lastError), 401);
  }
}

function describe(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return "the token has expired";
  if (error instanceof joseErrors.JWTClaimValidationFailed) return `the token's ${error.claim} claim is not accepted here`;
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return "the token's signature is not valid";
  if (error instanceof AuthError) return error.message;
  return "the token is not valid";
}

function strings(value: unknown, claim: string): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || !value.every((item) => typeof item === "string")) throw new AuthError(`the token's ${claim} claim must be a list of strings`, 401);
  return value;
}

function principalFrom(payload: Record<string, unknown>): Principal {
  const peerType = payload.peer_type;
  if (typeof peerType !== "string" || !(PEER_TYPES as readonly string[]).includes(peerType)) throw new AuthError("the token has no valid peer_type claim", 401);
  return {
    subject: typeof payload.sub === "string" ? payload.sub : "",
    peerType: peerType as PeerType,
    permittedTopics: strings(payload.permitted_topics, "permitted_topics"),
    allowedScopes: strings(payload.allowed_scopes, "allowed_scopes"),
    claims: payload,
  };
}
