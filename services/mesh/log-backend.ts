/** The broadcaster's log for a deployment: in memory, or Kafka (OPAL_BROADCAST_URI). */
import { type EventLog, MemoryLog } from "../broadcaster/index.js";
import { KafkaLog } from "../broadcaster/kafka-log.js";
import type { ServerConfig } from "../common/config/server-config.js";
import type { Logger } from "../common/logger.js";
import { kafkaClientConfig } from "./peers.js";
import { tracingFor } from "../common/telemetry/tracing.js";

export interface LogBackend {
  log: EventLog;
  start(signal: AbortSignal): Promise<void>;
  stop(): Promise<void>;
  describe(): string;
  /** Kafka: messages in the topic the tail has not read yet. */
  consumerLag?: () => bigint;
  /** Kafka: failed reads of the topic's offsets, for the metrics. */
  offsetRefreshFailures?: () => number;
  /** Why the log is degraded now, if it is (shown in the broadcaster's health). */
  problem(): string | undefined;
}

export function createLogBackend(config: ServerConfig, logger: Logger, clientId: string): LogBackend {
  const broadcast = config.broadcast;
  if (broadcast.type === "memory") {
    const log = new MemoryLog(config.log);
    return { log, start: () => Promise.resolve(), stop: () => Promise.resolve(), describe: () => "in-memory log", problem: () => undefined };
  }
  const log = new KafkaLog({
    client: { ...kafkaClientConfig(broadcast, clientId), retry: { initialRetryTime: 300, retries: 8, maxRetryTime: 5_000 } },
    topic: broadcast.topic,
    retentionMs: broadcast.retentionMs,
    replicationFactor: broadcast.replicationFactor,
    window: config.log,
    logger: logger.child({ component: "kafka" }),
    tracing: tracingFor(config.telemetry),
  });
  return { log, start: (signal) => log.start(signal), stop: () => log.stop(), describe: () => `Kafka ${broadcast.brokers.join(",")} topic ${broadcast.topic}`,
    consumerLag: () => log.consumerLag(),
    offsetRefreshFailures: () => log.offsetRefreshFailures,
    problem: () => log.problem(),
  };
}
