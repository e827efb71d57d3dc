/**
 * Scopes in a compacted Kafka topic (key: scope id, value: the Scope message, tombstone on
 * delete) that every replica reads from the beginning, so each sees every change and a
 * restart finds them all. Writes go through the topic too: put and delete resolve once
 * this process's own reader has applied them, so a GET right after a PUT sees it.
 * Scopes hold git credentials: only their ids are ever logged.
 * A little over 300 lines: the reader, the write-through-and-wait and the topic's set-up
 * share one bookkeeping of offsets applied.
 */
import { randomUUID } from "node:crypto";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Admin, type ConfigResourceTypes, type Kafka, type KafkaConfig, type KafkaMessage, Partitioners, type Producer } from "kafkajs";
import { type Scope, ScopeSchema } from "../../../gen/opal/mesh/v1/scope_pb.js";
import { SupervisedConsumer } from "../kafka/supervised-consumer.js";
import { Closing } from "../lifecycle.js";
import type { Logger } from "../logger.js";
import type { ScopeListener, ScopeStore } from "./scope-store.js";
import { loggedKafka } from "../kafka/logged-kafka.js";

export interface KafkaScopeStoreOptions {
  client: Omit<KafkaConfig, "logLevel" | "logCreator">;
  topic: string;
  logger: Logger;
  /** How long put/delete wait to read their own write back; 30 s when not given. */
  readBackTimeoutMs?: number;
}

const RECENTLY_REPLACED_KEPT = 1024;
// kafkajs is CommonJS and Node's ESM loader cannot see its ConfigResourceTypes export: TOPIC is 2.
const TOPIC_RESOURCE = 2 as ConfigResourceTypes;

interface ReadBack {
  partition: number;
  offset: bigint;
  /** What the write replaced as far as this process knew when it was sent. */
  fallback: Scope | undefined;
  resolve: (previous: Scope | undefined) => void;
  reject: (error: Error) => void;
}

export class KafkaScopeStore implements ScopeStore {
  readonly description: string;
  private readonly kafka: Kafka;
  private readonly scopes = new Map<string, Scope>();
  private readonly listeners: ScopeListener[] = [];
  /** Per partition, the offset of the last record applied. */
  private readonly applied = new Map<number, bigint>();
  private readonly readBacks = new Set<ReadBack>();
  /** What the most recent records replaced, for a write read back before Kafka acknowledged it. */
  private readonly recentlyReplaced = new Map<string, Scope | undefined>();
  /** Per partition, the last offset that existed when start() began; cleared once reached. */
  private catchUp: { targets: Map<number, bigint>; done: () => void } | undefined;
  private producer: Producer | undefined;
  private consumer: SupervisedConsumer | undefined;
  private ready = false;
  private stopped = false;
  private stopping: Promise<void> | undefined;
  readonly name = "scopes";
  private readonly closing = new Closing();
  readonly closed = this.closing.closed;

  constructor(private readonly options: KafkaScopeStoreOptions) {
    this.description = `kafka topic ${options.topic}`;
    const logger = options.logger;
    this.kafka = loggedKafka(options.client, logger);
  }

