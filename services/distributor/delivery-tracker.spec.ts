import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { type ClientDelivery, DeliveryState, type UpdateStatus } from "../../gen/opal/mesh/v1/delivery_pb.js";
import { type Ack, AckSchema, AckStatus } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { type Event, EventSchema } from "../../gen/opal/mesh/v1/event_pb.js";
import { DeliveryTracker } from "./delivery-tracker.js";

/** One turn of the event loop: lets every ready promise chain run. Not a timed wait. */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function dataEvent(position: bigint, id: string, publishedAtUnixMs = 0n): Event {
  return create(EventSchema, { position, publishedAtUnixMs, topics: ["policy_data"], payload: { case: "dataUpdate", value: { id } } });
}

function applied(position: bigint): Ack {
  return create(AckSchema, { position, status: AckStatus.APPLIED });
}

function failed(position: bigint, error: string): Ack {
  return create(AckSchema, { position, status: AckStatus.FAILED, error });
}

/** Clients as [id, state, error], in the order status() lists them. */
function clients(status: UpdateStatus): Array<[string, DeliveryState, string]> {
  return status.clients.map((client: ClientDelivery) => [client.clientId, client.state, client.error]);
}

function counts(status: UpdateStatus): { applied: number; failed: number; pending: number; complete: boolean } {
  return { applied: status.applied, failed: status.failed, pending: status.pending, complete: status.complete };
}

/** A wait() whose settling the test can observe without racing a timer. */
function watch(promise: Promise<UpdateStatus>) {
  const watched = { settled: false, promise };
  void promise.then(() => {
    watched.settled = true;
  });
  return watched;
}

/** An abort signal released when the test ends, so no wait outlives it. */
function testSignal(t: TestContext): AbortController {
  const controller = new AbortController();
  t.after(() => controller.abort());
  return controller;
}

const { PENDING, APPLIED, FAILED } = DeliveryState;
/** Long enough that reaching it would fail the test (LIMIT is far shorter). */
const LONG_WAIT_MS = 60_000;
const LIMIT = { timeout: 5_000 };

test("dispatched() records the addressed clients as pending", () => {
  const tracker = new DeliveryTracker({ maxUpdates: 10 });
  tracker.dispatched(dataEvent(4n, "u4"), ["c", "a", "b"]);
  const status = tracker.status("u4");
  assert.equal(status.known, true);
  assert.equal(status.updateId, "u4");
  assert.equal(status.position, 4n);
  assert.deepEqual(clients(status), [
    ["a", PENDING, ""],
    ["b", PENDING, ""],
    ["c", PENDING, ""],
  ]);
  assert.deepEqual(counts(status), { applied: 0, failed: 0, pending: 3, complete: false });
});

test("what dispatched() does not record", async (t) => {
  const cases: Array<[string, Event, string]> = [
    ["a data update without an id", dataEvent(1n, ""), ""],
    ["a policy event", create(EventSchema, { position: 2n, payload: { case: "policyChanged", value: {} } }), ""],
  ];
  for (const [name, event, id] of cases) {
    await t.test(name, () => {
      const tracker = new DeliveryTracker({ maxUpdates: 10 });
      tracker.dispatched(event, ["a"]);
      assert.equal(tracker.status(id).known, false);
      tracker.acknowledged("a", applied(event.position));
      assert.equal(tracker.status(id).known, false);
    });
  }
});

test("status() of an update never dispatched", () => {
  const tracker = new DeliveryTracker({ maxUpdates: 10 });
  tracker.dispatched(dataEvent(1n, "u1"), ["a"]);
  const status = tracker.status("nope");
  assert.equal(status.known, false);
  assert.equal(status.updateId, "nope");
  assert.deepEqual(clients(status), []);
  assert.equal(status.complete, false);
});

