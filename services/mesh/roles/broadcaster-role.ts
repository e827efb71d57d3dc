/** The broadcaster: the log (in memory or Kafka) behind BroadcasterService. */
import type { Client, ConnectRouter } from "@connectrpc/connect";
import { directClient } from "../../common/grpc/direct-client.js";
import { create } from "@bufbuild/protobuf";
import { BroadcasterService } from "../../../gen/opal/mesh/v1/broadcaster_pb.js";
import { ComponentHealthSchema, HealthState } from "../../../gen/opal/mesh/v1/health_pb.js";
import { createBroadcasterService } from "../../broadcaster/index.js";
import type { ServerConfig } from "../../common/config/server-config.js";
import type { Logger } from "../../common/logger.js";
import { createLogBackend, type LogBackend } from "../log-backend.js";
import { BroadcasterMetrics } from "../../broadcaster/metrics.js";
import type { Registry } from "../../common/telemetry/metrics.js";
import type { Tracing } from "../../common/telemetry/tracing.js";
import type { Role } from "./role.js";

export interface BroadcasterRoleOptions {
  config: ServerConfig;
  logger: Logger;
  /** Serve BroadcasterService to other processes (the distributed deployment). */
  expose: boolean;
  tracing: Tracing;
  metrics?: Registry;
}

export class BroadcasterRole implements Role {
  readonly name = "broadcaster";
  readonly routes = [];
  /** In-process client for roles in the same process. */
  readonly client: Client<typeof BroadcasterService>;
  private readonly backend: LogBackend;
  private readonly impl;
  private started = false;

  private readonly expose: boolean;

  constructor({ config, logger, expose, tracing, metrics }: BroadcasterRoleOptions) {
    this.expose = expose;
    this.backend = createLogBackend(config, logger.child({ service: "broadcaster" }), `opal-mesh-${this.name}`, tracing);
    const log = this.backend.log;
    const measured = metrics === undefined ? undefined : new BroadcasterMetrics(metrics, { backend: config.broadcast.type, consumerLag: this.backend.consumerLag, offsetRefreshFailures: this.backend.offsetRefreshFailures, checkpoints: this.backend.checkpoints, snapshot: () => log.snapshot.stats });
    this.impl = createBroadcasterService(measured?.meter(log) ?? log, { snapshotMaxBytes: config.snapshot.maxBytes });
    // Called directly in process (direct-client.ts): the same contract without the protocol.
    this.client = directClient(BroadcasterService, this.impl);
  }

  register(router: ConnectRouter): void {
    if (this.expose) router.service(BroadcasterService, this.impl);
  }

  async health() {
    const head = this.backend.log.head();
    const problem = [this.backend.problem(), this.backend.log.snapshotProblem()].filter((text) => text !== undefined).join("; ") || undefined;
    const state = !this.started ? HealthState.NOT_READY : problem === undefined ? HealthState.OK : HealthState.WARN;
    return [create(ComponentHealthSchema, { component: "broadcaster", state, message: `${this.backend.describe()}, head ${head.headPosition}${problem === undefined ? "" : `; ${problem}`}` })];
  }

  async start(signal: AbortSignal): Promise<void> {
    await this.backend.part.start(signal);
    this.started = true;
  }

  stop(): Promise<void> {
    return this.backend.part.stop();
  }

  get closed() {
    return this.backend.part.closed;
  }

  describe() {
    return { log: this.backend.describe() };
  }
}
