/** The trigger-api: publishing (Connect and OPAL's REST routes) and delivery status. */
import type { Client, ConnectRouter } from "@connectrpc/connect";
import type { BroadcasterService } from "../../../gen/opal/mesh/v1/broadcaster_pb.js";
import { TriggerService } from "../../../gen/opal/mesh/v1/trigger_pb.js";
import type { Security } from "../../common/auth/security.js";
import type { Principal } from "../../common/auth/tokens.js";
import type { Logger } from "../../common/logger.js";
import { createTriggerService, type DeliveryStatusReader, EventBatcher, triggerInterceptors, triggerRestRoutes } from "../../trigger-api/index.js";
import type { ServerConfig } from "../../common/config/server-config.js";
import { UrlAllowlist } from "../../common/url-allowlist.js";
import { ReservedPaths } from "../../common/reserved-paths.js";
import { HttpError } from "../../common/http/json-io.js";
import type { ScopeStore } from "../../common/scopes/scope-store.js";
import { DEFAULT_SCOPE, isDefaultScope, scopeIdProblem, scopeOfTopic, unscopeTopic } from "../../common/scopes/scoped-topics.js";
import type { Tracing } from "../../common/telemetry/tracing.js";
import type { Registry } from "../../common/telemetry/metrics.js";
import { TriggerMetrics } from "../../trigger-api/metrics.js";
import type { Role } from "./role.js";
import { logName } from "../../common/config/broadcast-config.js";

export interface TriggerRoleOptions {
  config: ServerConfig;
  logger: Logger;
  broadcaster: Client<typeof BroadcasterService>;
  delivery: DeliveryStatusReader;
  security: Security;
  tracing: Tracing;
  scopes?: ScopeStore;
  metrics?: Registry;
}

export class TriggerRole implements Role {
  readonly name = "trigger-api";
  readonly routes;
  readonly interceptors;
  private readonly impl;

  constructor({ config, logger, broadcaster, delivery, security, tracing, scopes, metrics }: TriggerRoleOptions) {
    const log = logger.child({ service: "trigger-api" });
    // A datasource token publishes only to its permitted_topics (named as within a scope),
    // and to a scope only when its allowed_scopes (if any) lists it.
    const authorizeTopics = async (principal: Principal | undefined, topics: string[]): Promise<void> => {
      if (principal === undefined) return;
      const authenticator = await security.authenticator();
      authenticator.authorizeTopics(principal, topics.map(unscopeTopic));
      for (const scope of new Set(topics.map(scopeOfTopic))) if (scope !== DEFAULT_SCOPE) authenticator.authorizeScope(principal, scope);
    };
    const checkScope = (scope: string): void => {
      if (isDefaultScope(scope)) return;
      if (scopes === undefined) throw new HttpError(409, `scope ${JSON.stringify(scope)} asked for, but this server does not serve scopes (OPAL_SCOPES=false)`);
      const problem = scopeIdProblem(scope);
      if (problem !== undefined) throw new HttpError(422, `scope ${JSON.stringify(scope)}: ${problem}`);
      if (scopes.get(scope) === undefined) throw new HttpError(404, `no such scope: ${scope}`);
    };
    const updateLimits = { maxEntries: config.limits.maxEntriesPerUpdate, allowlist: new UrlAllowlist(config.fetchAllowlist), reservedPaths: new ReservedPaths(config.writableSystemPaths) };
    const eventLog = logName(config.broadcast);
    // One batcher for both surfaces: concurrent publishes share the broadcaster appends.
    const sink = { broadcaster, batcher: new EventBatcher(broadcaster) };
    this.interceptors = triggerInterceptors({ tracing, logger: log });
    this.impl = createTriggerService({ sink, delivery, logger: log, authorizeTopics, updateLimits, tracing, logName: eventLog });
    this.routes = triggerRestRoutes({ sink, delivery, logger: log, dataConfigRoute: "/data/config", limits: config.limits, updateLimits, authorizeTopics, checkScope, tracing, logName: eventLog });
    if (metrics !== undefined) {
      const measured = new TriggerMetrics(metrics);
      this.impl = measured.service(this.impl);
      this.routes = measured.routes(this.routes, ["/data/config", "/scopes/{id}/data/update"]);
    }
  }

  register(router: ConnectRouter): void {
    router.service(TriggerService, this.impl);
  }

  health() {
    return Promise.resolve([]);
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }

  describe() {
    return {};
  }
}