test("acknowledged() moves clients to applied or failed", async (t) => {
  const cases: Array<{ name: string; addressed: string[]; acks: Array<[string, Ack]>; clients: Array<[string, DeliveryState, string]>; counts: ReturnType<typeof counts> }> = [
    {
      name: "every client applied",
      addressed: ["a", "b"],
      acks: [
        ["a", applied(1n)],
        ["b", applied(1n)],
      ],
      clients: [
        ["a", APPLIED, ""],
        ["b", APPLIED, ""],
      ],
      counts: { applied: 2, failed: 0, pending: 0, complete: true },
    },
    {
      name: "a failure keeps its error",
      addressed: ["a", "b"],
      acks: [
        ["a", applied(1n)],
        ["b", failed(1n, "OPA refused it")],
      ],
      clients: [
        ["a", APPLIED, ""],
        ["b", FAILED, "OPA refused it"],
      ],
      counts: { applied: 1, failed: 1, pending: 0, complete: true },
    },
    {
      name: "a client that has not answered stays pending",
      addressed: ["a", "b"],
      acks: [["a", applied(1n)]],
      clients: [
        ["a", APPLIED, ""],
        ["b", PENDING, ""],
      ],
      counts: { applied: 1, failed: 0, pending: 1, complete: false },
    },
    {
      name: "a client not addressed that ACKs is counted",
      addressed: ["a"],
      acks: [
        ["a", applied(1n)],
        ["late", failed(1n, "boom")],
      ],
      clients: [
        ["a", APPLIED, ""],
        ["late", FAILED, "boom"],
      ],
      counts: { applied: 1, failed: 1, pending: 0, complete: true },
    },
    {
      name: "an ACK for a position not tracked is ignored",
      addressed: ["a"],
      acks: [["a", applied(2n)]],
      clients: [["a", PENDING, ""]],
      counts: { applied: 0, failed: 0, pending: 1, complete: false },
    },
    {
      name: "an error sent with APPLIED is dropped",
      addressed: ["a"],
      acks: [["a", create(AckSchema, { position: 1n, status: AckStatus.APPLIED, error: "ignored" })]],
      clients: [["a", APPLIED, ""]],
      counts: { applied: 1, failed: 0, pending: 0, complete: true },
    },
    {
      name: "a later ACK of the same client replaces the earlier one",
      addressed: ["a"],
      acks: [
        ["a", failed(1n, "first try")],
        ["a", applied(1n)],
      ],
      clients: [["a", APPLIED, ""]],
      counts: { applied: 1, failed: 0, pending: 0, complete: true },
    },
    {
      name: "an update addressed to nobody is complete",
      addressed: [],
      acks: [],
      clients: [],
      counts: { applied: 0, failed: 0, pending: 0, complete: true },
    },
  ];
  for (const { name, addressed, acks, clients: expectedClients, counts: expectedCounts } of cases) {
    await t.test(name, () => {
      const tracker = new DeliveryTracker({ maxUpdates: 10 });
      tracker.dispatched(dataEvent(1n, "u1"), addressed);
      for (const [clientId, ack] of acks) tracker.acknowledged(clientId, ack);
      const status = tracker.status("u1");
      assert.deepEqual(clients(status), expectedClients);
      assert.deepEqual(counts(status), expectedCounts);
    });
  }
});

test("an ACK's latency is measured from the publication", async (t) => {
  await t.test("from publishedAtUnixMs", () => {
    const tracker = new DeliveryTracker({ maxUpdates: 10 });
    const before = Date.now();
    tracker.dispatched(dataEvent(1n, "u1", BigInt(before - 5_000)), ["a"]);
    tracker.acknowledged("a", applied(1n));
    const after = Date.now();
    const latency = Number(tracker.status("u1").clients[0]?.latencyMs);
    assert.ok(latency >= 5_000 && latency <= after - before + 5_000, `latency ${latency}`);
  });

  await t.test("from the dispatch when the publication time is unknown", () => {
    const tracker = new DeliveryTracker({ maxUpdates: 10 });
    const before = Date.now();
    tracker.dispatched(dataEvent(1n, "u1"), ["a"]);
    tracker.acknowledged("a", applied(1n));
    const latency = Number(tracker.status("u1").clients[0]?.latencyMs);
    assert.ok(latency >= 0 && latency <= Date.now() - before, `latency ${latency}`);
  });

  await t.test("never negative when the publisher's clock is ahead", () => {
    const tracker = new DeliveryTracker({ maxUpdates: 10 });
    tracker.dispatched(dataEvent(1n, "u1", BigInt(Date.now() + 60_000)), ["a"]);
    tracker.acknowledged("a", applied(1n));
    assert.equal(tracker.status("u1").clients[0]?.latencyMs, 0n);
  });
});

