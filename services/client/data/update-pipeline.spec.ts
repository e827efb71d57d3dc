import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { type DataSourceEntry, DataSourceEntrySchema } from "../../../gen/opal/mesh/v1/data_pb.js";
import { silentLogger } from "../../common/logger.js";
import type { EntryData, EntryWrite } from "./data-transaction.js";
import { type JobKind, type JobResult, UpdatePipeline, type UpdateJob } from "./update-pipeline.js";

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** One turn of the event loop: lets every ready promise chain run. Not a timed wait. */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Stands in for the EntryApplier: every fetch waits until the test releases it (by the
 * entry's url), and every save is recorded, so the test decides which fetch finishes first.
 */
class FakeApplier {
  /** Fetches in the order they started. */
  readonly started: string[] = [];
  /** Saves in the order they started, with the data they were given. */
  readonly saves: Array<[string, string | undefined]> = [];
  readonly failingSaves = new Set<string>();
  inFlight = 0;
  maxInFlight = 0;
  private savesInFlight = 0;
  maxSavesInFlight = 0;
  /** When set, fetches complete as soon as they start. */
  private auto = false;
  private readonly fetches = new Map<string, Deferred<Uint8Array | undefined>>();
  private readonly watchers = new Set<() => void>();

  get saved(): string[] {
    return this.saves.map(([url]) => url);
  }

  async fetch(entry: DataSourceEntry, signal: AbortSignal): Promise<Uint8Array | undefined> {
    const fetch = deferred<Uint8Array | undefined>();
    this.fetches.set(entry.url, fetch);
    this.started.push(entry.url);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    if (this.auto) fetch.resolve(encoder.encode(JSON.stringify(entry.url)));
    const onAbort = () => fetch.reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    this.notify();
    try {
      return await fetch.promise;
    } finally {
      signal.removeEventListener("abort", onAbort);
      this.inFlight--;
      this.notify();
    }
  }

  async save(entry: DataSourceEntry, data: EntryData | undefined): Promise<void> {
    // This fake fetches whole documents only (streamed ones are the entry applier's tests).
    this.saves.push([entry.url, data instanceof Uint8Array ? decoder.decode(data) : undefined]);
    this.savesInFlight++;
    this.maxSavesInFlight = Math.max(this.maxSavesInFlight, this.savesInFlight);
    this.notify();
    // A save takes a turn, so overlapping saves would show in maxSavesInFlight.
    await turn();
    this.savesInFlight--;
    this.notify();
    if (this.failingSaves.has(entry.url)) throw new Error(`store rejected ${entry.url}`);
  }

  /** The pipeline's commit: here, one recorded save per write, in order. */
  async commit(_job: UpdateJob, writes: readonly EntryWrite[]): Promise<Array<{ ok: boolean; error?: string }>> {
    const outcomes: Array<{ ok: boolean; error?: string }> = [];
    for (const { entry, data } of writes) {
      try {
        await this.save(entry, data);
        outcomes.push({ ok: true });
      } catch (error) {
        outcomes.push({ ok: false, error: (error as Error).message });
      }
    }
    return outcomes;
  }

  /** Completes a started fetch with the url as its JSON data. */
  release(url: string): void {
    this.startedFetch(url).resolve(encoder.encode(JSON.stringify(url)));
  }

  fail(url: string, error: Error): void {
    this.startedFetch(url).reject(error);
  }

  /** Completes every started fetch, and every later one as it starts. */
  releaseAll(): void {
    this.auto = true;
    for (const [url, fetch] of this.fetches) fetch.resolve(encoder.encode(JSON.stringify(url)));
  }

  /** Resolves once `condition` holds; checked whenever a fetch or save starts or ends. */
  until(condition: () => boolean): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (!condition()) return;
        this.watchers.delete(check);
        resolve();
      };
      this.watchers.add(check);
    });
  }

  untilStarted(...urls: string[]): Promise<void> {
    return this.until(() => urls.every((url) => this.started.includes(url)));
  }

  private startedFetch(url: string): Deferred<Uint8Array | undefined> {
    const fetch = this.fetches.get(url);
    assert.ok(fetch !== undefined, `fetch of ${url} has not started`);
    return fetch;
  }

  private notify(): void {
    for (const check of [...this.watchers]) check();
  }
}

function entry(url: string): DataSourceEntry {
  return create(DataSourceEntrySchema, { url, topics: ["policy_data"], dstPath: `/${url}` });
}

function job(updateId: string, entries: string[] | Promise<readonly DataSourceEntry[]>, kind: JobKind = "event"): UpdateJob {
  return { kind, updateId, reason: "test", entries: Array.isArray(entries) ? entries.map(entry) : entries };
}

