/**
 * Who else is running, learnt through Kafka: every distributor announces its URL on a
 * small members topic every few seconds; everyone reads it. Trigger-apis use it to ask
 * every live distributor for an update's delivery (publish-and-wait across the fleet).
 */
import { randomUUID } from "node:crypto";
import { Kafka, type KafkaConfig, logLevel, type Producer } from "kafkajs";
import { noDelaySocketFactory } from "./socket-factory.js";
import { SupervisedConsumer } from "./supervised-consumer.js";
import { type Closed, Closing, type Component } from "../lifecycle.js";
import type { Logger } from "../logger.js";

export interface Member {
  id: string;
  role: string;
  url: string;
  seenAt: number;
}

export interface MembershipOptions {
  client: Omit<KafkaConfig, "logLevel" | "logCreator">;
  topic: string;
  /** What this process announces, asked at each heartbeat (roles may change: an elected publisher). */
  self: () => { roles: string[]; url: string } | undefined;
  heartbeatMs?: number;
  logger: Logger;
}

export class KafkaMembership implements Component {
  readonly name = "membership";
  readonly id = randomUUID();
  private readonly closing = new Closing();
  private stopping: Promise<void> | undefined;
  /** Announcements that failed (heartbeats, the one after an election), for health and logs. */
  announceFailures = 0;
  private readonly kafka: Kafka;
  private readonly known = new Map<string, Member>();
  private producer: Producer | undefined;
  private consumer: SupervisedConsumer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly heartbeatMs: number;

  constructor(private readonly options: MembershipOptions) {
    this.kafka = new Kafka({ socketFactory: noDelaySocketFactory, ...options.client, logLevel: logLevel.NOTHING });
    this.heartbeatMs = options.heartbeatMs ?? 3_000;
  }

  /** Live members of a role (heard from within three heartbeats), this process included. */
  members(role: string): Member[] {
    const now = Date.now();
    return [...this.known.values()].filter((member) => member.role === role && now - member.seenAt < 3 * this.heartbeatMs);
  }

  get closed(): Promise<Closed> {
    return this.closing.closed;
  }

  async start(): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      if (!(await admin.listTopics()).includes(this.options.topic)) {
        await admin
          .createTopics({
            waitForLeaders: true,
            // Announcements matter for seconds: keep a few minutes of them.
            topics: [{ topic: this.options.topic, numPartitions: 1, replicationFactor: -1, configEntries: [{ name: "retention.ms", value: "300000" }, { name: "segment.ms", value: "60000" }] }],
          })
          .catch((error: unknown) => {
            if (!/already exists/i.test((error as Error).message)) throw error;
          });
      }
    } finally {
      await admin.disconnect();
    }
    this.consumer = new SupervisedConsumer({
      kafka: this.kafka,
      name: "membership",
      logger: this.options.logger,
      config: { groupId: `opal-mesh-members-${this.id}`, maxWaitTimeInMs: 100 },
      setup: async (consumer) => {
        await consumer.subscribe({ topic: this.options.topic, fromBeginning: true });
        await consumer.run({ autoCommit: false, eachMessage: async ({ message }) => this.heard(message.value) });
      },
    });
    // A consumer that cannot be brought back ends this part too (the supervisor then stops the process).
    void this.consumer.closed.then((closed) => {
      if (closed.reason === "failed") this.closing.failed(closed.error);
    });
    await this.consumer.start();
    if (this.options.self() !== undefined) {
      this.producer = this.kafka.producer();
      await this.producer.connect();
      await this.announce(false);
      this.timer = setInterval(() => this.announceSoon("heartbeat"), this.heartbeatMs);
      this.timer.unref();
    }
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      clearInterval(this.timer);
      const { logger } = this.options;
      // Leaving is a courtesy: without it peers forget this process after three heartbeats.
      if (this.producer !== undefined) await this.announce(true).catch((error: unknown) => logger.warn({ err: (error as Error).message }, "could not announce leaving; peers forget this process after three heartbeats"));
      await this.producer?.disconnect().catch((error: unknown) => logger.warn({ err: (error as Error).message }, "disconnecting the membership producer failed"));
      await this.consumer?.stop();
      this.closing.stopped();
    })();
    return this.stopping;
  }

  /**
   * Announces in the background (a heartbeat, a won election): a failure is logged and
   * counted, and the next heartbeat tries again.
   */
  announceSoon(why: string): void {
    void this.announce(false).catch((error: unknown) => {
      this.announceFailures++;
      this.options.logger.warn({ err: (error as Error).message, why, failures: this.announceFailures }, "membership announcement failed; the next heartbeat tries again");
    });
  }

  private heard(value: Buffer | null): void {
    try {
      const member = JSON.parse(value?.toString() ?? "") as { id: string; roles: string[]; url: string; left?: boolean; at: number };
      for (const [key, known] of this.known) if (known.id === member.id) this.known.delete(key);
      if (member.left !== true) {
        for (const role of member.roles) this.known.set(`${member.id}/${role}`, { id: member.id, role, url: member.url, seenAt: Math.min(Date.now(), member.at) });
      }
    } catch {
      // Not an announcement (the topic is ours, but anyone may write to it): nothing to learn from it.
    }
  }

  /** Announces now (e.g. right after winning an election) instead of at the next heartbeat. */
  async announce(left = false): Promise<void> {
    const self = this.options.self();
    if (self === undefined || this.producer === undefined) return;
    await this.producer.send({ topic: this.options.topic, messages: [{ key: this.id, value: JSON.stringify({ id: this.id, roles: self.roles, url: self.url, left, at: Date.now() }) }] });
  }
}