test("wait() resolves as soon as the last pending client ACKs", LIMIT, async (t) => {
  const tracker = new DeliveryTracker({ maxUpdates: 10 });
  tracker.dispatched(dataEvent(1n, "u1"), ["a", "b"]);
  const started = Date.now();
  const waiting = watch(tracker.wait("u1", 1n, LONG_WAIT_MS, testSignal(t).signal));
  await turn();
  assert.equal(waiting.settled, false, "both clients pending");
  tracker.acknowledged("a", applied(1n));
  await turn();
  assert.equal(waiting.settled, false, "b still pending");
  tracker.acknowledged("b", failed(1n, "boom"));
  await turn();
  assert.equal(waiting.settled, true, "settled by the last ACK");
  const status = await waiting.promise;
  assert.deepEqual(counts(status), { applied: 1, failed: 1, pending: 0, complete: true });
  assert.ok(Date.now() - started < LONG_WAIT_MS / 2, "long before the timeout");
});

test("wait() answers at once when nothing is pending", LIMIT, async (t) => {
  const tracker = new DeliveryTracker({ maxUpdates: 10 });
  tracker.dispatched(dataEvent(1n, "u1"), ["a"]);
  tracker.acknowledged("a", applied(1n));
  const waiting = watch(tracker.wait("u1", 1n, LONG_WAIT_MS, testSignal(t).signal));
  await turn();
  assert.equal(waiting.settled, true);
  assert.deepEqual(counts(await waiting.promise), { applied: 1, failed: 0, pending: 0, complete: true });
});

test("wait() returns at the timeout with the pending clients listed", LIMIT, async (t) => {
  const tracker = new DeliveryTracker({ maxUpdates: 10 });
  tracker.dispatched(dataEvent(1n, "u1"), ["a", "b"]);
  tracker.acknowledged("a", applied(1n));
  const timeoutMs = 50;
  const started = Date.now();
  const status = await tracker.wait("u1", 1n, timeoutMs, testSignal(t).signal);
  assert.ok(Date.now() - started >= timeoutMs, "not before the timeout");
  assert.deepEqual(clients(status), [
    ["a", APPLIED, ""],
    ["b", PENDING, ""],
  ]);
  assert.deepEqual(counts(status), { applied: 1, failed: 0, pending: 1, complete: false });
});

test("wait() returns when its signal is aborted", LIMIT, async () => {
  const tracker = new DeliveryTracker({ maxUpdates: 10 });
  tracker.dispatched(dataEvent(1n, "u1"), ["a"]);
  const controller = new AbortController();
  const waiting = watch(tracker.wait("u1", 1n, LONG_WAIT_MS, controller.signal));
  await turn();
  assert.equal(waiting.settled, false);
  controller.abort();
  await turn();
  assert.equal(waiting.settled, true);
  assert.deepEqual(counts(await waiting.promise), { applied: 0, failed: 0, pending: 1, complete: false });
});

test("wait() for an update not dispatched yet", LIMIT, async (t) => {
  await t.test("waits for its dispatch, then for its clients", async (t) => {
    const tracker = new DeliveryTracker({ maxUpdates: 10 });
    tracker.dispatched(dataEvent(1n, "u1"), ["a"]);
    const waiting = watch(tracker.wait("u2", 2n, LONG_WAIT_MS, testSignal(t).signal));
    await turn();
    assert.equal(waiting.settled, false, "not dispatched");
    tracker.dispatched(dataEvent(2n, "u2"), ["a"]);
    await turn();
    assert.equal(waiting.settled, false, "a is pending");
    tracker.acknowledged("a", applied(2n));
    const status = await waiting.promise;
    assert.equal(status.known, true);
    assert.deepEqual(counts(status), { applied: 1, failed: 0, pending: 0, complete: true });
  });

  await t.test("without a position, waits for the id to be dispatched", async (t) => {
    const tracker = new DeliveryTracker({ maxUpdates: 10 });
    const waiting = watch(tracker.wait("u3", 0n, LONG_WAIT_MS, testSignal(t).signal));
    tracker.dispatched(dataEvent(1n, "other"), ["a"]);
    tracker.dispatched(dataEvent(2n, "more"), ["a"]);
    await turn();
    assert.equal(waiting.settled, false, "other updates do not end the wait");
    tracker.dispatched(dataEvent(3n, "u3"), []);
    const status = await waiting.promise;
    assert.equal(status.known, true);
    assert.equal(status.position, 3n);
  });

  await t.test("stops when its position passes without it", async (t) => {
    const tracker = new DeliveryTracker({ maxUpdates: 10 });
    const waiting = watch(tracker.wait("u5", 5n, LONG_WAIT_MS, testSignal(t).signal));
    tracker.dispatched(dataEvent(4n, "u4"), ["a"]);
    await turn();
    assert.equal(waiting.settled, false, "position 5 not reached");
    tracker.dispatched(dataEvent(6n, "u6"), ["a"]);
    await turn();
    assert.equal(waiting.settled, true, "position 6 passed 5");
    assert.equal((await waiting.promise).known, false);
  });

  await t.test("answers at once when its position was passed before", async (t) => {
    const tracker = new DeliveryTracker({ maxUpdates: 10 });
    tracker.dispatched(dataEvent(9n, "u9"), ["a"]);
    const waiting = watch(tracker.wait("u5", 5n, LONG_WAIT_MS, testSignal(t).signal));
    await turn();
    assert.equal(waiting.settled, true);
    assert.equal((await waiting.promise).known, false);
  });

  await t.test("returns unknown at the timeout", async (t) => {
    const tracker = new DeliveryTracker({ maxUpdates: 10 });
    const started = Date.now();
    const status = await tracker.wait("u1", 1n, 30, testSignal(t).signal);
    assert.ok(Date.now() - started >= 30);
    assert.equal(status.known, false);
  });
});

