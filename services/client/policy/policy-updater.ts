/**
 * Keeps the store's policy at the server's version: asks the distributor for a bundle
 * (a delta from the version recorded in OPA, or a full one), applies it safely, and
 * records the new version (and the log position) in OPA's status document, so a
 * restarted client knows what it has.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { type GetBundleResponse, type PolicyBundle, PolicyService } from "../../../gen/opal/mesh/v1/policy_pb.js";
import { retry } from "../../common/backoff.js";
import type { RetryPolicy } from "../../common/config/retry-options.js";
import type { ClientTls } from "../../common/config/tls-config.js";
import type { GlobSet } from "../../common/globs.js";
import { callTransport } from "../server-transports.js";
import type { Logger } from "../../common/logger.js";
import type { ClientHealth } from "../health.js";
import type { PositionMark } from "../opa-status.js";
import type { PolicyStore } from "../policy-store.js";
import type { StatusWriter } from "../sync-state.js";
import { applyPolicyBundle } from "./policy-applier.js";
import type { BundleVerifier } from "../../common/bundle-signing/bundle-signature.js";
import { verifyPolicyBundle } from "../../common/bundle-signing/policy-bundle-files.js";
import { PRELOAD_MIN_MODULES, type Preloader } from "./policy-preload.js";
import { endSpan, SpanKind } from "../../common/telemetry/tracing.js";
import { httpClientAttributes, type UpdateTrace } from "../update-trace.js";

export interface PolicyUpdaterOptions {
  serverUrl: () => string;
  token: string | undefined;
  dirs: readonly string[];
  /** OPAL_SCOPE_ID: the scope whose bundle this client loads ("default": the server's policy). */
  scope: string;
  store: PolicyStore;
  /** The sync state: the policy version and position are recorded through its status write. */
  status: StatusWriter;
  ignore: GlobSet;
  health: ClientHealth;
  logger: Logger;
  timeoutMs: number;
  tls?: ClientTls;
  /** The store's URL, for spans. */
  storeUrl?: string;
  /** Measures the bundle fetch (metrics). */
  measureFetch?: <T>(fetch: () => Promise<T>, signal: AbortSignal) => Promise<T>;
  /** OPAL_POLICY_UPDATER_CONN_RETRY: a bundle fetch the server could not answer is retried (its policy-watcher failing over, a distributor restarting). */
  fetchRetry?: RetryPolicy;
  /** With an inline OPA: loads a large full bundle into the empty OPA in one compile. */
  preload?: Preloader;
  /**
   * OPAL_MESH_POLICY_VERIFICATION_KEY: only full bundles with a good signature are applied
   * (deltas are not signed, so this client always asks for full bundles).
   */
  verifier?: BundleVerifier;
}

const unmeasured = <T>(fetch: () => Promise<T>): Promise<T> => fetch();

/** Errors a later attempt may not meet; a refusal (bad request, no permission) is final. */
const TRANSIENT = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.Unknown, Code.Internal, Code.Aborted, Code.ResourceExhausted]);

function isTransient(error: unknown): boolean {
  return TRANSIENT.has(ConnectError.from(error).code);
}

/** One step of a traced policy update as a client span (just the step when untraced). */
async function step<T>(trace: UpdateTrace | undefined, name: string, attributes: Record<string, string | number>, run: () => Promise<T>): Promise<T> {
  if (trace === undefined) return run();
  const span = trace.child(name, SpanKind.CLIENT, attributes);
  try {
    const result = await run();
    endSpan(span);
    return result;
  } catch (error) {
    endSpan(span, error);
    throw error;
  }
}

export class PolicyUpdater {
  constructor(private readonly options: PolicyUpdaterOptions) {}

  get currentHash(): string {
    return this.options.status.policyHash;
  }