function startPipeline(t: TestContext, concurrency: number) {
  const applier = new FakeApplier();
  const results: JobResult[] = [];
  const controller = new AbortController();
  const pipeline = new UpdatePipeline({
    applier: applier,
    concurrency,
    logger: silentLogger(),
    onResult: (result) => results.push(result),
  });
  void pipeline.start(controller.signal);
  t.after(async () => {
    controller.abort();
    await pipeline.stopped();
  });
  return { applier, pipeline, results };
}

function summary(results: JobResult[]): Array<[string, boolean]> {
  return results.map((result) => [result.job.updateId, result.ok]);
}

const LIMIT = { timeout: 5_000 };

test("writes happen in enqueue order even when later fetches finish first", LIMIT, async (t) => {
  const cases: Array<[string, number, string[][], string[]]> = [
    ["single-entry jobs released in reverse", 3, [["a"], ["b"], ["c"]], ["c", "b", "a"]],
    ["entries of one job released in reverse", 3, [["a1", "a2", "a3"]], ["a3", "a2", "a1"]],
    ["two jobs of two entries released last first", 4, [["a1", "a2"], ["b1", "b2"]], ["b2", "b1", "a2", "a1"]],
    ["shuffled release with fewer slots than fetches", 2, [["a"], ["b1", "b2"], ["c"]], ["b1", "a", "c", "b2"]],
  ];
  for (const [name, concurrency, jobs, releaseOrder] of cases) {
    await t.test(name, async (t) => {
      const { applier, pipeline, results } = startPipeline(t, concurrency);
      jobs.forEach((urls, index) => pipeline.enqueue(job(`job-${index}`, urls)));
      const enqueueOrder = jobs.flat();
      const [first] = enqueueOrder;
      let firstReleased = false;
      for (const url of releaseOrder) {
        await applier.untilStarted(url);
        if (!firstReleased) {
          // Until the first entry is fetched nothing may be written.
          await turn();
          assert.deepEqual(applier.saves, [], `nothing is written while ${first} is still fetching`);
        }
        applier.release(url);
        firstReleased ||= url === first;
      }
      await pipeline.idle();
      assert.deepEqual(applier.saves, enqueueOrder.map((url) => [url, JSON.stringify(url)]));
      assert.deepEqual(summary(results), jobs.map((_urls, index) => [`job-${index}`, true]));
      assert.equal(applier.maxSavesInFlight, 1, "one write at a time");
      assert.ok(applier.maxInFlight <= concurrency);
    });
  }
});

test("fetches run concurrently up to the limit and never above it", LIMIT, async (t) => {
  const jobs = [["a1", "a2", "a3"], ["b1", "b2"], ["c1"], ["d1", "d2"]];
  const total = jobs.flat().length;
  for (const concurrency of [1, 2, 3, 5, 10]) {
    await t.test(`concurrency ${concurrency}`, async (t) => {
      const { applier, pipeline, results } = startPipeline(t, concurrency);
      jobs.forEach((urls, index) => pipeline.enqueue(job(`job-${index}`, urls)));
      // With every fetch held, the pipeline fills all slots it may use, and no more.
      const expected = Math.min(concurrency, total);
      await applier.until(() => applier.inFlight === expected);
      await turn();
      assert.equal(applier.inFlight, expected);
      // Release one fetch at a time, oldest first, until all are done.
      for (let released = 0; released < total; released++) {
        await applier.until(() => applier.started.length > released);
        const url = applier.started[released];
        assert.ok(url !== undefined);
        applier.release(url);
      }
      await pipeline.idle();
      assert.equal(applier.maxInFlight, expected);
      assert.deepEqual(applier.started.toSorted(), jobs.flat().toSorted(), "each entry is fetched once");
      assert.deepEqual(applier.saved, jobs.flat());
      assert.equal(results.length, jobs.length);
    });
  }
});

test("a job whose entries are still being listed holds back later jobs", LIMIT, async (t) => {
  const { applier, pipeline, results } = startPipeline(t, 3);
  const listing = deferred<readonly DataSourceEntry[]>();
  pipeline.enqueue(job("baseline", listing.promise, "baseline"));
  pipeline.enqueue(job("event-1", ["b"]));
  pipeline.enqueue(job("event-2", ["c"]));
  // Later jobs may fetch ahead, but must not write.
  await applier.untilStarted("b", "c");
  applier.release("c");
  applier.release("b");
  await applier.until(() => applier.inFlight === 0);
  await turn();
  assert.deepEqual(applier.saved, []);
  assert.equal(results.length, 0);
  assert.equal(pipeline.pending, 3);

  listing.resolve([entry("a1"), entry("a2")]);
  await applier.untilStarted("a1", "a2");
  applier.release("a2");
  applier.release("a1");
  await pipeline.idle();
  assert.deepEqual(applier.saved, ["a1", "a2", "b", "c"]);
  assert.deepEqual(summary(results), [["baseline", true], ["event-1", true], ["event-2", true]]);
  assert.equal(results[0]?.job.kind, "baseline");
});

