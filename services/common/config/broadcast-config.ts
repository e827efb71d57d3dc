/**
 * Which log backs the broadcaster: in memory (embedded default) or Apache Kafka
 * (OPAL_BROADCAST_URI=kafka://host:port[,host:port]), with the KAFKA_* security settings
 * OPAL's broadcaster reads.
 */
import { readFileSync } from "node:fs";
import type { EnvReader } from "./env-reader.js";

export interface KafkaBroadcastConfig {
  type: "kafka";
  brokers: string[];
  topic: string;
  retentionMs: number;
  replicationFactor: number;
  /**
   * The log's snapshot outlives restarts and the events topic's retention as checkpoints in
   * this compacted topic (OPAL_MESH_KAFKA_SNAPSHOT_TOPIC, default `<topic>-snapshot`),
   * written every OPAL_MESH_SNAPSHOT_CHECKPOINT_INTERVAL_MS when the snapshot moved.
   */
  snapshotTopic: string;
  checkpointIntervalMs: number;
  /** The policy-watchers' election: a dead publisher is replaced after this. */
  leaderSessionTimeoutMs: number;
  /**
   * The broadcaster's tail fetch: the broker answers once it holds `minBytes` new bytes
   * (OPAL_MESH_KAFKA_FETCH_MIN_BYTES, default 1: at once) or after `maxWaitMs`
   * (OPAL_MESH_KAFKA_FETCH_MAX_WAIT_MS, default 100). A broadcaster holds its own appends at
   * the produce's answer, so with one writer a larger minBytes only saves fetches; other
   * writers' events (peers, external producers) wait up to maxWaitMs then.
   */
  fetch: { maxWaitMs: number; minBytes: number };
  sasl: { mechanism: "plain" | "scram-sha-256" | "scram-sha-512"; username: string; password: string } | undefined;
  ssl: { ca?: string; cert?: string; key?: string; passphrase?: string } | boolean;
}

export type BroadcastConfig = { type: "memory" } | KafkaBroadcastConfig;

/** The log's name in spans and logs: the Kafka topic, or the in-memory log's default name. */
export function logName(broadcast: BroadcastConfig): string {
  return broadcast.type === "kafka" ? broadcast.topic : "opal-mesh-events";
}

export function readBroadcastConfig(env: EnvReader): BroadcastConfig {
  const uri = env.optionalString("OPAL_BROADCAST_URI");
  if (uri === undefined) return { type: "memory" };
  const match = /^kafka:\/\/(.+)$/i.exec(uri.trim());
  if (match === null) {
    env.problem("OPAL_BROADCAST_URI", `opal-mesh's backbone is Kafka: expected kafka://host:port[,host:port], got ${JSON.stringify(uri.replace(/\/\/[^@/]*@/, "//***@"))}`);
    return { type: "memory" };
  }
  const brokers = (match[1] as string).split(",").map((broker) => broker.trim().replace(/\/+$/, ""));
  for (const broker of brokers) if (!/^[^:/\s]+:\d{1,5}$/.test(broker)) env.problem("OPAL_BROADCAST_URI", `broker ${JSON.stringify(broker)} is not host:port`);
  const protocol = env.oneOf("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] as const);
  let sasl: KafkaBroadcastConfig["sasl"];
  if (protocol.startsWith("SASL")) {
    const mechanism = env.oneOf("KAFKA_SASL_MECHANISM", "PLAIN", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] as const);
    const username = env.optionalString("KAFKA_PLAIN_USERNAME");
    const password = env.optionalString("KAFKA_PLAIN_PASSWORD");
    if (username === undefined) env.problem("KAFKA_PLAIN_USERNAME", `is required with KAFKA_SECURITY_PROTOCOL=${protocol}`);
    if (password === undefined) env.problem("KAFKA_PLAIN_PASSWORD", `is required with KAFKA_SECURITY_PROTOCOL=${protocol}`);
    sasl = { mechanism: mechanism.toLowerCase() as "plain", username: username ?? "", password: password ?? "" };
  }
  let ssl: KafkaBroadcastConfig["ssl"] = false;
  if (protocol.endsWith("SSL")) {
    const file = (name: string): string | undefined => {
      const path = env.optionalString(name);
      if (path === undefined) return undefined;
      try {
        return readFileSync(path, "utf8");
      } catch (error) {
        env.problem(name, `cannot read ${path}: ${(error as Error).message}`);
        return undefined;
      }
    };
    const options = { ca: file("KAFKA_SSL_CAFILE"), cert: file("KAFKA_SSL_CERTFILE"), key: file("KAFKA_SSL_KEYFILE"), passphrase: env.optionalString("KAFKA_SSL_KEY_PASSWORD") };
    ssl = Object.values(options).some((value) => value !== undefined) ? Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) : true;
  }
  const topic = env.string("OPAL_BROADCAST_CHANNEL_NAME", "opal-mesh-events");
  const retentionMs = env.int("OPAL_MESH_KAFKA_RETENTION_MS", 7 * 24 * 3_600_000, { min: 60_000 });
  const checkpointIntervalMs = env.int("OPAL_MESH_SNAPSHOT_CHECKPOINT_INTERVAL_MS", 5_000, { min: 100, max: 3_600_000 });
  // Retention deleting events no checkpoint holds yet would leave the snapshot incomplete.
  if (checkpointIntervalMs * 10 > retentionMs) env.problem("OPAL_MESH_SNAPSHOT_CHECKPOINT_INTERVAL_MS", `${checkpointIntervalMs} ms is more than a tenth of OPAL_MESH_KAFKA_RETENTION_MS (${retentionMs} ms); checkpoints must be far more frequent than retention deletes events`);
  return {
    type: "kafka",
    brokers,
    topic,
    retentionMs,
    replicationFactor: env.int("OPAL_MESH_KAFKA_REPLICATION_FACTOR", -1, { min: -1, max: 32 }),
    snapshotTopic: env.string("OPAL_MESH_KAFKA_SNAPSHOT_TOPIC", `${topic}-snapshot`),
    checkpointIntervalMs,
    // How long a dead policy publisher keeps its place: the fail-over time. Kafka refuses a
    // value below the broker's group.min.session.timeout.ms (6 s unless the broker lowers it).
    leaderSessionTimeoutMs: env.int("OPAL_MESH_LEADER_SESSION_TIMEOUT_MS", 6_000, { min: 1_000, max: 300_000 }),
    // Below kafkajs's 30 s request timeout, which a held fetch must not reach.
    fetch: { maxWaitMs: env.int("OPAL_MESH_KAFKA_FETCH_MAX_WAIT_MS", 100, { min: 1, max: 10_000 }), minBytes: env.int("OPAL_MESH_KAFKA_FETCH_MIN_BYTES", 1, { min: 1, max: 16 * 1024 * 1024 }) },
    sasl,
    ssl,
  };
}
