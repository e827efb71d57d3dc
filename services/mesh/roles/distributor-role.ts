/**
 * The distributor: client sessions on the stream listener, fan-out of the log, ACKs and
 * delivery status, the data sources config, and bundles proxied (and cached) from a
 * policy-watcher.
 */
import { create } from "@bufbuild/protobuf";
import { createClient, createRouterTransport, type Client, type ConnectRouter } from "@connectrpc/connect";
import type { BroadcasterService } from "../../../gen/opal/mesh/v1/broadcaster_pb.js";
import { DistributorService } from "../../../gen/opal/mesh/v1/distributor_pb.js";
import { ComponentHealthSchema } from "../../../gen/opal/mesh/v1/health_pb.js";
import { PolicyService } from "../../../gen/opal/mesh/v1/policy_pb.js";
import type { Security } from "../../common/auth/security.js";
import type { ServerConfig } from "../../common/config/server-config.js";
import type { Logger } from "../../common/logger.js";
import { BundleCache, ChangeFeed, createDistributorService, dashboardRoutes, DeliveryTracker, distributorRestRoutes, Fanout, StreamServer } from "../../distributor/index.js";
import type { ScopeStore } from "../../common/scopes/scope-store.js";
import { scopeClientRoutes } from "../../distributor/scope-rest.js";
import { tracingFor } from "../../common/telemetry/tracing.js";
import { traceAck } from "../../distributor/ack-span.js";
import { randomUUID } from "node:crypto";
import type { Registry } from "../../common/telemetry/metrics.js";
import { VERSION } from "../../common/version.js";
import { DistributorMetrics } from "../../distributor/metrics.js";
import { localStream, type PeerDistributor, statisticsRoutes } from "../../distributor/statistics.js";
import type { Role } from "./role.js";
import { logName } from "../../common/config/broadcast-config.js";

export interface DistributorRoleExtras {
  /** The process's registry, where the distributor records its metrics. */
  metrics?: Registry;
  /** This server's id in /statistics (its membership id with Kafka). */
  serverId?: string;
  /** The fleet's other distributors, for /statistics. */
  peers?: () => PeerDistributor[];
}

export class DistributorRole implements Role {
  readonly name = "distributor";
  readonly routes;
  readonly fanout: Fanout;
  readonly bundles: BundleCache;
  /** In-process client for roles in the same process. */
  readonly client: Client<typeof DistributorService>;
  private readonly streamServer: StreamServer;
  /** Tells open dashboards that clients or deliveries changed. */
  private readonly dashboardFeed = new ChangeFeed();
  private readonly impl;

  constructor(config: ServerConfig, logger: Logger, broadcaster: Client<typeof BroadcasterService>, policy: Client<typeof PolicyService>, security: Security, scopes?: ScopeStore, extras: DistributorRoleExtras = {}) {
    const log = logger.child({ service: "distributor" });
    const delivery = new DeliveryTracker({ maxUpdates: 10_000, onAcknowledged: (kind, latencyMs, failed) => metrics?.acknowledged(kind, latencyMs, failed) });
    const authorizeScope = security.authorizeScope;
    this.bundles = new BundleCache(policy, authorizeScope);
    const tracing = tracingFor(config.telemetry);
    const eventLog = logName(config.broadcast);
    // Resuming clients replay from the distributor's memory, never further back than the log retains (beyond it they resync).
    const recentEvents = { maxEvents: Math.min(10_000, config.log.maxEvents), maxBytes: Math.min(64 * 1024 * 1024, Math.floor(config.log.maxBytes / 4)) };
    this.fanout = new Fanout(broadcaster, log, {
      onDispatch: (event, addressed) => delivery.dispatched(event, addressed),
      onClientConnected: (clientId, deliversAfter) => delivery.clientConnected(clientId, deliversAfter),
      onClientDisconnected: (clientId) => delivery.clientDisconnected(clientId),
      tracing,
      logName: eventLog,
      recentEvents,
    });
    this.fanout.onEvent((event) => this.bundles.observe(event));
    this.fanout.onEvent(() => this.dashboardFeed.changed());
    const metrics = extras.metrics === undefined ? undefined : new DistributorMetrics(extras.metrics, this.fanout);
    this.streamServer = new StreamServer({
      host: config.host,
      port: config.streamPort,
      fanout: this.fanout,
      broadcaster,
      logger: log,
      maxBufferedFrames: config.limits.streamMaxBufferedEvents,
      maxBufferedBytes: config.limits.streamMaxBufferedBytes,
      tls: config.tls,
      maxMessageBytes: config.limits.streamMaxMessageBytes,
      limits: config.listener,
      helloTimeoutMs: 10_000,
      onSessionChange: () => this.dashboardFeed.changed(),
      scopes: scopes !== undefined,
      onAck: (clientId, ack) => {
        delivery.acknowledged(clientId, ack);
        this.dashboardFeed.changed();
        traceAck(tracing, clientId, ack);
      },
      authorize: async (authorization, hello) => {
        const authenticator = await security.authenticator();
        const principal = await authenticator.authenticate(authorization, ["client"]);
        authenticator.authorizeTopics(principal, hello.topics);
        authenticator.authorizeScope(principal, hello.scope);
      },
    });
    const dataSources = { configured: config.dataConfigSources, allDataUrl: config.allDataUrl, allDataTopic: config.allDataTopic };
    this.impl = createDistributorService({ fanout: this.fanout, delivery, dataSources, streamPort: () => this.streamServer.port, streamPublicUrl: config.streamPublicUrl, streamTls: config.tls !== undefined, scopes, authorizeScope });
    this.client = createClient(DistributorService, createRouterTransport((router) => router.service(DistributorService, this.impl)));
    this.routes = [
      ...distributorRestRoutes({ dataSources, dataConfigRoute: "/data/config", allDataRoute: config.allDataRoute, logger: log, authorizeScope }),
      ...scopeClientRoutes({ scopes, bundles: this.bundles, authorizeScope }),
      ...dashboardRoutes({ fanout: this.fanout, delivery, feed: this.dashboardFeed, startedAt: Date.now(), traceUiUrl: config.dashboard.traceUiUrl, authorizeScope }),
      ...statisticsRoutes({ serverId: extras.serverId ?? randomUUID(), startedAt: new Date(), version: VERSION, streams: () => this.fanout.listSessions().map(localStream), peers: extras.peers, logger: log }),
    ];
  }

  get streamPort(): number {
    return this.streamServer.port;
  }

  register(router: ConnectRouter): void {
    router.service(DistributorService, this.impl);
    router.service(PolicyService, this.bundles.service());
  }

  async health() {
    const status = await this.client.getDistributorStatus({});
    return status.health === undefined ? [] : [create(ComponentHealthSchema, { ...status.health, message: `${status.health.message}; ${status.connectedClients} clients; head ${status.headPosition}` })];
  }

  async start(signal: AbortSignal): Promise<void> {
    await this.fanout.start(signal);
    await this.streamServer.start();
  }

  async stop(): Promise<void> {
    this.dashboardFeed.close();
    await this.streamServer.stop();
    await this.fanout.stopped();
  }

  describe() {
    return { streamPort: this.streamServer.port, clients: this.fanout.sessionCount };
  }
}
