import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { EventSchema } from "../../gen/opal/mesh/v1/event_pb.js";
import { LogTruncatedError, MemoryLog } from "./memory-log.js";

function event(topic: string) {
  return create(EventSchema, { topics: [topic], payload: { case: "dataUpdate", value: { id: topic } } });
}

test("positions start at 1 and increase by one", () => {
  const log = new MemoryLog({ maxEvents: 10, maxBytes: 1 << 20 });
  assert.deepEqual(log.appendNow([event("a"), event("b")]), [1n, 2n]);
  assert.deepEqual(log.appendNow([event("c")]), [3n]);
  assert.deepEqual(log.head(), { headPosition: 3n, firstRetainedPosition: 1n, logId: log.logId });
});

test("eventsAfter returns later events in order", () => {
  const log = new MemoryLog({ maxEvents: 10, maxBytes: 1 << 20 });
  log.appendNow([event("a"), event("b"), event("c")]);
  assert.deepEqual(log.eventsAfter(1n).map((e) => e.position), [2n, 3n]);
  assert.deepEqual(log.eventsAfter(3n), []);
  assert.deepEqual(log.eventsAfter(0n, 2).map((e) => e.position), [1n, 2n]);
});

test("retention by count drops the oldest and reports truncation", () => {
  const log = new MemoryLog({ maxEvents: 3, maxBytes: 1 << 20 });
  log.appendNow([1, 2, 3, 4, 5].map((n) => event(`t${n}`)));
  assert.deepEqual(log.head(), { headPosition: 5n, firstRetainedPosition: 3n, logId: log.logId });
  assert.deepEqual(log.eventsAfter(2n).map((e) => e.position), [3n, 4n, 5n]);
  assert.throws(() => log.eventsAfter(1n), LogTruncatedError);
});

test("retention by bytes keeps at most maxBytes", () => {
  const log = new MemoryLog({ maxEvents: 1000, maxBytes: 50 });
  for (let n = 0; n < 20; n++) log.appendNow([event(`topic-${n}`)]);
  const { headPosition, firstRetainedPosition } = log.head();
  assert.equal(headPosition, 20n);
  assert.ok(firstRetainedPosition > 1n, "old events were dropped");
  assert.ok(log.eventsAfter(firstRetainedPosition - 1n).length >= 1);
});

test("read yields retained then live events in order", async () => {
  const log = new MemoryLog({ maxEvents: 100, maxBytes: 1 << 20 });
  log.appendNow([event("a"), event("b")]);
  const controller = new AbortController();
  const seen: bigint[] = [];
  const reading = (async () => {
    for await (const e of log.read(0n, controller.signal)) {
      seen.push(e.position);
      if (seen.length === 4) controller.abort();
    }
  })();
  log.appendNow([event("c")]);
  log.appendNow([event("d")]);
  await reading;
  assert.deepEqual(seen, [1n, 2n, 3n, 4n]);
});

test("compaction keeps positions right after many drops", () => {
  const log = new MemoryLog({ maxEvents: 10, maxBytes: 1 << 30 });
  for (let n = 0; n < 10_000; n++) log.appendNow([event("x")]);
  assert.deepEqual(log.eventsAfter(9_995n).map((e) => e.position), [9_996n, 9_997n, 9_998n, 9_999n, 10_000n]);
});
