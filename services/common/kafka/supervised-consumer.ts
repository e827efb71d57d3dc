/**
 * A Kafka consumer that comes back. kafkajs restarts a crashed consumer only for some
 * errors and may leave it dead after a broker outage; here every crash (or a failed
 * start) disconnects it and builds a fresh one, with backoff, until stopped.
 */
// Every Kafka user here goes through this module or logged-kafka.ts: both clamp kafkajs's negative timer (#1751).
import "./request-queue-timer.js";
import type { Consumer, ConsumerConfig, Kafka } from "kafkajs";
import { backoffDelay, sleep } from "../backoff.js";
import { type Closed, Closing, type Component } from "../lifecycle.js";
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

export class SupervisedConsumer implements Component {
  readonly name: string;
  private consumer: Consumer | undefined;
  private stopped = false;
  private readonly controller = new AbortController();
  private restarting: Promise<void> | undefined;
  /** launch() is running: a crash meanwhile is noted here and handled once it returns. */
  private launching = false;
  private crashedWhileLaunching: Consumer | undefined;
  private stopping: Promise<void> | undefined;
  private readonly closing = new Closing();
  /** Crashes and failed starts so far (each one logged), for whoever reports this consumer's health. */
  restarts = 0;

  constructor(private readonly options: SupervisedConsumerOptions) {
    this.name = `kafka-consumer-${options.name}`;
  }

  get closed(): Promise<Closed> {
    return this.closing.closed;
  }

  /** Resolves once a first consumer is running (retrying until then, or until stopped or `signal` aborts). */
  async start(signal?: AbortSignal): Promise<void> {
    signal?.addEventListener("abort", () => void this.stop(), { once: true });
    await this.launch();
    this.afterLaunch();
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.stopped = true;
      this.controller.abort();
      // A restart in flight ends on the abort; launch() handles its own failures, so this never rejects.
      await this.restarting;
      await this.consumer?.disconnect().catch((error: unknown) => this.warnDisconnect(error));
      this.closing.stopped();
    })();
    return this.stopping;
  }

  private warnDisconnect(error: unknown): void {
    this.options.logger.warn({ consumer: this.options.name, err: (error as Error).message }, "disconnecting the Kafka consumer failed; a new one replaces it");
  }

  private async launch(): Promise<void> {
    this.launching = true;
    try {
      await this.launchLoop();
    } finally {
      this.launching = false;
    }
  }

  /**
   * The consumer launch() left running crashed before launch() returned (kafkajs runs the
   * group join after run() resolves, so a broker that goes away then crashes it at once):
   * without this that crash was dropped, and the consumer stayed dead — after a broker
   * outage a watcher never rejoined the election.
   */
  private afterLaunch(): void {
    const crashed = this.crashedWhileLaunching;
    this.crashedWhileLaunching = undefined;
    if (crashed !== undefined && crashed === this.consumer) this.crashed(crashed);
  }

  private async launchLoop(): Promise<void> {
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
        await consumer.disconnect().catch((disconnectError: unknown) => this.warnDisconnect(disconnectError));
        if (this.stopped) return;
        this.restarts++;
        const delay = backoffDelay(attempt, { initialMs: 300, maxMs: 10_000 });
        this.options.logger.warn({ consumer: this.options.name, err: (error as Error).message, retryInMs: delay, restarts: this.restarts }, "Kafka consumer did not start; retrying");
        await sleep(delay, this.controller.signal).catch(() => undefined); // aborted: the loop ends on stop
      }
    }
  }

  private crashed(consumer: Consumer): void {
    if (this.stopped || consumer !== this.consumer) return;
    if (this.launching || this.restarting !== undefined) {
      this.crashedWhileLaunching = consumer;
      return;
    }
    this.options.onLost?.();
    this.restarts++;
    this.options.logger.warn({ consumer: this.options.name, restarts: this.restarts }, "Kafka consumer crashed; starting a new one");
    this.restarting = (async () => {
      await consumer.disconnect().catch((error: unknown) => this.warnDisconnect(error));
      await this.launch();
    })()
      .catch((error: unknown) => {
        // launch() retries every failure it knows; anything else ends this consumer, and its closed says so.
        this.options.logger.error({ consumer: this.options.name, err: error }, "the Kafka consumer could not be restarted");
        this.closing.failed(error);
      })
      .finally(() => {
        this.restarting = undefined;
        this.afterLaunch();
      });
  }
}
