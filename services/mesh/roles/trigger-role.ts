/** The trigger-api: publishing (Connect and OPAL's REST routes) and delivery status. */
import type { Client, ConnectRouter } from "@connectrpc/connect";
import type { BroadcasterService } from "../../../gen/opal/mesh/v1/broadcaster_pb.js";
import { TriggerService } from "../../../gen/opal/mesh/v1/trigger_pb.js";
import type { Security } from "../../common/auth/security.js";
import type { Principal } from "../../common/auth/tokens.js";
import type { Logger } from "../../common/logger.js";
import { createTriggerService, type DeliveryStatusReader, triggerRestRoutes } from "../../trigger-api/index.js";
import type { ServerConfig } from "../../common/config/server-config.js";
import { UrlAllowlist } from "../../common/url-allowlist.js";
import type { Role } from "./role.js";

export class TriggerRole implements Role {
  readonly name = "trigger-api";
  readonly routes;
  private readonly impl;

  constructor(config: ServerConfig, logger: Logger, broadcaster: Client<typeof BroadcasterService>, delivery: DeliveryStatusReader, security: Security) {
    const log = logger.child({ service: "trigger-api" });
    // A datasource token publishes only to its permitted_topics.
    const authorizeTopics = async (principal: Principal | undefined, topics: string[]): Promise<void> => {
      if (principal !== undefined) (await security.authenticator()).authorizeTopics(principal, topics);
    };
    const updateLimits = { maxEntries: config.limits.maxEntriesPerUpdate, allowlist: new UrlAllowlist(config.fetchAllowlist) };
    this.impl = createTriggerService({ broadcaster, delivery, logger: log, authorizeTopics, updateLimits });
    this.routes = triggerRestRoutes({ broadcaster, delivery, logger: log, dataConfigRoute: "/data/config", limits: config.limits, updateLimits, authorizeTopics });
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