test("maxUpdates forgets the oldest updates", () => {
  const tracker = new DeliveryTracker({ maxUpdates: 2 });
  for (const position of [1n, 2n, 3n]) tracker.dispatched(dataEvent(position, `u${position}`), ["a"]);
  assert.deepEqual(
    ["u1", "u2", "u3"].map((id) => tracker.status(id).known),
    [false, true, true],
  );
  tracker.acknowledged("a", applied(1n));
  assert.equal(tracker.status("u1").known, false, "an ACK does not bring it back");
  tracker.acknowledged("a", applied(2n));
  assert.equal(tracker.status("u2").applied, 1, "the kept ones still count");
});

test("maxClientRecords forgets the oldest updates once their clients add up past it, never the newest", () => {
  const tracker = new DeliveryTracker({ maxUpdates: 100, maxClientRecords: 5 });
  tracker.dispatched(dataEvent(1n, "u1"), ["a", "b"]);
  tracker.dispatched(dataEvent(2n, "u2"), ["a", "b"]);
  assert.deepEqual([tracker.status("u1").known, tracker.status("u2").known], [true, true], "4 entries fit");
  tracker.dispatched(dataEvent(3n, "u3"), ["a", "b"]);
  assert.deepEqual(
    ["u1", "u2", "u3"].map((id) => tracker.status(id).known),
    [false, true, true],
    "6 entries did not: the oldest went",
  );
  tracker.acknowledged("late", applied(3n)); // joins u3: 5 entries now
  tracker.dispatched(dataEvent(4n, "u4"), ["a", "b", "c", "d", "e", "f", "g"]);
  assert.deepEqual(
    ["u2", "u3", "u4"].map((id) => tracker.status(id).known),
    [false, false, true],
    "an update larger than the budget is still followed",
  );
  assert.equal(tracker.status("u4").pending, 7);
});

test("wait() counts a client addressed twice (two sessions of one id) once", LIMIT, async (t) => {
  const tracker = new DeliveryTracker({ maxUpdates: 10 });
  tracker.dispatched(dataEvent(1n, "u1"), ["a", "a", "b"]);
  const waiting = watch(tracker.wait("u1", 1n, LONG_WAIT_MS, testSignal(t).signal));
  tracker.acknowledged("a", applied(1n));
  tracker.acknowledged("a", applied(1n));
  await turn();
  assert.equal(waiting.settled, false, "b still pending");
  tracker.acknowledged("b", applied(1n));
  await turn();
  assert.equal(waiting.settled, true);
  assert.deepEqual(counts(await waiting.promise), { applied: 2, failed: 0, pending: 0, complete: true });
});

