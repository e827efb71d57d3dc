/**
 * Builds the policy-watcher from configuration: the source (git repo or bundle server),
 * the bundle builder, PolicyChanged publishing to the log, and the POST /webhook route.
 */
import type { Client } from "@connectrpc/connect";
import type { BroadcasterService } from "../../gen/opal/mesh/v1/broadcaster_pb.js";
import { ConfigError, type Env } from "../common/config/env-reader.js";
import type { PolicySourceConfig } from "../common/config/policy-source-config.js";
import type { PolicySigningConfig } from "../common/config/policy-signing-config.js";
import type { RolloutConfig } from "../common/config/rollout-config.js";
import { type PublishChange, RolloutGate } from "../policy-watcher/rollout/rollout-gate.js";
import { rolloutRoutes } from "../policy-watcher/rollout/rollout-routes.js";
import { sendJson } from "../common/http/json-io.js";
import type { RestRoute } from "../common/http/rest-router.js";
import type { Logger } from "../common/logger.js";
import { BundleBuilder, GitSource, type PolicySource, PolicyWatcher } from "../policy-watcher/index.js";
import { BundleServerSource } from "../policy-watcher/bundle-server-source.js";
import { policyChangedEvent, publishTraced } from "../policy-watcher/policy-event.js";
import type { Tracing } from "../common/telemetry/tracing.js";
import { GITHUB_WEBHOOK_PARAMS, parseWebhookParams, webhookRoute } from "../policy-watcher/webhook.js";

export interface PolicyWiring {
  watcher: PolicyWatcher | undefined;
  routes: RestRoute[];
  /** The staged rollout, when configured. */
  rollout?: RolloutGate;
}

export interface PolicyWiringHooks {
  /** Only the elected publisher announces changes on the log. */
  mayPublish: () => boolean;
  /** After a webhook made this watcher look (a follower also tells the publisher). */
  onPush?: () => void;
  /** Wraps the policy source (metrics count its checks). */
  wrapSource?: (source: PolicySource) => PolicySource;
  tracing?: Tracing;
  /** Signs full bundles; verifies what bundle servers send. */
  signing?: PolicySigningConfig;
  /** OPAL_MESH_ROLLOUT_*: a staged rollout for every new version. */
  rollout?: RolloutConfig;
}

export function wirePolicyWatcher(
  config: PolicySourceConfig,
  environment: Env,
  broadcaster: Client<typeof BroadcasterService>,
  logger: Logger,
  maxBodyBytes: number,
  hooks: PolicyWiringHooks = { mayPublish: () => true },
): PolicyWiring {
  if (config.type === "none") return { watcher: undefined, routes: [] };
  let webhookParams = GITHUB_WEBHOOK_PARAMS;
  if (config.webhook.params !== undefined) {
    try {
      webhookParams = parseWebhookParams(config.webhook.params);
    } catch (error) {
      throw new ConfigError([`OPAL_POLICY_REPO_WEBHOOK_PARAMS: ${(error as Error).message}`]);
    }
  }
  const source: PolicySource =
    config.type === "git"
      ? new GitSource({ url: config.repoUrl, branch: config.branch, sshKey: config.sshKey, clonePath: config.clonePath, cloneTimeoutMs: config.cloneTimeoutMs, environment })
      : new BundleServerSource({ url: config.bundleUrl, token: config.bundleToken, logger, verifier: hooks.signing?.verifier });
  const publishChange: PublishChange = async ({ hash, oldHash, dirs }, rollout) => {
    if (!hooks.mayPublish()) {
      logger.info({ hash }, "new policy version seen; the elected publisher announces it");
      return undefined;
    }
    const { event, span } = policyChangedEvent({ hash, oldHash, dirs }, dirs.map((dir) => `policy:${dir}`), "", hooks.tracing, rollout);
    let position = 0n;
    await publishTraced(span, async () => {
      position = (await broadcaster.publish({ events: [event] })).positions[0] ?? 0n;
    });
    return position;
  };
  // OPAL_MESH_ROLLOUT_*: new versions go to canaries first.
  const gate = hooks.rollout === undefined ? undefined : new RolloutGate(hooks.rollout, publishChange, logger.child({ component: "rollout" }));
  const watcher = new PolicyWatcher({
    source: hooks.wrapSource?.(source) ?? source,
    builder: new BundleBuilder({ extensions: config.extensions, policyExtensions: config.policyExtensions, ignore: config.ignore, manifestPath: config.manifestPath }),
    pollIntervalMs: config.pollIntervalMs,
    logger,
    signer: hooks.signing?.signer,
    publish: async (change) => (gate === undefined ? (await publishChange(change)) !== undefined : gate.publish(change)),
    defaultVersion: () => gate?.defaultVersion() ?? "",
  });
  const onPush = (): void => {
    void watcher.refresh().catch((error: unknown) => logger.warn({ err: (error as Error).message }, "refresh after webhook failed"));
    hooks.onPush?.();
  };
  const route: RestRoute =
    config.type === "git"
      ? webhookRoute({ secret: config.webhook.secret, params: webhookParams, repoUrl: config.repoUrl, branch: config.branch, enforceBranch: config.webhook.enforceBranch, maxBodyBytes, onPush, logger })
      : {
          // A bundle server has no push payload: any POST asks for a check now (as OPAL's API source).
          method: "POST",
          path: "/webhook",
          auth: ["datasource"],
          handle: (_request, response) => {
            onPush();
            sendJson(response, 200, { status: "ok" });
          },
        };
  return { watcher, routes: [route, ...(gate === undefined ? [] : rolloutRoutes(gate, hooks.mayPublish))], ...(gate === undefined ? {} : { rollout: gate }) };
}
