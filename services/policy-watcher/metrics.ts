/**
 * The policy-watcher's Prometheus metrics: checks of the policy source (and failed ones),
 * bundles built (full or delta), and the version being served. Checks are counted by
 * wrapping the source; builds and the version are read from the watcher at scrape time.
 */
import { Counter, Gauge, type Registry } from "../common/telemetry/metrics.js";
import type { PolicySource } from "./types.js";
import type { PolicyWatcher } from "./watcher.js";

export class PolicyWatcherMetrics {
  private readonly checks: Counter;
  private readonly checkFailures: Counter;

  constructor(private readonly registry: Registry) {
    const registers = [registry];
    this.checks = new Counter({ name: "opal_mesh_policy_watcher_checks_total", help: "Checks of the policy source for a new version (polls, webhooks, refreshes).", registers });
    this.checkFailures = new Counter({ name: "opal_mesh_policy_watcher_check_failures_total", help: "Checks of the policy source that failed (the last good version keeps being served).", registers });
  }

  /** The same source, its checks counted. */
  source(source: PolicySource): PolicySource {
    const checks = this.checks;
    const failures = this.checkFailures;
    return {
      description: source.description,
      start: (signal) => source.start(signal),
      async check(signal) {
        checks.inc();
        try {
          return await source.check(signal);
        } catch (error) {
          failures.inc();
          throw error;
        }
      },
      tree: (hash, signal) => source.tree(hash, signal),
      changes: (base, hash, signal) => source.changes(base, hash, signal),
      stop: () => source.stop(),
    };
  }

  /** Bundles built and the version served, as the watcher counts them. */
  watch(watcher: Pick<PolicyWatcher, "builds" | "deltaBuilds" | "hash">): void {
    const registers = [this.registry];
    const counted = { full: 0, delta: 0 };
    new Counter({ name: "opal_mesh_policy_watcher_bundle_builds_total", help: "Policy bundles built, by kind (full, delta); the distributors' bundle cache keeps this low.", labelNames: ["kind"], registers, collect() {
      const now = { full: watcher.builds - watcher.deltaBuilds, delta: watcher.deltaBuilds };
      for (const kind of ["full", "delta"] as const) {
        this.inc({ kind }, Math.max(0, now[kind] - counted[kind]));
        counted[kind] = now[kind];
      }
    } });
    new Gauge({ name: "opal_mesh_policy_watcher_policy_info", help: "The policy version served: 1, with the version's hash as a label (no series until one is known).", labelNames: ["hash"], registers, collect() {
      // Only the current version has a series.
      this.reset();
      if (watcher.hash !== "") this.set({ hash: watcher.hash }, 1);
    } });
  }
}
