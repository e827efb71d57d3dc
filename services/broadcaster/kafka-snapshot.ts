/**
 * The Kafka log's snapshot, and how it outlives the broadcaster and the events topic's
 * retention. The tail folds every event it reads, in the topic's order — the broadcaster's
 * and external producers' alike. Every `checkpointIntervalMs` (when the snapshot moved)
 * and on stop, the snapshot is written as a checkpoint to the compacted snapshot topic; a
 * starting log restores the newest whole one (position C) before it serves, and its tail
 * folds what follows C. Retention of the events topic must exceed the interval by far:
 * when it deleted events after C (or there is no checkpoint and it deleted any), the
 * snapshot misses them, and `problem()` says so — it is carried in the next checkpoints.
 */
import { randomUUID } from "node:crypto";
import type { Admin } from "kafkajs";
import type { Event } from "../../gen/opal/mesh/v1/event_pb.js";
import type { Logger } from "../common/logger.js";
import type { Snapshot } from "../common/snapshot/types.js";
import { encodeCheckpoint, headerKey, manifestKey, partKey } from "./checkpoint-codec.js";
import { type CheckpointChoice, chooseCheckpoint, staleKeys } from "./checkpoint-selection.js";
import { type CheckpointStore, topicConfig } from "./checkpoint-store.js";

/** What the checkpoints need of the snapshot topic (CheckpointStore; a stand-in in the spec). */
export type CheckpointTopic = Pick<CheckpointStore, "topic" | "open" | "readAll" | "write" | "tombstone" | "close">;

export interface KafkaSnapshotOptions {
  snapshot: Snapshot;
  store: CheckpointTopic;
  /** The events topic (its retention is checked against the interval). */
  eventsTopic: string;
  checkpointIntervalMs: number;
  /** How long stop() tries to write the last checkpoint. */
  stopTimeoutMs?: number;
  logger: Logger;
}

export interface CheckpointSummary {
  generation: string;
  position: bigint;
  parts: number;
  bytes: number;
  entries: number;
  /** From export() to the manifest's acknowledgement. */
  durationMs: number;
}

interface Offsets {
  low: bigint;
  high: bigint;
}

/** A checkpoint that took long waits longer for the next one, up to this: writes stay a small share of the time. */
const MAX_BACKOFF_MS = 60_000;
const BACKOFF_FACTOR = 20;

