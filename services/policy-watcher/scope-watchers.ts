/**
 * One policy watcher per scope, each on the scope's own git repository and clone
 * directory, following the scope store: a new scope starts a watcher, a changed policy
 * source replaces it, a deleted scope stops it. Scopes are watched in parallel (OPAL syncs
 * them one by one at boot, #736).
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { GitAuth, Scope } from "../../gen/opal/mesh/v1/scope_pb.js";
import { HealthState } from "../../gen/opal/mesh/v1/health_pb.js";
import { type Closed, Closing, type Component } from "../common/lifecycle.js";
import type { Logger } from "../common/logger.js";
import type { BundleSigner } from "../common/bundle-signing/bundle-signature.js";
import type { ScopeStore } from "../common/scopes/scope-store.js";
import { samePolicySource } from "../common/scopes/scope-json.js";
import { BundleBuilder, inDirectories } from "./bundle/bundle-builder.js";
import { GitSource } from "./git-source.js";
import type { PolicySource } from "./types.js";
import { type PolicyChange, PolicyWatcher } from "./watcher.js";

export interface ScopeWatchersOptions {
  store: ScopeStore;
  /** Each scope clones under `<clonePath>/<scope id>`. */
  clonePath: string;
  /** OPAL_POLICY_REFRESH_INTERVAL: how often scopes with poll_updates are checked; 0 = never. */
  refreshIntervalMs: number;
  cloneTimeoutMs: number;
  environment: Readonly<Record<string, string | undefined>>;
  /** Publishes a scope's PolicyChanged; false when this process is not the publisher. */
  publish: (scope: string, change: PolicyChange) => Promise<boolean>;
  logger: Logger;
  /** Wraps each scope's source so its checks and failed checks are counted (the metrics). */
  measure?: (source: PolicySource) => PolicySource;
  /** Signs every scope's full bundles (OPAL_MESH_POLICY_SIGNING_KEY). */
  signer?: BundleSigner;
}

interface Watched {
  watcher: PolicyWatcher;
  source: GitSource;
  controller: AbortController;
  directories: string[];
}

export class ScopeWatchers implements Component {
  readonly name = "scope-policies";
  private readonly watched = new Map<string, Watched>();
  private readonly controller = new AbortController();
  private readonly closing = new Closing();
  private stopping: Promise<void> | undefined;
  /** Removals in flight (a scope deleted or replaced), awaited by stop(). */
  private readonly removals = new Set<Promise<void>>();

  constructor(private readonly options: ScopeWatchersOptions) {}

  get closed(): Promise<Closed> {
    return this.closing.closed;
  }

