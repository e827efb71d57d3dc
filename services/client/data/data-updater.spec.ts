/**
 * The data updater with a recording pipeline and a baseline source double: which jobs it
 * queues for a baseline and for events (topics, duplicates), what their results do to
 * health, and that its timers (periodic refetches) run from start to stop only.
 */
import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import { create } from "@bufbuild/protobuf";
import { type DataSourceEntry, DataSourceEntrySchema, SaveMethod } from "../../../gen/opal/mesh/v1/data_pb.js";
import { type Event, EventSchema } from "../../../gen/opal/mesh/v1/event_pb.js";
import { silentLogger } from "../../common/logger.js";
import { ClientHealth } from "../health.js";
import { DataUpdater } from "./data-updater.js";
import type { JobResult, UpdateJob } from "./update-pipeline.js";

const entry = (dstPath: string, topics: string[], periodicUpdateInterval?: number): DataSourceEntry =>
  create(DataSourceEntrySchema, { url: `http://source.test${dstPath}`, dstPath, topics, ...(periodicUpdateInterval === undefined ? {} : { periodicUpdateInterval }) });

function setup(t: TestContext, sources: DataSourceEntry[] = []) {
  const jobs: UpdateJob[] = [];
  const health = new ClientHealth(true, false);
  const updater = new DataUpdater({
    topics: ["policy_data"],
    pipeline: { enqueue: (job) => void jobs.push(job) },
    baseline: { entries: () => Promise.resolve(sources) },
    health,
    logger: silentLogger(),
  });
  t.after(() => updater.stop());
  return { jobs, health, updater };
}

const dataEvent = (position: bigint, id: string, entries: DataSourceEntry[]): Event =>
  create(EventSchema, { position, payload: { case: "dataUpdate", value: { id, reason: "r", entries } } });

test("nothing is queued before start, nor after stop", async (t) => {
  const { jobs, updater } = setup(t);
  updater.loadBaseline("too early");
  await updater.start(new AbortController().signal);
  await updater.stop();
  updater.loadBaseline("too late");
  assert.equal(jobs.length, 0);
  assert.equal((await updater.closed).reason, "stopped");
});

test("a baseline is one job at its head, with the sources of this client's topics only", async (t) => {
  const { jobs, updater } = setup(t, [entry("/mine", ["policy_data"]), entry("/other", ["other_topic"])]);
  await updater.start(new AbortController().signal);
  updater.loadBaseline("Initial load", { logId: "log-1", position: 12n });
  assert.equal(jobs.length, 1);
  const [job] = jobs as [UpdateJob];
  assert.deepEqual([job.kind, job.position, job.logId, job.updateId], ["baseline", 12n, "log-1", "baseline-1"]);
  assert.deepEqual((await job.entries).map((source) => source.dstPath), ["/mine"]);
});

test("events: entries outside the topics are left out; a repeated update id takes its turn with nothing to apply", async (t) => {
  const { jobs, updater } = setup(t);
  await updater.start(new AbortController().signal);
  const entries = [entry("/a", ["policy_data"]), entry("/b", ["other_topic"])];
  updater.onEvent(dataEvent(5n, "u1", entries), "log-1");
  updater.onEvent(dataEvent(6n, "u1", entries), "log-1");
  updater.onEvent(create(EventSchema, { position: 7n, payload: { case: "policyChanged", value: { hash: "h" } } }), "log-1");
  assert.deepEqual(
    jobs.map((job) => [job.kind, job.position, job.updateId, (job.entries as DataSourceEntry[]).map((source) => source.dstPath)]),
    [
      ["event", 5n, "u1", ["/a"]],
      ["event", 6n, "u1", []],
    ],
  );
});

test("results: the current baseline's outcome is whether the baseline is loaded; an older one's is not", async (t) => {
  const { health, jobs, updater } = setup(t);
  await updater.start(new AbortController().signal);
  updater.loadBaseline("first");
  updater.loadBaseline("second");
  const [first, second] = jobs as [UpdateJob, UpdateJob];
  const result = (job: UpdateJob, ok: boolean): JobResult => ({ job, ok, entries: [], ...(ok ? {} : { error: "source down" }) });

  updater.onResult(result(second, true));
  assert.equal(health.baselineLoaded, true);
  updater.onResult(result(first, false));
  assert.equal(health.baselineLoaded, true, "a superseded baseline does not decide");
  assert.equal(health.report().data.lastTransaction?.ok, false, "but its failure is recorded");
  assert.match(health.message() ?? "", /baseline data failed: source down/);
});

test("periodic refetches run between start and stop", async (t) => {
  t.mock.timers.enable({ apis: ["setInterval", "setTimeout"] });
  const { jobs, updater } = setup(t, [entry("/refreshed", ["policy_data"], 5)]);
  await updater.start(new AbortController().signal);
  updater.loadBaseline("Initial load");
  await (jobs[0] as UpdateJob).entries;
  await Promise.resolve(); // the refetches are scheduled once the list is in
  t.mock.timers.tick(5_000);
  t.mock.timers.tick(5_000);
  assert.deepEqual(
    jobs.map((job) => job.kind),
    ["baseline", "periodic", "periodic"],
  );
  await updater.stop();
  t.mock.timers.tick(20_000);
  assert.equal(jobs.length, 3, "no refetch after stop");
});

test("a baseline with a snapshot: the log's top-level documents cleared first, then the entries before the baseline, the baseline, the entries after", async (t) => {
  const jobs: UpdateJob[] = [];
  const updater = new DataUpdater({
    topics: ["policy_data"],
    pipeline: { enqueue: (job) => void jobs.push(job) },
    baseline: { entries: () => Promise.resolve([entry("/tenant", ["policy_data"])]) },
    health: new ClientHealth(true, false),
    logger: silentLogger(),
    policyDataRoots: () => ["bundled/x"],
  });
  t.after(() => updater.stop());
  await updater.start(new AbortController().signal);
  const inline = (dstPath: string, topics = ["policy_data"]) => create(DataSourceEntrySchema, { dstPath, topics, dataJson: Buffer.from("1") });
  const snapshot = {
    position: 9n,
    beforeBaseline: [inline("/tenant/extra"), inline("/other", ["not_mine"])],
    afterBaseline: [inline("/conv/a/b"), inline("/bundled/y"), inline("/system/x")],
    policyHash: "h",
    rollout: undefined,
    incomplete: undefined,
  };
  updater.loadBaseline("Initial load", { logId: "log-1", position: 9n }, Promise.resolve(snapshot));
  const [job] = jobs as [UpdateJob];
  const entries = await job.entries;
  assert.deepEqual(
    entries.map((one) => `${one.saveMethod === SaveMethod.DELETE ? "DELETE" : "PUT"} ${one.dstPath}`),
    ["DELETE /tenant", "DELETE /conv", "PUT /tenant/extra", "PUT /tenant", "PUT /conv/a/b", "PUT /bundled/y", "PUT /system/x"],
    "a bundle's data root and /system are not cleared; entries of other topics are left out",
  );
  // The snapshot's entries (and the clearing) are the log's: their refusal does not fail the baseline.
  assert.ok(job.replayed?.has(entries[0] as DataSourceEntry) && job.replayed.has(entries[2] as DataSourceEntry));
  assert.equal(job.replayed?.has(entries[3] as DataSourceEntry), false, "the baseline's own source is not");
  assert.equal(job.replayed?.complete, true, "a snapshot that misses nothing");
});
