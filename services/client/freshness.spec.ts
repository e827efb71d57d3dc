import { test } from "node:test";
import assert from "node:assert/strict";
import { Freshness, type Staleness } from "./freshness.js";

function monitor(limits = { maxStalenessMs: 1_000, maxLagPositions: 10 }): { freshness: Freshness; changes: Staleness[]; clock: { now: number } } {
  const clock = { now: 1_000_000 };
  const changes: Staleness[] = [];
  const freshness = new Freshness(limits, (staleness) => changes.push(staleness), () => clock.now);
  freshness.connection(true);
  return { freshness, changes, clock };
}

test("a position waited for resolves when a commit reaches it, on the same log", async () => {
  const { freshness } = monitor();
  freshness.committed("log-a", 4n);
  const waiting = freshness.waitFor(6n, "log-a", 5_000);
  const otherLog = freshness.waitFor(6n, "log-b", 30);
  freshness.committed("log-a", 5n);
  freshness.committed("log-a", 7n);
  assert.deepEqual(await waiting, { reached: true, position: 7n, logId: "log-a" });
  assert.deepEqual(await otherLog, { reached: false, position: 7n, logId: "log-a" }, "a position of another log is never claimed");
  assert.deepEqual(await freshness.waitFor(3n, undefined, 10), { reached: true, position: 7n, logId: "log-a" }, "held already");
});

test("a wait ends at its timeout, or its signal, saying where OPA is", async () => {
  const { freshness } = monitor();
  freshness.committed("log-a", 2n);
  assert.deepEqual(await freshness.waitFor(9n, undefined, 20), { reached: false, position: 2n, logId: "log-a" });
  const controller = new AbortController();
  const aborted = freshness.waitFor(9n, undefined, 60_000, controller.signal);
  controller.abort();
  assert.equal((await aborted).reached, false);
});

test("stale while too far behind the head, fresh again when caught up", () => {
  const { freshness, changes } = monitor();
  freshness.committed("log-a", 100n);
  freshness.headSeen(110n);
  assert.equal(freshness.staleness().stale, false, "10 behind is within the limit");
  freshness.headSeen(111n);
  assert.equal(changes.at(-1)?.stale, true);
  assert.match(changes.at(-1)?.reasons[0] ?? "", /11 positions behind the log's head 111 \(OPAL_MESH_MAX_LAG_POSITIONS=10\)/);
  freshness.headSeen(115n);
  assert.equal(changes.length, 1, "a lag that merely grows is not a new change");
  freshness.committed("log-a", 115n);
  assert.deepEqual(changes.at(-1), { stale: false, since: undefined, reasons: [] });
});

test("stale while the last update failed, until one succeeds", () => {
  const { freshness, changes } = monitor();
  freshness.updateSettled("could not apply /users: OPA said 400");
  assert.deepEqual(changes.at(-1)?.reasons, ["the last update failed: could not apply /users: OPA said 400"]);
  assert.ok(changes.at(-1)?.since !== undefined);
  freshness.updateSettled(undefined);
  assert.equal(changes.at(-1)?.stale, false);
});

test("stale once the stream has been down longer than the limit; fresh when it is back", async () => {
  const { freshness, changes, clock } = monitor({ maxStalenessMs: 30, maxLagPositions: 0 });
  freshness.connection(false);
  assert.equal(freshness.staleness().stale, false, "down, but not for long");
  clock.now += 31;
  // The monitor's own timer re-evaluates at the limit.
  const deadline = Date.now() + 2_000;
  while (changes.at(-1)?.stale !== true && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.match(changes.at(-1)?.reasons[0] ?? "", /the stream to the server has been down for 0 s \(OPAL_MESH_MAX_STALENESS_SECONDS=0.03\)/);
  freshness.connection(true);
  assert.equal(changes.at(-1)?.stale, false);
});

test("limits of 0 turn a cause off; a stop answers every waiter", async () => {
  const { freshness } = monitor({ maxStalenessMs: 0, maxLagPositions: 0 });
  freshness.connection(false);
  freshness.headSeen(1_000_000n);
  assert.equal(freshness.staleness().stale, false);
  const waiting = freshness.waitFor(5n, undefined, 60_000);
  await freshness.component().stop();
  assert.equal((await waiting).reached, false);
});
