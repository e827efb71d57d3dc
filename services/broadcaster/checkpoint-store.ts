/**
 * The snapshot topic on Kafka: compacted, one partition, holding the records of the
 * checkpoints (checkpoint-codec.ts). It is read whole at start-up (it stays small: each
 * writer tombstones what its newest checkpoint supersedes, and compaction drops it) and
 * written by a producer of its own, so a large checkpoint never queues behind the events.
 */
import type { Admin, ConfigResourceTypes, Consumer, Kafka, Producer } from "kafkajs";
import type { Logger } from "../common/logger.js";
import type { CheckpointRecord, EncodedCheckpoint } from "./checkpoint-codec.js";
import type { TopicRecord } from "./checkpoint-selection.js";
import { readTopic } from "./kafka-topic-reader.js";

export interface CheckpointStoreOptions {
  kafka: Kafka;
  topic: string;
  replicationFactor: number;
  logger: Logger;
}

// kafkajs is CommonJS and Node's ESM loader cannot see its ConfigResourceTypes export: TOPIC is 2.
const TOPIC_RESOURCE = 2 as ConfigResourceTypes;
/** Parts sent at once: each is its own request (two would pass the broker's 1 MiB default). */
const PARTS_IN_FLIGHT = 4;
const TOMBSTONES_PER_SEND = 500;

/**
 * Small segments: the active segment is never compacted, so with Kafka's 1 GiB default a
 * starting replica would read every checkpoint written for hours. Rolled at 16 MiB or ten
 * minutes, superseded checkpoints are compacted away soon after.
 */
const TOPIC_CONFIG = [
  { name: "cleanup.policy", value: "compact" },
  { name: "segment.bytes", value: String(16 * 1024 * 1024) },
  { name: "segment.ms", value: String(10 * 60_000) },
];

export class CheckpointStore {
  private producer: Producer | undefined;
  readonly readers = new Set<Consumer>();

  constructor(private readonly options: CheckpointStoreOptions) {}

  get topic(): string {
    return this.options.topic;
  }

  /** Creates the topic if missing (another replica may create it at the same time) and connects. */
  async open(admin: Admin): Promise<void> {
    const topic = this.options.topic;
    if (!(await admin.listTopics()).includes(topic)) {
      await admin
        .createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 1, replicationFactor: this.options.replicationFactor, configEntries: TOPIC_CONFIG }] })
        .catch((error: unknown) => {
          if (!/already exists/i.test((error as Error).message)) throw error;
        });
      this.options.logger.info({ topic }, "created the snapshot topic (compacted)");
    } else {
      const policy = await topicConfig(admin, topic, "cleanup.policy", this.options.logger);
      if (policy !== undefined && !policy.split(",").includes("compact")) {
        this.options.logger.warn({ topic, cleanupPolicy: policy }, "the snapshot topic is not compacted: it grows with every checkpoint, and retention may delete the newest one");
      }
    }
    this.producer = this.options.kafka.producer({ allowAutoTopicCreation: false });
    await this.producer.connect();
  }

  /** Every live record (the latest value per key), read from the start to the end seen now. */
  async readAll(admin: Admin, signal: AbortSignal): Promise<Map<string, TopicRecord>> {
    const [partition] = await admin.fetchTopicOffsets(this.options.topic);
    const low = BigInt(partition?.low ?? "0");
    const high = BigInt(partition?.high ?? "0");
    const records = new Map<string, TopicRecord>();
    if (high <= low) return records;
    const read = readTopic({ kafka: this.options.kafka, topic: this.options.topic, logger: this.options.logger, purpose: "snapshot-read", from: low, until: () => high, signal, readers: this.readers });
    for await (const message of read) {
      const key = message.key?.toString("utf8");
      if (key === undefined) continue;
      if (message.value === null) records.delete(key);
      else records.set(key, { value: message.value, timestampMs: Number(message.timestamp) });
    }
    signal.throwIfAborted();
    return records;
  }

  /** The header and parts, each acknowledged by every in-sync replica, then the manifest. */
  async write(checkpoint: EncodedCheckpoint): Promise<void> {
    const queue = [...checkpoint.records];
    const sender = async (): Promise<void> => {
      for (let record = queue.shift(); record !== undefined; record = queue.shift()) await this.send([record]);
    };
    await Promise.all(Array.from({ length: PARTS_IN_FLIGHT }, sender));
    await this.send([checkpoint.manifestRecord]);
  }

  /** Tombstones the keys, in their order. */
  async tombstone(keys: readonly string[]): Promise<void> {
    for (let start = 0; start < keys.length; start += TOMBSTONES_PER_SEND) {
      await this.send(keys.slice(start, start + TOMBSTONES_PER_SEND).map((key) => ({ key, value: null })));
    }
  }

  private async send(messages: Array<CheckpointRecord | { key: string; value: null }>): Promise<void> {
    const producer = this.producer;
    if (producer === undefined) throw new Error("the snapshot topic is not open");
    await producer.send({ topic: this.options.topic, acks: -1, messages: messages.map((message) => ({ ...message, partition: 0 })) });
  }

  async close(): Promise<void> {
    // Going away: a connection that fails to close cleanly is dropped with the process; say so and go on.
    const disconnected = (what: string) => (error: unknown) => this.options.logger.warn({ topic: this.options.topic, err: (error as Error).message }, `disconnecting the snapshot ${what} failed`);
    for (const reader of this.readers) await reader.disconnect().catch(disconnected("reader"));
    await this.producer?.disconnect().catch(disconnected("producer"));
  }
}

/** A topic's setting, or undefined when it cannot be read (an ACL may forbid it: only warnings hang on it). */
export async function topicConfig(admin: Admin, topic: string, name: string, logger: Logger): Promise<string | undefined> {
  try {
    const { resources } = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: TOPIC_RESOURCE, name: topic, configNames: [name] }] });
    return resources[0]?.configEntries.find((entry) => entry.configName === name)?.configValue;
  } catch (error) {
    logger.debug({ topic, err: (error as Error).message }, `could not read the topic's ${name}`);
    return undefined;
  }
}