  /** Resolves once every record the topic held when called has been applied. */
  async start(signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason as Error);
      signal.addEventListener("abort", onAbort, { once: true });
    });
    try {
      await Promise.race([this.open(), aborted]);
    } catch (error) {
      await this.stop();
      throw error;
    } finally {
      if (onAbort !== undefined) signal.removeEventListener("abort", onAbort);
    }
    this.options.logger.info({ store: this.description, scopes: this.scopes.size }, "scopes loaded");
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.stopped = true;
      this.ready = false;
      for (const waiter of this.readBacks) waiter.reject(new Error(`the scope store (${this.description}) stopped before reading a write back`));
      this.readBacks.clear();
      try {
        await this.consumer?.stop();
        await this.producer?.disconnect().catch((error: unknown) => this.options.logger.warn({ err: (error as Error).message, store: this.description }, "disconnecting the scopes producer failed"));
      } finally {
        this.closing.stopped();
      }
    })();
    return this.stopping;
  }

  list(): Scope[] {
    return [...this.scopes.values()];
  }

  get(id: string): Scope | undefined {
    return this.scopes.get(id);
  }

  async put(scope: Scope): Promise<Scope | undefined> {
    if (scope.scopeId === "") throw new Error("a scope needs a scope_id");
    return this.write(scope.scopeId, Buffer.from(toBinary(ScopeSchema, scope)));
  }

  /** Writes the tombstone even for an id not seen yet: another replica's put may be in flight. */
  async delete(id: string): Promise<Scope | undefined> {
    return this.write(id, null);
  }

  onChange(listener: ScopeListener): void {
    this.listeners.push(listener);
  }

  private async open(): Promise<void> {
    const targets = await this.prepareTopic();
    this.assertRunning();
    const caughtUp = new Promise<void>((resolve) => {
      this.catchUp = { targets, done: resolve };
    });
    this.checkCaughtUp();
    const producer = this.kafka.producer({ allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner });
    this.producer = producer;
    await producer.connect();
    if (this.stopped) await producer.disconnect().catch((error: unknown) => this.options.logger.warn({ err: (error as Error).message, store: this.description }, "disconnecting the scopes producer failed"));
    this.assertRunning();
    this.consumer = new SupervisedConsumer({
      kafka: this.kafka,
      name: "scopes",
      logger: this.options.logger,
      config: { groupId: `opal-mesh-scopes-${randomUUID()}`, allowAutoTopicCreation: false, maxWaitTimeInMs: 100 },
      setup: async (consumer) => {
        // No commits: a restarted consumer reads from the beginning, and apply() skips what it already holds.
        await consumer.subscribe({ topic: this.options.topic, fromBeginning: true });
        await consumer.run({ autoCommit: false, eachMessage: async ({ partition, message }) => this.apply(partition, message) });
      },
    });
    // A consumer that cannot be brought back ends this part too (the supervisor then stops the process).
    void this.consumer.closed.then((closed) => {
      if (closed.reason === "failed") this.closing.failed(closed.error);
    });
    await this.consumer.start();
    this.assertRunning();
    await caughtUp;
  }

  private assertRunning(): void {
    if (this.stopped) throw new Error(`the scope store (${this.description}) was stopped while starting`);
  }

  /** Creates the topic if missing and returns, per non-empty partition, its last offset. */
  private async prepareTopic(): Promise<Map<number, bigint>> {
    const topic = this.options.topic;
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      if (!(await admin.listTopics()).includes(topic)) {
        await admin
          .createTopics({
            waitForLeaders: true,
            topics: [{ topic, numPartitions: 1, replicationFactor: -1, configEntries: [{ name: "cleanup.policy", value: "compact" }] }],
          })
          .catch((error: unknown) => {
            if (!/already exists/i.test((error as Error).message)) throw error;
          });
        this.options.logger.info({ topic }, "created the scopes topic (compacted)");
      } else {
        await this.warnUnlessCompacted(admin);
      }
      const targets = new Map<number, bigint>();
      for (const { partition, high, low } of await admin.fetchTopicOffsets(topic)) {
        if (BigInt(high) > BigInt(low)) targets.set(partition, BigInt(high) - 1n);
      }
      return targets;
    } finally {
      await admin.disconnect().catch((error: unknown) => this.options.logger.warn({ err: (error as Error).message, store: this.description }, "disconnecting the scopes admin client failed"));
    }
  }

  /** Under time retention, scopes nobody changed for a week would silently disappear. */
  private async warnUnlessCompacted(admin: Admin): Promise<void> {
    try {
      const { resources } = await admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: TOPIC_RESOURCE, name: this.options.topic, configNames: ["cleanup.policy"] }],
      });
      const policy = resources[0]?.configEntries.find((entry) => entry.configName === "cleanup.policy")?.configValue;
      if (policy !== undefined && !policy.split(",").includes("compact")) {
        this.options.logger.warn({ topic: this.options.topic, cleanupPolicy: policy }, "the scopes topic is not compacted: Kafka may delete scopes that have not changed recently");
      }
    } catch (error) {
      this.options.logger.debug({ topic: this.options.topic, err: (error as Error).message }, "could not check the scopes topic's cleanup.policy");
    }
  }

  private async write(id: string, value: Buffer | null): Promise<Scope | undefined> {
    const producer = this.producer;
    if (!this.ready || producer === undefined) throw new Error(`the scope store (${this.description}) is not started`);
    const fallback = this.scopes.get(id);
    const [record] = await producer.send({ topic: this.options.topic, acks: -1, messages: [{ key: id, value }] });
    const base = record?.baseOffset ?? record?.offset;
    if (record === undefined || base === undefined) throw new Error(`Kafka returned no offset for scope ${id} on topic ${this.options.topic}`);
    return this.readBack(id, record.partition, BigInt(base), fallback);
  }

  /** Resolves with the record the write replaced once this process has applied it. */
  private readBack(id: string, partition: number, offset: bigint, fallback: Scope | undefined): Promise<Scope | undefined> {
    const last = this.applied.get(partition);
    if (last !== undefined && last >= offset) {
      const key = `${partition}:${offset}`;
      return Promise.resolve(this.recentlyReplaced.has(key) ? this.recentlyReplaced.get(key) : fallback);
    }
    const timeoutMs = this.options.readBackTimeoutMs ?? 30_000;
    return new Promise((resolve, reject) => {
      const waiter: ReadBack = {
        partition,
        offset,
        fallback,
        resolve: (previous) => {
          clearTimeout(timer);
          resolve(previous);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      const timer = setTimeout(() => {
        this.readBacks.delete(waiter);
        reject(
          new Error(
            `scope ${id} was written to Kafka topic ${this.options.topic} (partition ${partition}, offset ${offset}) but this process did not read it back within ${timeoutMs} ms; its view of the scopes may be stale`,
          ),
        );
      }, timeoutMs);
      timer.unref();
      this.readBacks.add(waiter);
    });
  }

  private apply(partition: number, message: KafkaMessage): void {
    const offset = BigInt(message.offset);
    const last = this.applied.get(partition);
    if (last !== undefined && offset <= last) return; // replayed by a restarted consumer
    const change = this.decode(partition, message);
    let previous: Scope | undefined;
    if (change !== undefined) {
      previous = this.scopes.get(change.id);
      if (change.scope !== undefined) this.scopes.set(change.id, change.scope);
      else this.scopes.delete(change.id);
      if (this.ready && (change.scope !== undefined || previous !== undefined)) this.notify(change.id, change.scope, previous);
    }
    this.applied.set(partition, offset);
    this.recentlyReplaced.set(`${partition}:${offset}`, previous);
    if (this.recentlyReplaced.size > RECENTLY_REPLACED_KEPT) {
      const oldest = this.recentlyReplaced.keys().next();
      if (oldest.done !== true) this.recentlyReplaced.delete(oldest.value);
    }
    for (const waiter of this.readBacks) {
      if (waiter.partition !== partition || waiter.offset > offset) continue;
      this.readBacks.delete(waiter);
      // A record compacted away before it was read leaves only the estimate taken at send time.
      waiter.resolve(waiter.offset === offset ? previous : waiter.fallback);
    }
    this.checkCaughtUp();
  }

  /** The change a record holds, or undefined when it holds none this store can use. */
  private decode(partition: number, message: KafkaMessage): { id: string; scope: Scope | undefined } | undefined {
    const id = message.key?.toString("utf8") ?? "";
    const where = { topic: this.options.topic, partition, offset: message.offset };
    if (id === "") {
      this.options.logger.warn(where, "skipping a scopes record without a key");
      return undefined;
    }
    if (message.value === null) return { id, scope: undefined };
    let scope: Scope;
    try {
      scope = fromBinary(ScopeSchema, message.value);
    } catch (error) {
      this.options.logger.warn({ ...where, scopeId: id, err: (error as Error).message }, "skipping a scopes record that does not decode");
      return undefined;
    }
    if (scope.scopeId !== id) {
      this.options.logger.warn({ ...where, scopeId: id, recordScopeId: scope.scopeId }, "skipping a scopes record whose key is not its scope_id");
      return undefined;
    }
    return { id, scope };
  }

  private checkCaughtUp(): void {
    const catchUp = this.catchUp;
    if (catchUp === undefined) return;
    for (const [partition, target] of catchUp.targets) {
      const last = this.applied.get(partition);
      if (last === undefined || last < target) return;
    }
    this.catchUp = undefined;
    // Listeners hear changes from here on; what came before is in list() when start() resolves.
    this.ready = true;
    catchUp.done();
  }

  private notify(id: string, scope: Scope | undefined, previous: Scope | undefined): void {
    for (const listener of this.listeners) {
      try {
        listener(id, scope, previous);
      } catch (error) {
        this.options.logger.error({ store: this.description, scopeId: id, err: (error as Error).message }, "a scope listener failed");
      }
    }
  }
}
