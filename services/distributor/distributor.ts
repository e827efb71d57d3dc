/**
 * The distributor, wired: one log subscription fanned out to client streams, delivery
 * tracking, ACK spans, metrics, the bundle cache and the dashboard's change feed, all
 * seeing the distributor through one observer; its RPCs and REST routes. The composition
 * root passes dependencies in and starts it.
 *
 * Start order (stop is the reverse): delivery tracker, change feed, fan-out (resolves
 * once subscribed, so Welcome carries a real head), stream server.
 */
import { randomUUID } from "node:crypto";
import type { Client, ServiceImpl } from "@connectrpc/connect";
import type { BroadcasterService } from "../../gen/opal/mesh/v1/broadcaster_pb.js";
import type { DistributorService } from "../../gen/opal/mesh/v1/distributor_pb.js";
import type { PolicyService } from "../../gen/opal/mesh/v1/policy_pb.js";
import type { Security } from "../common/auth/security.js";
import { logName } from "../common/config/broadcast-config.js";
import type { ServerConfig } from "../common/config/server-config.js";
import type { RestRoute } from "../common/http/rest-router.js";
import { type Closed, type Component, component, Supervisor } from "../common/lifecycle.js";
import type { UpgradeHandler } from "../common/http/listener.js";
import type { Logger } from "../common/logger.js";
import type { ScopeStore } from "../common/scopes/scope-store.js";
import type { Registry } from "../common/telemetry/metrics.js";
import type { Tracing } from "../common/telemetry/tracing.js";
import { VERSION } from "../common/version.js";
import { ackSpans } from "./ack-span.js";
import { BundleCache } from "./bundle-cache.js";
import { CatchUp } from "./catch-up.js";
import { ChangeFeed, dashboardRoutes } from "./dashboard/index.js";
import { DeliveryTracker } from "./delivery-tracker.js";
import { Fanout } from "./fanout.js";
import { DistributorMetrics } from "./metrics.js";
import { type DistributorObserver, Observers } from "./observer.js";
import { distributorRestRoutes } from "./rest.js";
import { scopeClientRoutes } from "./scope-rest.js";
import { createDistributorService } from "./service.js";
import { OPAL_WS_PATH, OpalWsEndpoint } from "./opal-ws/opal-ws-endpoint.js";
import { Sessions } from "./sessions.js";
import { localStream, type PeerDistributor, statisticsRoutes } from "./statistics.js";
import { StreamServer } from "./stream-server.js";

export interface DistributorOptions {
  config: ServerConfig;
  /** The log, through the broadcaster's client (in-process or remote). */
  broadcaster: Client<typeof BroadcasterService>;
  /** The policy-watcher, whose bundles the distributor serves (cached). */
  policy: Client<typeof PolicyService>;
  security: Security;
  /** OPAL_SCOPES: the scope records; undefined when scopes are off. */
  scopes?: ScopeStore | undefined;
  tracing: Tracing;
  logger: Logger;
  /** The process's registry, where the distributor records its metrics. */
  metrics?: Registry | undefined;
  /** This server's id in /statistics (its membership id with Kafka). */
  serverId?: string | undefined;
  /** The fleet's other distributors, for /statistics. */
  peers?: (() => PeerDistributor[]) | undefined;
}

export interface Distributor extends Component {
  readonly fanout: Fanout;
  readonly delivery: DeliveryTracker;
  readonly bundles: BundleCache;
  /** DistributorService's unary RPCs (the stream itself is on `streamPort`). */
  readonly service: ServiceImpl<typeof DistributorService>;
  readonly routes: RestRoute[];
  /** Websocket endpoints on the HTTP port: OPAL's pub/sub at /ws. */
  readonly upgrades: ReadonlyMap<string, UpgradeHandler>;
  /** The stream listener's port, once started. */
  readonly streamPort: number;
  /** Its long-lived parts, in start order. */
  readonly components: readonly Component[];
}

/** A resuming client replays from memory, never further back than the log retains (beyond it, it resyncs). */
function recentEventLimits(config: ServerConfig): { maxEvents: number; maxBytes: number } {
  return { maxEvents: Math.min(10_000, config.log.maxEvents), maxBytes: Math.min(64 * 1024 * 1024, Math.floor(config.log.maxBytes / 4)) };
}

