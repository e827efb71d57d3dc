import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { type Event, EventSchema } from "../../gen/opal/mesh/v1/event_pb.js";
import { RecentEvents } from "./recent-events.js";

function event(position: bigint, topic = "policy_data"): Event {
  return create(EventSchema, { position, topics: [topic], payload: { case: "dataUpdate", value: { id: `u${position}` } } });
}

const positions = (events: Array<{ event: Event }> | undefined): bigint[] | undefined => events?.map((entry) => entry.event.position);

test("after() gives the events after a position the window reaches back to, else undefined", () => {
  const recent = new RecentEvents({ maxEvents: 100, maxBytes: 1024 * 1024 });
  recent.reset(10n);
  for (const position of [11n, 12n, 14n]) recent.append(event(position));
  assert.deepEqual(positions(recent.after(10n)), [11n, 12n, 14n]);
  assert.deepEqual(positions(recent.after(12n)), [14n]);
  assert.deepEqual(positions(recent.after(13n)), [14n], "a position between events (a log with gaps)");
  assert.deepEqual(positions(recent.after(14n)), [], "caught up: nothing to replay");
  assert.equal(recent.after(9n), undefined, "before the window");
  assert.equal(recent.after(15n), undefined, "beyond the head");
});

test("append() ignores what it already holds", () => {
  const recent = new RecentEvents({ maxEvents: 100, maxBytes: 1024 * 1024 });
  recent.reset(0n);
  recent.append(event(1n));
  recent.append(event(1n));
  assert.equal(recent.size, 1);
});

test("the oldest events go first, by count and by bytes, and the window's start follows", () => {
  const byCount = new RecentEvents({ maxEvents: 2, maxBytes: 1024 * 1024 });
  byCount.reset(0n);
  for (const position of [1n, 2n, 3n]) byCount.append(event(position));
  assert.equal(byCount.start, 1n);
  assert.deepEqual(positions(byCount.after(1n)), [2n, 3n]);
  assert.equal(byCount.after(0n), undefined, "position 1 is no longer held");

  const byBytes = new RecentEvents({ maxEvents: 100, maxBytes: 8 }); // every event here encodes to more
  byBytes.reset(0n);
  byBytes.append(event(1n));
  byBytes.append(event(2n));
  assert.equal(byBytes.size, 0, "each event alone is over the byte budget");
  assert.equal(byBytes.start, 2n);
  assert.deepEqual(positions(byBytes.after(2n)), []);
});

test("prepend() joins the events before the start, only where they meet", () => {
  const recent = new RecentEvents({ maxEvents: 100, maxBytes: 1024 * 1024 });
  recent.reset(5n);
  recent.append(event(6n));
  assert.equal(recent.prepend(2n, 4n, [event(3n), event(4n)]), false, "they would not join at 5");
  assert.equal(recent.prepend(2n, 5n, [event(1n), event(3n), event(4n), event(5n), event(6n)]), true);
  assert.equal(recent.start, 2n);
  assert.deepEqual(positions(recent.after(2n)), [3n, 4n, 5n, 6n], "only (2, 5] is taken from what was read");
  recent.reset(9n);
  assert.equal(recent.prepend(0n, 5n, [event(1n)]), false, "the window was reset meanwhile");
});

test("frames are the event as a default-scope client receives it", () => {
  const recent = new RecentEvents({ maxEvents: 10, maxBytes: 1024 * 1024 });
  recent.reset(0n);
  recent.append(event(1n));
  const [entry] = recent.after(0n) ?? [];
  assert.ok(entry !== undefined && entry.frame.byteLength > 0);
});
