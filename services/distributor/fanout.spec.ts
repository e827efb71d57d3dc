import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { type Event, EventSchema } from "../../gen/opal/mesh/v1/event_pb.js";
import { silentLogger } from "../common/logger.js";
import { Fanout, type FanoutOptions } from "./fanout.js";
import type { DistributorFault, DistributorObserver } from "./observer.js";
import { dataEvent, FakeLog } from "./spec-support/fake-log.js";
import { ClientSession } from "./session.js";
import { RecordingSink, recordedSession } from "./spec-support/recording-sink.js";
import { until } from "./spec-support/until.js";

interface Seen {
  events: bigint[];
  dispatched: Array<[bigint, string[]]>;
  connected: Array<[string, bigint]>;
  disconnected: string[];
  faults: DistributorFault[];
}

async function started(t: TestContext, log: FakeLog, options: Partial<FanoutOptions> = {}): Promise<{ fanout: Fanout; seen: Seen }> {
  const seen: Seen = { events: [], dispatched: [], connected: [], disconnected: [], faults: [] };
  const observer: DistributorObserver = {
    onEvent: (event: Event) => seen.events.push(event.position),
    onDispatched: (event, addressed) => seen.dispatched.push([event.position, [...addressed]]),
    onClientConnected: (clientId, after) => seen.connected.push([clientId, after]),
    onClientDisconnected: (clientId) => seen.disconnected.push(clientId),
    onFault: (fault) => seen.faults.push(fault),
  };
  const fanout = new Fanout({ broadcaster: log.client, logger: silentLogger(), observer, ...options });
  t.after(() => fanout.stop());
  await fanout.start(new AbortController().signal);
  return { fanout, seen };
}

test("start() resolves once subscribed after the log's snapshot; events go to the sessions they are addressed to", async (t) => {
  const log = new FakeLog();
  log.append(dataEvent(1n), dataEvent(2n));
  const { fanout, seen } = await started(t, log);
  assert.equal(fanout.isSubscribed, true);
  assert.equal(fanout.head, 2n);
  assert.equal(fanout.logId, "log-1");
  assert.equal(log.requests[0]?.afterPosition, 2n, "subscribed after the snapshot's position");
  assert.equal(fanout.snapshot.position, 2n);

  const a = recordedSession("a", ["policy_data"]);
  const b = recordedSession("b", ["other"]);
  for (const { session } of [a, b]) {
    session.startAt(fanout.head);
    fanout.sessions.register(session);
  }
  assert.deepEqual(seen.connected, [["a", 2n], ["b", 2n]]);
  log.append(dataEvent(3n, ["policy_data"]), dataEvent(4n, ["other"]));
  await until(() => fanout.head === 4n, "both events dispatched");
  assert.deepEqual(a.sink.summary, ["event:3"]);
  assert.deepEqual(b.sink.summary, ["event:4"]);
  assert.equal(a.session.sentPosition, 4n, "an event not addressed to it moves its cursor too");
  assert.deepEqual(seen.events, [3n, 4n]);
  assert.deepEqual(seen.dispatched, [[3n, ["a"]], [4n, ["b"]]]);
});

test("sessions of one scope share one serialized frame", async (t) => {
  const log = new FakeLog();
  const { fanout } = await started(t, log);
  const one = recordedSession("one");
  const two = recordedSession("two");
  fanout.sessions.register(one.session);
  fanout.sessions.register(two.session);
  log.append(dataEvent(1n));
  await until(() => fanout.head === 1n, "dispatch");
  assert.equal(one.sink.frames[0], two.sink.frames[0], "the same bytes, not a copy each");
});

test("a client that left is still addressed for a while (it may resume), and is told of once", async (t) => {
  const log = new FakeLog();
  const { fanout, seen } = await started(t, log, { leftClientTtlMs: 60_000 });
  const first = recordedSession("c");
  const second = recordedSession("c");
  fanout.sessions.register(first.session);
  fanout.sessions.register(second.session);
  fanout.sessions.unregister(first.session);
  assert.deepEqual(seen.disconnected, [], "its other stream is still open");
  fanout.sessions.unregister(second.session);
  fanout.sessions.unregister(second.session);
  assert.deepEqual(seen.disconnected, ["c"]);
  log.append(dataEvent(1n));
  await until(() => seen.dispatched.length === 1, "dispatch");
  assert.deepEqual(seen.dispatched, [[1n, ["c"]]]);
});

test("a replaced log resyncs every session at the new head and resubscribes", async (t) => {
  const log = new FakeLog();
  log.append(dataEvent(1n), dataEvent(2n), dataEvent(3n));
  const { fanout } = await started(t, log);
  const { session, sink } = recordedSession("a");
  session.startAt(3n);
  fanout.sessions.register(session);
  log.replace("log-2", [dataEvent(1n)]);
  await until(() => fanout.logId === "log-2", "the new log");
  assert.deepEqual(sink.summary, ["resync:1"]);
  assert.equal(session.sentPosition, 1n);
  assert.equal(fanout.head, 1n);
  log.append(dataEvent(2n));
  await until(() => sink.summary.length === 2, "the new log's events");
  assert.deepEqual(sink.summary, ["resync:1", "event:2"]);
});

