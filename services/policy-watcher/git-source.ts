/**
 * A git repository as a policy source: a bare single-branch clone of the tracked branch,
 * fetched on every check. Files are read straight from git objects (no working tree), so
 * any version the clone knows can be served and diffed.
 */
import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { redactUrl } from "../common/config/env-reader.js";
import { runGit } from "./git.js";
import type { PolicySource, PolicyTree, TreeChanges } from "./types.js";

export interface GitSourceOptions {
  url: string;
  branch: string;
  /** A private key for ssh URLs (OPAL_POLICY_REPO_SSH_KEY; newlines may be written as "_"). */
  sshKey: string | undefined;
  /** Directory under which the clone lives. */
  clonePath: string;
  /** 0 = no limit. */
  cloneTimeoutMs: number;
  environment: Readonly<Record<string, string | undefined>>;
  /**
   * An Authorization header value for https remotes (a scope's github_token or userpass).
   * Given to git through GIT_CONFIG_* variables, never on a command line others can read.
   */
  httpAuthorization?: string;
}

const TREE_CACHE = 4;

export class GitSource implements PolicySource {
  readonly description: string;
  private readonly dir: string;
  private sshDir: string | undefined;
  private env: Record<string, string | undefined>;
  private readonly trees = new Map<string, PolicyTree>();
  private readonly secrets: string[];

  constructor(private readonly options: GitSourceOptions) {
    this.description = `git ${redactUrl(options.url)}@${options.branch}`;
    // One clone directory per repo and branch (credentials left out, so a rotated token
    // reuses the clone), so a restart reuses its clone.
    const id = createHash("sha256").update(`${redactUrl(options.url)}\n${options.branch}`).digest("hex").slice(0, 16);
    this.dir = join(options.clonePath, `opal_repo_clone_${id}`);
    this.env = { ...options.environment };
    this.secrets = urlSecrets(options.url);
    if (options.httpAuthorization !== undefined) {
      const index = Number(this.env.GIT_CONFIG_COUNT ?? 0) || 0;
      this.env.GIT_CONFIG_COUNT = String(index + 1);
      this.env[`GIT_CONFIG_KEY_${index}`] = "http.extraHeader";
      this.env[`GIT_CONFIG_VALUE_${index}`] = `Authorization: ${options.httpAuthorization}`;
      this.secrets.push(options.httpAuthorization, ...options.httpAuthorization.split(" ").slice(1));
    }
  }

  async start(signal: AbortSignal): Promise<void> {
    if (this.options.sshKey !== undefined && this.sshDir === undefined) await this.installSshKey();
    if (await this.isClone()) {
      // Point an existing clone at the configured URL (credentials may have rotated).
      await this.git(["remote", "set-url", "origin", this.options.url], signal);
      return;
    }
    await rm(this.dir, { recursive: true, force: true });
    await mkdir(this.options.clonePath, { recursive: true });
    await runGit(["clone", "--bare", "--single-branch", "--branch", this.options.branch, this.options.url, this.dir], {
      env: this.env,
      signal,
      timeoutMs: this.options.cloneTimeoutMs,
      secrets: this.secrets,
    });
  }

  async check(signal: AbortSignal): Promise<string> {
    const ref = `refs/heads/${this.options.branch}`;
    await this.git(["fetch", "--prune", "--no-tags", "origin", `+${ref}:${ref}`], signal);
    return (await this.git(["rev-parse", "--verify", `${ref}^{commit}`], signal)).toString().trim();
  }

  async tree(hash: string, signal: AbortSignal): Promise<PolicyTree> {
    const cached = this.trees.get(hash);
    if (cached !== undefined) return cached;
    const listing = (await this.git(["ls-tree", "-r", "-z", "--full-tree", hash], signal)).toString();
    const blobs: Array<{ path: string; sha: string }> = [];
    for (const line of listing.split("\0")) {
      const match = /^\d+ blob ([0-9a-f]+)\t(.+)$/s.exec(line);
      if (match !== null) blobs.push({ sha: match[1] as string, path: match[2] as string });
    }
    const contents = await this.readBlobs(blobs.map((blob) => blob.sha), signal);
    const tree = new Map<string, Uint8Array>();
    blobs.forEach((blob, index) => tree.set(blob.path, contents[index] as Uint8Array));
    this.trees.set(hash, tree);
    if (this.trees.size > TREE_CACHE) this.trees.delete(this.trees.keys().next().value as string);
    return tree;
  }

