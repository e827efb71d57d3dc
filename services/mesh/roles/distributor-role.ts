/**
 * The distributor as a process runs it: `createDistributor` wires it (services/distributor/
 * distributor.ts); this role passes it its dependencies and puts its services, routes and
 * health on the process's listener.
 */
import { create } from "@bufbuild/protobuf";
import type { Client, ConnectRouter } from "@connectrpc/connect";
import { directClient } from "../../common/grpc/direct-client.js";
import type { BroadcasterService } from "../../../gen/opal/mesh/v1/broadcaster_pb.js";
import { DistributorService } from "../../../gen/opal/mesh/v1/distributor_pb.js";
import { ComponentHealthSchema } from "../../../gen/opal/mesh/v1/health_pb.js";
import { PolicyService } from "../../../gen/opal/mesh/v1/policy_pb.js";
import type { Security } from "../../common/auth/security.js";
import type { ServerConfig } from "../../common/config/server-config.js";
import type { Logger } from "../../common/logger.js";
import type { ScopeStore } from "../../common/scopes/scope-store.js";
import type { Registry } from "../../common/telemetry/metrics.js";
import type { Tracing } from "../../common/telemetry/tracing.js";
import { type BundleCache, createDistributor, type Distributor, type Fanout } from "../../distributor/index.js";
import type { PeerDistributor } from "../../distributor/statistics.js";
import type { Role } from "./role.js";

export interface DistributorRoleExtras {
  /** The process's registry, where the distributor records its metrics. */
  metrics?: Registry;
  /** This server's id in /statistics (its membership id with Kafka). */
  serverId?: string | undefined;
  /** The fleet's other distributors, for /statistics. */
  peers?: () => PeerDistributor[];
  /** The process's tracing (the one it shuts down). */
  tracing: Tracing;
}

export class DistributorRole implements Role {
  readonly name = "distributor";
  readonly routes;
  readonly upgrades;
  readonly distributor: Distributor;
  /** In-process client for roles in the same process. */
  readonly client: Client<typeof DistributorService>;

  constructor(config: ServerConfig, logger: Logger, broadcaster: Client<typeof BroadcasterService>, policy: Client<typeof PolicyService>, security: Security, scopes: ScopeStore | undefined, extras: DistributorRoleExtras) {
    this.distributor = createDistributor({
      config,
      logger,
      broadcaster,
      policy,
      security,
      scopes,
      tracing: extras.tracing,
      metrics: extras.metrics,
      serverId: extras.serverId,
      peers: extras.peers,
    });
    // Called directly in process (direct-client.ts): the same contract without the protocol.
    this.client = directClient(DistributorService, this.distributor.service);
    this.routes = this.distributor.routes;
    this.upgrades = this.distributor.upgrades;
  }

  get fanout(): Fanout {
    return this.distributor.fanout;
  }

  get bundles(): BundleCache {
    return this.distributor.bundles;
  }

  get streamPort(): number {
    return this.distributor.streamPort;
  }

  register(router: ConnectRouter): void {
    router.service(DistributorService, this.distributor.service);
    router.service(PolicyService, this.distributor.bundles.service());
  }

  async health() {
    const status = await this.client.getDistributorStatus({});
    return status.health === undefined ? [] : [create(ComponentHealthSchema, { ...status.health, message: `${status.health.message}; ${status.connectedClients} clients; head ${status.headPosition}` })];
  }

  start(signal: AbortSignal): Promise<void> {
    return this.distributor.start(signal);
  }

  stop(): Promise<void> {
    return this.distributor.stop();
  }

  describe() {
    return { streamPort: this.distributor.streamPort, clients: this.distributor.fanout.sessionCount };
  }
}
