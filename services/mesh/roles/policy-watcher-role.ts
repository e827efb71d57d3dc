/**
 * The policy-watcher: tracks the policy source, serves bundles, and — when it is the
 * elected publisher — announces changes on the log. A follower that receives a webhook
 * asks the publisher (found through membership) to look too.
 */
import { create } from "@bufbuild/protobuf";
import { createClient, type Client, type ConnectRouter } from "@connectrpc/connect";
import { directClient } from "../../common/grpc/direct-client.js";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { BroadcasterService } from "../../../gen/opal/mesh/v1/broadcaster_pb.js";
import { ComponentHealthSchema, HealthState } from "../../../gen/opal/mesh/v1/health_pb.js";
import { PolicyService } from "../../../gen/opal/mesh/v1/policy_pb.js";
import type { DistributorService } from "../../../gen/opal/mesh/v1/distributor_pb.js";
import { RolloutController } from "../../policy-watcher/rollout/rollout-controller.js";
import type { ClientTls } from "../../common/config/tls-config.js";
import type { ScopeStore } from "../../common/scopes/scope-store.js";
import { scopeTopic } from "../../common/scopes/scoped-topics.js";
import { ScopeWatchers } from "../../policy-watcher/scope-watchers.js";
import { policyChangedEvent, publishTraced } from "../../policy-watcher/policy-event.js";
import type { Tracing } from "../../common/telemetry/tracing.js";
import { type Closed, type Component, Supervisor } from "../../common/lifecycle.js";
import type { Security } from "../../common/auth/security.js";
import type { ServerConfig } from "../../common/config/server-config.js";
import type { Logger } from "../../common/logger.js";
import { createPolicyService, type PolicyWatcher } from "../../policy-watcher/index.js";
import type { LeaderElection } from "../../policy-watcher/leader-election.js";
import type { KafkaMembership } from "../../common/kafka/membership.js";
import { wirePolicyWatcher } from "../policy-wiring.js";
import type { Registry } from "../../common/telemetry/metrics.js";
import { PolicyWatcherMetrics } from "../../policy-watcher/metrics.js";
import type { Role } from "./role.js";

export interface PolicyWatcherRoleOptions {
  config: ServerConfig;
  logger: Logger;
  broadcaster: Client<typeof BroadcasterService>;
  election: LeaderElection;
  membership: KafkaMembership | undefined;
  security: Security;
  tracing: Tracing;
  scopes?: ScopeStore;
  metrics?: Registry;
  /** Every distributor: a staged rollout's controller looks at the canaries through them. */
  distributors?: () => ReadonlyArray<Client<typeof DistributorService>>;
}

export class PolicyWatcherRole implements Role {
  readonly name = "policy-watcher";
  readonly routes;
  readonly watcher: PolicyWatcher | undefined;
  /** In-process client for roles in the same process. */
  readonly client: Client<typeof PolicyService>;
  readonly scopes: ScopeWatchers | undefined;
  private readonly impl;
  private readonly log: Logger;
  private readonly serviceTls: ClientTls;
  private readonly election: LeaderElection;
  private readonly membership: KafkaMembership | undefined;
  private readonly security: Security;
  /** The election, the watcher and the scopes' watchers: started in that order, stopped in reverse. */
  private readonly parts: Supervisor;

