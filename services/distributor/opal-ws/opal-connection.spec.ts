import { test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { create, toBinary } from "@bufbuild/protobuf";
import type { WebSocket } from "ws";
import { type Ack, AckStatus, ConnectResponseSchema, type Hello } from "../../../gen/opal/mesh/v1/distributor_pb.js";
import { EventSchema } from "../../../gen/opal/mesh/v1/event_pb.js";
import { SaveMethod } from "../../../gen/opal/mesh/v1/data_pb.js";
import { jsonBytes } from "../../common/data-entries.js";
import { silentLogger } from "../../common/logger.js";
import { ClientSession, type FrameSink } from "../session.js";
import { OpalConnection } from "./opal-connection.js";

interface Frame {
  request?: { method: string; arguments: { subscription: { topic: string }; data: { id?: string; entries: Array<{ topics: string[] }>; callback: { callbacks: Array<[string, unknown]> } } } };
  response?: unknown;
}

/** A websocket double: what the connection sent, and how it closed. */
class FakeSocket extends EventEmitter {
  readyState = 1;
  bufferedAmount = 0;
  readonly sent: Frame[] = [];
  closedWith: { code: number; reason: string } | undefined;
  send(text: string, done: () => void): void {
    this.sent.push(JSON.parse(text) as Frame);
    queueMicrotask(done);
  }
  close(code: number, reason: string): void {
    this.closedWith = { code, reason };
    this.readyState = 3;
    this.emit("close");
  }
  request(method: string, args: Record<string, unknown> = {}, callId = method): void {
    this.emit("message", Buffer.from(JSON.stringify({ request: { method, arguments: args, call_id: callId } })), false);
  }
}

function connection(options: { refuse?: string } = {}) {
  const socket = new FakeSocket();
  const acks: Ack[] = [];
  const opened: Array<{ hello: Hello; session: ClientSession }> = [];
  let closed = 0;
  const sessions = {
    open(hello: Hello, peer: string, sink: FrameSink, _signal: AbortSignal, protocol?: "opal-mesh" | "opal-ws") {
      const session = new ClientSession(hello.clientId, hello.topics, peer, sink, { maxFrames: 100, maxBytes: 1 << 20 }, hello.scope || "default", false, protocol);
      session.startAt(10n);
      opened.push({ hello, session });
      return session;
    },
    close: () => void closed++,
    ack: (_session: ClientSession, ack: Ack) => void acks.push(ack),
  };
  const opal = new OpalConnection({
    socket: socket as unknown as WebSocket,
    peer: "10.0.0.5:4242",
    reportUrl: "http://server:7002/data/callback_report",
    sessions: sessions,
    logger: silentLogger(),
    authorize: async (_scope, topics) => {
      if (options.refuse !== undefined && topics.includes(options.refuse)) throw new Error(`not permitted on topic(s) ${options.refuse}`);
    },
  });
  return { socket, acks, opened, opal, closed: () => closed };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 5));

const update = (id: string, position: bigint, topics: string[]) =>
  toBinary(ConnectResponseSchema, create(ConnectResponseSchema, { message: { case: "event", value: create(EventSchema, { position, topics, payload: { case: "dataUpdate", value: { id, entries: [{ url: "", topics, dstPath: "/x", saveMethod: SaveMethod.PUT, dataJson: jsonBytes({ v: 1 }) }] } } }) } }));

test("pings are answered; a subscribe opens an OPAL session and probes whether the client reports", async () => {
  const { socket, opened } = connection();
  socket.request("_ping_");
  socket.request("subscribe", { topics: ["policy_data"] });
  await settle();
  assert.deepEqual(socket.sent[0], { response: { result: "pong", result_type: "str", call_id: "_ping_" } });
  assert.deepEqual(socket.sent[1], { response: { result: true, result_type: "bool", call_id: "subscribe" } });
  assert.equal(opened.length, 1);
  assert.equal(opened[0]?.session.protocol, "opal-ws");
  assert.equal(opened[0]?.session.confirms, false);
  assert.deepEqual(opened[0]?.hello.topics, ["policy_data"]);
  const probe = socket.sent[2]?.request;
  assert.equal(probe?.method, "notify");
  assert.equal(probe?.arguments.subscription.topic, "policy_data");
  assert.deepEqual(probe?.arguments.data.entries, []);
  const [url, config] = probe?.arguments.data.callback.callbacks[0] ?? [];
  assert.match(url ?? "", /^http:\/\/server:7002\/data\/callback_report\/[0-9a-f]{32}$/);
  assert.deepEqual(config, { method: "post", headers: { "content-type": "application/json" }, process_data: false }, "a config of its own (OPAL's client shares one among bare URLs)");
});

test("an event is notified once per subscribed topic it goes to, and its report is the client's ACK", async () => {
  const { socket, opened, acks, opal } = connection();
  socket.request("subscribe", { topics: ["policy_data", "policy_data/users"] });
  await settle();
  const session = opened[0]?.session;
  assert.ok(session !== undefined);
  session.deliver(update("u1", 11n, ["policy_data/users"]), create(EventSchema, { position: 11n, topics: ["policy_data/users"] }));
  const notifications = socket.sent.flatMap((frame) => (frame.request?.method === "notify" && frame.request.arguments.data.id === "u1" ? [frame.request.arguments] : []));
  assert.deepEqual(notifications.map((call) => call.subscription.topic).sort(), ["policy_data", "policy_data/users"]);
  assert.deepEqual(notifications[0]?.data.entries[0]?.topics, ["policy_data", "policy_data/users"]);
  opal.report("u1", []);
  opal.report("u1", []); // the second notification's report: one ACK only
  assert.equal(session.confirms, true);
  assert.deepEqual(acks.map((ack) => [ack.updateId, ack.position, ack.status]), [["u1", 11n, AckStatus.APPLIED]]);
  session.deliver(update("u2", 12n, ["policy_data"]), create(EventSchema, { position: 12n, topics: ["policy_data"] }));
  opal.report("u2", ["/x (not fetched)"]);
  assert.equal(acks[1]?.status, AckStatus.FAILED);
  assert.match(acks[1]?.error ?? "", /could not apply \/x \(not fetched\)/);
});

test("a topic the token does not permit, a frame that is no RPC, or an unknown method close the connection with 1008", async () => {
  for (const [act, reason] of [
    [(socket: FakeSocket) => socket.request("subscribe", { topics: ["secret"] }), /not permitted on topic\(s\) secret/],
    [(socket: FakeSocket) => socket.emit("message", Buffer.from("{"), false), /not JSON/],
    [(socket: FakeSocket) => socket.request("drop_tables"), /unknown RPC method "drop_tables"/],
    [(socket: FakeSocket) => socket.request("subscribe", { topics: ["a:data:x", "b:data:y"] }), /more than one scope/],
  ] as const) {
    const { socket, opened } = connection({ refuse: "secret" });
    act(socket);
    await settle();
    assert.equal(socket.closedWith?.code, 1008);
    assert.match(socket.closedWith?.reason ?? "", reason);
    assert.equal(opened.length, 0);
  }
});

test("a replaced log closes the connection with 1012, as OPAL's server does, so the client refetches", async () => {
  const { socket, opened, closed } = connection();
  socket.request("subscribe", { topics: ["policy_data"] });
  await settle();
  opened[0]?.session.resync(toBinary(ConnectResponseSchema, create(ConnectResponseSchema, { message: { case: "resync", value: { reason: "replaced", headPosition: 1n } } })), 1n);
  assert.equal(socket.closedWith?.code, 1012);
  assert.equal(closed(), 1);
});