  /**
   * Brings the store to the server's current version, then records it (and `mark`, the
   * log position of the event that asked for it) in OPA. A failure keeps the last good
   * policy, is reported, and still moves the position: the event is definitively failed.
   */
  async sync(signal: AbortSignal, reason: string, mark: PositionMark | undefined = this.options.status.position, trace?: UpdateTrace, announced?: string, version?: string): Promise<void> {
    const { health, logger, status, store } = this.options;
    let failure: Error | undefined;
    try {
      const transport = callTransport(this.options.serverUrl(), this.options.tls);
      const headers: Record<string, string> = this.options.token === undefined ? {} : { authorization: `Bearer ${this.options.token}` };
      const { verifier } = this.options;
      // `version`: a staged rollout's step names the one meant for this client; else the current one.
      const request = { baseHash: verifier === undefined ? status.policyHash : "", paths: [...this.options.dirs], scope: this.options.scope === "default" ? "" : this.options.scope, version: version ?? "" };
      const fetchBundle = async (): Promise<GetBundleResponse> => {
        const response = await createClient(PolicyService, transport).getBundle(request, { signal, headers, timeoutMs: this.options.timeoutMs });
        // An announced version answered with the one we hold: the replica that built it has
        // not seen the change yet (watchers poll on their own). Not applied: ask again.
        const hash = response.bundle?.hash ?? "";
        if (announced !== undefined && announced !== "" && hash !== announced && hash === status.policyHash) {
          throw new ConnectError(`the server answered with version ${hash || "(none)"}, not the announced ${announced}`, Code.Unavailable);
        }
        return response;
      };
      const { fetchRetry } = this.options;
      const { bundle } = await step(trace, "opal.mesh.v1.PolicyService/GetBundle", { "rpc.system": "connect_rpc", "rpc.service": "opal.mesh.v1.PolicyService", "rpc.method": "GetBundle" }, () =>
        (this.options.measureFetch ?? unmeasured)(
          () =>
            fetchRetry === undefined
              ? fetchBundle()
              : retry(fetchBundle, {
                  ...fetchRetry,
                  signal,
                  isRetryable: isTransient,
                  onRetry: (error, attempt, delayMs) => logger.warn({ err: (error as Error).message, attempt, retryInMs: delayMs }, "could not fetch the policy bundle; retrying"),
                }),
          signal,
        ),
      );
      if (bundle === undefined || bundle.hash === "") {
        // The server has no policy source: nothing to load, and nothing is missing.
        health.policyLoaded = true;
        health.recordPolicy({ ok: true, kind: "policy", id: "" });
      } else {
        // Before anything reaches OPA: a refused bundle leaves the last good policy in place, and the failure is the NACK.
        if (verifier !== undefined) verifyPolicyBundle(bundle, verifier);
        await this.preload(bundle, signal);
        const outcome = await step(trace, "PUT", { ...httpClientAttributes("PUT", `${this.options.storeUrl}/v1/policies`), "opal_mesh.policy.modules": bundle.policyModules.length }, () =>
          applyPolicyBundle(store, bundle, this.options.ignore, signal, status.rootDataKeys),
        );
        status.policyApplied(bundle.hash, outcome.rootDataKeys);
        health.policyLoaded = true;
        health.recordPolicy({ ok: true, kind: "policy", id: bundle.hash });
        logger.info({ hash: bundle.hash, oldHash: bundle.oldHash, reason, ...outcome }, bundle.oldHash === "" ? "policy loaded (full bundle)" : "policy updated (delta bundle)");
      }
    } catch (error) {
      if (signal.aborted) throw error;
      failure = error as Error;
      health.recordPolicy({ ok: false, kind: "policy", id: status.policyHash, error: failure.message });
      logger.error({ err: failure.message, keeping: status.policyHash }, "policy update failed; keeping the last good policy");
    }
    await this.recordStatus(mark, signal);
    if (failure !== undefined) throw failure;
  }

  /**
   * A full bundle into a store that holds nothing of ours (just started, or restarted
   * empty) and no policy at all: the modules go in with one restart of the inline OPA, and
   * the apply that follows finds them in place (and writes the bundle's data).
   */
  private async preload(bundle: PolicyBundle, signal: AbortSignal): Promise<void> {
    const { preload, status, store, ignore } = this.options;
    if (preload === undefined || bundle.oldHash !== "" || status.written) return;
    const modules = bundle.policyModules.filter((module) => !ignore.matches(module.path));
    if (modules.length < PRELOAD_MIN_MODULES || (await store.listPolicies(signal)).length > 0) return;
    await preload(
      modules.map((module) => ({ path: module.path, rego: module.rego })),
      signal,
    );
  }

  /** Moves the position past a policy event that announces what the store already holds. */
  async skip(signal: AbortSignal, mark: PositionMark | undefined): Promise<void> {
    await this.recordStatus(mark, signal);
  }

  /** Through the data transactions: a status found gone means OPA lost the policy too, and the sync state starts the reload. */
  private async recordStatus(mark: PositionMark | undefined, signal: AbortSignal): Promise<void> {
    await this.options.status.commit([], signal, { mark });
  }
}
