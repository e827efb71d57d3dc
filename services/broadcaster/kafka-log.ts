/**
 * The log on Apache Kafka: one single-partition topic, so the topic's order is the one
 * total order every client applies, and a position is simply offset + 1. The producer is
 * idempotent (acks=all), so a retried publish is never written twice. One tailing
 * consumer per broadcaster fills a window of recent events that serves subscribers and
 * resuming clients (its own appends go in at the produce's answer, a fetch sooner, when
 * nothing unread comes before them); older positions still in Kafka are read straight
 * from the topic, and positions below the log start offset (Kafka's retention) are
 * truncated: Resync. Every held event is folded into the snapshot, which outlives restarts
 * and retention in checkpoints (kafka-snapshot.ts); replays use kafka-topic-reader.ts.
 * Why one produce in flight: kafkajs's idempotent producer locks each broker around a
 * produce whatever maxInFlightRequests says, and a non-idempotent one may reorder or
 * duplicate on a retry; batches (the trigger's EventBatcher) carry the load instead.
 * A little over 300 lines: the produce, the tail and the held own appends share one
 * window and one notion of what was read; split, each half would have to re-check the other.
 */
import { randomUUID } from "node:crypto";
import type { Admin, Consumer, Kafka, KafkaConfig, Producer } from "kafkajs";
import { toBinary } from "@bufbuild/protobuf";
import { type Event, EventSchema } from "../../gen/opal/mesh/v1/event_pb.js";
import { SupervisedConsumer } from "../common/kafka/supervised-consumer.js";
import { type Closed, Closing, type Component } from "../common/lifecycle.js";
import type { Logger } from "../common/logger.js";
import { type EventLog, type LogHead, LogTruncatedError } from "./event-log.js";
import { decodeRecord, encodeEvent, type KafkaRecord, MalformedMessageError, placeholder } from "./kafka-codec.js";
import { EventWindow, type EventWindowLimits } from "../common/event-window.js";
import { loggedKafka } from "../common/kafka/logged-kafka.js";
import { LogSnapshot } from "../common/snapshot/log-snapshot.js";
import type { Snapshot } from "../common/snapshot/types.js";
import type { Tracing } from "../common/telemetry/tracing.js";
import { CheckpointStore } from "./checkpoint-store.js";
import { KafkaSnapshot } from "./kafka-snapshot.js";
import { endSendSpans, startSendSpans } from "./kafka-send-spans.js";
import { readTopic } from "./kafka-topic-reader.js";

export interface KafkaLogOptions {
  client: Omit<KafkaConfig, "logLevel" | "logCreator">;
  topic: string;
  /** retention.ms for a topic this service creates; an existing topic keeps its own. */
  retentionMs: number;
  replicationFactor: number;
  window: EventWindowLimits;
  /** The tail's fetch (OPAL_MESH_KAFKA_FETCH_*): default 100 ms, 1 byte (answered as soon as anything is new). */
  fetch?: { maxWaitMs: number; minBytes: number };
  /** The compacted topic of the snapshot's checkpoints, and how often one is written (when the snapshot moved). */
  snapshot: { topic: string; checkpointIntervalMs: number };
  logger: Logger;
  /** Traced events get a Kafka producer span, whose context travels in the message headers. */
  tracing?: Tracing;
}

export class KafkaLog implements EventLog, Component {
  readonly name = "kafka-log";
  private readonly closing = new Closing();
  private stopping: Promise<void> | undefined;
  private readonly kafka: Kafka;
  private readonly window: EventWindow<Event>;
  /** Each held event's size as Kafka holds it (the message's bytes), so the window need not encode it again. */
  private readonly sizes = new WeakMap<Event, number>();
  private admin: Admin | undefined;
  private producer: Producer | undefined;
  private tail: SupervisedConsumer | undefined;
  private id = "";
  private logStart = 0n;
  /** The newest high watermark seen: the offset Kafka gives the next message. */
  private highWatermark = 0n;
  private refresher: NodeJS.Timeout | undefined;
  private readonly controller = new AbortController();
  private readonly readers = new Set<Consumer>();
  /** Messages skipped because they hold no event (counted, logged with their offset). */
  malformed = 0;
  /** Periodic reads of the topic's offsets that failed (a metric), and the current failure. */
  offsetRefreshFailures = 0;
  private offsetRefreshError: string | undefined;
  /** The snapshot and its checkpoints (counters: checkpointsWritten, checkpointFailures). */
  readonly checkpoints: KafkaSnapshot;

