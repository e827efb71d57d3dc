import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { DeliveryState } from "../../gen/opal/mesh/v1/delivery_pb.js";
import { AckSchema, AckStatus } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { type Event, EventSchema } from "../../gen/opal/mesh/v1/event_pb.js";
import { DeliveryTracker, traceIdOf } from "./delivery-tracker.js";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN = "00f067aa0ba902b7";

function dataEvent(position: bigint, id: string, options: { traceparent?: string; topics?: string[]; reason?: string } = {}): Event {
  return create(EventSchema, {
    position,
    topics: options.topics ?? ["policy_data"],
    traceContext: options.traceparent === undefined ? undefined : { traceparent: options.traceparent },
    payload: { case: "dataUpdate", value: { id, reason: options.reason ?? "" } },
  });
}

function policyEvent(position: bigint, hash: string): Event {
  return create(EventSchema, { position, topics: ["policy:."], payload: { case: "policyChanged", value: { hash } } });
}

test("traceIdOf() reads the trace id of a W3C traceparent", async (t) => {
  const cases: Array<[string, string | undefined, string]> = [
    ["a sampled version-00 header", `00-${TRACE}-${SPAN}-01`, TRACE],
    ["an unsampled one", `00-${TRACE}-${SPAN}-00`, TRACE],
    ["surrounding whitespace", `  00-${TRACE}-${SPAN}-01 `, TRACE],
    ["a future version with more fields", `01-${TRACE}-${SPAN}-01-extra`, TRACE],
    ["absent", undefined, ""],
    ["empty", "", ""],
    ["version 00 with a fifth field", `00-${TRACE}-${SPAN}-01-extra`, ""],
    ["the invalid version ff", `ff-${TRACE}-${SPAN}-01`, ""],
    ["an all-zero trace id", `00-${"0".repeat(32)}-${SPAN}-01`, ""],
    ["an all-zero span id", `00-${TRACE}-${"0".repeat(16)}-01`, ""],
    ["upper-case hex", `00-${TRACE.toUpperCase()}-${SPAN}-01`, ""],
    ["a short trace id", `00-${TRACE.slice(1)}-${SPAN}-01`, ""],
    ["not a traceparent", "hello", ""],
  ];
  for (const [name, traceparent, expected] of cases) {
    await t.test(name, () => assert.equal(traceIdOf(traceparent), expected));
  }
});

test("recent() lists data and policy updates, newest first, up to the limit", () => {
  const tracker = new DeliveryTracker({ maxUpdates: 10 });
  tracker.dispatched(dataEvent(1n, "u1", { reason: "users changed" }), ["a", "b"]);
  tracker.dispatched(policyEvent(2n, "abc123"), ["a"]);
  tracker.dispatched(create(EventSchema, { position: 3n, payload: { case: "scopeChanged", value: { scopeId: "acme" } } }), ["a"]);
  tracker.dispatched(dataEvent(4n, ""), ["a"]);
  tracker.dispatched(dataEvent(5n, "u5"), []);
  const all = tracker.recent(10);
  assert.deepEqual(
    all.map((update) => [update.kind, update.status.position, update.status.updateId, update.policyHash]),
    [
      ["data", 5n, "u5", ""],
      ["policy", 2n, "", "abc123"],
      ["data", 1n, "u1", ""],
    ],
    "scope notices and updates without an id are not listed",
  );
  assert.equal(all[2]?.reason, "users changed");
  assert.deepEqual(
    tracker.recent(2).map((update) => update.status.position),
    [5n, 2n],
  );
  assert.deepEqual(tracker.recent(0), []);
});