export class KafkaSnapshot {
  readonly snapshot: Snapshot;
  /** Checkpoints written and failed: public counters for the metrics. */
  checkpointsWritten = 0;
  checkpointFailures = 0;
  lastCheckpoint: CheckpointSummary | undefined;
  private readonly writer = randomUUID();
  private sequence = 0;
  private logId = "";
  /** load() finished: there is a snapshot of this log to checkpoint. */
  private loaded = false;
  private incomplete: string | undefined;
  /** The newest position the tail handed over (placeholders of malformed messages too). */
  private folded = 0n;
  private checkpointed = 0n;
  /** What was in the topic at start-up: tombstoned once this writer's first checkpoint supersedes it. */
  private startup: CheckpointChoice | undefined;
  /** Keys of this writer's previous checkpoint (and tombstones that failed), for the next one to remove. */
  private superseded: string[] = [];
  private writeError: string | undefined;
  private writing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly options: KafkaSnapshotOptions) {
    this.snapshot = options.snapshot;
  }

  /**
   * Restores the newest whole checkpoint; `readOffsets` is called after the snapshot topic
   * is read, so a checkpoint past the end it returns can only be of an earlier topic.
   * Returns the events topic's offsets and the position the snapshot stands at.
   */
  async load(admin: Admin, logId: string, readOffsets: () => Promise<Offsets>, signal: AbortSignal): Promise<Offsets & { position: bigint }> {
    this.logId = logId;
    const { store, logger } = this.options;
    await store.open(admin);
    void this.checkRetention(admin);
    const started = performance.now();
    const records = await store.readAll(admin, signal);
    const offsets = await readOffsets();
    const choice = chooseCheckpoint(records, { logId, highWatermark: offsets.high });
    for (const { generation, reason } of choice.rejected) logger.warn({ topic: store.topic, generation, reason }, "passing over a checkpoint of the snapshot");
    const chosen = choice.chosen;
    choice.chosen = undefined; // what it holds is in the snapshot now; let it go
    this.startup = choice;
    if (chosen !== undefined) {
      this.snapshot.restore(chosen.exported);
      this.incomplete = chosen.incomplete;
      this.checkpointed = chosen.exported.position;
      logger.info({ topic: store.topic, generation: chosen.manifest.generation, position: chosen.exported.position, entries: chosen.manifest.entries, bytes: chosen.manifest.bytes, ms: Math.round(performance.now() - started) }, "restored the snapshot from its checkpoint");
    } else {
      this.snapshot.reset(0n);
    }
    const position = this.snapshot.position;
    // The next event the snapshot needs is at offset `position`; the topic starts at `low`.
    if (offsets.low > position) {
      this.lost(chosen === undefined ? `the events topic's retention deleted positions 1..${offsets.low} and there is no checkpoint of the snapshot in ${store.topic}` : `the events topic's retention deleted positions ${position + 1n}..${offsets.low} after the newest checkpoint (${position})`);
    }
    this.folded = offsets.low > position ? offsets.low : position;
    this.loaded = true;
    return { ...offsets, position };
  }

  /** Folds an event the tail read; a position skipped was deleted before the tail got to it. */
  fold(event: Event): void {
    if (event.position <= this.folded) return;
    if (event.position > this.folded + 1n) this.lost(`the events topic's retention deleted positions ${this.folded + 1n}..${event.position - 1n} before the tail read them`);
    this.folded = event.position;
    try {
      this.snapshot.fold(event);
    } catch (error) {
      // A fold that fails must not stop the tail (the log would stop serving): the snapshot says what it lacks instead.
      this.lost(`folding position ${event.position} failed: ${(error as Error).message}`);
    }
  }

  /** Why the snapshot misses events, if it does (it never recovers them: clients may diverge there). */
  problem(): string | undefined {
    return this.incomplete === undefined ? undefined : `the snapshot is incomplete: ${this.incomplete}`;
  }

  /** Why checkpoints cannot be written now, if they cannot (a restart would refold from the older one). */
  checkpointProblem(): string | undefined {
    return this.writeError === undefined ? undefined : `cannot write the snapshot's checkpoint to ${this.options.store.topic}: ${this.writeError}`;
  }

  private lost(why: string): void {
    this.options.logger.error({ topic: this.options.eventsTopic, why }, "the snapshot misses events: clients that join later may not hold what the others do");
    this.incomplete ??= why;
  }

  /** Checkpoints every interval from now on (longer after a slow one). */
  schedule(): void {
    if (this.stopped) return;
    const next = (): void => {
      const took = this.lastCheckpoint?.durationMs ?? 0;
      const delay = Math.max(this.options.checkpointIntervalMs, Math.min(took * BACKOFF_FACTOR, MAX_BACKOFF_MS));
      this.timer = setTimeout(() => void this.checkpoint().finally(() => this.stopped || next()), delay);
      this.timer.unref();
    };
    next();
  }

  /** Writes a checkpoint if the snapshot moved since the last one; one at a time. Never rejects. */
  checkpoint(): Promise<void> {
    this.writing ??= this.write().finally(() => (this.writing = undefined));
    return this.writing;
  }

  /** The last checkpoint, tried for at most `stopTimeoutMs`; the store is closed after. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.writing;
    const timeoutMs = this.options.stopTimeoutMs ?? 5_000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    try {
      await Promise.race([this.checkpoint(), timedOut]);
    } finally {
      clearTimeout(timer);
      await this.options.store.close();
    }
  }

  private async write(): Promise<void> {
    const position = this.snapshot.position;
    if (!this.loaded || position <= this.checkpointed) return;
    const { store, logger } = this.options;
    const started = performance.now();
    const generation = `${this.writer}.${++this.sequence}`;
    try {
      const encoded = encodeCheckpoint(this.snapshot.export(), { generation, logId: this.logId, incomplete: this.incomplete, bytes: this.snapshot.stats.bytes });
      await store.write(encoded);
      const { manifest } = encoded;
      this.checkpointed = manifest.position;
      this.checkpointsWritten++;
      this.lastCheckpoint = { generation, position: manifest.position, parts: manifest.parts, bytes: manifest.bytes, entries: manifest.entries, durationMs: performance.now() - started };
      if (this.writeError !== undefined) logger.info({ topic: store.topic }, "writing the snapshot's checkpoints works again");
      this.writeError = undefined;
      const stale = [...this.superseded, ...(this.startup === undefined ? [] : staleKeys(this.startup, manifest.position, Date.now()))];
      this.startup = undefined;
      this.superseded = [manifestKey(generation), headerKey(generation), ...Array.from({ length: manifest.parts }, (_, index) => partKey(generation, index))];
      await this.tombstone(stale);
    } catch (error) {
      this.checkpointFailures++;
      const message = (error as Error).message;
      if (this.writeError === undefined) logger.warn({ topic: store.topic, position, err: message, failures: this.checkpointFailures }, "cannot write the snapshot's checkpoint; retrying every interval (a restart refolds from the previous one)");
      this.writeError = message;
    }
  }

  /** Tombstones what the newest checkpoint supersedes; what fails is tried again after the next one. */
  private async tombstone(keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    try {
      await this.options.store.tombstone(keys);
    } catch (error) {
      this.superseded.push(...keys);
      this.options.logger.warn({ topic: this.options.store.topic, keys: keys.length, err: (error as Error).message }, "cannot tombstone superseded checkpoints yet; the next checkpoint tries again");
    }
  }

  /** Retention shorter than the interval would delete events before any checkpoint holds them. */
  private async checkRetention(admin: Admin): Promise<void> {
    const value = await topicConfig(admin, this.options.eventsTopic, "retention.ms", this.options.logger);
    const retentionMs = value === undefined ? -1 : Number(value);
    if (retentionMs >= 0 && retentionMs < 10 * this.options.checkpointIntervalMs) {
      this.options.logger.warn({ topic: this.options.eventsTopic, retentionMs, checkpointIntervalMs: this.options.checkpointIntervalMs }, "the events topic's retention is less than ten snapshot checkpoint intervals: a broadcaster down for longer loses events from the snapshot");
    }
  }
}
