/**
 * What a policy source provides to the watcher: versions (opaque hashes, compared for
 * equality only), the files at a version, and what changed between two versions.
 */

/** Repo-relative paths ("rbac/policy.rego", no leading "./") to file contents. */
export type PolicyTree = ReadonlyMap<string, Uint8Array>;

export interface TreeChanges {
  /** Added or modified files. */
  changed: string[];
  deleted: string[];
}

export interface PolicySource {
  /** For logs and health: "git <url>@<branch>" or "bundle <url>"; never holds secrets. */
  readonly description: string;
  /** Prepares the source (clone); may be retried. */
  start(signal: AbortSignal): Promise<void>;
  /** Looks for a new version (fetch, poll) and returns the newest version's hash. */
  check(signal: AbortSignal): Promise<string>;
  /** Every file at a version the source returned. */
  tree(hash: string, signal: AbortSignal): Promise<PolicyTree>;
  /** Changes from `base` to `hash`, or undefined when the source does not know `base`. */
  changes(base: string, hash: string, signal: AbortSignal): Promise<TreeChanges | undefined>;
  stop(): Promise<void>;
}