test("a lost subscription is reported (health, fault) and renewed after the head", async (t) => {
  const log = new FakeLog();
  log.append(dataEvent(1n));
  const { fanout, seen } = await started(t, log);
  log.failWith = new ConnectError("broadcaster restarting", Code.Unavailable);
  log.append(dataEvent(2n));
  await until(() => seen.faults.length === 1, "the fault");
  assert.deepEqual(seen.faults, ["log subscription"]);
  assert.match(fanout.subscriptionProblem ?? "", /broadcaster restarting/);
  await until(() => fanout.head === 2n && fanout.subscriptionProblem === undefined, "renewed");
  assert.equal(log.requests.at(-1)?.afterPosition, 1n, "renewed after the last position dispatched");
});

test("the subscription is renewed after 16 MiB of events, so connect-es lets go of them (#1524)", async (t) => {
  const log = new FakeLog();
  const { fanout } = await started(t, log);
  const { session, sink } = recordedSession("a");
  fanout.sessions.register(session);
  for (let position = 1n; position <= 18n; position++) log.append(dataEvent(position, ["policy_data"], 1024 * 1024));
  await until(() => fanout.head === 18n, "every event", 10_000);
  // Each frame is a little over 1 MiB: the 16th passes 16 MiB.
  assert.equal(log.requests.length, 2);
  assert.equal(log.requests[1]?.afterPosition, 16n);
  assert.deepEqual(sink.summary, Array.from({ length: 18 }, (_, index) => `event:${index + 1}`), "each event once, in order, across the renewal");
});

test("replayFrom() holds the newest events, filled from the log before the head after a start", async (t) => {
  const log = new FakeLog();
  log.append(dataEvent(1n), dataEvent(2n), dataEvent(3n));
  const { fanout } = await started(t, log, { recentEvents: { maxEvents: 100, maxBytes: 1 << 20 } });
  await until(() => fanout.replayFrom(0n) !== undefined, "the events before the head");
  log.append(dataEvent(4n));
  await until(() => fanout.head === 4n, "dispatch");
  assert.deepEqual(fanout.replayFrom(1n)?.map(({ event }) => event.position), [2n, 3n, 4n]);
  assert.ok((fanout.replayFrom(3n)?.[0]?.frame.byteLength ?? 0) > 0, "with their frames");
});

test("stop() ends the subscription, is idempotent, and closed says stopped", async (t) => {
  const log = new FakeLog();
  const { fanout } = await started(t, log);
  await Promise.all([fanout.stop(), fanout.stop()]);
  assert.deepEqual(await fanout.closed, { reason: "stopped" });
  log.append(dataEvent(1n));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(fanout.head, 0n, "nothing is dispatched after stop");
});

test("start() returns when its signal aborts before the log answers", async () => {
  const fanout = new Fanout({ broadcaster: new FakeLog().client, logger: silentLogger() });
  const controller = new AbortController();
  controller.abort();
  await fanout.start(controller.signal);
  await fanout.stop();
  assert.equal(fanout.isSubscribed, false);
});

test("a broadcaster without snapshots: the first subscription starts at its head, as before", async (t) => {
  const log = new FakeLog();
  log.withoutSnapshot = true;
  log.append(dataEvent(1n), dataEvent(2n));
  const { fanout } = await started(t, log);
  assert.equal(log.requests[0]?.fromHead, true);
  assert.equal(fanout.head, 2n);
  assert.equal(fanout.snapshot.position, 2n);
});

test("the fan-out folds every event before dispatching it; a replaced log resyncs snapshot-taking sessions with the new log's snapshot", async (t) => {
  const log = new FakeLog();
  const inline = (position: bigint, path: string, value: string) => create(EventSchema, { position, topics: ["policy_data"], payload: { case: "dataUpdate", value: { id: `u${position}`, entries: [{ dstPath: path, topics: ["policy_data"], dataJson: Buffer.from(value) }] } } });
  log.append(inline(1n, "/a", "1"));
  const { fanout } = await started(t, log);
  log.append(inline(2n, "/b", "2"));
  await until(() => fanout.head === 2n, "the event dispatched");
  const view = fanout.snapshot.view("default", ["policy_data"]);
  assert.equal(view.position, 2n);
  assert.deepEqual(view.afterBaseline.map((item) => item.entry?.dstPath), ["/a", "/b"]);

  const sink = new RecordingSink();
  const session = new ClientSession("s", ["policy_data"], "peer", sink, { maxFrames: 100, maxBytes: 1 << 20 }, "default", true);
  session.startAt(2n);
  fanout.sessions.register(session);
  log.replace("log-2", [inline(1n, "/c", "3")]);
  await until(() => sink.messages.some((message) => message.message.case === "snapshot" && message.message.value.last), "the resync's snapshot");
  const [resync, ...parts] = sink.messages;
  assert.equal(resync?.message.case, "resync");
  assert.equal(resync?.message.case === "resync" && resync.message.value.snapshotFollows, true);
  const entries = parts.flatMap((message) => (message.message.case === "snapshot" ? message.message.value.afterBaseline.map((entry) => entry.dstPath) : []));
  assert.deepEqual(entries, ["/c"], "the new log's state, not the old one's");
  assert.equal(fanout.logId, "log-2");
});