test("a job whose entries cannot be listed fails alone", LIMIT, async (t) => {
  const { applier, pipeline, results } = startPipeline(t, 2);
  const listing = deferred<readonly DataSourceEntry[]>();
  pipeline.enqueue(job("baseline", listing.promise, "baseline"));
  pipeline.enqueue(job("event", ["b"]));
  await applier.untilStarted("b");
  await turn();
  listing.reject(new Error("external source unreachable"));
  applier.release("b");
  await pipeline.idle();
  assert.deepEqual(results.map((result) => [result.job.updateId, result.ok, result.entries.length, result.error]), [
    ["baseline", false, 0, "external source unreachable"],
    ["event", true, 1, undefined],
  ]);
  assert.deepEqual(applier.saved, ["b"]);
});

test("failed fetches and saves are reported per entry and block nothing", LIMIT, async (t) => {
  const { applier, pipeline, results } = startPipeline(t, 3);
  applier.failingSaves.add("c1");
  pipeline.enqueue(job("job-a", ["a1", "a2", "a3"]));
  pipeline.enqueue(job("job-b", ["b"]));
  pipeline.enqueue(job("job-c", ["c1", "c2"]));
  await applier.untilStarted("a1", "a2", "a3");
  applier.fail("a2", new Error("source down"));
  applier.release("a3");
  applier.release("a1");
  await applier.untilStarted("b", "c1", "c2");
  applier.release("c2");
  applier.release("c1");
  applier.release("b");
  await pipeline.idle();

  assert.deepEqual(applier.saved, ["a1", "a3", "b", "c1", "c2"], "the failed fetch is not saved; the rest are");
  assert.deepEqual(summary(results), [["job-a", false], ["job-b", true], ["job-c", false]]);
  const outcomes = results.map((result) => result.entries.map((e) => [e.entry.url, e.fetched, e.saved, e.error]));
  assert.deepEqual(outcomes, [
    [["a1", true, true, undefined], ["a2", false, false, "source down"], ["a3", true, true, undefined]],
    [["b", true, true, undefined]],
    [["c1", true, false, "store rejected c1"], ["c2", true, true, undefined]],
  ]);
  assert.equal(results[0]?.error, undefined, "the job itself ran; only an entry failed");
});

test("onResult is called once per job, in order, with the job enqueued", LIMIT, async (t) => {
  const { applier, pipeline, results } = startPipeline(t, 2);
  const jobs = [job("e1", ["x1"]), job("p1", ["x2", "x3"], "periodic"), job("m1", ["x4"], "manual"), job("e2", ["x5"])];
  for (const queued of jobs) pipeline.enqueue(queued);
  applier.releaseAll();
  await pipeline.idle();
  assert.equal(results.length, jobs.length);
  results.forEach((result, index) => assert.equal(result.job, jobs[index], `result ${index} is for job ${index}`));
});

test("clear() drops the queued jobs but finishes the one being written", LIMIT, async (t) => {
  const { applier, pipeline, results } = startPipeline(t, 1);
  pipeline.enqueue(job("j1", ["a"]));
  pipeline.enqueue(job("j2", ["b"]));
  pipeline.enqueue(job("j3", ["c"]));
  await applier.untilStarted("a");
  await turn();
  assert.equal(pipeline.pending, 3);
  pipeline.clear();
  assert.equal(pipeline.pending, 1, "only the job being written is left");
  applier.release("a");
  pipeline.enqueue(job("j4", ["d"]));
  applier.releaseAll();
  await pipeline.idle();
  assert.deepEqual(applier.saved, ["a", "d"]);
  assert.deepEqual(summary(results), [["j1", true], ["j4", true]]);
});