test(
  "wait() on an update that is forgotten returns at once",
  { ...LIMIT },
  async (t) => {
    const tracker = new DeliveryTracker({ maxUpdates: 1 });
    tracker.dispatched(dataEvent(1n, "u1"), ["a"]);
    const waiting = watch(tracker.wait("u1", 1n, LONG_WAIT_MS, testSignal(t).signal));
    await turn();
    assert.equal(waiting.settled, false);
    tracker.dispatched(dataEvent(2n, "u2"), ["a"]);
    await turn();
    assert.equal(waiting.settled, true, "the wait ended when u1 was forgotten");
    assert.equal((await waiting.promise).known, false);
  },
);

function disconnectedCounts(status: UpdateStatus): { pending: number; disconnected: number; complete: boolean } {
  return { pending: status.pending, disconnected: status.disconnected, complete: status.complete };
}

test("a client whose stream ended is disconnected for what it has not acknowledged, not pending", async (t) => {
  const { DISCONNECTED } = DeliveryState;
  await t.test("it leaves after the dispatch", () => {
    const tracker = new DeliveryTracker({ maxUpdates: 10 });
    tracker.dispatched(dataEvent(1n, "u1"), ["a", "b", "c"]);
    tracker.acknowledged("c", applied(1n));
    tracker.clientDisconnected("b");
    tracker.clientDisconnected("c");
    assert.deepEqual(clients(tracker.status("u1")), [["a", PENDING, ""], ["b", DISCONNECTED, ""], ["c", APPLIED, ""]], "an ACK before leaving still counts");
    assert.deepEqual(disconnectedCounts(tracker.status("u1")), { pending: 1, disconnected: 1, complete: false });
    tracker.acknowledged("a", applied(1n));
    assert.deepEqual(disconnectedCounts(tracker.status("u1")), { pending: 0, disconnected: 1, complete: true });
  });
  await t.test("it had left before the dispatch (listed, as it may come back)", () => {
    const tracker = new DeliveryTracker({ maxUpdates: 10 });
    tracker.clientConnected("a", 0n);
    tracker.clientDisconnected("a");
    tracker.dispatched(dataEvent(2n, "u2"), ["a"]);
    assert.deepEqual(clients(tracker.status("u2")), [["a", DISCONNECTED, ""]]);
    assert.equal(tracker.status("u2").complete, true);
  });
  const resumeCases: Array<[string, bigint, DeliveryState]> = [
    ["it resumes from before the update: pending again", 4n, PENDING],
    ["it resumes from the update's position: that stream will not deliver it", 5n, DISCONNECTED],
    ["it starts fresh at a later head", 9n, DISCONNECTED],
  ];
  for (const [name, deliversAfter, state] of resumeCases) {
    await t.test(name, () => {
      const tracker = new DeliveryTracker({ maxUpdates: 10 });
      tracker.dispatched(dataEvent(5n, "u5"), ["a"]);
      tracker.clientDisconnected("a");
      tracker.clientConnected("a", deliversAfter);
      assert.deepEqual(clients(tracker.status("u5")), [["a", state, ""]]);
    });
  }
  await t.test("its ACK after resuming makes it applied", () => {
    const tracker = new DeliveryTracker({ maxUpdates: 10 });
    tracker.dispatched(dataEvent(5n, "u5"), ["a"]);
    tracker.clientDisconnected("a");
    tracker.acknowledged("a", applied(5n));
    assert.deepEqual(clients(tracker.status("u5")), [["a", APPLIED, ""]]);
    assert.deepEqual(disconnectedCounts(tracker.status("u5")), { pending: 0, disconnected: 0, complete: true });
  });
});

test("wait() does not wait on a client that disconnects", LIMIT, async (t) => {
  const tracker = new DeliveryTracker({ maxUpdates: 10 });
  tracker.dispatched(dataEvent(1n, "u1"), ["a", "b"]);
  const waiting = watch(tracker.wait("u1", 1n, LONG_WAIT_MS, testSignal(t).signal));
  tracker.acknowledged("a", applied(1n));
  await turn();
  assert.equal(waiting.settled, false, "b is still pending");
  tracker.clientDisconnected("b");
  await turn();
  assert.equal(waiting.settled, true, "answered as soon as b left");
  const status = await waiting.promise;
  assert.deepEqual(disconnectedCounts(status), { pending: 0, disconnected: 1, complete: true });
  assert.deepEqual(clients(status), [["a", APPLIED, ""], ["b", DeliveryState.DISCONNECTED, ""]]);
});

