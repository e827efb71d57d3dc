/**
 * Tracks the policy source: clones it (retrying with backoff), checks for new versions on
 * a poll interval or when told to (webhook, Refresh), publishes PolicyChanged for the
 * directories that changed, and builds full or delta bundles. The last good version keeps
 * being served while the source is unreachable.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { PolicyBundle } from "../../gen/opal/mesh/v1/policy_pb.js";
import { HealthState } from "../../gen/opal/mesh/v1/health_pb.js";
import { backoffDelay, sleep } from "../common/backoff.js";
import { type Closed, Closing, type Component } from "../common/lifecycle.js";
import type { Logger } from "../common/logger.js";
import type { BundleSigner } from "../common/bundle-signing/bundle-signature.js";
import { signPolicyBundle } from "../common/bundle-signing/policy-bundle-files.js";
import { type BundleBuilder, changedDirectories } from "./bundle/bundle-builder.js";
import type { PolicySource } from "./types.js";

export interface PolicyChange {
  hash: string;
  oldHash: string;
  dirs: string[];
}

export interface PolicyWatcherOptions {
  source: PolicySource;
  builder: BundleBuilder;
  /** The version served when a bundle is asked for without one; "" (or unset): the current one. */
  defaultVersion?: () => string;
  /** Appends PolicyChanged to the log; false when this watcher is not the one that publishes. */
  publish: (change: PolicyChange) => Promise<boolean>;
  /** 0 = no polling (webhooks and Refresh only). */
  pollIntervalMs: number;
  logger: Logger;
  /** OPAL_MESH_POLICY_SIGNING_KEY: full bundles carry OPA's .signatures.json (deltas cannot: their files are not the version's). */
  signer?: BundleSigner;
}

export interface WatcherStatus {
  state: HealthState;
  message: string;
  hash: string;
}

export class PolicyWatcher implements Component {
  readonly name = "policy-watcher";
  private readonly closing = new Closing();
  private readonly controller = new AbortController();
  private running: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private current = "";
  private status: WatcherStatus = { state: HealthState.NOT_READY, message: "cloning the policy source", hash: "" };
  private refreshing: Promise<string> | undefined;
  private refreshAgain = false;
  private signal: AbortSignal | undefined;
  private readonly ready: Promise<void>;
  private markReady: () => void = () => undefined;
  /** How many bundles were built (the distributor's cache should keep this low). */
  builds = 0;
  /** How many of those were deltas (clients that knew their version). */
  deltaBuilds = 0;

  constructor(private readonly options: PolicyWatcherOptions) {
    this.ready = new Promise((resolve) => {
      this.markReady = resolve;
    });
  }

  get hash(): string {
    return this.current;
  }

  health(): WatcherStatus {
    return { ...this.status, hash: this.current };
  }

  get closed(): Promise<Closed> {
    return this.closing.closed;
  }

  /** Resolves at once; cloning and polling go on in the background until stopped (or the signal aborts). */
  start(signal: AbortSignal): Promise<void> {
    signal.addEventListener("abort", () => this.controller.abort(), { once: true });
    this.signal = this.controller.signal;
    // run() handles every failure of the source itself (health shows it); anything else is a bug that ends the part.
    this.running = this.run(this.controller.signal).catch((error: unknown) => {
      this.options.logger.error({ err: error, source: this.options.source.description }, "the policy watcher's loop failed");
      this.closing.failed(error);
    });
    return Promise.resolve();
  }

