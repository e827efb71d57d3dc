/**
 * The client's one write queue. Jobs are written strictly in the order they were
 * enqueued (log order for events); fetching runs ahead for the next few jobs, with
 * bounded concurrency, so a slow source delays but never reorders writes.
 *
 * Longer than a file here should be: the queue, its fetch-ahead and the batching of a
 * backlog into one transaction share one invariant (writes in enqueue order, each job's
 * result reported in that order), and it reads best whole.
 */
import { type CallbackTarget, type DataSourceEntry, SaveMethod } from "../../../gen/opal/mesh/v1/data_pb.js";
import { type Closed, Closing, type Component } from "../../common/lifecycle.js";
import type { Logger } from "../../common/logger.js";
import type { EntryData, EntryWrite } from "./data-transaction.js";
import { documentHash } from "../fetch/streamed-source.js";
import type { UpdateTrace } from "../update-trace.js";
import { hopClock } from "../../common/telemetry/hop-clock.js";

/** What the pipeline needs from the layer that fetches and writes. */
export interface JobApplier {
  fetch(entry: DataSourceEntry, signal: AbortSignal, trace?: UpdateTrace): Promise<EntryData | undefined>;
  /**
   * Writes a job's fetched entries (and, for log events, its position) into the store;
   * returns one outcome per write, in order.
   */
  commit(job: UpdateJob, writes: readonly EntryWrite[], fetchErrors: readonly string[], signal: AbortSignal): Promise<Array<{ ok: boolean; error?: string }>>;
  /**
   * Several consecutive log events in one transaction (a client catching up, or a burst):
   * one outcome list per job. Optional: without it every job is committed alone.
   */
  commitMany?(items: ReadonlyArray<{ job: UpdateJob; writes: readonly EntryWrite[]; fetchErrors: readonly string[] }>, signal: AbortSignal): Promise<Array<Array<{ ok: boolean; error?: string }>>>;
}

/** How many consecutive events may share one transaction. */
const MAX_BATCH = 256;

export type JobKind = "event" | "baseline" | "periodic" | "manual" | "policy" | "backup";

export interface UpdateJob {
  kind: JobKind;
  /** Log position, for events; for a baseline, the head it was loaded at. */
  position?: bigint;
  /** The log the position belongs to. */
  logId?: string;
  updateId: string;
  reason: string;
  /** Entries to apply, in order; a promise when they are still being looked up (baseline). */
  entries: readonly DataSourceEntry[] | Promise<readonly DataSourceEntry[]>;
  /** Where to report the outcome (OPAL's per-update callback.callbacks). */
  callbacks?: readonly CallbackTarget[];
  /** Work that is not data entries (a policy update): run in its turn, in order with the rest. */
  task?: (signal: AbortSignal) => Promise<void>;
  /** The update's trace, when the event came with one and tracing is on. */
  trace?: UpdateTrace;
  /** The log's snapshot this baseline job writes, when one came with it. */
  replayed?: SnapshotReplay;
}

/** A snapshot of the log written by a baseline job (data-updater.ts fills it in as the snapshot arrives). */
export interface SnapshotReplay {
  /**
   * The entry came with the snapshot. Its refusal is reported but does not fail the job:
   * the store refused it to every connected client too, in its turn.
   */
  has(entry: DataSourceEntry): boolean;
  /** The snapshot was whole: the job brings back everything the log wrote up to its position. */
  readonly complete: boolean;
}

export interface EntryResult {
  entry: DataSourceEntry;
  fetched: boolean;
  saved: boolean;
  error?: string;
  /** sha256 of the fetched document (OPAL's report hash). */
  hash?: string;
}

export interface JobResult {
  job: UpdateJob;
  ok: boolean;
  entries: EntryResult[];
  /** Set when the job failed before any entry ran (e.g. its entries could not be listed). */
  error?: string;
}

type Fetched = { ok: true; data: EntryData | undefined } | { ok: false; error: Error };

interface QueuedJob {
  job: UpdateJob;
  /**
   * Aborts this job's fetches when clear() drops it. Made when the job first needs a
   * signal, and only for jobs with something to abort: a burst of inline-data events
   * then costs no AbortController and no AbortSignal.any per event.
   */
  controller?: AbortController;
  /** Every fetch of the job has finished (it can join a batch without waiting). */
  settled?: boolean;
  prefetched?: Promise<{ entries: readonly DataSourceEntry[]; fetches: Array<Promise<Fetched>> }>;
}

