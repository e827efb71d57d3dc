/**
 * Exactly one policy-watcher publishes, elected through Kafka: every watcher joins one
 * consumer group on a single-partition control topic, and the member the group
 * coordinator assigns that partition to is the leader. When the leader dies (or leaves),
 * the group rebalances after its session timeout and another member gets the partition.
 * A watcher that cannot tell (between a rebalance and the next assignment) is not leader,
 * nor is one whose last heartbeat is older than the session timeout: by then the
 * coordinator may have given the partition to another member, and a leader cut off from
 * the broker must not go on claiming it (two publishers after an outage).
 */
import { Kafka, type KafkaConfig, logLevel } from "kafkajs";
import { SupervisedConsumer } from "../common/kafka/supervised-consumer.js";
import { type Closed, Closing, type Component } from "../common/lifecycle.js";
import type { Logger } from "../common/logger.js";

export interface LeaderElection extends Component {
  readonly isLeader: boolean;
  onChange(listener: (leader: boolean) => void): void;
  /** The signal is optional here: an election is also run on its own (its test). */
  start(signal?: AbortSignal): Promise<void>;
}

/** Without Kafka there is one process: it leads. */
export class SoleLeader implements LeaderElection {
  readonly name = "leader-election";
  readonly isLeader = true;
  private readonly closing = new Closing();
  readonly closed = this.closing.closed;
  onChange(): void {}
  start(): Promise<void> {
    return Promise.resolve();
  }
  stop(): Promise<void> {
    this.closing.stopped();
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
  readonly name = "leader-election";
  private readonly closing = new Closing();
  private stopping: Promise<void> | undefined;
  private leader = false;
  /** Partition 0 was in this member's last assignment. */
  private assigned = false;
  private lastHeartbeat = 0;
  private leaseTimer: NodeJS.Timeout | undefined;
  private readonly listeners: Array<(leader: boolean) => void> = [];
  private readonly kafka: Kafka;
  private consumer: SupervisedConsumer | undefined;

  constructor(private readonly options: KafkaLeaderElectionOptions) {
    this.kafka = new Kafka({ ...options.client, logLevel: logLevel.NOTHING });
  }

  get isLeader(): boolean {
    return this.leader;
  }

  get closed(): Promise<Closed> {
    return this.closing.closed;
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
    const heartbeatInterval = Math.max(500, Math.floor(sessionTimeout / 6));
    const lost = () => {
      this.assigned = false;
      this.set(false);
    };
    // The lease: leadership lapses when heartbeats stop reaching the coordinator.
    this.leaseTimer = setInterval(() => {
      if (this.leader && Date.now() - this.lastHeartbeat >= sessionTimeout) {
        this.options.logger.warn({ sinceHeartbeatMs: Date.now() - this.lastHeartbeat }, "no heartbeat within the session timeout; not claiming leadership");
        this.set(false);
      }
    }, heartbeatInterval);
    this.leaseTimer.unref();
    this.consumer = new SupervisedConsumer({
      kafka: this.kafka,
      name: "election",
      logger: this.options.logger,
      onLost: lost,
      // The session timeout is how fast a dead leader is noticed. The rebalance timeout only
      // bounds how long the coordinator waits for live members to rejoin (it ends as soon as
      // they have): keep it generous, or members slow to reconnect after a broker outage are
      // dropped from every round and nobody is elected. kafkajs heartbeats between fetches,
      // so a fetch must not wait (5 s by default) longer than the heartbeat interval, or an
      // idle member misses its session and the group churns every few seconds.
      config: { groupId: this.options.group, sessionTimeout, heartbeatInterval, rebalanceTimeout: Math.max(30_000, sessionTimeout * 2), maxWaitTimeInMs: heartbeatInterval },
      setup: async (consumer) => {
        consumer.on(consumer.events.GROUP_JOIN, (event) => {
          const partitions = event.payload.memberAssignment[this.options.topic] ?? [];
          this.assigned = partitions.includes(0);
          this.lastHeartbeat = Date.now();
          this.set(this.assigned);
        });
        consumer.on(consumer.events.HEARTBEAT, () => {
          this.lastHeartbeat = Date.now();
          if (this.assigned) this.set(true);
        });
        consumer.on(consumer.events.REBALANCING, lost);
        consumer.on(consumer.events.STOP, lost);
        await consumer.subscribe({ topic: this.options.topic });
        // Running keeps the membership alive (heartbeats); the topic itself carries nothing.
        await consumer.run({ eachMessage: async () => undefined });
      },
    });
    // A consumer that cannot be brought back ends this part too (the supervisor then stops the process).
    void this.consumer.closed.then((closed) => {
      if (closed.reason === "failed") this.closing.failed(closed.error);
    });
    await this.consumer.start();
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      clearInterval(this.leaseTimer);
      this.assigned = false;
      this.set(false);
      try {
        await this.consumer?.stop();
      } finally {
        this.closing.stopped();
      }
    })();
    return this.stopping;
  }

  private set(leader: boolean): void {
    if (leader === this.leader) return;
    this.leader = leader;
    this.options.logger.info({ leader }, leader ? "elected policy publisher" : "no longer the policy publisher");
    for (const listener of this.listeners) listener(leader);
  }
}
