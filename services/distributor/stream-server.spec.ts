/**
 * The stream server alone, over grpc-js on a loopback port: a real client stream, and a
 * hand-off that records what the transport gives it.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { type Ack, AckSchema, type ClientReport, ClientReportSchema, type ConnectRequest, ConnectRequestSchema, type ConnectResponse, DistributorService, type Hello, HelloSchema, PingSchema } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { AuthError } from "../common/auth/tokens.js";
import { grpcServiceDefinition } from "../common/grpc/service-definition.js";
import { silentLogger } from "../common/logger.js";
import { encodeWelcome } from "./frames.js";
import { ClientSession, type FrameSink } from "./session.js";
import { until } from "./spec-support/until.js";
import { type StreamHandoff, StreamServer, type StreamServerOptions } from "./stream-server.js";

type Stream = grpc.ClientDuplexStream<ConnectRequest, ConnectResponse>;

class RecordingHandoff implements StreamHandoff {
  readonly opened: Array<{ hello: Hello; peer: string; session: ClientSession; signal: AbortSignal }> = [];
  readonly acks: Ack[] = [];
  readonly reports: ClientReport[] = [];
  readonly closed: ClientSession[] = [];

  open(hello: Hello, peer: string, sink: FrameSink, signal: AbortSignal): ClientSession {
    const session = new ClientSession(hello.clientId, hello.topics, peer, sink, { maxFrames: 100, maxBytes: 1 << 20 });
    session.sendControl(encodeWelcome(session.sessionId, 7n, "log-1"));
    this.opened.push({ hello, peer, session, signal });
    return session;
  }

  ack(_session: ClientSession, ack: Ack): void {
    this.acks.push(ack);
  }

  report(_session: ClientSession, report: ClientReport): void {
    this.reports.push(report);
  }

  close(session: ClientSession): void {
    this.closed.push(session);
  }
}

async function serve(t: TestContext, options: Partial<StreamServerOptions> = {}): Promise<{ server: StreamServer; handoff: RecordingHandoff; connect: (token?: string) => Stream }> {
  const handoff = new RecordingHandoff();
  const server = new StreamServer({ host: "127.0.0.1", port: 0, handoff, logger: silentLogger(), helloTimeoutMs: 5_000, scopes: false, ...options });
  await server.start();
  t.after(() => server.stop());
  const Client = grpc.makeGenericClientConstructor(grpcServiceDefinition(DistributorService), "DistributorService");
  const client = new Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  t.after(() => client.close());
  const connect = (token?: string): Stream => {
    const metadata = new grpc.Metadata();
    if (token !== undefined) metadata.set("authorization", token);
    const stream = (client as unknown as { connect(metadata: grpc.Metadata): Stream }).connect(metadata);
    t.after(() => stream.cancel());
    return stream;
  };
  return { server, handoff, connect };
}

function send(stream: Stream, message: ConnectRequest["message"]): void {
  stream.write(create(ConnectRequestSchema, { message }));
}

const hello = (fields: Partial<Omit<Hello, "$typeName" | "$unknown">> = {}): ConnectRequest["message"] => ({ case: "hello", value: create(HelloSchema, { clientId: "c1", topics: ["policy_data"], ...fields }) });

/** The first response, or how the stream ended ("ENDED" or the status name with its details). */
function outcome(stream: Stream): Promise<string> {
  return new Promise((resolve) => {
    stream.once("data", (response: ConnectResponse) => resolve(String(response.message.case)));
    stream.once("error", (error: grpc.ServiceError) => resolve(`${grpc.status[error.code]}: ${error.details}`));
    stream.once("end", () => resolve("ENDED"));
  });
}

function ending(stream: Stream): Promise<string> {
  return new Promise((resolve) => {
    stream.on("error", (error: grpc.ServiceError) => resolve(`${grpc.status[error.code]}: ${error.details}`));
    stream.on("end", () => resolve("ENDED"));
    stream.on("data", () => undefined);
  });
}

test("a Hello is handed off with the peer; ACKs, reports and pings follow; the stream's end closes the session", async (t) => {
  const { handoff, connect } = await serve(t);
  const stream = connect();
  const first = outcome(stream);
  send(stream, hello());
  assert.equal(await first, "welcome");
  assert.equal(handoff.opened.length, 1);
  assert.equal(handoff.opened[0]?.hello.clientId, "c1");
  assert.match(handoff.opened[0]?.peer ?? "", /127\.0\.0\.1/);
  send(stream, { case: "ack", value: create(AckSchema, { position: 7n }) });
  send(stream, { case: "report", value: create(ClientReportSchema, { ready: true }) });
  const pong = outcome(stream);
  send(stream, { case: "ping", value: create(PingSchema, { nonce: 42n }) });
  assert.equal(await pong, "pong");
  assert.deepEqual(handoff.acks.map((ack) => ack.position), [7n]);
  assert.deepEqual(handoff.reports.map((report) => report.ready), [true]);
  stream.end();
  await until(() => handoff.closed.length === 1, "the session to close");
  assert.equal(handoff.closed[0], handoff.opened[0]?.session);
  assert.equal(handoff.opened[0]?.signal.aborted, true, "the hand-off's signal says the stream ended");
});

