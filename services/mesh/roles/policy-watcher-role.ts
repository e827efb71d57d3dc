/**
 * The policy-watcher: tracks the policy source, serves bundles, and — when it is the
 * elected publisher — announces changes on the log. A follower that receives a webhook
 * asks the publisher (found through membership) to look too.
 */
import { create } from "@bufbuild/protobuf";
import { createClient, createRouterTransport, type Client, type ConnectRouter } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { BroadcasterService } from "../../../gen/opal/mesh/v1/broadcaster_pb.js";
import { ComponentHealthSchema } from "../../../gen/opal/mesh/v1/health_pb.js";
import { PolicyService } from "../../../gen/opal/mesh/v1/policy_pb.js";
import type { Security } from "../../common/auth/security.js";
import type { ServerConfig } from "../../common/config/server-config.js";
import type { Logger } from "../../common/logger.js";
import { createPolicyService, type PolicyWatcher } from "../../policy-watcher/index.js";
import type { LeaderElection } from "../leader-election.js";
import type { KafkaMembership } from "../membership.js";
import { wirePolicyWatcher } from "../policy-wiring.js";
import type { Role } from "./role.js";

export class PolicyWatcherRole implements Role {
  readonly name = "policy-watcher";
  readonly routes;
  readonly watcher: PolicyWatcher | undefined;
  /** In-process client for roles in the same process. */
  readonly client: Client<typeof PolicyService>;
  private readonly impl;

  constructor(
    config: ServerConfig,
    logger: Logger,
    broadcaster: Client<typeof BroadcasterService>,
    private readonly election: LeaderElection,
    private readonly membership: KafkaMembership | undefined,
    private readonly security: Security,
  ) {
    const log = logger.child({ service: "policy-watcher" });
    const wiring = wirePolicyWatcher(config.policy, config.environment, broadcaster, log, config.limits.maxBodyBytes, {
      mayPublish: () => election.isLeader,
      onPush: () => {
        if (!election.isLeader) this.tellPublisher(log);
      },
    });
    this.watcher = wiring.watcher;
    this.routes = wiring.routes;
    this.impl = createPolicyService(wiring.watcher);
    this.client = createClient(PolicyService, createRouterTransport((router) => router.service(PolicyService, this.impl)));
    election.onChange((leader) => {
      // A new publisher cannot know what the old one announced: it announces what it has.
      if (leader) void this.watcher?.announceCurrent().catch((error: unknown) => log.warn({ err: (error as Error).message }, "announcing the current policy failed"));
    });
  }

  register(router: ConnectRouter): void {
    router.service(PolicyService, this.impl);
  }

  async health() {
    const { health } = await this.client.getSourceStatus({});
    const elected = this.election.isLeader ? "elected publisher" : "standby (another watcher publishes)";
    return health === undefined ? [] : [create(ComponentHealthSchema, { ...health, message: `${health.message}; ${elected}` })];
  }

  async start(signal: AbortSignal): Promise<void> {
    await this.election.start();
    this.watcher?.start(signal);
  }

  async stop(): Promise<void> {
    await this.election.stop();
  }

  describe() {
    return { leader: this.election.isLeader };
  }

  private tellPublisher(logger: Logger): void {
    const publisher = this.membership?.members("policy-publisher").at(0);
    if (publisher === undefined) return;
    const client = createClient(PolicyService, createConnectTransport({ baseUrl: publisher.url, httpVersion: "1.1", interceptors: [this.security.serviceInterceptor()] }));
    void client.refresh({}, { timeoutMs: 30_000 }).catch((error: unknown) => logger.warn({ err: (error as Error).message, publisher: publisher.url }, "could not ask the publisher to refresh"));
  }
}
