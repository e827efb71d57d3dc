import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { type Event, EventSchema } from "../../gen/opal/mesh/v1/event_pb.js";
import { EventWindow, logEventWindow } from "./event-window.js";

function event(position: bigint, topic = "policy_data"): Event {
  return create(EventSchema, { position, topics: [topic], payload: { case: "dataUpdate", value: { id: `u${position}` } } });
}

/** The distributor's kind: a log that may have gaps, each event 10 bytes. */
function window(maxEvents = 100, maxBytes = 1024 * 1024, size = 10): EventWindow<Event> {
  return new EventWindow<Event>({ maxEvents, maxBytes, positionOf: (item) => item.position, sizeOf: () => size });
}

const positions = (events: Event[] | undefined): bigint[] | undefined => events?.map((item) => item.position);

test("after() gives the events after a position the window reaches back to, else undefined", () => {
  const recent = window();
  recent.reset(10n);
  for (const position of [11n, 12n, 14n]) recent.append(event(position));
  assert.deepEqual(positions(recent.after(10n)), [11n, 12n, 14n]);
  assert.deepEqual(positions(recent.after(12n)), [14n]);
  assert.deepEqual(positions(recent.after(13n)), [14n], "a position between events (a log with gaps)");
  assert.deepEqual(positions(recent.after(14n)), [], "caught up: nothing to replay");
  assert.equal(recent.after(9n), undefined, "before the window");
  assert.equal(recent.after(15n), undefined, "beyond the head");
  assert.deepEqual(positions(recent.after(10n, 2)), [11n, 12n], "a limit");
});

test("append() ignores what it already holds", () => {
  const recent = window();
  recent.reset(0n);
  assert.equal(recent.append(event(1n)), true);
  assert.equal(recent.append(event(1n)), false);
  assert.equal(recent.size, 1);
});

test("the oldest events go first, by count and by bytes, and the window's start follows", () => {
  const byCount = window(2);
  byCount.reset(0n);
  for (const position of [1n, 2n, 3n]) byCount.append(event(position));
  assert.equal(byCount.start, 1n);
  assert.deepEqual(positions(byCount.after(1n)), [2n, 3n]);
  assert.equal(byCount.after(0n), undefined, "position 1 is no longer held");

  const byBytes = window(100, 8); // every event here is counted as more
  byBytes.reset(0n);
  byBytes.append(event(1n));
  byBytes.append(event(2n));
  assert.equal(byBytes.size, 0, "each event alone is over the byte budget");
  assert.equal(byBytes.bytes, 0);
  assert.equal(byBytes.start, 2n);
  assert.deepEqual(positions(byBytes.after(2n)), []);

  const byTotal = window(100, 25); // two fit, three do not
  for (const position of [1n, 2n, 3n, 4n]) byTotal.append(event(position));
  assert.deepEqual(positions(byTotal.after(2n)), [3n, 4n]);
  assert.equal(byTotal.bytes, 20);
});

test("prepend() joins the events before the start, only where they meet", () => {
  const recent = window();
  recent.reset(5n);
  recent.append(event(6n));
  assert.equal(recent.prepend(2n, 4n, [event(3n), event(4n)]), false, "they would not join at 5");
  assert.equal(recent.prepend(2n, 5n, [event(1n), event(3n), event(4n), event(5n), event(6n)]), true);
  assert.equal(recent.start, 2n);
  assert.deepEqual(positions(recent.after(2n)), [3n, 4n, 5n, 6n], "only (2, 5] is taken from what was read");
  recent.reset(9n);
  assert.equal(recent.prepend(0n, 5n, [event(1n)]), false, "the window was reset meanwhile");
});

test("a contiguous window restarts at an event that does not follow its end", () => {
  const log = logEventWindow({ maxEvents: 10, maxBytes: 1 << 20 });
  for (const position of [1n, 2n, 3n]) log.append(event(position));
  assert.equal(log.firstRetained, 1n);
  log.append(event(7n));
  assert.equal(log.firstRetained, 7n);
  assert.deepEqual(positions(log.after(6n)), [7n]);
  assert.equal(log.after(3n), undefined);
  assert.equal(log.prepend(3n, 6n, [event(4n), event(6n)]), false, "a contiguous window takes no gap");
});

test("a log window counts serialized bytes and lets go of dropped events at once", () => {
  const log = logEventWindow({ maxEvents: 1000, maxBytes: 50 });
  for (let n = 1n; n <= 20n; n++) log.append(event(n, `topic-${n}`));
  assert.equal(log.end, 20n);
  assert.ok(log.firstRetained > 1n, "old events were dropped");
  assert.ok(log.bytes <= 50);
  // The slots before the start hold nothing: what was dropped can be collected.
  const slots = (log as unknown as { slots: unknown[]; offset: number }).slots;
  const offset = (log as unknown as { offset: number }).offset;
  assert.ok(slots.slice(0, offset).every((slot) => slot === undefined));
});

test("compaction keeps positions right after many drops", () => {
  const log = logEventWindow({ maxEvents: 10, maxBytes: 1 << 30 });
  for (let n = 1n; n <= 10_000n; n++) log.append(event(n));
  assert.deepEqual(positions(log.after(9_995n)), [9_996n, 9_997n, 9_998n, 9_999n, 10_000n]);
  assert.ok((log as unknown as { slots: unknown[] }).slots.length < 10_000, "emptied slots were compacted away");
});

test("read() yields held then appended events, and throws for a position no longer held", async () => {
  const log = logEventWindow({ maxEvents: 3, maxBytes: 1 << 20 });
  log.append(event(1n));
  log.append(event(2n));
  const controller = new AbortController();
  const reader = log.read(0n, controller.signal);
  const next = async (): Promise<bigint | undefined> => {
    const result = await reader.next();
    return result.done === true ? undefined : result.value.position;
  };
  assert.equal(await next(), 1n);
  assert.equal(await next(), 2n);
  const third = next();
  log.append(event(3n));
  assert.equal(await third, 3n, "a reader at the end waits for the next append");
  controller.abort();
  assert.equal(await next(), undefined, "the reader ends with its signal");
  log.append(event(4n));
  await assert.rejects(log.read(0n, new AbortController().signal).next(), (error: unknown) => error instanceof RangeError && /oldest held position is 2/.test(error.message));
  const custom = logEventWindow({ maxEvents: 1, maxBytes: 1 << 20 }, (after, first) => new TypeError(`${after} < ${first}`));
  custom.append(event(1n));
  custom.append(event(2n));
  await assert.rejects(custom.read(0n, new AbortController().signal).next(), (error: unknown) => error instanceof TypeError && error.message === "0 < 2");
});

test("waitForAppend() resolves on the next append or on abort", async () => {
  const recent = window();
  const waiting = recent.waitForAppend(new AbortController().signal);
  recent.append(event(1n));
  await waiting;
  const controller = new AbortController();
  const aborted = recent.waitForAppend(controller.signal);
  controller.abort();
  await aborted;
});