export interface UpdatePipelineOptions {
  applier: JobApplier;
  /** Maximum concurrent fetches (OPAL_FETCHING_WORKER_COUNT); also how many jobs fetch ahead. */
  concurrency: number;
  logger: Logger;
  onResult: (result: JobResult) => void;
  /** Told as each fetch of a job settles (for progress bars on big baselines). */
  onFetched?: (job: UpdateJob, done: number, total: number) => void;
  /** Names the client in the latency budget's hop marks (hop-clock.ts). */
  clientId?: string;
  /** Whether results carry each document's sha256 (OPAL's update reports): a hash per entry per event costs when nobody reads it. */
  hashes?: boolean;
}

/**
 * First in, first out, with an O(1) shift: a backlog of thousands of events lives in an
 * array too large for V8 to trim in place, where Array#shift copies the whole array.
 */
class JobQueue {
  private items: Array<QueuedJob | undefined> = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  at(index: number): QueuedJob | undefined {
    return this.items[this.head + index];
  }

  push(item: QueuedJob): void {
    this.items.push(item);
  }

  shift(): QueuedJob | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** Empties the queue, returning what it held. */
  takeAll(): QueuedJob[] {
    const all = this.items.slice(this.head) as QueuedJob[];
    this.items = [];
    this.head = 0;
    return all;
  }
}

/** Bounds concurrent fetches. */
class Semaphore {
  private available: number;
  private readonly waiting: Array<() => void> = [];
  constructor(count: number) {
    this.available = count;
  }
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.available > 0) this.available--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next !== undefined) next();
      else this.available++;
    }
  }
}

/** A lifecycle part: its writer loop runs from start until stop (or its owner's signal). */
export class UpdatePipeline implements Component {
  readonly name = "update-pipeline";
  private readonly queue = new JobQueue();
  private readonly controller = new AbortController();
  private readonly closing = new Closing();
  private stopping: Promise<void> | undefined;
  private readonly semaphore: Semaphore;
  private wake: (() => void) | undefined;
  private idleWaiters: Array<() => void> = [];
  private running: Promise<void> | undefined;
  private signal: AbortSignal | undefined;
  private busy = false;

  constructor(private readonly options: UpdatePipelineOptions) {
    this.semaphore = new Semaphore(options.concurrency);
  }

  get pending(): number {
    return this.queue.length + (this.busy ? 1 : 0);
  }

  get closed(): Promise<Closed> {
    return this.closing.closed;
  }

  start(signal: AbortSignal): Promise<void> {
    if (this.running !== undefined || this.stopping !== undefined) return Promise.resolve();
    const own = this.controller.signal;
    signal.addEventListener("abort", () => this.controller.abort(), { once: true });
    if (signal.aborted) this.controller.abort();
    this.signal = own;
    this.running = this.run(own);
    return Promise.resolve();
  }