test("recent() carries each client's state, error and the counts", () => {
  const tracker = new DeliveryTracker({ maxUpdates: 10 });
  tracker.dispatched(dataEvent(1n, "u1"), ["b", "a", "c"]);
  tracker.acknowledged("a", create(AckSchema, { position: 1n, updateId: "u1", status: AckStatus.APPLIED }));
  tracker.acknowledged("b", create(AckSchema, { position: 1n, updateId: "u1", status: AckStatus.FAILED, error: "source answered 500" }));
  const [update] = tracker.recent(1);
  assert.ok(update !== undefined);
  assert.deepEqual(
    update.status.clients.map((client) => [client.clientId, client.state, client.error]),
    [
      ["a", DeliveryState.APPLIED, ""],
      ["b", DeliveryState.FAILED, "source answered 500"],
      ["c", DeliveryState.PENDING, ""],
    ],
  );
  assert.deepEqual([update.status.applied, update.status.failed, update.status.pending, update.status.complete], [1, 1, 1, false]);
});

test("a policy change is tracked by position: its ACKs count, status('') stays unknown", () => {
  const tracker = new DeliveryTracker({ maxUpdates: 10 });
  tracker.dispatched(policyEvent(7n, "abc123"), ["a", "b"]);
  tracker.acknowledged("a", create(AckSchema, { position: 7n, status: AckStatus.APPLIED }));
  tracker.acknowledged("b", create(AckSchema, { position: 7n, status: AckStatus.FAILED, error: "rego_parse_error" }));
  const [policy] = tracker.recent(1);
  assert.deepEqual([policy?.status.applied, policy?.status.failed, policy?.status.complete], [1, 1, true]);
  assert.equal(tracker.status("").known, false);
});

test("trace_id comes from the event's traceparent; published_at from the first dispatch", () => {
  const tracker = new DeliveryTracker({ maxUpdates: 10 });
  const before = Date.now();
  tracker.dispatched(dataEvent(1n, "traced", { traceparent: `00-${TRACE}-${SPAN}-01` }), ["a"]);
  tracker.dispatched(dataEvent(2n, "untraced"), ["a"]);
  const after = Date.now();
  const traced = tracker.status("traced");
  assert.equal(traced.traceId, TRACE);
  assert.equal(tracker.status("untraced").traceId, "");
  const publishedAt = Number(traced.publishedAtUnixMs);
  assert.ok(publishedAt >= before && publishedAt <= after, `${publishedAt} within [${before}, ${after}]`);
  assert.equal(tracker.recent(2)[1]?.status.traceId, TRACE);
});

test("each update names the scopes of its topics", () => {
  const tracker = new DeliveryTracker({ maxUpdates: 10 });
  tracker.dispatched(dataEvent(1n, "plain"), ["a"]);
  tracker.dispatched(dataEvent(2n, "tenant", { topics: ["acme:data:policy_data"] }), ["b"]);
  assert.deepEqual(
    tracker.recent(2).map((update) => update.scopes),
    [["acme"], ["default"]],
  );
});

test("maxUpdates counts policy changes too, and forgets the oldest first", () => {
  const tracker = new DeliveryTracker({ maxUpdates: 2 });
  tracker.dispatched(dataEvent(1n, "u1"), ["a"]);
  tracker.dispatched(policyEvent(2n, "p2"), ["a"]);
  tracker.dispatched(dataEvent(3n, "u3"), ["a"]);
  assert.deepEqual(
    tracker.recent(10).map((update) => update.status.position),
    [3n, 2n],
  );
  assert.equal(tracker.status("u1").known, false);
});

test("a position dispatched again (the log was replaced) replaces the old record and is newest", () => {
  const tracker = new DeliveryTracker({ maxUpdates: 10 });
  tracker.dispatched(dataEvent(1n, "old-1"), ["a"]);
  tracker.dispatched(dataEvent(2n, "old-2"), ["a"]);
  tracker.dispatched(dataEvent(1n, "new-1"), ["a"]);
  assert.deepEqual(
    tracker.recent(10).map((update) => update.status.updateId),
    ["new-1", "old-2"],
  );
  assert.equal(tracker.status("old-1").known, false);
});