  constructor(private readonly options: KafkaLogOptions) {
    const logger = options.logger;
    this.kafka = loggedKafka(options.client, logger);
    this.window = new EventWindow<Event>({
      ...options.window,
      positionOf: (event) => event.position,
      sizeOf: (event) => this.sizes.get(event) ?? toBinary(EventSchema, event).byteLength,
      contiguous: true,
      notRetained: (after, first) => new LogTruncatedError(after, first),
    });
    const store = new CheckpointStore({ kafka: this.kafka, topic: options.snapshot.topic, replicationFactor: options.replicationFactor, logger });
    this.checkpoints = new KafkaSnapshot({ snapshot: new LogSnapshot(), store, eventsTopic: options.topic, checkpointIntervalMs: options.snapshot.checkpointIntervalMs, logger });
  }

  /** Every event the tail read, folded (issue 13). */
  get snapshot(): Snapshot {
    return this.checkpoints.snapshot;
  }

  snapshotProblem(): string | undefined {
    return this.checkpoints.problem();
  }

  head(): LogHead {
    const first = this.logStart + 1n > this.window.firstRetained ? this.window.firstRetained : this.logStart + 1n;
    return { headPosition: this.window.end, firstRetainedPosition: first, logId: this.id };
  }

  /** Messages in the topic the tail has not read yet: high watermark − consumed offset. */
  consumerLag(): bigint {
    return this.highWatermark > this.window.end ? this.highWatermark - this.window.end : 0n;
  }

  private sawHighWatermark(high: bigint): void {
    if (high > this.highWatermark) this.highWatermark = high;
  }

  /** Connects, creates the topic if missing, restores the snapshot, and tails the topic up to its end. */
  async start(signal: AbortSignal): Promise<void> {
    signal.addEventListener("abort", () => this.controller.abort(), { once: true });
    this.admin = this.kafka.admin();
    await this.admin.connect();
    const { clusterId } = await this.admin.describeCluster();
    this.id = `kafka:${clusterId}/${this.options.topic}`;
    if (!(await this.admin.listTopics()).includes(this.options.topic)) {
      await this.admin.createTopics({
        waitForLeaders: true,
        topics: [{ topic: this.options.topic, numPartitions: 1, replicationFactor: this.options.replicationFactor, configEntries: [{ name: "retention.ms", value: String(this.options.retentionMs) }] }],
      });
      this.options.logger.info({ topic: this.options.topic, retentionMs: this.options.retentionMs }, "created the events topic");
    }
    const partitions = (await this.admin.fetchTopicMetadata({ topics: [this.options.topic] })).topics[0]?.partitions.length ?? 0;
    if (partitions !== 1) throw new Error(`the events topic ${this.options.topic} has ${partitions} partitions; opal-mesh needs exactly 1 (one total order)`);
    this.producer = this.kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
    await this.producer.connect();
    // The checkpoint first, the offsets after: a checkpoint past their end is of an earlier topic.
    const offsets = await this.checkpoints.load(this.admin, this.id, () => this.refreshOffsets(), this.controller.signal);
    // Fill the window with the most recent events and fold what follows the checkpoint, then follow the topic.
    const recent = offsets.high - BigInt(this.options.window.maxEvents) > offsets.low ? offsets.high - BigInt(this.options.window.maxEvents) : offsets.low;
    let from = offsets.position < recent ? offsets.position : recent;
    if (from < offsets.low) from = offsets.low;
    // The window starts where the tail does: the head is there even when the topic holds
    // nothing after it (retention emptied it), and the wait below ends at once.
    if (this.window.end < from) this.window.reset(from);
    await this.startTail(from);
    await this.waitForTail(offsets.high, signal);
    this.checkpoints.schedule();
    this.refresher = setInterval(() => void this.refreshOffsetsPeriodically(), 5_000);
    this.refresher.unref();
  }

  get closed(): Promise<Closed> {
    return this.closing.closed;
  }

