/**
 * The all-in-one server (`opal-mesh server`): the four services in one process, talking
 * through in-process Connect transports (the real protocol stack, in memory). With the
 * in-memory log it is the embedded deployment; with OPAL_BROADCAST_URI=kafka://… several
 * of them share one log, announce themselves through Kafka, and elect one policy publisher.
 */
import type { Client } from "@connectrpc/connect";
import type { DistributorService } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { Security } from "../common/auth/security.js";
import type { ServerConfig } from "../common/config/server-config.js";
import type { Component } from "../common/lifecycle.js";
import type { Logger } from "../common/logger.js";
import type { BundleCache } from "../distributor/index.js";
import type { PolicyWatcher } from "../policy-watcher/index.js";
import { DeliveryStatusReader } from "../trigger-api/index.js";
import { KafkaLeaderElection, type LeaderElection, SoleLeader } from "../policy-watcher/leader-election.js";
import { MeshProcess } from "./mesh-process.js";
import { createMembership, kafkaClientConfig, type KafkaMembership, PeerClients } from "./peers.js";
import { BroadcasterRole } from "./roles/broadcaster-role.js";
import { DistributorRole } from "./roles/distributor-role.js";
import { PolicyWatcherRole } from "./roles/policy-watcher-role.js";
import { TriggerRole } from "./roles/trigger-role.js";
import { ScopesRole } from "./roles/scopes-role.js";
import { scopeAdminRoutes } from "../policy-watcher/scope-admin-routes.js";
import { createScopeStore } from "./scope-store-factory.js";
import { UrlAllowlist } from "../common/url-allowlist.js";
import { createMetricsRegistry } from "../common/telemetry/metrics.js";
import { createTracing } from "../common/telemetry/tracing.js";
import { remoteDistributor } from "../distributor/statistics.js";

export class EmbeddedServer implements Component {
  readonly name = "server";
  /** Exposed for tests and benchmarks: bundle builds and cache behaviour. */
  readonly watcher: PolicyWatcher | undefined;
  readonly bundles: BundleCache;
  private readonly process: MeshProcess;
  private readonly distributor: DistributorRole;
  private readonly membership: KafkaMembership | undefined;

  constructor(config: ServerConfig, logger: Logger) {
    // This process's one tracing: every role gets it, the process shuts it down last.
    const tracing = createTracing(config.telemetry);
    const security = new Security(config.auth);
    const kafka = config.broadcast.type === "kafka" ? config.broadcast : undefined;
    const election: LeaderElection =
      kafka === undefined ? new SoleLeader() : new KafkaLeaderElection({ client: kafkaClientConfig(kafka, "opal-mesh-election"), topic: `${kafka.topic}-policy-leader`, group: `${kafka.topic}-policy-watchers`, sessionTimeoutMs: kafka.leaderSessionTimeoutMs, logger });
    this.membership = kafka === undefined ? undefined : createMembership(kafka, () => ({ roles: ["distributor", ...(election.isLeader ? ["policy-publisher"] : [])], url: config.advertisedUrl ?? this.url }), logger);
    election.onChange(() => this.membership?.announceSoon("election"));

    // One registry for the whole process, at /metrics.
    const metrics = createMetricsRegistry();
    const broadcaster = new BroadcasterRole({ config, logger, expose: false, tracing, metrics });
    const scopeStore = createScopeStore(config, logger, "embedded");
    // Its rollout controller asks every distributor, as delivery status does (below).
    const distributors = (): Array<Client<typeof DistributorService>> => [
      this.distributor.client,
      ...(this.membership?.members("distributor").filter((member) => member.id !== this.membership?.id).map((member) => peers.distributor(member.url)) ?? []),
    ];
    const policy = new PolicyWatcherRole({ config, logger, broadcaster: broadcaster.client, election, membership: this.membership, security, tracing, scopes: scopeStore, metrics, distributors });
    this.distributor = new DistributorRole(config, logger, broadcaster.client, policy.client, security, scopeStore, {
      metrics,
      tracing,
      serverId: this.membership?.id,
      peers: () => this.membership?.members("distributor").filter((member) => member.id !== this.membership?.id).map((member) => remoteDistributor(member.id, peers.distributor(member.url))) ?? [],
    });
    // Other servers' distributors hold other clients: delivery status asks them all.
    const peers = new PeerClients(security, config.serviceTls);
    const delivery = new DeliveryStatusReader(distributors);
    const trigger = new TriggerRole({ config, logger, broadcaster: broadcaster.client, delivery, security, tracing, scopes: scopeStore, metrics });
    // Loaded before the roles that read them start.
    const scopes = scopeStore === undefined ? [] : [new ScopesRole(scopeStore, scopeAdminRoutes({ store: scopeStore, broadcaster: broadcaster.client, refresh: (request) => policy.refresh(request), authorizeScope: security.authorizeScope, allowlist: new UrlAllowlist(config.fetchAllowlist), limits: config.limits, logger }))];
    this.watcher = policy.watcher;
    this.bundles = this.distributor.bundles;
    this.process = new MeshProcess({
      name: "server",
      config,
      logger,
      roles: [...scopes, broadcaster, policy, this.distributor, trigger],
      security,
      tracing,
      metrics,
      // Announced once the listener is up; gone from the fleet before it stops.
      after: this.membership === undefined ? [] : [this.membership],
      summary: async () => {
        const status = await this.distributor.client.getDistributorStatus({});
        return { head_position: Number(status.headPosition), connected_clients: status.connectedClients };
      },
    });
  }

  get port(): number {
    return this.process.port;
  }

  get streamPort(): number {
    return this.distributor.streamPort;
  }

  get url(): string {
    return this.process.url;
  }

  start(signal: AbortSignal): Promise<void> {
    return this.process.start(signal);
  }

  stop(): Promise<void> {
    return this.process.stop();
  }

  get closed() {
    return this.process.closed;
  }
}
