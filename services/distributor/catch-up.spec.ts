import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { silentLogger } from "../common/logger.js";
import { CatchUp } from "./catch-up.js";
import { Fanout } from "./fanout.js";
import type { DistributorFault } from "./observer.js";
import { dataEvent, FakeLog } from "./spec-support/fake-log.js";
import { recordedSession } from "./spec-support/recording-sink.js";
import { until } from "./spec-support/until.js";

const LIMITS = { maxFrames: 8, maxBytes: 64 * 1024 * 1024 };

/** A log holding positions 1..`head` (topic policy_data, except `others`), a started fan-out, and catch-up over both. */
async function setUp(t: TestContext, head: number, options: { others?: number[]; recentEvents?: number } = {}) {
  const log = new FakeLog();
  for (let position = 1; position <= head; position++) log.append(dataEvent(BigInt(position), options.others?.includes(position) === true ? ["other"] : ["policy_data"]));
  const connected: Array<[string, bigint]> = [];
  const faults: DistributorFault[] = [];
  const observer = { onClientConnected: (clientId: string, after: bigint) => connected.push([clientId, after]), onFault: (fault: DistributorFault) => faults.push(fault) };
  const fanout = new Fanout({ broadcaster: log.client, logger: silentLogger(), observer, recentEvents: { maxEvents: options.recentEvents ?? 100, maxBytes: 1 << 20 } });
  t.after(() => fanout.stop());
  await fanout.start(new AbortController().signal);
  if (head > 0 && (options.recentEvents ?? 100) > 0) await until(() => fanout.replayFrom(0n) !== undefined, "the recent events");
  const catchUp = new CatchUp({ fanout, broadcaster: log.client, logger: silentLogger(), limits: LIMITS, observer });
  const stream = new AbortController();
  t.after(() => stream.abort());
  return { log, fanout, catchUp, connected, faults, signal: stream.signal };
}

const events = (...positions: number[]): string[] => positions.map((position) => `event:${position}`);

test("where a session starts, by what its Hello says", async (t) => {
  const cases: Array<[string, { position: bigint | undefined; logId: string }, string[], bigint]> = [
    ["a fresh client starts at the head (it loads its baseline)", { position: undefined, logId: "" }, ["welcome:3"], 3n],
    ["a position from another log counts as none", { position: 1n, logId: "another-log" }, ["welcome:3"], 3n],
    ["a client ahead of the log resyncs at the head", { position: 9n, logId: "log-1" }, ["welcome:3", "resync:3"], 3n],
    ["a caught-up client gets nothing", { position: 3n, logId: "log-1" }, ["welcome:3"], 3n],
    ["a client behind is replayed from memory", { position: 1n, logId: "log-1" }, ["welcome:3", ...events(2, 3)], 1n],
  ];
  const { catchUp, connected, signal } = await setUp(t, 3);
  for (const [name, resume, sent, deliversAfter] of cases) {
    await t.test(name, () => {
      connected.length = 0;
      const { session, sink } = recordedSession(name);
      catchUp.begin(session, resume, signal);
      assert.deepEqual(sink.summary, sent);
      assert.equal(session.sentPosition, 3n);
      assert.deepEqual(connected, [[name, deliversAfter]], "registered with fan-out at once");
    });
  }
});

test("a replay from memory skips what is not addressed to the client", async (t) => {
  const { catchUp, signal } = await setUp(t, 4, { others: [3] });
  const { session, sink } = recordedSession("a");
  catchUp.begin(session, { position: 1n, logId: "log-1" }, signal);
  assert.deepEqual(sink.summary, ["welcome:4", ...events(2, 4)]);
  assert.equal(session.sentPosition, 4n);
});

test("a replay over half the send buffer goes through the log, and live events follow it in order", async (t) => {
  const { log, fanout, catchUp, connected, signal } = await setUp(t, 10);
  const { session, sink } = recordedSession("slow", ["policy_data"], LIMITS);
  catchUp.begin(session, { position: 2n, logId: "log-1" }, signal);
  assert.deepEqual(connected, [["slow", 2n]]);
  log.append(dataEvent(11n), dataEvent(12n));
  await until(() => sink.summary.length === 11, "the replay and the live events");
  assert.deepEqual(sink.summary, ["welcome:10", ...events(3, 4, 5, 6, 7, 8, 9, 10, 11, 12)]);
  assert.equal(session.sentPosition, 12n);
  assert.equal(fanout.head, 12n);
  assert.equal(log.requests.at(-1)?.afterPosition, 2n, "the catch-up read the log after the client's position");
});

test("a position the log no longer holds means a resync at the head", async (t) => {
  const { log, catchUp, signal } = await setUp(t, 12, { recentEvents: 0 });
  log.firstRetained = 10n;
  const { session, sink } = recordedSession("late");
  catchUp.begin(session, { position: 2n, logId: "log-1" }, signal);
  await until(() => sink.summary.length === 2, "the resync");
  assert.deepEqual(sink.summary, ["welcome:12", "resync:12"]);
  log.append(dataEvent(13n));
  await until(() => sink.summary.length === 3, "live events after it");
  assert.deepEqual(sink.summary, ["welcome:12", "resync:12", "event:13"]);
});

test("the log losing what is being replayed (DataLoss) means a resync too", async (t) => {
  const { log, catchUp, signal } = await setUp(t, 12, { recentEvents: 0 });
  log.failWith = new ConnectError("fell behind the retention", Code.DataLoss);
  const { session, sink } = recordedSession("late");
  catchUp.begin(session, { position: 2n, logId: "log-1" }, signal);
  await until(() => sink.summary.length === 2, "the resync");
  assert.deepEqual(sink.summary, ["welcome:12", "resync:12"]);
  assert.equal(session.isClosed, false);
});

test("a failed replay drops the client so it resumes, and is counted", async (t) => {
  const { log, fanout, catchUp, faults, signal } = await setUp(t, 12, { recentEvents: 0 });
  log.failWith = new ConnectError("broadcaster gone", Code.Unavailable);
  const { session, sink } = recordedSession("unlucky");
  catchUp.begin(session, { position: 2n, logId: "log-1" }, signal);
  await until(() => sink.failures.length === 1, "the drop");
  assert.deepEqual(sink.failures, [{ code: "unavailable", message: "could not replay the missed events; reconnect to resume" }]);
  assert.deepEqual(faults, ["catch-up"]);
  assert.equal(fanout.sessions.sessionsOf("unlucky").length, 0, "no longer fanned out to");
});

test("a stream that ends during its replay stops the replay quietly", async (t) => {
  const { log, catchUp, faults } = await setUp(t, 12, { recentEvents: 0 });
  const stream = new AbortController();
  const { session, sink } = recordedSession("gone", ["policy_data"], { maxFrames: 2, maxBytes: 1 << 20 });
  catchUp.begin(session, { position: 2n, logId: "log-1" }, stream.signal);
  await until(() => log.requests.length === 2, "the catch-up's read");
  session.close();
  stream.abort();
  await until(() => log.cancelled === 1, "the catch-up's read to be cancelled");
  assert.deepEqual(faults, []);
  assert.deepEqual(sink.failures, []);
});