  stop(): Promise<void> {
    this.stopping ??= this.stopAll().finally(() => this.closing.stopped());
    return this.stopping;
  }

  private async stopAll(): Promise<void> {
    this.controller.abort();
    clearInterval(this.refresher);
    // The last checkpoint (bounded) before anything is disconnected; what the tail folds meanwhile is in it or the next.
    await this.checkpoints.stop();
    // Going away: a connection that fails to close cleanly is dropped with the process; say so and go on.
    const disconnected = (what: string) => (error: unknown) => this.options.logger.warn({ topic: this.options.topic, err: (error as Error).message }, `disconnecting the ${what} failed`);
    for (const reader of this.readers) await reader.disconnect().catch(disconnected("replay consumer"));
    await this.tail?.stop();
    await this.producer?.disconnect().catch(disconnected("producer"));
    await this.admin?.disconnect().catch(disconnected("admin client"));
  }

  async append(events: readonly Event[]): Promise<bigint[]> {
    const producer = this.producer;
    if (producer === undefined) throw new Error("the Kafka log is not started");
    const spans = startSendSpans(this.options.tracing, this.options.topic, events);
    // The producer's timestamp is the message's (unless the topic uses LogAppendTime): the tail would read it back as publishedAt.
    const timestamp = String(Date.now());
    const messages = events.map((event) => ({ ...encodeEvent(event), timestamp }));
    let result;
    try {
      [result] = await producer.send({ topic: this.options.topic, acks: -1, messages });
      if (result === undefined || result.baseOffset === undefined) throw new Error("Kafka returned no offset for the published events");
    } catch (error) {
      endSendSpans(spans, { error });
      throw error;
    }
    const base = BigInt(result.baseOffset);
    endSendSpans(spans, { baseOffset: base });
    const positions = events.map((event, index) => {
      event.position = base + BigInt(index) + 1n;
      return event.position;
    });
    const logAppendTime = result.logAppendTime === undefined || result.logAppendTime === "-1" ? undefined : result.logAppendTime;
    // Held once the callers have their positions (the promises' continuations run first: a
    // publisher's answer is written before the fan-out's frames, as when the tail delivered
    // them), and before any other I/O callback, so before the tail's fetch answer.
    const publishedAt = BigInt(logAppendTime ?? timestamp);
    process.nextTick(() => this.holdAppended(base, events, messages, publishedAt));
    return positions;
  }

  /**
   * The tail would read these events back one fetch later; when they follow the window's
   * end (the tail has read everything before them) they go in at once, as the tail would
   * have decoded them: subscribers have them at the produce's answer, and the tail skips
   * them without decoding. After a gap (another producer's messages came first, unread yet)
   * they are the tail's, in order. Either way each position is held and folded once.
   */
  private holdAppended(base: bigint, events: readonly Event[], messages: ReadonlyArray<{ value: Buffer }>, publishedAt: bigint): void {
    if (this.window.end !== base) return;
    events.forEach((event, index) => {
      event.publishedAtUnixMs = publishedAt;
      // What decodeRecord gives an update its producer left without an id.
      if (event.payload.case === "dataUpdate" && event.payload.value.id === "") event.payload.value.id = `kafka-${base + BigInt(index)}`;
      this.sizes.set(event, messages[index]?.value.length ?? 0);
      this.window.append(event);
      this.checkpoints.fold(event);
    });
  }

  async *read(after: bigint, signal: AbortSignal): AsyncGenerator<Event> {
    let cursor = after;
    if (cursor + 1n < this.window.firstRetained) {
      // Older than the window: read it from the topic, up to where the window takes over.
      await this.refreshOffsets();
      if (cursor < this.logStart) throw new LogTruncatedError(after, this.logStart + 1n);
      for await (const event of this.readTopic(cursor, () => this.window.firstRetained - 1n, signal)) {
        // Positions are contiguous (malformed messages keep theirs): a gap means Kafka
        // deleted what we were about to read. Never skip it silently.
        if (event.position !== cursor + 1n) throw new LogTruncatedError(cursor, event.position);
        yield event;
        cursor = event.position;
      }
    }
    yield* this.window.read(cursor, signal);
  }

