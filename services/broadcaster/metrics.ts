/**
 * The broadcaster's Prometheus metrics: appends to the log (and failed ones: with Kafka,
 * a publish Kafka did not acknowledge), and with Kafka how far the tailing consumer is
 * behind the topic.
 */
import { Counter, Gauge, type Registry } from "../common/telemetry/metrics.js";
import type { SnapshotStats } from "../common/snapshot/types.js";
import type { EventLog } from "./event-log.js";

export type LogBackendName = "memory" | "kafka";

export interface BroadcasterMetricsOptions {
  backend: LogBackendName;
  /** Kafka: messages in the topic the tail has not read yet. */
  consumerLag?: () => bigint;
  /** Kafka: failed periodic reads of the topic's offsets. */
  offsetRefreshFailures?: () => number;
  /** The log's snapshot: what late clients write. */
  snapshot?: () => SnapshotStats;
  /** Kafka: the snapshot's checkpoints (what a restarted broadcaster starts from). */
  checkpoints?: () => CheckpointCounts;
}

export interface CheckpointCounts {
  written: number;
  failed: number;
  /** The newest checkpoint this broadcaster wrote; undefined before its first. */
  position: bigint | undefined;
}

/** A counter that follows a running total kept elsewhere. */
function followingCounter(name: string, help: string, registers: Registry[], total: () => number): void {
  let counted = 0;
  new Counter({ name, help, registers, collect() {
    const now = total();
    this.inc(Math.max(0, now - counted));
    counted = now;
  } });
}

export class BroadcasterMetrics {
  private readonly appended: Counter<"backend">;
  private readonly appendErrors: Counter<"backend">;

  constructor(
    registry: Registry,
    private readonly options: BroadcasterMetricsOptions,
  ) {
    const registers = [registry];
    const backend = options.backend;
    this.appended = new Counter({ name: "opal_mesh_broadcaster_events_appended_total", help: "Events appended to the log.", labelNames: ["backend"], registers });
    this.appendErrors = new Counter({ name: "opal_mesh_broadcaster_append_errors_total", help: "Appends the log refused or failed (with Kafka: publishes Kafka did not acknowledge).", labelNames: ["backend"], registers });
    this.appended.inc({ backend }, 0);
    this.appendErrors.inc({ backend }, 0);
    const lag = options.consumerLag;
    if (lag !== undefined) {
      new Gauge({ name: "opal_mesh_broadcaster_kafka_consumer_lag_messages", help: "Messages in the events topic the broadcaster's tailing consumer has not read yet (high watermark − consumed offset).", registers, collect() {
        this.set(Number(lag()));
      } });
    }
    const snapshot = options.snapshot;
    if (snapshot !== undefined) {
      new Gauge({ name: "opal_mesh_broadcaster_snapshot_entries", help: "Entries in the log's snapshot (the fold of every event that a late, emptied or resynced client writes).", registers, collect() {
        this.set(snapshot().entries);
      } });
      new Gauge({ name: "opal_mesh_broadcaster_snapshot_bytes", help: "Bytes of data in the log's snapshot (OPAL_MESH_SNAPSHOT_MAX_BYTES bounds it).", registers, collect() {
        this.set(snapshot().bytes);
      } });
    }
    const refreshFailures = options.offsetRefreshFailures;
    if (refreshFailures !== undefined) {
      followingCounter("opal_mesh_broadcaster_kafka_offset_refresh_failures_total", "Periodic reads of the events topic's offsets that failed (retention start and consumer lag go stale meanwhile).", registers, refreshFailures);
    }
    const checkpoints = options.checkpoints;
    if (checkpoints !== undefined) {
      followingCounter("opal_mesh_broadcaster_snapshot_checkpoints_total", "Checkpoints of the snapshot written to the compacted snapshot topic.", registers, () => checkpoints().written);
      followingCounter("opal_mesh_broadcaster_snapshot_checkpoint_failures_total", "Checkpoints of the snapshot that could not be written (a restart refolds from the previous one).", registers, () => checkpoints().failed);
      new Gauge({ name: "opal_mesh_broadcaster_snapshot_checkpoint_position", help: "The log position of the newest checkpoint this broadcaster wrote (0 before its first).", registers, collect() {
        this.set(Number(checkpoints().position ?? 0n));
      } });
    }
  }

  /** The same log, its appends counted. */
  meter(log: EventLog): EventLog {
    const backend = this.options.backend;
    return {
      head: () => log.head(),
      read: (after, signal) => log.read(after, signal),
      snapshot: log.snapshot,
      snapshotProblem: () => log.snapshotProblem(),
      append: async (events) => {
        try {
          const positions = await log.append(events);
          this.appended.inc({ backend }, events.length);
          return positions;
        } catch (error) {
          this.appendErrors.inc({ backend });
          throw error;
        }
      },
    };
  }
}
