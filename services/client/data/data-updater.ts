/**
 * Turns what the stream delivers into ordered data jobs: the baseline after a fresh Welcome
 * or a Resync, every addressed data update event, and the periodic refetches of baseline
 * entries that ask for them. Results become data health (and a failed baseline's retry);
 * the sync state acknowledges them.
 */
import type { DataSourceEntry } from "../../../gen/opal/mesh/v1/data_pb.js";
import type { Event } from "../../../gen/opal/mesh/v1/event_pb.js";
import { backoffDelay } from "../../common/backoff.js";
import { redactUrl } from "../../common/config/env-reader.js";
import { type Closed, Closing, type Component } from "../../common/lifecycle.js";
import type { Logger } from "../../common/logger.js";
import { anyTopicCovered } from "../../common/topics.js";
import type { ClientHealth } from "../health.js";
import type { PositionMark } from "../opa-status.js";
import type { BaselineSource } from "./baseline-source.js";
import { replayClearing } from "./replay-roots.js";
import type { JobResult, SnapshotReplay, UpdatePipeline } from "./update-pipeline.js";
import type { UpdateTrace } from "../update-trace.js";
import { type ReceivedSnapshot, SnapshotLostError } from "../snapshot-collector.js";
import { RecentSet } from "../../common/recent-set.js";

export interface DataUpdaterOptions {
  topics: readonly string[];
  pipeline: Pick<UpdatePipeline, "enqueue">;
  baseline: Pick<BaselineSource, "entries">;
  health: ClientHealth;
  logger: Logger;
  /** The data roots the policy bundle owns (left alone when a snapshot replay clears what the log wrote). */
  policyDataRoots?: () => readonly string[];
}

/** What a baseline job's snapshot holds; filled in once the snapshot arrived. */
class Replay implements SnapshotReplay {
  complete = false;
  constructor(private readonly entries: WeakSet<DataSourceEntry>) {}
  has(entry: DataSourceEntry): boolean {
    return this.entries.has(entry);
  }
}

/** A lifecycle part: its timers (periodic refetches, baseline retries) run from start to stop. */
export class DataUpdater implements Component {
  readonly name = "data-updater";
  private periodicTimers: NodeJS.Timeout[] = [];
  private readonly seenIds = new RecentSet(10_000);
  private retryTimer: NodeJS.Timeout | undefined;
  private retryAttempt = 0;
  private readonly controller = new AbortController();
  private readonly closing = new Closing();
  private started = false;
  private baselineGeneration = 0;
  /** Why the current baseline's list could not be had, while its job (with the snapshot) runs. */
  private baselineListError: string | undefined;
  /** The current baseline's snapshot never arrived whole (the stream ended): the next session brings one. */
  private snapshotLost = false;
  /** Entries that came with a snapshot: written in their turn only, never retried alone. */
  private readonly fromSnapshot = new WeakSet<DataSourceEntry>();

  constructor(private readonly options: DataUpdaterOptions) {}

  get closed(): Promise<Closed> {
    return this.closing.closed;
  }

  start(signal: AbortSignal): Promise<void> {
    if (this.closing.isClosed) return Promise.resolve();
    this.started = true;
    signal.addEventListener("abort", () => void this.stop(), { once: true });
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.controller.abort();
    this.stopPeriodic();
    this.closing.stopped();
    return Promise.resolve();
  }

  applies(entry: DataSourceEntry): boolean {
    return anyTopicCovered(this.options.topics, entry.topics);
  }

  /**
   * Loads every baseline entry (in one job, ahead of later events), then schedules
   * refetches. `mark` is the head the baseline was taken at: committed with it.
   */
  loadBaseline(reason: string, mark?: PositionMark, snapshot?: Promise<ReceivedSnapshot>): void {
    // Nothing to load into before start, nor after stop.
    if (!this.started || this.controller.signal.aborted) return;
    const signal = this.controller.signal;
    this.stopPeriodic();
    const generation = ++this.baselineGeneration;
    this.options.health.baselineLoaded = false;
    this.baselineListError = undefined;
    this.snapshotLost = false;
    const listed = this.options.baseline.entries(signal).then((all) => {
      const mine = all.filter((entry) => this.applies(entry));
      if (generation === this.baselineGeneration) this.schedulePeriodic(mine);
      return mine;
    });
    const replay = snapshot === undefined ? undefined : new Replay(this.fromSnapshot);
    const entries = snapshot === undefined || replay === undefined ? listed : this.withSnapshot(listed, snapshot, generation, replay);
    // Handled where it matters: the job awaits the list and reports its failure (health,
    // retry); this only keeps the rejection from counting as unhandled until then.
    entries.catch(() => undefined);
    this.options.pipeline.enqueue({ kind: "baseline", updateId: `baseline-${generation}`, reason, entries, position: mark?.position, logId: mark?.logId, ...(replay === undefined ? {} : { replayed: replay }) });
  }