  constructor({ config, logger, broadcaster, election, membership, security, tracing, scopes, metrics, distributors }: PolicyWatcherRoleOptions) {
    const log = logger.child({ service: "policy-watcher" });
    const measured = metrics === undefined ? undefined : new PolicyWatcherMetrics(metrics);
    this.log = log;
    this.serviceTls = config.serviceTls;
    this.election = election;
    this.membership = membership;
    this.security = security;
    const wiring = wirePolicyWatcher(config.policy, config.environment, broadcaster, log, config.limits.maxBodyBytes, {
      tracing,
      signing: config.policySigning,
      ...(config.rollout === undefined ? {} : { rollout: config.rollout }),
      mayPublish: () => election.isLeader,
      wrapSource: measured === undefined ? undefined : (source) => measured.source(source),
      onPush: () => {
        if (!election.isLeader) this.tellPublisher({});
      },
    });
    this.watcher = wiring.watcher;
    if (this.watcher !== undefined) measured?.watch(this.watcher);
    this.routes = wiring.routes;
    this.scopes =
      scopes === undefined
        ? undefined
        : new ScopeWatchers({
            store: scopes,
            clonePath: config.scopes.clonePath,
            refreshIntervalMs: config.scopes.refreshIntervalMs,
            cloneTimeoutMs: config.policy.type === "git" ? config.policy.cloneTimeoutMs : 0,
            environment: config.environment,
            logger: log,
            measure: measured === undefined ? undefined : (source) => measured.source(source),
            signer: config.policySigning.signer,
            publish: async (scope, { hash, oldHash, dirs }) => {
              if (!election.isLeader) return false;
              const { event, span } = policyChangedEvent({ hash, oldHash, dirs }, dirs.map((dir) => scopeTopic(scope, `policy:${dir}`)), scope, tracing);
              await publishTraced(span, () => broadcaster.publish({ events: [event] }));
              return true;
            },
          });
    this.impl = createPolicyService(wiring.watcher, this.scopes);
    // Promotes after the soak, rolls back on a canary's NACK; without distributors to ask, by hand only.
    const controller = wiring.rollout === undefined || distributors === undefined ? undefined : new RolloutController({ gate: wiring.rollout, distributors, mayPublish: () => election.isLeader, logger: log.child({ component: "rollout" }) });
    const parts: Component[] = [election, ...(this.watcher === undefined ? [] : [this.watcher]), ...(this.scopes === undefined ? [] : [this.scopes]), ...(controller === undefined ? [] : [controller])];
    this.parts = new Supervisor(parts, log);
    // Called directly in process (direct-client.ts): the same contract without the protocol.
    this.client = directClient(PolicyService, this.impl);
    election.onChange((leader) => {
      // A new publisher cannot know what the old one announced: it looks at the source at
      // once (a commit may have landed while nobody published), then announces what it has.
      if (leader) {
        const watcher = this.watcher;
        void watcher
          ?.refresh()
          .then(() => watcher.announceCurrent())
          .catch((error: unknown) => log.warn({ err: (error as Error).message }, "announcing the current policy failed"));
      }
      // announceAll logs each scope's failure itself and never rejects.
      if (leader) void this.scopes?.announceAll();
    });
  }

  register(router: ConnectRouter): void {
    router.service(PolicyService, this.impl);
  }

  async health() {
    const { health } = await this.client.getSourceStatus({});
    const elected = this.election.isLeader ? "elected publisher" : "standby (another watcher publishes)";
    const scoped = this.scopes === undefined ? [] : [this.scopeHealth(this.scopes)];
    return health === undefined ? scoped : [create(ComponentHealthSchema, { ...health, message: `${health.message}; ${elected}` }), ...scoped];
  }

  start(): Promise<void> {
    return this.parts.start();
  }

  get closed(): Promise<Closed> {
    return this.parts.closed;
  }

  /** Refresh here, and — when another watcher publishes — there too, so the change is announced. */
  async refresh(request: { scope?: string; allScopes?: boolean }): Promise<void> {
    await this.client.refresh(request);
    if (!this.election.isLeader) this.tellPublisher(request);
  }

  private scopeHealth(scopes: ScopeWatchers) {
    const problems = scopes.problems();
    // One tenant's broken repository is a warning, not the whole policy-watcher down.
    return create(ComponentHealthSchema, {
      component: "scope-policies",
      state: problems.length === 0 ? HealthState.OK : HealthState.WARN,
      message: problems.length === 0 ? `${scopes.size} scope(s) tracked` : `${problems.length} of ${scopes.size} scope(s) not serving: ${problems.map((problem) => `${problem.scope}: ${problem.message}`).join("; ")}`,
    });
  }

  stop(): Promise<void> {
    return this.parts.stop();
  }

  describe() {
    return { leader: this.election.isLeader };
  }

  private tellPublisher(request: { scope?: string; allScopes?: boolean }): void {
    const publisher = this.membership?.members("policy-publisher").at(0);
    if (publisher === undefined) return;
    const tls = this.serviceTls;
    const client = createClient(
      PolicyService,
      createConnectTransport({ baseUrl: publisher.url, httpVersion: "1.1", interceptors: [this.security.serviceInterceptor()], nodeOptions: { ca: tls.ca, cert: tls.cert, key: tls.key } }),
    );
    void client.refresh(request, { timeoutMs: 30_000 }).catch((error: unknown) => this.log.warn({ err: (error as Error).message, publisher: publisher.url }, "could not ask the publisher to refresh"));
  }
}