test("the transport refuses what comes before, instead of or twice as a Hello", async (t) => {
  const { handoff, connect } = await serve(t);
  const cases: Array<[string, ConnectRequest["message"][], RegExp]> = [
    ["an ACK first", [{ case: "ack", value: create(AckSchema) }], /^INVALID_ARGUMENT: the first message must be Hello/],
    ["a report first", [{ case: "report", value: create(ClientReportSchema) }], /^INVALID_ARGUMENT: the first message must be Hello/],
    ["two Hellos", [hello(), hello()], /^INVALID_ARGUMENT: Hello must be sent once, first/],
    ["a scoped topic in the default scope", [hello({ topics: ["acme:data:policy_data"] })], /^INVALID_ARGUMENT: topic\(s\) acme:data:policy_data belong to a scope/],
    ["a scope from a server without scopes", [hello({ scope: "acme" })], /^INVALID_ARGUMENT: scope "acme" asked for, but this server does not serve scopes/],
    ["a label value with a space", [hello({ labels: { zone: "e u" } })], /^INVALID_ARGUMENT: Hello.labels: label "zone": the value "e u" must be/],
  ];
  for (const [name, messages, expected] of cases) {
    await t.test(name, async () => {
      const stream = connect();
      const end = ending(stream);
      for (const message of messages) send(stream, message);
      assert.match(await end, expected);
    });
  }
  assert.equal(handoff.opened.filter((opened) => opened.hello.topics.some((topic) => topic.includes(":"))).length, 0, "a refused Hello is never handed off");
});

test("credentials: the caller's token is checked against its Hello before the hand-off", async (t) => {
  const { handoff, connect } = await serve(t, {
    authorize: async (authorization) => {
      if (authorization === undefined) throw new AuthError("a client token is required", 401);
      if (authorization === "Bearer reader") throw new AuthError("topic policy_data is not permitted", 403);
      if (authorization === "Bearer broken") throw new Error("key store unreachable");
    },
  });
  const cases: Array<[string, string | undefined, string]> = [
    ["no token", undefined, "UNAUTHENTICATED: a client token is required"],
    ["a token without the topic", "Bearer reader", "PERMISSION_DENIED: topic policy_data is not permitted"],
    ["the check itself fails", "Bearer broken", "INTERNAL: could not check the client's credentials"],
    ["a good token", "Bearer good", "welcome"],
  ];
  for (const [name, token, expected] of cases) {
    await t.test(name, async () => {
      const stream = connect(token);
      const first = outcome(stream);
      send(stream, hello({ clientId: name }));
      assert.equal(await first, expected);
    });
  }
  assert.deepEqual(handoff.opened.map((opened) => opened.hello.clientId), ["a good token"]);
});

test("a stream without a Hello in time ends with DEADLINE_EXCEEDED", async (t) => {
  const { connect } = await serve(t, { helloTimeoutMs: 100 });
  assert.equal(await ending(connect()), "DEADLINE_EXCEEDED: no Hello within 100 ms");
});

test("a session ending its stream gives the client the status and the reason", async (t) => {
  const { handoff, connect } = await serve(t);
  const stream = connect();
  const end = ending(stream);
  send(stream, hello());
  await until(() => handoff.opened.length === 1, "the hand-off");
  handoff.opened[0]?.session.terminate("aborted", "replaced by a newer stream");
  assert.equal(await end, "ABORTED: replaced by a newer stream");
  await until(() => handoff.closed.length === 1, "the session to close");
});

test("stop() ends every stream with UNAVAILABLE, is idempotent, and closed says stopped", async (t) => {
  const { server, handoff, connect } = await serve(t);
  const stream = connect();
  const end = ending(stream);
  send(stream, hello());
  await until(() => handoff.opened.length === 1, "the hand-off");
  await Promise.all([server.stop(), server.stop()]);
  // The status goes out as the port closes: the client may see it or the dropped connection.
  assert.match(await end, /^UNAVAILABLE: (server shutting down|Connection dropped)$/);
  assert.deepEqual(await server.closed, { reason: "stopped" });
  await until(() => handoff.closed.length === 1, "the session to close");
});
