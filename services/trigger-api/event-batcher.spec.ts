import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { type BroadcasterService, type PublishRequest, PublishResponseSchema } from "../../gen/opal/mesh/v1/broadcaster_pb.js";
import { EventSchema } from "../../gen/opal/mesh/v1/event_pb.js";
import { MemoryLog } from "../broadcaster/memory-log.js";
import { EventBatcher } from "./event-batcher.js";

function event(id: string, bytes = 0) {
  return create(EventSchema, { topics: ["policy_data"], payload: { case: "dataUpdate", value: { id, entries: [{ dstPath: "/x", topics: ["policy_data"], dataJson: new Uint8Array(bytes) }] } } });
}

/** A broadcaster over a real in-memory log that records each Publish's events; `fail` makes the next one throw. */
function broadcaster() {
  const log = new MemoryLog({ maxEvents: 100_000, maxBytes: 1 << 30 });
  const calls: string[][] = [];
  const state = { fail: undefined as Error | undefined, hold: undefined as Promise<void> | undefined };
  const client = {
    async publish(request: PublishRequest) {
      calls.push(request.events.map((e) => (e.payload.case === "dataUpdate" ? e.payload.value.id : "")));
      if (state.hold !== undefined) await state.hold;
      const failure = state.fail;
      state.fail = undefined;
      if (failure !== undefined) throw failure;
      return create(PublishResponseSchema, { positions: log.appendNow(request.events) });
    },
  } as unknown as Client<typeof BroadcasterService>;
  return { client, calls, state };
}

test("one event alone is published at once, in a Publish of its own", async () => {
  const { client, calls } = broadcaster();
  assert.equal(await new EventBatcher(client).append(event("a")), 1n);
  assert.deepEqual(calls, [["a"]]);
});

test("events appended in the same turn share one Publish; each gets its own position, in call order", async () => {
  const { client, calls } = broadcaster();
  const batcher = new EventBatcher(client);
  const positions = await Promise.all(["a", "b", "c", "d"].map((id) => batcher.append(event(id))));
  assert.deepEqual(positions, [1n, 2n, 3n, 4n]);
  assert.deepEqual(calls, [["a", "b", "c", "d"]]);
});

test("events appended while a Publish is in flight wait for it and go together in the next", async () => {
  const { client, calls, state } = broadcaster();
  const batcher = new EventBatcher(client);
  let release!: () => void;
  state.hold = new Promise((resolve) => (release = resolve));
  const first = batcher.append(event("a"));
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(calls, [["a"]]);
  const later = [batcher.append(event("b")), batcher.append(event("c"))];
  state.hold = undefined;
  release();
  assert.deepEqual(await Promise.all([first, ...later]), [1n, 2n, 3n]);
  assert.deepEqual(calls, [["a"], ["b", "c"]]);
});

test("a failed Publish fails the callers of its batch only; later events are published", async () => {
  const { client, state } = broadcaster();
  const batcher = new EventBatcher(client);
  state.fail = new Error("log unavailable");
  const failed = [batcher.append(event("a")), batcher.append(event("b"))];
  for (const outcome of await Promise.allSettled(failed)) assert.equal(outcome.status === "rejected" && (outcome.reason as Error).message, "log unavailable");
  assert.equal(await batcher.append(event("c")), 1n);
});

test("a batch stays under its size bound; an event bigger than the bound goes alone", async () => {
  const { client, calls } = broadcaster();
  const batcher = new EventBatcher(client);
  const big = 700 * 1024;
  await Promise.all([batcher.append(event("a", big)), batcher.append(event("b", big)), batcher.append(event("c", 2 * 1024 * 1024)), batcher.append(event("d"))]);
  assert.deepEqual(calls, [["a"], ["b"], ["c"], ["d"]]);
});

test("a batch the log refuses for room (RESOURCE_EXHAUSTED) goes again one by one: only the updates that do not fit fail", async () => {
  const log = new MemoryLog({ maxEvents: 100, maxBytes: 1 << 20 });
  const calls: string[][] = [];
  const client = {
    publish(request: PublishRequest) {
      const ids = request.events.map((e) => (e.payload.case === "dataUpdate" ? e.payload.value.id : ""));
      calls.push(ids);
      // The log has room for anything but "big".
      if (ids.includes("big")) return Promise.reject(new ConnectError("over OPAL_MESH_SNAPSHOT_MAX_BYTES", Code.ResourceExhausted));
      return Promise.resolve(create(PublishResponseSchema, { positions: log.appendNow(request.events) }));
    },
  } as unknown as Client<typeof BroadcasterService>;
  const batcher = new EventBatcher(client);
  const outcomes = await Promise.allSettled(["a", "big", "c"].map((id) => batcher.append(event(id))));
  assert.deepEqual(outcomes.map((outcome) => (outcome.status === "fulfilled" ? outcome.value : (outcome.reason as Error).message)), [1n, "[resource_exhausted] over OPAL_MESH_SNAPSHOT_MAX_BYTES", 2n]);
  assert.deepEqual(calls, [["a", "big", "c"], ["a"], ["big"], ["c"]]);
});
