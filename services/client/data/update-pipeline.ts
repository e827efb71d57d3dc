/**
 * The client's one write queue. Jobs are written strictly in the order they were
 * enqueued (log order for events); fetching runs ahead for the next few jobs, with
 * bounded concurrency, so a slow source delays but never reorders writes.
 */
import type { DataSourceEntry } from "../../../gen/opal/mesh/v1/data_pb.js";
import type { Logger } from "../../common/logger.js";
import type { EntryWrite } from "./data-transaction.js";

/** What the pipeline needs from the layer that fetches and writes. */
export interface JobApplier {
  fetch(entry: DataSourceEntry, signal: AbortSignal): Promise<Uint8Array | undefined>;
  /**
   * Writes a job's fetched entries (and, for log events, its position) into the store;
   * returns one outcome per write, in order.
   */
  commit(job: UpdateJob, writes: readonly EntryWrite[], fetchErrors: readonly string[], signal: AbortSignal): Promise<Array<{ ok: boolean; error?: string }>>;
}

export type JobKind = "event" | "baseline" | "periodic" | "manual" | "policy";

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
  /** Work that is not data entries (a policy update): run in its turn, in order with the rest. */
  task?: (signal: AbortSignal) => Promise<void>;
}

export interface EntryResult {
  entry: DataSourceEntry;
  fetched: boolean;
  saved: boolean;
  error?: string;
}

export interface JobResult {
  job: UpdateJob;
  ok: boolean;
  entries: EntryResult[];
  /** Set when the job failed before any entry ran (e.g. its entries could not be listed). */
  error?: string;
}

type Fetched = { ok: true; data: Uint8Array | undefined } | { ok: false; error: Error };

interface QueuedJob {
  job: UpdateJob;
  /** Aborts this job's fetches when clear() drops it. */
  controller: AbortController;
  prefetched?: Promise<{ entries: readonly DataSourceEntry[]; fetches: Array<Promise<Fetched>> }>;
}

export interface UpdatePipelineOptions {
  applier: JobApplier;
  /** Maximum concurrent fetches (OPAL_FETCHING_WORKER_COUNT); also how many jobs fetch ahead. */
  concurrency: number;
  logger: Logger;
  onResult: (result: JobResult) => void;
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

export class UpdatePipeline {
  private readonly queue: QueuedJob[] = [];
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

  start(signal: AbortSignal): void {
    this.signal = signal;
    this.running = this.run(signal);
  }

  async stopped(): Promise<void> {
    this.wake?.();
    await this.running;
  }

  enqueue(job: UpdateJob): void {
    this.queue.push({ job, controller: new AbortController() });
    this.prefetchAhead();
    this.wake?.();
  }

  /** Drops queued jobs that have not started (a resync replaces them with a fresh baseline). */
  clear(): void {
    for (const queued of this.queue.splice(0)) queued.controller.abort(new Error("superseded by a resync"));
  }

  /** Resolves when nothing is queued or being written. */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private prefetchAhead(): void {
    const signal = this.signal;
    if (signal === undefined) return;
    for (const queued of this.queue.slice(0, this.options.concurrency)) void this.startPrefetch(queued, signal);
  }

  private startPrefetch(queued: QueuedJob, signal: AbortSignal): NonNullable<QueuedJob["prefetched"]> {
    if (queued.prefetched === undefined) {
      queued.prefetched = this.prefetch(queued.job, AbortSignal.any([signal, queued.controller.signal]));
      // The writer awaits it later; until then a rejected entry listing must not count as unhandled.
      queued.prefetched.catch(() => undefined);
    }
    return queued.prefetched;
  }

  private async prefetch(job: UpdateJob, signal: AbortSignal): Promise<{ entries: readonly DataSourceEntry[]; fetches: Array<Promise<Fetched>> }> {
    const entries = await job.entries;
    const fetches = entries.map((entry) =>
      this.semaphore.run(() => this.options.applier.fetch(entry, signal)).then(
        (data): Fetched => ({ ok: true, data }),
        (error: unknown): Fetched => ({ ok: false, error: error instanceof Error ? error : new Error(String(error)) }),
      ),
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
        const result = await this.write(queued, signal);
        if (signal.aborted) break;
        this.options.onResult(result);
      } finally {
        this.busy = false;
      }
    }
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private async write(queued: QueuedJob, signal: AbortSignal): Promise<JobResult> {
    const { job } = queued;
    if (job.task !== undefined) {
      try {
        await job.task(AbortSignal.any([signal, queued.controller.signal]));
        return { job, ok: true, entries: [] };
      } catch (error) {
        return { job, ok: false, entries: [], error: (error as Error).message };
      }
    }
    let prefetched;
    try {
      prefetched = await this.startPrefetch(queued, signal);
    } catch (error) {
      return { job, ok: false, entries: [], error: (error as Error).message };
    }
    const results: EntryResult[] = [];
    const writes: EntryWrite[] = [];
    for (const [index, entry] of prefetched.entries.entries()) {
      const fetched = await (prefetched.fetches[index] as Promise<Fetched>);
      if (signal.aborted) return { job, ok: false, entries: [], error: "stopped" };
      if (fetched.ok) writes.push({ entry, data: fetched.data });
      else results.push({ entry, fetched: false, saved: false, error: fetched.error.message });
    }
    let outcomes: Array<{ ok: boolean; error?: string }>;
    try {
      outcomes = await this.options.applier.commit(job, writes, results.map((result) => result.error ?? ""), signal);
    } catch (error) {
      outcomes = writes.map(() => ({ ok: false, error: (error as Error).message }));
    }
    writes.forEach(({ entry }, index) => {
      const outcome = outcomes[index] ?? { ok: false, error: "not written" };
      results.push({ entry, fetched: true, saved: outcome.ok, ...(outcome.error === undefined ? {} : { error: outcome.error }) });
    });
    const order = new Map(prefetched.entries.map((entry, index) => [entry, index]));
    results.sort((a, b) => (order.get(a.entry) ?? 0) - (order.get(b.entry) ?? 0));
    return { job, ok: results.every((result) => result.saved), entries: results };
  }
}
