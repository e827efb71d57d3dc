import assert from "node:assert/strict";
import test from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { BroadcasterService, type SubscribeRequest, SubscribeResponseSchema } from "../../../gen/opal/mesh/v1/broadcaster_pb.js";
import { directClient } from "./direct-client.js";

function service(overrides: Partial<ServiceImpl<typeof BroadcasterService>>): ServiceImpl<typeof BroadcasterService> {
  const unused = (): never => {
    throw new Error("not in this test");
  };
  return { publish: unused, subscribe: unused, head: unused, readSnapshot: unused, ...overrides };
}

test("a unary call reaches the implementation with the message, and answers with a message of the output type", async () => {
  const client = directClient(
    BroadcasterService,
    service({ publish: (request) => ({ positions: request.events.map((_, index) => BigInt(index + 7)) }) }),
  );
  const response = await client.publish({ events: [{ topics: ["a"] }, { topics: ["b"] }] });
  assert.deepEqual(response.positions, [7n, 8n]);
  assert.equal(response.$typeName, "opal.mesh.v1.PublishResponse");
});

test("errors keep their code; anything else is INTERNAL; a cancelled call is CANCELED with its reason", async () => {
  const refusing = directClient(BroadcasterService, service({ publish: () => Promise.reject(new ConnectError("too big", Code.ResourceExhausted)) }));
  await assert.rejects(refusing.publish({}), (error: unknown) => error instanceof ConnectError && error.code === Code.ResourceExhausted && error.rawMessage === "too big");
  const broken = directClient(BroadcasterService, service({ head: () => Promise.reject(new TypeError("oops")) }));
  await assert.rejects(broken.head({}), (error: unknown) => error instanceof ConnectError && error.code === Code.Internal);
  const controller = new AbortController();
  const slow = directClient(
    BroadcasterService,
    service({ head: (_request, context: HandlerContext) => new Promise((_resolve, reject) => context.signal.addEventListener("abort", () => reject(new Error("aborted")))) }),
  );
  const call = slow.head({}, { signal: controller.signal });
  controller.abort(new Error("caller left"));
  await assert.rejects(call, (error: unknown) => error instanceof ConnectError && error.code === Code.Canceled && /caller left/.test(error.message));
});

test("a server stream yields what the implementation yields; when the caller stops reading, the implementation's signal aborts", async () => {
  let signal: AbortSignal | undefined;
  const client = directClient(
    BroadcasterService,
    service({
      async *subscribe(_request: SubscribeRequest, context: HandlerContext) {
        signal = context.signal;
        for (let position = 1n; ; position++) {
          yield create(SubscribeResponseSchema, { message: { case: "event", value: { position } } });
          await new Promise((resolve) => setImmediate(resolve));
        }
      },
    }),
  );
  const seen: bigint[] = [];
  for await (const message of client.subscribe({ fromHead: true })) {
    if (message.message.case === "event") seen.push(message.message.value.position);
    if (seen.length === 3) break;
  }
  assert.deepEqual(seen, [1n, 2n, 3n]);
  assert.equal(signal?.aborted, true);
});