  /**
   * The snapshot's entries around the baseline's, in the order a connected client wrote
   * them: those from before the scope's last redefinition, the baseline, those after. When
   * the baseline cannot be listed the snapshot is written anyway (what the log holds is
   * known; only the sources' part is missing) and the baseline is retried alone. A snapshot
   * entry is never retried on its own: out of its turn it could land on a different state.
   */
  private async withSnapshot(listed: Promise<DataSourceEntry[]>, snapshot: Promise<ReceivedSnapshot>, generation: number, replay: Replay): Promise<DataSourceEntry[]> {
    const [baseline, received] = await Promise.all([
      listed.catch((error: unknown) => {
        if (generation === this.baselineGeneration) this.baselineListError = `the baseline could not be listed: ${(error as Error).message}`;
        return [] as DataSourceEntry[];
      }),
      snapshot.catch((error: unknown) => {
        if (error instanceof SnapshotLostError && generation === this.baselineGeneration) this.snapshotLost = true;
        throw error;
      }),
    ]);
    const before = received.beforeBaseline.filter((entry) => this.applies(entry));
    const after = received.afterBaseline.filter((entry) => this.applies(entry));
    const clearing = replayClearing([...before, ...baseline, ...after], this.options.policyDataRoots?.() ?? []);
    for (const entry of [...clearing, ...before, ...after]) this.fromSnapshot.add(entry);
    replay.complete = received.incomplete === undefined;
    return [...clearing, ...before, ...baseline, ...after];
  }

  onEvent(event: Event, logId: string, trace?: UpdateTrace): void {
    if (event.payload.case !== "dataUpdate") return;
    const update = event.payload.value;
    // A publisher that retried (its first attempt was in fact logged) sends the same id
    // again: apply it once. The duplicate still takes its turn, so its position moves on.
    const duplicate = this.seenIds.has(update.id);
    this.rememberId(update.id);
    const entries = duplicate ? [] : update.entries.filter((entry) => this.applies(entry));
    this.options.pipeline.enqueue({ kind: "event", position: event.position, logId, updateId: update.id, reason: update.reason, entries, callbacks: update.callbacks, trace });
  }

  onResult(result: JobResult): void {
    const { job } = result;
    const failures = result.entries.filter((entry) => entry.error !== undefined).map((entry) => entry.error as string);
    if (result.error !== undefined) failures.unshift(result.error);
    const error = failures.join("; ");
    if (job.kind === "baseline" || job.kind === "periodic" || job.kind === "manual" || result.entries.length > 0 || !result.ok) {
      this.options.health.recordData({ ok: result.ok, kind: job.kind, id: job.updateId, ...(result.ok ? {} : { error }) });
    }
    if (job.kind === "baseline" && job.updateId === `baseline-${this.baselineGeneration}`) {
      const listError = this.baselineListError;
      this.baselineListError = undefined;
      const loaded = result.ok && listError === undefined;
      this.options.health.baselineLoaded = loaded;
      if (listError !== undefined) this.options.health.recordData({ ok: false, kind: job.kind, id: job.updateId, error: listError });
      // The stream ended before its snapshot arrived: the next session loads everything again.
      if (this.snapshotLost) {
        this.snapshotLost = false;
        return;
      }
      if (loaded) this.retryAttempt = 0;
      else this.retryFailedBaseline(result, listError);
    }
    // Guarded: at thousands of events a second, building the line's fields costs even when debug is off.
    if (result.ok) {
      if (this.options.logger.isLevelEnabled("debug")) this.options.logger.debug({ kind: job.kind, updateId: job.updateId, position: job.position?.toString() }, "data update applied");
    } else this.options.logger.error({ kind: job.kind, updateId: job.updateId, position: job.position?.toString(), error }, "data update failed");
  }

  /**
   * A baseline source that failed is tried again (with backoff) until it loads: the
   * position moved past it, so nothing else would bring it back (OPAL #623).
   */
  private retryFailedBaseline(result: JobResult, listError?: string): void {
    const failed = result.entries.filter((entry) => !entry.saved && !this.fromSnapshot.has(entry.entry)).map((entry) => entry.entry);
    if (failed.length === 0 && result.error === undefined && listError === undefined) return;
    const generation = this.baselineGeneration;
    this.retryAttempt++;
    const delay = backoffDelay(this.retryAttempt, { initialMs: 1_000, maxMs: 60_000 });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (generation !== this.baselineGeneration || this.controller.signal.aborted) return;
      if (failed.length === 0) {
        this.loadBaseline(`retrying the baseline (attempt ${this.retryAttempt + 1})`);
        return;
      }
      this.options.pipeline.enqueue({ kind: "baseline", updateId: `baseline-${generation}`, reason: `retrying ${failed.length} baseline source(s)`, entries: failed });
    }, delay);
    this.retryTimer.unref();
    this.options.logger.warn({ failed: failed.length, retryInMs: delay }, "baseline sources failed; retrying");
  }

  private rememberId(id: string): void {
    if (id === "") return;
    this.seenIds.add(id);
  }

  private schedulePeriodic(entries: readonly DataSourceEntry[]): void {
    for (const entry of entries) {
      if (entry.periodicUpdateInterval === undefined) continue;
      const timer = setInterval(() => {
        this.options.pipeline.enqueue({ kind: "periodic", updateId: `periodic-${redactUrl(entry.url)}`, reason: "Periodic Update", entries: [entry] });
      }, entry.periodicUpdateInterval * 1000);
      timer.unref();
      this.periodicTimers.push(timer);
    }
  }

  private stopPeriodic(): void {
    for (const timer of this.periodicTimers) clearInterval(timer);
    this.periodicTimers = [];
    clearTimeout(this.retryTimer);
  }
}