test("wait() answers at once when every pending client has already left", LIMIT, async (t) => {
  const tracker = new DeliveryTracker({ maxUpdates: 10 });
  tracker.dispatched(dataEvent(1n, "u1"), ["a"]);
  tracker.clientDisconnected("a");
  const status = await tracker.wait("u1", 1n, LONG_WAIT_MS, testSignal(t).signal);
  assert.deepEqual(disconnectedCounts(status), { pending: 0, disconnected: 1, complete: true });
});

test("wait() waits again on a client that resumes from before the update, until it ACKs", LIMIT, async (t) => {
  const tracker = new DeliveryTracker({ maxUpdates: 10 });
  tracker.dispatched(dataEvent(3n, "u3"), ["a", "b"]);
  tracker.clientDisconnected("b");
  const waiting = watch(tracker.wait("u3", 3n, LONG_WAIT_MS, testSignal(t).signal));
  tracker.clientConnected("b", 2n);
  tracker.acknowledged("a", applied(3n));
  await turn();
  assert.equal(waiting.settled, false, "b resumed before u3: its stream delivers it");
  tracker.clientConnected("b", 2n);
  await turn();
  assert.equal(waiting.settled, false, "a second stream of b (replacing the first) counts once");
  tracker.acknowledged("b", applied(3n));
  await turn();
  assert.equal(waiting.settled, true);
  assert.deepEqual(counts(await waiting.promise), { applied: 2, failed: 0, pending: 0, complete: true });
});

test("a cumulative ACK answers as one ACK per update would: failures kept, updates sent after dispatch joined, others untouched", () => {
  const tracker = new DeliveryTracker({ maxUpdates: 100 });
  const one = new DeliveryTracker({ maxUpdates: 100 });
  const policyData = (topics: readonly string[]): boolean => topics.includes("policy_data");
  for (const position of [1n, 2n, 3n, 4n, 5n]) {
    for (const each of [tracker, one]) each.dispatched(dataEvent(position, `u${position}`), position === 4n ? ["b"] : ["a", "b"]);
  }
  // a failed 2; applied everything else it was sent up to 4 (4 came by catch-up: not addressed at dispatch).
  for (const each of [tracker, one]) each.acknowledged("a", failed(2n, "refused"));
  tracker.acknowledgedThrough("a", 0n, 4n, policyData);
  for (const position of [1n, 3n, 4n]) one.acknowledged("a", applied(position));
  for (const position of [1n, 2n, 3n, 4n, 5n]) {
    assert.deepEqual(clients(tracker.status(`u${position}`)), clients(one.status(`u${position}`)), `u${position}`);
    assert.deepEqual(counts(tracker.status(`u${position}`)), counts(one.status(`u${position}`)), `u${position}`);
  }
  assert.deepEqual(clients(tracker.status("u2"))[0], ["a", FAILED, "refused"]);
  assert.deepEqual(clients(tracker.status("u5"))[0], ["a", PENDING, ""]);
  // A range before what is remembered, and one longer than it, take the same path to the same answer.
  tracker.acknowledgedThrough("b", 0n, 1_000_000n, policyData);
  assert.equal(tracker.status("u5").complete, false, "a is still pending on 5");
  assert.deepEqual(counts(tracker.status("u4")), { applied: 2, failed: 0, pending: 0, complete: true });
  // Not sent to it (other topics): nothing joins.
  tracker.dispatched(create(EventSchema, { position: 6n, topics: ["other"], payload: { case: "dataUpdate", value: { id: "u6" } } }), []);
  tracker.acknowledgedThrough("a", 4n, 6n, policyData);
  assert.deepEqual(clients(tracker.status("u6")), []);
});

test("a cumulative ACK wakes a publisher waiting on the updates it covers", async (t) => {
  const tracker = new DeliveryTracker({ maxUpdates: 100 });
  tracker.clientConnected("a", 0n);
  tracker.dispatched(dataEvent(1n, "u1"), ["a"]);
  tracker.dispatched(dataEvent(2n, "u2"), ["a"]);
  const waiting = watch(tracker.wait("u2", 2n, LONG_WAIT_MS, testSignal(t).signal));
  await turn();
  assert.equal(waiting.settled, false);
  tracker.acknowledgedThrough("a", 0n, 2n, () => true);
  const status = await waiting.promise;
  assert.deepEqual(counts(status), { applied: 1, failed: 0, pending: 0, complete: true });
});