test("idle() resolves only when everything is written", LIMIT, async (t) => {
  const { applier, pipeline, results } = startPipeline(t, 2);
  await pipeline.idle();
  assert.equal(pipeline.pending, 0);

  pipeline.enqueue(job("j1", ["a"]));
  pipeline.enqueue(job("j2", ["b"]));
  let idle = false;
  const idled = pipeline.idle().then(() => {
    idle = true;
  });
  await applier.untilStarted("a", "b");
  applier.release("a");
  await applier.until(() => applier.saved.includes("a"));
  await turn();
  assert.equal(idle, false, "j2 is still waiting for its fetch");
  assert.equal(results.length, 1);
  applier.release("b");
  await idled;
  assert.deepEqual(applier.saved, ["a", "b"]);
  assert.equal(results.length, 2);
  assert.equal(pipeline.pending, 0);
});

test(
  "a queued job whose listing fails early does not cause an unhandled rejection",
  LIMIT,
  async (t) => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    t.after(() => process.off("unhandledRejection", onUnhandled));
    const { applier, pipeline, results } = startPipeline(t, 3);
    const first = deferred<readonly DataSourceEntry[]>();
    const second = deferred<readonly DataSourceEntry[]>();
    pipeline.enqueue(job("baseline-1", first.promise, "baseline"));
    pipeline.enqueue(job("baseline-2", second.promise, "baseline"));
    await turn();
    second.reject(new Error("listing failed"));
    await turn();
    first.resolve([entry("a")]);
    applier.releaseAll();
    await pipeline.idle();
    assert.deepEqual(summary(results), [["baseline-1", true], ["baseline-2", false]]);
    assert.deepEqual(unhandled, []);
  },
);

test("progress: each settled fetch of a job is counted, failures included", LIMIT, async (t) => {
  const applier = new FakeApplier();
  const progress: Array<[string, number, number]> = [];
  const controller = new AbortController();
  const pipeline = new UpdatePipeline({
    applier,
    concurrency: 4,
    logger: silentLogger(),
    onResult: () => undefined,
    onFetched: (job, done, total) => progress.push([job.updateId, done, total]),
  });
  void pipeline.start(controller.signal);
  t.after(async () => {
    controller.abort();
    await pipeline.stopped();
  });
  pipeline.enqueue(job("baseline", ["s1", "s2", "s3"], "baseline"));
  for (const url of ["s2", "s1", "s3"]) {
    await applier.untilStarted(url);
    if (url === "s3") applier.fail(url, new Error("source down"));
    else applier.release(url);
  }
  await pipeline.idle();
  assert.deepEqual(progress, [
    ["baseline", 1, 3],
    ["baseline", 2, 3],
    ["baseline", 3, 3],
  ]);
});

test("a backlog of inline-data events is written in order, in batches, without fetching", LIMIT, async (t) => {
  const commits: string[][] = [];
  let holdFirst: Deferred<void> | undefined = deferred<void>();
  let fetched = 0;
  const results: JobResult[] = [];
  const controller = new AbortController();
  const outcome = (writes: readonly EntryWrite[]) => writes.map(() => ({ ok: true }));
  const pipeline = new UpdatePipeline({
    applier: {
      fetch: () => {
        fetched++;
        return Promise.resolve(undefined);
      },
      async commit(job, writes) {
        commits.push([job.updateId]);
        // The first write waits, so everything behind it queues up as one backlog.
        if (holdFirst !== undefined) await holdFirst.promise;
        return outcome(writes);
      },
      commitMany(items) {
        commits.push(items.map((item) => item.job.updateId));
        return Promise.resolve(items.map((item) => outcome(item.writes)));
      },
    },
    concurrency: 2,
    logger: silentLogger(),
    onResult: (result) => results.push(result),
  });
  void pipeline.start(controller.signal);
  t.after(async () => {
    controller.abort();
    await pipeline.stopped();
  });
  const count = 3_000;
  const inline = (index: number): UpdateJob => ({
    kind: "event",
    position: BigInt(index + 1),
    updateId: `u${index}`,
    reason: "test",
    entries: [create(DataSourceEntrySchema, { topics: ["policy_data"], dstPath: "/value", dataJson: encoder.encode(String(index)) })],
  });
  pipeline.enqueue(inline(0));
  while (commits.length === 0) await turn();
  for (let index = 1; index < count; index++) pipeline.enqueue(inline(index));
  holdFirst.resolve();
  holdFirst = undefined;
  await pipeline.idle();
  assert.equal(fetched, 0, "inline data is not fetched");
  assert.deepEqual(commits.flat(), Array.from({ length: count }, (_, index) => `u${index}`), "every event written once, in order");
  assert.ok(commits.length < 30, `the backlog went in batches (${commits.length} writes)`);
  assert.deepEqual(results.map((result) => result.job.position), Array.from({ length: count }, (_, index) => BigInt(index + 1)), "one result per event, in order");
  assert.ok(results.every((result) => result.ok && result.entries[0]?.saved === true));
});