  /** Watches every scope the store holds, and follows its changes until stopped. */
  start(signal: AbortSignal): Promise<void> {
    signal.addEventListener("abort", () => this.controller.abort(), { once: true });
    this.options.store.onChange((id, scope, previous) => {
      if (this.controller.signal.aborted) return;
      if (scope === undefined) this.removeLater(id, true);
      else if (!this.watched.has(id) || !samePolicySource(scope, previous)) this.watch(scope);
    });
    for (const scope of this.options.store.list()) this.watch(scope);
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.controller.abort();
      for (const id of [...this.watched.keys()]) this.removeLater(id, false);
      await Promise.all(this.removals);
      this.closing.stopped();
    })();
    return this.stopping;
  }

  get(scope: string): { watcher: PolicyWatcher; directories: string[] } | undefined {
    return this.watched.get(scope);
  }

  /** The directories a scope's bundle may hold: what the client asks for, within the scope's own. */
  static directoriesFor(scopeDirs: readonly string[], requested: readonly string[]): string[] {
    if (requested.length === 0) return [...scopeDirs];
    if (scopeDirs.length === 0 || scopeDirs.includes(".")) return [...requested];
    const within = [...requested.filter((dir) => inDirectories(dir, scopeDirs)), ...scopeDirs.filter((dir) => inDirectories(dir, requested))];
    // An empty list would mean the whole repo: name a directory no file is in instead.
    return within.length > 0 ? [...new Set(within)] : ["\u0000"];
  }

  async refresh(scope: string): Promise<string> {
    const watched = this.watched.get(scope);
    if (watched === undefined) throw new Error(`scope ${JSON.stringify(scope)} has no policy source`);
    return watched.watcher.refresh();
  }

  async refreshAll(): Promise<void> {
    // One scope's failure must not stop the others' refresh; it is in that scope's health.
    await Promise.all(
      [...this.watched.entries()].map(([scope, watched]) =>
        watched.watcher.refresh().catch((error: unknown) => this.options.logger.warn({ scope, err: (error as Error).message }, "refreshing the scope's policy failed")),
      ),
    );
  }

  /** Scopes whose policy is not being served as it should, for the policy-watcher's health. */
  problems(): Array<{ scope: string; message: string }> {
    return [...this.watched.entries()].filter(([, watched]) => watched.watcher.health().state !== HealthState.OK).map(([scope, watched]) => ({ scope, message: watched.watcher.health().message }));
  }

  get size(): number {
    return this.watched.size;
  }

  announceAll(): Promise<void[]> {
    return Promise.all(
      [...this.watched.entries()].map(([scope, watched]) =>
        watched.watcher.announceCurrent().catch((error: unknown) => this.options.logger.error({ scope, err: (error as Error).message }, "announcing the scope's policy version failed; its clients learn it at the next change")),
      ),
    );
  }

  private watch(scope: Scope): void {
    const signal = this.controller.signal;
    if (signal.aborted) return;
    const id = scope.scopeId;
    const policy = scope.policy;
    this.removeLater(id, false);
    if (policy === undefined) return;
    const { logger } = this.options;
    const source = new GitSource({
      url: policy.url,
      branch: policy.branch || "main",
      sshKey: policy.auth?.kind.case === "ssh" ? policy.auth.kind.value.privateKey : undefined,
      clonePath: join(this.options.clonePath, id),
      cloneTimeoutMs: this.options.cloneTimeoutMs,
      environment: this.options.environment,
      httpAuthorization: httpAuthorization(policy.auth),
    });
    const controller = new AbortController();
    signal.addEventListener("abort", () => controller.abort(), { once: true });
    const watcher = new PolicyWatcher({
      source: this.options.measure?.(source) ?? source,
      builder: new BundleBuilder({
        extensions: policy.extensions.length > 0 ? policy.extensions : [".rego", ".json"],
        policyExtensions: [".rego"],
        ignore: policy.bundleIgnore,
        manifestPath: policy.manifest || ".manifest",
      }),
      pollIntervalMs: policy.pollUpdates ? this.options.refreshIntervalMs : 0,
      logger: logger.child({ scope: id }),
      publish: (change) => this.options.publish(id, change),
      signer: this.options.signer,
    });
    this.watched.set(id, { watcher, source, controller, directories: policy.directories.length > 0 ? policy.directories : ["."] });
    // Resolves at once (the watcher's loop runs in the background); a loop that fails by itself shows in the scope's health.
    void watcher.start(controller.signal);
    logger.info({ scope: id, source: source.description }, "watching the scope's policy");
  }

  /** Stops watching a scope; stop() waits for it (removal never rejects: failures are logged). */
  private removeLater(id: string, deleteClone: boolean): void {
    const removal = this.remove(id, deleteClone);
    this.removals.add(removal);
    void removal.finally(() => this.removals.delete(removal));
  }

  private async remove(id: string, deleteClone: boolean): Promise<void> {
    const watched = this.watched.get(id);
    if (watched === undefined) return;
    this.watched.delete(id);
    watched.controller.abort();
    const { logger, clonePath } = this.options;
    // The watcher stops its source (the clone's key file, the source's connections).
    await watched.watcher.stop().catch((error: unknown) => logger.warn({ scope: id, err: (error as Error).message }, "stopping the scope's policy source failed"));
    if (deleteClone) {
      const clone = join(clonePath, id);
      await rm(clone, { recursive: true, force: true }).catch((error: unknown) => logger.warn({ scope: id, clone, err: (error as Error).message }, "removing the deleted scope's clone failed; remove it by hand"));
    }
    this.options.logger.info({ scope: id }, deleteClone ? "scope deleted: its policy is no longer watched" : "stopped watching the scope's policy");
  }
}

/** github_token and userpass become HTTP Basic credentials, as git hosts expect. */
function httpAuthorization(auth: GitAuth | undefined): string | undefined {
  switch (auth?.kind.case) {
    case "githubToken":
      return `Basic ${Buffer.from(`x-access-token:${auth.kind.value.token}`).toString("base64")}`;
    case "userpass":
      return `Basic ${Buffer.from(`${auth.kind.value.username}:${auth.kind.value.password}`).toString("base64")}`;
    default:
      return undefined;
  }
}
