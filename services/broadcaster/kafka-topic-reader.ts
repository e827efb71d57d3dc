/**
 * Reads one single-partition topic from an offset with a consumer of its own, until a given
 * offset: the Kafka log's replays of positions older than its window, and the start-up
 * read of the snapshot's checkpoints. No group commits; the consumer goes when it is done.
 */
import { randomUUID } from "node:crypto";
import type { Consumer, Kafka, KafkaMessage } from "kafkajs";
import type { Logger } from "../common/logger.js";

export interface TopicReadOptions {
  kafka: Kafka;
  topic: string;
  logger: Logger;
  /** Names the consumer's (throwaway) group. */
  purpose: string;
  /** The first offset wanted (an offset below the topic's start reads from its start). */
  from: bigint;
  /** Reading ends once the next offset reaches this (asked again as it goes: it may grow). */
  until: () => bigint;
  signal: AbortSignal;
  /** Holds the consumer while it runs, so its owner's stop disconnects it. */
  readers: Set<Consumer>;
}

/** Records held before the consumer pauses: by count, and by bytes (checkpoint parts are 512 KiB). */
const MAX_BUFFERED = 10_000;
const MAX_BUFFERED_BYTES = 32 * 1024 * 1024;

/** The topic's records from `from`, in offset order, until `until()`. */
export async function* readTopic(options: TopicReadOptions): AsyncGenerator<KafkaMessage> {
  const { topic } = options;
  const consumer = options.kafka.consumer({ groupId: `opal-mesh-${options.purpose}-${randomUUID()}`, allowAutoTopicCreation: false, maxWaitTimeInMs: 100, retry: { restartOnFailure: async () => false } });
  options.readers.add(consumer);
  const buffered: KafkaMessage[] = [];
  let bufferedBytes = 0;
  let wake: (() => void) | undefined;
  let failure: Error | undefined;
  consumer.on(consumer.events.CRASH, (event) => {
    failure = event.payload.error;
    wake?.();
  });
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async (payload) => {
        for (const message of payload.batch.messages) {
          buffered.push(message);
          bufferedBytes += message.value?.length ?? 0;
        }
        if (buffered.length > MAX_BUFFERED || bufferedBytes > MAX_BUFFERED_BYTES) payload.pause();
        wake?.();
      },
    });
    consumer.seek({ topic, partition: 0, offset: options.from.toString() });
    let next = options.from;
    while (next < options.until() && !options.signal.aborted) {
      const message = buffered.shift();
      if (message === undefined) {
        if (failure !== undefined) throw failure;
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 500).unref();
        });
        consumer.resume([{ topic }]);
        continue;
      }
      bufferedBytes -= message.value?.length ?? 0;
      const offset = BigInt(message.offset);
      if (offset < next) continue;
      yield message;
      next = offset + 1n;
    }
  } finally {
    options.readers.delete(consumer);
    // The read is over either way; a failed close only leaks a connection the broker times out.
    await consumer.disconnect().catch((error: unknown) => options.logger.warn({ topic, err: (error as Error).message }, `disconnecting a ${options.purpose} consumer failed`));
  }
}
