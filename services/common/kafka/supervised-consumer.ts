/**
 * A Kafka consumer that comes back. kafkajs restarts a crashed consumer only for some
 * errors and may leave it dead after a broker outage; here every crash (or a failed
 * start) disconnects it and builds a fresh one, with backoff, until stopped.
 */
import type { Consumer, ConsumerConfig, Kafka } from "kafkajs";
import { backoffDelay, sleep } from "../backoff.js";
import type { Logger } from "../logger.js";

export interface SupervisedConsumerOptions {
  kafka: Kafka;
  config: ConsumerConfig;
  /** Subscribes and runs a new consumer (and seeks, after run). Called again after each crash. */
  setup: (consumer: Consumer) => Promise<void>;
  /** Told when the consumer is lost (e.g. to stop claiming leadership). */
  onLost?: () => void;
  name: string;
  logger: Logger;
}

export class SupervisedConsumer {
  private consumer: Consumer | undefined;
  private stopped = false;
  private readonly controller = new AbortController();
  private restarting: Promise<void> | undefined;

  constructor(private readonly options: SupervisedConsumerOptions) {}

  /** Resolves once a first consumer is running (retrying until then). */
  async start(): Promise<void> {
    await this.launch();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.controller.abort();
    await this.restarting?.catch(() => undefined);
    await this.consumer?.disconnect().catch(() => undefined);
  }

  private async launch(): Promise<void> {
    for (let attempt = 1; !this.stopped; attempt++) {
      const consumer = this.options.kafka.consumer({ ...this.options.config, retry: { ...this.options.config.retry, restartOnFailure: async () => false } });
      this.consumer = consumer;
      consumer.on(consumer.events.CRASH, () => this.crashed(consumer));
      try {
        await consumer.connect();
        await this.options.setup(consumer);
        return;
      } catch (error) {
        this.options.onLost?.();
        await consumer.disconnect().catch(() => undefined);
        if (this.stopped) return;
        const delay = backoffDelay(attempt, { initialMs: 300, maxMs: 10_000 });
        this.options.logger.warn({ consumer: this.options.name, err: (error as Error).message, retryInMs: delay }, "Kafka consumer did not start; retrying");
        await sleep(delay, this.controller.signal).catch(() => undefined);
      }
    }
  }

  private crashed(consumer: Consumer): void {
    if (this.stopped || consumer !== this.consumer || this.restarting !== undefined) return;
    this.options.onLost?.();
    this.options.logger.warn({ consumer: this.options.name }, "Kafka consumer crashed; starting a new one");
    this.restarting = (async () => {
      await consumer.disconnect().catch(() => undefined);
      await this.launch();
    })().finally(() => {
      this.restarting = undefined;
    });
  }
}