  /**
   * Why the log is degraded, if it is: the topic's offsets (its retention start, and the
   * high watermark behind the consumer-lag metric) could not be read lately, or the
   * snapshot's checkpoints cannot be written.
   */
  problem(): string | undefined {
    const offsets = this.offsetRefreshError === undefined ? undefined : `cannot read the offsets of ${this.options.topic}: ${this.offsetRefreshError}`;
    return [offsets, this.checkpoints.checkpointProblem()].filter((text) => text !== undefined).join("; ") || undefined;
  }

  /** The 5 s refresh: a failure is logged once per streak, counted, and shown in health. */
  private async refreshOffsetsPeriodically(): Promise<void> {
    try {
      await this.refreshOffsets();
      if (this.offsetRefreshError !== undefined) this.options.logger.info({ topic: this.options.topic }, "reading the topic's offsets works again");
      this.offsetRefreshError = undefined;
    } catch (error) {
      if (this.controller.signal.aborted) return;
      this.offsetRefreshFailures++;
      const message = (error as Error).message;
      if (this.offsetRefreshError === undefined) this.options.logger.warn({ topic: this.options.topic, err: message }, "cannot read the topic's offsets; retention and consumer lag are stale until it works again");
      this.offsetRefreshError = message;
    }
  }

  private async refreshOffsets(): Promise<{ low: bigint; high: bigint }> {
    const [partition] = await (this.admin as Admin).fetchTopicOffsets(this.options.topic);
    const low = BigInt(partition?.low ?? "0");
    const high = BigInt(partition?.high ?? "0");
    this.logStart = low;
    this.sawHighWatermark(high);
    return { low, high };
  }

  private record(message: KafkaRecord): Event {
    try {
      const event = decodeRecord(message);
      this.sizes.set(event, message.value?.length ?? 0);
      return event;
    } catch (error) {
      if (!(error instanceof MalformedMessageError)) throw error;
      this.malformed++;
      this.options.logger.warn({ topic: this.options.topic, offset: message.offset, reason: error.message, malformed: this.malformed }, "skipping a malformed message");
      return placeholder(message);
    }
  }

  /** The tailing consumer, restarted (from where it was) whenever it crashes. */
  private async startTail(from: bigint): Promise<void> {
    this.tail = new SupervisedConsumer({
      kafka: this.kafka,
      name: "tail",
      logger: this.options.logger,
      config: { groupId: `opal-mesh-tail-${randomUUID()}`, allowAutoTopicCreation: false, maxWaitTimeInMs: this.options.fetch?.maxWaitMs ?? 100, minBytes: this.options.fetch?.minBytes ?? 1 },
      setup: async (consumer) => {
        // After a restart, go on from the newest event held (its position is the next offset).
        const offset = this.window.end > 0n ? this.window.end : from;
        await consumer.subscribe({ topic: this.options.topic, fromBeginning: true });
        await consumer.run({
          autoCommit: false,
          eachBatch: async ({ batch }) => {
            this.sawHighWatermark(BigInt(batch.highWatermark));
            for (const message of batch.messages) {
              // Held already (this broadcaster's own appends, or before a restart): not decoded again.
              if (BigInt(message.offset) + 1n <= this.window.end) continue;
              const event = this.record(message);
              this.window.append(event);
              this.checkpoints.fold(event);
            }
          },
        });
        consumer.seek({ topic: this.options.topic, partition: 0, offset: offset.toString() });
      },
    });
    // A consumer that cannot be brought back ends this part too (the supervisor then stops the process).
    void this.tail.closed.then((closed) => {
      if (closed.reason === "failed") this.closing.failed(closed.error);
    });
    await this.tail.start();
  }

  private async waitForTail(high: bigint, signal: AbortSignal): Promise<void> {
    while (this.window.end < high && !signal.aborted) await this.window.waitForAppend(AbortSignal.any([signal, AbortSignal.timeout(1_000)]));
  }

  /** Events after `after`, read from the topic by a consumer of its own, until `until()`. */
  private async *readTopic(after: bigint, until: () => bigint, signal: AbortSignal): AsyncGenerator<Event> {
    const { kafka, options, readers } = this;
    for await (const message of readTopic({ kafka, topic: options.topic, logger: options.logger, purpose: "replay", from: after, until, signal, readers })) yield this.record(message);
  }
}
