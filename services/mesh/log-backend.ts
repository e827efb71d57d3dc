/** The broadcaster's log for a deployment: in memory, or Kafka (OPAL_BROADCAST_URI). */
import { type EventLog, MemoryLog } from "../broadcaster/index.js";
import { KafkaLog } from "../broadcaster/kafka-log.js";
import type { CheckpointCounts } from "../broadcaster/metrics.js";
import type { ServerConfig } from "../common/config/server-config.js";
import { type Component, component } from "../common/lifecycle.js";
import type { Logger } from "../common/logger.js";
import { kafkaClientConfig } from "./peers.js";
import type { Tracing } from "../common/telemetry/tracing.js";

export interface LogBackend {
  log: EventLog;
  /** The log's lifecycle (the Kafka log connects and tails; the memory log holds nothing to let go). */
  part: Component;
  describe(): string;
  /** Kafka: messages in the topic the tail has not read yet. */
  consumerLag?: () => bigint;
  /** Kafka: failed reads of the topic's offsets, for the metrics. */
  offsetRefreshFailures?: () => number;
  /** Kafka: the snapshot's checkpoints written and failed, and the newest one's position, for the metrics. */
  checkpoints?: () => CheckpointCounts;
  /** Why the log is degraded now, if it is (shown in the broadcaster's health). */
  problem(): string | undefined;
}

export function createLogBackend(config: ServerConfig, logger: Logger, clientId: string, tracing: Tracing): LogBackend {
  const broadcast = config.broadcast;
  if (broadcast.type === "memory") {
    const log = new MemoryLog(config.log);
    return { log, part: component("memory-log", {}), describe: () => "in-memory log", problem: () => undefined };
  }
  const log = new KafkaLog({
    client: { ...kafkaClientConfig(broadcast, clientId), retry: { initialRetryTime: 300, retries: 8, maxRetryTime: 5_000 } },
    topic: broadcast.topic,
    retentionMs: broadcast.retentionMs,
    replicationFactor: broadcast.replicationFactor,
    window: config.log,
    fetch: broadcast.fetch,
    snapshot: { topic: broadcast.snapshotTopic, checkpointIntervalMs: broadcast.checkpointIntervalMs },
    logger: logger.child({ component: "kafka" }),
    tracing,
  });
  return { log, part: log, describe: () => `Kafka ${broadcast.brokers.join(",")} topic ${broadcast.topic}`,
    consumerLag: () => log.consumerLag(),
    offsetRefreshFailures: () => log.offsetRefreshFailures,
    checkpoints: () => ({ written: log.checkpoints.checkpointsWritten, failed: log.checkpoints.checkpointFailures, position: log.checkpoints.lastCheckpoint?.position }),
    problem: () => log.problem(),
  };
}