  async changes(base: string, hash: string, signal: AbortSignal): Promise<TreeChanges | undefined> {
    if (!/^[0-9a-f]{4,64}$/.test(base)) return undefined;
    try {
      await this.git(["cat-file", "-e", `${base}^{commit}`], signal);
    } catch {
      return undefined; // a version this clone never saw: the caller sends a full bundle
    }
    const output = (await this.git(["diff", "--name-status", "-z", "--no-renames", base, hash], signal)).toString();
    const fields = output.split("\0").filter((field) => field !== "");
    const changes: TreeChanges = { changed: [], deleted: [] };
    for (let index = 0; index + 1 < fields.length; index += 2) {
      const status = fields[index] as string;
      const path = fields[index + 1] as string;
      (status.startsWith("D") ? changes.deleted : changes.changed).push(path);
    }
    return changes;
  }

  async stop(): Promise<void> {
    if (this.sshDir !== undefined) await rm(this.sshDir, { recursive: true, force: true });
  }

  private git(args: string[], signal: AbortSignal): Promise<Buffer> {
    return runGit(args, { cwd: this.dir, env: this.env, signal, secrets: this.secrets });
  }

  private async isClone(): Promise<boolean> {
    try {
      await stat(join(this.dir, "HEAD"));
      return true;
    } catch {
      return false; // no HEAD: not a clone yet (start() clones it)
    }
  }

  /** `git cat-file --batch`: one process for all blobs of a version. */
  private async readBlobs(shas: string[], signal: AbortSignal): Promise<Uint8Array[]> {
    if (shas.length === 0) return [];
    const output = await runGit(["cat-file", "--batch"], { cwd: this.dir, env: this.env, signal, input: `${shas.join("\n")}\n` });
    const blobs: Uint8Array[] = [];
    let offset = 0;
    for (let index = 0; index < shas.length; index++) {
      const headerEnd = output.indexOf(0x0a, offset);
      const header = output.toString("utf8", offset, headerEnd);
      const size = Number(header.split(" ")[2]);
      if (!Number.isFinite(size)) throw new Error(`unexpected git cat-file output: ${header}`);
      blobs.push(output.subarray(headerEnd + 1, headerEnd + 1 + size));
      offset = headerEnd + 1 + size + 1;
    }
    return blobs;
  }

  private async installSshKey(): Promise<void> {
    const raw = this.options.sshKey ?? "";
    // OPAL lets the key's newlines be written as "_" in an environment variable.
    const key = raw.includes("\n") ? raw : raw.replaceAll("_", "\n");
    this.sshDir = await mkdtemp(join(tmpdir(), "opal-mesh-ssh-"));
    const keyPath = join(this.sshDir, "id");
    await writeFile(keyPath, key.endsWith("\n") ? key : `${key}\n`, { mode: 0o600 });
    await chmod(keyPath, 0o600);
    const knownHosts = join(this.sshDir, "known_hosts");
    this.env.GIT_SSH_COMMAND = `ssh -i ${keyPath} -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=${knownHosts}`;
  }
}

/** What must never appear in a message: the password and secret-looking query values. */
function urlSecrets(url: string): string[] {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return []; // not a URL (an scp-style address): no password or query to hide
  }
  const secrets = [parsed.password];
  for (const [key, value] of parsed.searchParams) if (/token|secret|password|key|auth/i.test(key)) secrets.push(value);
  return secrets.filter((secret) => secret !== "").flatMap((secret) => [secret, encodeURIComponent(secret), safeDecode(secret)]);
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value; // a stray "%": the secret as written is the one to hide
  }
}