  /** Ends the loop, then lets go of the source (its clone's credentials, its connections). */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.controller.abort();
      await this.running;
      try {
        await this.options.source.stop();
      } finally {
        this.closing.stopped();
      }
    })();
    return this.stopping;
  }

  /** Resolves once a first version is known (or the signal aborts). */
  async whenReady(signal: AbortSignal): Promise<void> {
    await Promise.race([this.ready, new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }))]);
  }

  /**
   * Checks the source now. Concurrent calls share one check, and a call arriving during a
   * check causes one more afterwards, so a webhook is never lost behind a running poll.
   */
  refresh(): Promise<string> {
    if (this.refreshing !== undefined) {
      this.refreshAgain = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      try {
        let hash: string;
        do {
          this.refreshAgain = false;
          hash = await this.checkOnce();
        } while (this.refreshAgain);
        return hash;
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  /**
   * Announces the current version to every directory (a newly elected publisher does:
   * it cannot know what its predecessor announced; clients already there ignore it).
   */
  async announceCurrent(): Promise<void> {
    const signal = this.signal ?? new AbortController().signal;
    if (this.current === "") return;
    const files = [...(await this.options.source.tree(this.current, signal)).keys()].filter((path) => this.options.builder.isBundled(path));
    await this.options.publish({ hash: this.current, oldHash: "", dirs: changedDirectories(files) });
  }

  /** The bundle of `version` (default: the current one), a delta from `baseHash` when the source knows it. */
  async bundle(baseHash: string, dirs: readonly string[], version = ""): Promise<PolicyBundle> {
    const signal = this.signal ?? new AbortController().signal;
    if (this.current === "") throw new ConnectError(`the policy source is not ready: ${this.status.message}`, Code.Unavailable);
    // During a staged rollout's canary stage the default is the stable version (rollout-gate.ts).
    const fallback = this.options.defaultVersion?.() ?? "";
    const hash = version !== "" ? version : fallback !== "" ? fallback : this.current;
    const tree = await this.options.source.tree(hash, signal).catch((error: unknown) => {
      if (version === "") throw error;
      throw new ConnectError(`policy version ${JSON.stringify(version)} is not one ${this.options.source.description} has: ${(error as Error).message}`, Code.NotFound);
    });
    this.builds++;
    if (baseHash !== "" && baseHash !== hash) {
      const changes = await this.options.source.changes(baseHash, hash, signal);
      if (changes !== undefined) {
        this.deltaBuilds++;
        return this.options.builder.delta(tree, hash, baseHash, changes, dirs);
      }
    } else if (baseHash === hash) {
      this.deltaBuilds++;
      return this.options.builder.delta(tree, hash, baseHash, { changed: [], deleted: [] }, dirs);
    }
    const full = this.options.builder.full(tree, hash, dirs);
    if (this.options.signer !== undefined) full.signaturesJson = signPolicyBundle(full, this.options.signer);
    return full;
  }

  private async run(signal: AbortSignal): Promise<void> {
    for (let attempt = 1; !signal.aborted; attempt++) {
      try {
        await this.options.source.start(signal);
        await this.refresh();
        break;
      } catch (error) {
        if (signal.aborted) return;
        const delay = backoffDelay(attempt, { initialMs: 500, maxMs: 30_000 });
        this.status = { state: HealthState.ERROR, message: `cannot reach ${this.options.source.description}: ${(error as Error).message}; retrying`, hash: "" };
        this.options.logger.error({ source: this.options.source.description, err: (error as Error).message, retryInMs: delay }, "policy source unavailable");
        await sleep(delay, signal).catch(() => undefined); // aborted: the loop ends on the signal
      }
    }
    if (this.options.pollIntervalMs <= 0) return;
    while (!signal.aborted) {
      await sleep(this.options.pollIntervalMs, signal).catch(() => undefined); // aborted: the loop ends on the signal
      if (signal.aborted) return;
      await this.refresh().catch(() => undefined); // reported in health by checkOnce
    }
  }

  private async checkOnce(): Promise<string> {
    const signal = this.signal ?? new AbortController().signal;
    const { source, builder, logger } = this.options;
    let hash: string;
    try {
      hash = await source.check(signal);
    } catch (error) {
      const serving = this.current === "" ? "nothing to serve yet" : `serving ${this.current}`;
      this.status = { state: this.current === "" ? HealthState.ERROR : HealthState.WARN, message: `last check of ${source.description} failed: ${(error as Error).message}; ${serving}`, hash: this.current };
      throw error;
    }
    this.status = { state: HealthState.OK, message: `tracking ${source.description}`, hash };
    if (hash === this.current) return hash;
    const oldHash = this.current;
    let files: string[];
    if (oldHash === "") {
      files = [...(await source.tree(hash, signal)).keys()];
    } else {
      const changes = await source.changes(oldHash, hash, signal);
      files = changes === undefined ? [...(await source.tree(hash, signal)).keys()] : [...changes.changed, ...changes.deleted];
    }
    const bundled = files.filter((path) => builder.isBundled(path));
    this.current = hash;
    this.markReady();
    if (oldHash !== "" && bundled.length === 0) {
      logger.info({ hash, oldHash }, "new policy version changes no bundled file; nothing to publish");
      return hash;
    }
    const dirs = changedDirectories(bundled);
    if (await this.options.publish({ hash, oldHash, dirs })) logger.info({ hash, oldHash, dirs }, "policy changed");
    return hash;
  }
}
