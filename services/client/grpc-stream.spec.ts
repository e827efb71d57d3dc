import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { type ConnectRequest, ConnectRequestSchema, type ConnectResponse, ConnectResponseSchema, DistributorService } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { grpcServiceDefinition } from "../common/grpc/service-definition.js";
import { distributorStream } from "./grpc-stream.js";
import { Outbox } from "./outbox.js";

type Call = grpc.ServerDuplexStream<ConnectRequest, ConnectResponse>;

/** What the test server does with a stream, chosen by the Hello's client id. */
const behaviours: Record<string, (call: Call, seen: ConnectRequest[]) => void> = {
  // Welcomes, echoes each ACK's position as an event, ends with OK when the client half-closes.
  echo: (call, seen) => {
    call.write(create(ConnectResponseSchema, { message: { case: "welcome", value: { logId: "log", headPosition: 3n } } }));
    call.on("data", (request: ConnectRequest) => {
      seen.push(request);
      if (request.message.case === "ack") call.write(create(ConnectResponseSchema, { message: { case: "event", value: { position: request.message.value.position } } }));
    });
    call.on("end", () => call.end());
  },
  replaced: (call) => call.emit("error", { code: grpc.status.ABORTED, details: "replaced by a newer stream with the same client id" }),
  // Events, then the drop: the events arrive before the error does.
  slow: (call) => {
    for (let position = 1n; position <= 3n; position++) call.write(create(ConnectResponseSchema, { message: { case: "event", value: { position } } }));
    call.emit("error", { code: grpc.status.RESOURCE_EXHAUSTED, details: "too slow" });
  },
  silent: () => undefined,
};

let server: grpc.Server;
let url: string;
const metadata: grpc.Metadata[] = [];
const hellos: string[] = [];
const cancelled: string[] = [];

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

before(async () => {
  server = new grpc.Server();
  server.addService(grpcServiceDefinition(DistributorService), {
    connect: (call: Call) => {
      metadata.push(call.metadata);
      const seen: ConnectRequest[] = [];
      call.once("data", (hello: ConnectRequest) => {
        const clientId = hello.message.case === "hello" ? hello.message.value.clientId : "";
        hellos.push(clientId);
        call.on("cancelled", () => cancelled.push(clientId));
        behaviours[clientId]?.(call, seen);
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) => (error === null ? resolve(bound) : reject(error))));
  url = `http://127.0.0.1:${port}`;
});
after(() => server.forceShutdown());

function hello(clientId: string): Outbox<ConnectRequest> {
  const outbox = new Outbox<ConnectRequest>();
  outbox.push(create(ConnectRequestSchema, { message: { case: "hello", value: { clientId, topics: ["policy_data"] } } }));
  return outbox;
}

async function collect(stream: AsyncIterable<ConnectResponse>, onEach: (response: ConnectResponse) => void = () => undefined): Promise<{ responses: ConnectResponse[]; error?: ConnectError }> {
  const responses: ConnectResponse[] = [];
  try {
    for await (const response of stream) {
      responses.push(response);
      onEach(response);
    }
    return { responses };
  } catch (error) {
    assert.ok(error instanceof ConnectError, `a ConnectError, not ${String(error)}`);
    return { responses, error };
  }
}

test("distributorStream(): requests go up with the token, responses come down, a half-close ends it with OK", async () => {
  const outbox = hello("echo");
  const signal = new AbortController().signal;
  const { responses, error } = await collect(distributorStream(outbox.drain(), { url, tls: undefined, headers: { authorization: "Bearer t0ken" }, signal }), (response) => {
    if (response.message.case === "welcome") outbox.push(create(ConnectRequestSchema, { message: { case: "ack", value: { position: 5n } } }));
    if (response.message.case === "event") outbox.close();
  });
  assert.equal(error, undefined);
  assert.deepEqual(
    responses.map((response) => response.message.case),
    ["welcome", "event"],
  );
  assert.equal(responses[1]?.message.case === "event" && responses[1].message.value.position, 5n);
  assert.deepEqual(metadata.at(-1)?.get("authorization"), ["Bearer t0ken"]);
});

test("distributorStream(): the server's status is a ConnectError with the same code, after the messages sent before it", async (t) => {
  const cases: Array<[string, Code, string, number]> = [
    ["replaced", Code.Aborted, "replaced by a newer stream with the same client id", 0],
    ["slow", Code.ResourceExhausted, "too slow", 3],
  ];
  for (const [clientId, code, message, events] of cases) {
    await t.test(clientId, async () => {
      const { responses, error } = await collect(distributorStream(hello(clientId).drain(), { url, tls: undefined, headers: {}, signal: new AbortController().signal }));
      assert.equal(error?.code, code);
      assert.equal(error?.rawMessage, message);
      assert.equal(responses.length, events);
    });
  }
});

test("distributorStream(): the signal ends the call, on both sides, with the signal's reason", async () => {
  const controller = new AbortController();
  const outbox = hello("silent");
  const collected = collect(distributorStream(outbox.drain(), { url, tls: undefined, headers: {}, signal: controller.signal }));
  await until(() => hellos.includes("silent"), "the Hello to reach the server");
  controller.abort(new Error("reconnecting"));
  const { error } = await collected;
  outbox.close();
  assert.equal(error?.code, Code.Canceled);
  assert.equal(error?.rawMessage, "reconnecting");
  await until(() => cancelled.includes("silent"), "the server to see the call cancelled");
});

test("distributorStream(): nothing listening is UNAVAILABLE", async () => {
  const probe = new grpc.Server();
  const port = await new Promise<number>((resolve, reject) => probe.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) => (error === null ? resolve(bound) : reject(error))));
  probe.forceShutdown();
  const { error } = await collect(distributorStream(hello("echo").drain(), { url: `http://127.0.0.1:${port}`, tls: undefined, headers: {}, signal: new AbortController().signal }));
  assert.equal(error?.code, Code.Unavailable);
});
