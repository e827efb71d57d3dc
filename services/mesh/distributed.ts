/**
 * The distributed deployment: each service in its own process (`opal-mesh broadcaster |
 * policy-watcher | distributor | trigger-api`), reaching the others over gRPC by
 * configured URLs (several replicas each, with fail-over), Kafka as the log, and Kafka for
 * membership (who the distributors are) and the policy publisher's election.
 */
import { type Client, createClient } from "@connectrpc/connect";
import { BroadcasterService } from "../../gen/opal/mesh/v1/broadcaster_pb.js";
import type { DistributorService } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { PolicyService } from "../../gen/opal/mesh/v1/policy_pb.js";
import { Security } from "../common/auth/security.js";
import type { ServerConfig } from "../common/config/server-config.js";
import type { Logger } from "../common/logger.js";
import { DeliveryStatusReader } from "../trigger-api/index.js";
import { createFailoverTransport } from "./failover-transport.js";
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
import { type Component, component } from "../common/lifecycle.js";
import { remoteDistributor } from "../distributor/statistics.js";

function remote(config: ServerConfig, security: Security, urls: readonly string[]) {
  return createFailoverTransport({ urls, tls: config.serviceTls, interceptors: [security.serviceInterceptor()] });
}

/** Connections to peers, closed once the roles that use them have stopped. */
function transports(...remotes: Array<{ close(): void }>): Component {
  return component("peer-transports", { stop: () => remotes.forEach((transport) => transport.close()) });
}

function membership(config: ServerConfig, logger: Logger, self: () => { roles: string[]; url: string } | undefined): KafkaMembership | undefined {
  return config.broadcast.type === "kafka" ? createMembership(config.broadcast, self, logger) : undefined;
}

export function broadcasterProcess(config: ServerConfig, logger: Logger): MeshProcess {
  const metrics = createMetricsRegistry();
  const tracing = createTracing(config.telemetry);
  return new MeshProcess({ name: "broadcaster", config, logger, roles: [new BroadcasterRole({ config, logger, expose: true, tracing, metrics })], security: new Security(config.auth), tracing, metrics });
}

export function policyWatcherProcess(config: ServerConfig, logger: Logger): MeshProcess {
  const security = new Security(config.auth);
  const broadcaster = remote(config, security, config.broadcasterUrls);
  const kafka = config.broadcast.type === "kafka" ? config.broadcast : undefined;
  const election: LeaderElection =
    kafka === undefined ? new SoleLeader() : new KafkaLeaderElection({ client: kafkaClientConfig(kafka, "opal-mesh-election"), topic: `${kafka.topic}-policy-leader`, group: `${kafka.topic}-policy-watchers`, sessionTimeoutMs: kafka.leaderSessionTimeoutMs, logger });
  const self: { process?: MeshProcess } = {};
  const members = membership(config, logger, () => ({ roles: ["policy-watcher", ...(election.isLeader ? ["policy-publisher"] : [])], url: config.advertisedUrl ?? self.process?.url ?? "" }));
  election.onChange(() => members?.announceSoon("election"));
  const broadcasterClient = createClient(BroadcasterService, broadcaster);
  const scopeStore = createScopeStore(config, logger, "distributed");
  const metrics = createMetricsRegistry();
  const tracing = createTracing(config.telemetry);
  // A staged rollout's controller asks the distributors about the canaries, as the trigger-api does about deliveries.
  const peers = new PeerClients(security, config.serviceTls);
  const distributors = (): Array<Client<typeof DistributorService>> => [...new Set([...config.distributorUrls, ...(members?.members("distributor").map((member) => member.url) ?? [])])].map((url) => peers.distributor(url));
  const role = new PolicyWatcherRole({ config, logger, broadcaster: broadcasterClient, election, membership: members, security, tracing, scopes: scopeStore, metrics, distributors });
  // The scopes admin API lives with the scopes' repositories.
  const scopes = scopeStore === undefined ? [] : [new ScopesRole(scopeStore, scopeAdminRoutes({ store: scopeStore, broadcaster: broadcasterClient, refresh: (request) => role.refresh(request), authorizeScope: security.authorizeScope, allowlist: new UrlAllowlist(config.fetchAllowlist), limits: config.limits, logger }))];
  self.process = new MeshProcess({
    name: "policy-watcher",
    config,
    logger,
    roles: [...scopes, role],
    security,
    tracing,
    metrics,
    before: [transports(broadcaster)],
    after: members === undefined ? [] : [members],
  });
  return self.process;
}

export function distributorProcess(config: ServerConfig, logger: Logger): MeshProcess {
  const security = new Security(config.auth);
  const broadcaster = remote(config, security, config.broadcasterUrls);
  const policy = remote(config, security, config.policyWatcherUrls);
  const scopeStore = createScopeStore(config, logger, "distributed");
  const metrics = createMetricsRegistry();
  const tracing = createTracing(config.telemetry);
  const peers = new PeerClients(security, config.serviceTls);
  const self: { process?: MeshProcess } = {};
  const members = membership(config, logger, () => ({ roles: ["distributor"], url: config.advertisedUrl ?? self.process?.url ?? "" }));
  const role = new DistributorRole(config, logger, createClient(BroadcasterService, broadcaster), createClient(PolicyService, policy), security, scopeStore, {
    metrics,
    tracing,
    serverId: members?.id,
    peers: () => members?.members("distributor").filter((member) => member.id !== members.id).map((member) => remoteDistributor(member.id, peers.distributor(member.url))) ?? [],
  });
  self.process = new MeshProcess({
    name: "distributor",
    config,
    logger,
    roles: [...(scopeStore === undefined ? [] : [new ScopesRole(scopeStore)]), role],
    security,
    tracing,
    metrics,
    before: [transports(broadcaster, policy)],
    after: members === undefined ? [] : [members],
    summary: async () => {
      const status = await role.client.getDistributorStatus({});
      return { head_position: Number(status.headPosition), connected_clients: status.connectedClients };
    },
  });
  return self.process;
}

export function triggerApiProcess(config: ServerConfig, logger: Logger): MeshProcess {
  const security = new Security(config.auth);
  const broadcaster = remote(config, security, config.broadcasterUrls);
  // It announces nothing; it listens for the distributors, to ask them about deliveries.
  const members = membership(config, logger, () => undefined);
  const peers = new PeerClients(security, config.serviceTls);
  const delivery = new DeliveryStatusReader(() => {
    const urls = new Set([...config.distributorUrls, ...(members?.members("distributor").map((member) => member.url) ?? [])]);
    return [...urls].map((url) => peers.distributor(url));
  });
  const scopeStore = createScopeStore(config, logger, "distributed");
  const metrics = createMetricsRegistry();
  const tracing = createTracing(config.telemetry);
  const trigger = new TriggerRole({ config, logger, broadcaster: createClient(BroadcasterService, broadcaster), delivery, security, tracing, scopes: scopeStore, metrics });
  return new MeshProcess({
    name: "trigger-api",
    config,
    logger,
    roles: [...(scopeStore === undefined ? [] : [new ScopesRole(scopeStore)]), trigger],
    security,
    tracing,
    metrics,
    before: [transports(broadcaster)],
    after: members === undefined ? [] : [members],
  });
}