export function createDistributor(options: DistributorOptions): Distributor {
  const { config, broadcaster, security, scopes, tracing } = options;
  const logger = options.logger.child({ service: "distributor" });
  const authorizeScope = security.authorizeScope;
  const observer = new Observers();
  const delivery = new DeliveryTracker({ maxUpdates: 10_000, onAcknowledged: (kind, latencyMs, failed) => observer.onDelivered(kind, latencyMs, failed) });
  const feed = new ChangeFeed();
  const bundles = new BundleCache(options.policy, authorizeScope);
  const fanout = new Fanout({ broadcaster, logger, observer, tracing, logName: logName(config.broadcast), recentEvents: recentEventLimits(config) });
  const limits = { maxFrames: config.limits.streamMaxBufferedEvents, maxBytes: config.limits.streamMaxBufferedBytes };
  const catchUp = new CatchUp({ fanout, broadcaster, logger, limits, observer });
  const sessions = new Sessions({ fanout, catchUp, logger, limits, observer });
  // Unmodified OPAL clients, on the HTTP port where they expect their server.
  const opalWs = new OpalWsEndpoint({ sessions, authenticator: () => security.authenticator(), scopes: scopes !== undefined, logger, limits: config.limits });
  const streamServer = new StreamServer({
    host: config.host,
    port: config.streamPort,
    handoff: sessions,
    logger,
    tls: config.tls,
    maxMessageBytes: config.limits.streamMaxMessageBytes,
    limits: config.listener,
    helloTimeoutMs: 10_000,
    scopes: scopes !== undefined,
    authorize: async (authorization, hello) => {
      const authenticator = await security.authenticator();
      const principal = await authenticator.authenticate(authorization, ["client"]);
      authenticator.authorizeTopics(principal, hello.topics);
      authenticator.authorizeScope(principal, hello.scope);
    },
  });
  observer.add(trackerObserver(delivery), bundles, feed, ackSpans(tracing));
  if (options.metrics !== undefined) observer.add(new DistributorMetrics(options.metrics, fanout));

  const dataSources = { configured: config.dataConfigSources, allDataUrl: config.allDataUrl, allDataTopic: config.allDataTopic };
  const service = createDistributorService({ fanout, delivery, dataSources, streamPort: () => streamServer.port, streamPublicUrl: config.streamPublicUrl, streamTls: config.tls !== undefined, scopes, authorizeScope });
  const routes = [
    ...distributorRestRoutes({ dataSources, dataConfigRoute: "/data/config", allDataRoute: config.allDataRoute, logger, authorizeScope }),
    ...scopeClientRoutes({ scopes, bundles, authorizeScope }),
    ...dashboardRoutes({ fanout, delivery, feed, startedAt: Date.now(), traceUiUrl: config.dashboard.traceUiUrl, authorizeScope }),
    ...opalWs.routes(),
    ...statisticsRoutes({ serverId: options.serverId ?? randomUUID(), startedAt: new Date(), version: VERSION, streams: () => fanout.listSessions().map(localStream), peers: options.peers, logger }),
  ];

  const opalWsPart = component("OPAL websocket", { start: () => opalWs.start(), stop: () => opalWs.stop() });
  const components: Component[] = [delivery, feed, fanout, streamServer, opalWsPart];
  const supervisor = new Supervisor(components, logger);
  return {
    name: "distributor",
    fanout,
    delivery,
    bundles,
    service,
    routes,
    upgrades: new Map([[OPAL_WS_PATH, opalWs.upgrade]]),
    components,
    get streamPort() {
      return streamServer.port;
    },
    get closed(): Promise<Closed> {
      return supervisor.closed;
    },
    start: (signal) => supervisor.start(signal),
    stop: () => supervisor.stop(),
  };
}

/** The delivery tracker follows dispatches, ACKs and clients coming and going. */
function trackerObserver(delivery: DeliveryTracker): DistributorObserver {
  return {
    onDispatched: (event, addressed, unconfirmed) => delivery.dispatched(event, addressed, unconfirmed),
    onAck: (clientId, ack) => delivery.acknowledged(clientId, ack),
    onAcksThrough: (session, after, through) => delivery.acknowledgedThrough(session.clientId, after, through, (topics) => session.acceptsTopics(topics)),
    onClientConnected: (clientId, deliversAfter) => delivery.clientConnected(clientId, deliversAfter),
    onClientDisconnected: (clientId) => delivery.clientDisconnected(clientId),
  };
}
