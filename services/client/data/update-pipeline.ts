/**
 * The client's one write queue. Jobs are written strictly in the order they were
 * enqueued (log order for events); fetching runs ahead for the next few jobs, with
 * bounded concurrency, so a slow source delays but never reorders writes.
 */
import type { DataSourceEntry } from "../../../gen/opal/mesh/v1/data_pb.js";
import type { Logger } from "../../common/logger.js";
import type { EntryApplier } from "./entry-applier.js";

export type JobKind = "event" | "baseline" | "periodic" | "manual" | "policy";

export interface UpdateJob {
  kind: JobKind;
  /** Log position, for events. */
  position?: bigint;
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
  applier: EntryApplier;
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
    for (const [index, entry] of prefetched.entries.entries()) {
      const fetched = await (prefetched.fetches[index] as Promise<Fetched>);
      if (signal.aborted) break;
      if (!fetched.ok) {
        results.push({ entry, fetched: false, saved: false, error: fetched.error.message });
        continue;
      }
      try {
        await this.options.applier.save(entry, fetched.data, signal);
        results.push({ entry, fetched: true, saved: true });
      } catch (error) {
        results.push({ entry, fetched: true, saved: false, error: (error as Error).message });
      }
    }
    return { job, ok: results.every((result) => result.saved), entries: results };
  }
}
