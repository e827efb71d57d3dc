/**
 * Exactly one policy-watcher publishes, elected through Kafka: every watcher joins one
 * consumer group on a single-partition control topic, and the member the group
 * coordinator assigns that partition to is the leader. When the leader dies (or leaves),
 * the group rebalances after its session timeout and another member gets the partition.
 * A watcher that cannot tell (between a rebalance and the next assignment) is not leader.
 */
import { Kafka, type KafkaConfig, logLevel } from "kafkajs";
import { SupervisedConsumer } from "../common/kafka/supervised-consumer.js";
import type { Logger } from "../common/logger.js";

export interface LeaderElection {
  readonly isLeader: boolean;
  onChange(listener: (leader: boolean) => void): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Without Kafka there is one process: it leads. */
export class SoleLeader implements LeaderElection {
  readonly isLeader = true;
  onChange(): void {}
  start(): Promise<void> {
    return Promise.resolve();
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }
}

export interface KafkaLeaderElectionOptions {
  client: Omit<KafkaConfig, "logLevel" | "logCreator">;
  topic: string;
  group: string;
  sessionTimeoutMs?: number;
  logger: Logger;
}

export class KafkaLeaderElection implements LeaderElection {
  private leader = false;
  private readonly listeners: Array<(leader: boolean) => void> = [];
  private readonly kafka: Kafka;
  private consumer: SupervisedConsumer | undefined;

  constructor(private readonly options: KafkaLeaderElectionOptions) {
    this.kafka = new Kafka({ ...options.client, logLevel: logLevel.NOTHING });
  }

  get isLeader(): boolean {
    return this.leader;
  }

  onChange(listener: (leader: boolean) => void): void {
    this.listeners.push(listener);
  }

  async start(): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      if (!(await admin.listTopics()).includes(this.options.topic)) {
        await admin.createTopics({ waitForLeaders: true, topics: [{ topic: this.options.topic, numPartitions: 1, replicationFactor: -1 }] }).catch((error: unknown) => {
          if (!/already exists/i.test((error as Error).message)) throw error;
        });
      }
    } finally {
      await admin.disconnect();
    }
    const sessionTimeout = this.options.sessionTimeoutMs ?? 6_000;
    this.consumer = new SupervisedConsumer({
      kafka: this.kafka,
      name: "election",
      logger: this.options.logger,
      onLost: () => this.set(false),
      // The session timeout is how fast a dead leader is noticed. The rebalance timeout only
      // bounds how long the coordinator waits for live members to rejoin (it ends as soon as
      // they have): keep it generous, or members slow to reconnect after a broker outage are
      // dropped from every round and nobody is elected.
      config: { groupId: this.options.group, sessionTimeout, heartbeatInterval: Math.max(500, Math.floor(sessionTimeout / 6)), rebalanceTimeout: Math.max(30_000, sessionTimeout * 2) },
      setup: async (consumer) => {
        consumer.on(consumer.events.GROUP_JOIN, (event) => {
          const partitions = event.payload.memberAssignment[this.options.topic] ?? [];
          this.set(partitions.includes(0));
        });
        consumer.on(consumer.events.REBALANCING, () => this.set(false));
        consumer.on(consumer.events.STOP, () => this.set(false));
        await consumer.subscribe({ topic: this.options.topic });
        // Running keeps the membership alive (heartbeats); the topic itself carries nothing.
        await consumer.run({ eachMessage: async () => undefined });
      },
    });
    await this.consumer.start();
  }

  async stop(): Promise<void> {
    this.set(false);
    await this.consumer?.stop();
  }

  private set(leader: boolean): void {
    if (leader === this.leader) return;
    this.leader = leader;
    this.options.logger.info({ leader }, leader ? "elected policy publisher" : "no longer the policy publisher");
    for (const listener of this.listeners) listener(leader);
  }
}