  /** Ends the writer loop once the job being written is done (queued jobs are not written). */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.controller.abort();
      await this.stopped();
      this.closing.stopped();
    })();
    return this.stopping;
  }

  /** Resolves once the writer loop has ended (its signal aborted). */
  async stopped(): Promise<void> {
    this.wake?.();
    await this.running;
  }

  enqueue(job: UpdateJob): void {
    this.queue.push({ job });
    // Only the new job can need starting: scanning the whole queue on every event made a
    // backlog of n events cost O(n²) (the client's main cost under a burst).
    this.prefetchAhead(this.queue.length - 1);
    this.wake?.();
  }

  /** Drops queued jobs that have not started (a resync replaces them with a fresh baseline). */
  clear(): void {
    for (const queued of this.queue.takeAll()) queued.controller?.abort(new Error("superseded by a resync"));
  }

  /** Resolves when nothing is queued or being written. */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Starts the fetches of the queued jobs from `from` on that are near enough the head. */
  private prefetchAhead(from = 0): void {
    const signal = this.signal;
    if (signal === undefined) return;
    const end = Math.min(this.queue.length, Math.max(this.options.concurrency, MAX_BATCH));
    for (let index = from; index < end; index++) {
      const queued = this.queue.at(index) as QueuedJob;
      if (queued.prefetched !== undefined) continue;
      // Jobs that fetch nothing (inline data) cost nothing to prepare: ready them for batching.
      if (index < this.options.concurrency || (index < MAX_BATCH && fetchesNothing(queued.job))) void this.startPrefetch(queued, signal);
    }
  }

  private startPrefetch(queued: QueuedJob, signal: AbortSignal): NonNullable<QueuedJob["prefetched"]> {
    if (queued.prefetched === undefined && fetchesNothing(queued.job)) {
      // Inline data and deletes need no fetch (the applier would hand back the entry's own
      // data): ready at once, without a promise chain and a semaphore turn per entry —
      // most of the client's cost per event in a burst of small inline updates.
      const entries = queued.job.entries as readonly DataSourceEntry[];
      const fetches = entries.map((entry, index): Promise<Fetched> => {
        this.options.onFetched?.(queued.job, index + 1, entries.length);
        return Promise.resolve({ ok: true, data: entry.saveMethod === SaveMethod.DELETE ? undefined : entry.dataJson });
      });
      queued.prefetched = Promise.resolve({ entries, fetches });
      queued.settled = true;
    }
    if (queued.prefetched === undefined) {
      queued.prefetched = this.prefetch(queued.job, jobSignal(queued, signal));
      // The writer awaits it later; until then a rejected entry listing must not count as unhandled.
      queued.prefetched.then(
        async ({ fetches }) => {
          await Promise.all(fetches);
          queued.settled = true;
        },
        () => undefined,
      );
    }
    return queued.prefetched;
  }

  private async prefetch(job: UpdateJob, signal: AbortSignal): Promise<{ entries: readonly DataSourceEntry[]; fetches: Array<Promise<Fetched>> }> {
    const entries = await job.entries;
    let done = 0;
    const settled = (fetched: Fetched): Fetched => {
      this.options.onFetched?.(job, ++done, entries.length);
      return fetched;
    };
    const fetches = entries.map((entry) =>
      this.semaphore
        .run(() => this.options.applier.fetch(entry, signal, job.trace))
        .then(
          (data): Fetched => ({ ok: true, data }),
          (error: unknown): Fetched => ({ ok: false, error: error instanceof Error ? error : new Error(String(error)) }),
        )
        .then(settled),
    );
    return { entries, fetches };
  }

  private async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const queued = this.queue.shift();
      if (queued === undefined) {
        for (const resolve of this.idleWaiters.splice(0)) resolve();
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          if (signal.aborted) resolve();
        });
        this.wake = undefined;
        continue;
      }
      this.busy = true;
      try {
        void this.startPrefetch(queued, signal);
        this.prefetchAhead();
        const started = hopClock.now();
        const results = await this.writeNext(queued, signal);
        if (signal.aborted) break;
        if (hopClock.enabled) {
          for (const { job } of results) {
            hopClock.mark("client.write.started", job.updateId, this.options.clientId, started);
            hopClock.mark("client.written", job.updateId, this.options.clientId);
          }
        }
        for (const result of results) this.options.onResult(result);
      } finally {
        this.busy = false;
      }
    }
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /**
   * Writes the next job; when it is a log event and the events queued behind it are ready
   * too, they share its transaction (in order, each still acknowledged on its own).
   */
  private async writeNext(first: QueuedJob, signal: AbortSignal): Promise<JobResult[]> {
    const commitMany = this.options.applier.commitMany?.bind(this.options.applier);
    if (commitMany === undefined || !isBatchable(first.job)) return [await this.write(first, signal)];
    const prepared = await this.prepare(first, signal);
    if ("failed" in prepared) return [prepared.failed];
    const batch = [prepared];
    while (batch.length < MAX_BATCH && this.queue.at(0)?.settled === true && isBatchable((this.queue.at(0) as QueuedJob).job)) {
      const next = await this.prepare(this.queue.shift() as QueuedJob, signal);
      if ("failed" in next) {
        // Cannot happen for a settled event (its entries are a list), but keep order if it does.
        const results = await this.commitBatch(batch, commitMany, signal);
        return [...results, next.failed];
      }
      batch.push(next);
    }
    if (batch.length === 1) return [await this.finish(prepared, await this.commitOne(prepared, signal))];
    return this.commitBatch(batch, commitMany, signal);
  }

  private async commitBatch(
    batch: Prepared[],
    commitMany: NonNullable<JobApplier["commitMany"]>,
    signal: AbortSignal,
  ): Promise<JobResult[]> {
    let outcomes: Array<Array<{ ok: boolean; error?: string }>>;
    try {
      outcomes = await commitMany(batch.map(({ job, writes, failures }) => ({ job, writes, fetchErrors: failures.map((failure) => failure.error ?? "") })), signal);
    } catch (error) {
      outcomes = batch.map(({ writes }) => writes.map(() => ({ ok: false, error: (error as Error).message })));
    }
    return Promise.all(batch.map((item, index) => this.finish(item, outcomes[index] ?? [])));
  }

  private async commitOne(item: Prepared, signal: AbortSignal): Promise<Array<{ ok: boolean; error?: string }>> {
    try {
      return await this.options.applier.commit(item.job, item.writes, item.failures.map((failure) => failure.error ?? ""), signal);
    } catch (error) {
      return item.writes.map(() => ({ ok: false, error: (error as Error).message }));
    }
  }

  /** A job's fetched entries, split into what can be written and what failed. */
  private async prepare(queued: QueuedJob, signal: AbortSignal): Promise<Prepared | { failed: JobResult }> {
    const { job } = queued;
    let prefetched;
    try {
      prefetched = await this.startPrefetch(queued, signal);
    } catch (error) {
      return { failed: { job, ok: false, entries: [], error: (error as Error).message } };
    }
    const failures: EntryResult[] = [];
    const writes: EntryWrite[] = [];
    for (const [index, entry] of prefetched.entries.entries()) {
      const fetched = await (prefetched.fetches[index] as Promise<Fetched>);
      if (fetched.ok) writes.push({ entry, data: fetched.data });
      else failures.push({ entry, fetched: false, saved: false, error: fetched.error.message });
    }
    return { job, entries: prefetched.entries, writes, failures };
  }

  private finish(item: Prepared, outcomes: Array<{ ok: boolean; error?: string }>): Promise<JobResult> {
    const results = [...item.failures];
    item.writes.forEach(({ entry, data }, index) => {
      const outcome = outcomes[index] ?? { ok: false, error: "not written" };
      const hash = data === undefined || this.options.hashes === false ? undefined : documentHash(data);
      results.push({ entry, fetched: true, saved: outcome.ok, ...(outcome.error === undefined ? {} : { error: outcome.error }), ...(hash === undefined ? {} : { hash }) });
    });
    const order = new Map(item.entries.map((entry, index) => [entry, index]));
    results.sort((a, b) => (order.get(a.entry) ?? 0) - (order.get(b.entry) ?? 0));
    const replayed = item.job.replayed;
    return Promise.resolve({ job: item.job, ok: results.every((result) => result.saved || replayed?.has(result.entry) === true), entries: results });
  }

  private async write(queued: QueuedJob, signal: AbortSignal): Promise<JobResult> {
    const { job } = queued;
    if (job.task !== undefined) {
      try {
        await job.task(jobSignal(queued, signal));
        return { job, ok: true, entries: [] };
      } catch (error) {
        return { job, ok: false, entries: [], error: (error as Error).message };
      }
    }
    const prepared = await this.prepare(queued, signal);
    if ("failed" in prepared) return prepared.failed;
    return this.finish(prepared, await this.commitOne(prepared, signal));
  }
}

interface Prepared {
  job: UpdateJob;
  entries: readonly DataSourceEntry[];
  writes: EntryWrite[];
  failures: EntryResult[];
}

/** Aborted when the pipeline stops or clear() drops the job. */
function jobSignal(queued: QueuedJob, signal: AbortSignal): AbortSignal {
  queued.controller ??= new AbortController();
  return AbortSignal.any([signal, queued.controller.signal]);
}

function isBatchable(job: UpdateJob): boolean {
  return job.kind === "event" && job.task === undefined;
}

function fetchesNothing(job: UpdateJob): boolean {
  return Array.isArray(job.entries) && (job.entries as readonly DataSourceEntry[]).every((entry) => entry.dataJson !== undefined || entry.saveMethod === SaveMethod.DELETE);
}
