/**
 * Offline mode (OPAL_OFFLINE_MODE_ENABLED): the store's policy, data and status (with the
 * log position) are saved to disk atomically, from a quiet moment between transactions;
 * a client whose OPA starts empty loads the backup before it reaches the server, so it is
 * ready even when the server is unreachable, and then resumes from the backup's position.
 *
 * A backup is used only when OPA, read back, holds exactly what the backup says (its data
 * checksum and every policy): otherwise OPA's data is emptied again and the client loads
 * from the server, claiming nothing meanwhile. Every save's outcome is kept in `health`.
 */
import { createHash } from "node:crypto";
import { type FileHandle, mkdir, open, readFile, rename, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { create } from "@bufbuild/protobuf";
import { PolicyBundleSchema } from "../../gen/opal/mesh/v1/policy_pb.js";
import { GlobSet } from "../common/globs.js";
import type { Logger } from "../common/logger.js";
import type { BackupHealth } from "./health.js";
import { STATUS_PATH } from "./opa-status.js";
import type { PolicyStore } from "./policy-store.js";
import { applyPolicyBundle } from "./policy/policy-applier.js";

interface BackupFile {
  version: 1;
  saved_at: string;
  policies: Array<{ id: string; raw: string }>;
  data: unknown;
  status: unknown;
  /** sha256 of the data's canonical JSON (sorted keys); absent in backups of earlier versions. */
  data_sha256?: string;
}

export interface RestoreOutcome {
  /** OPA now holds the backup, verified. */
  used: boolean;
  /** Why a backup that exists was not used (unreadable, or OPA does not hold what it says). */
  problem?: string;
}

/** JSON with object keys sorted at every level: the same document always gives the same text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item ?? null)).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record).filter((key) => record[key] !== undefined).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`).join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

function dataDigest(data: unknown): string {
  return createHash("sha256").update(canonicalJson(data)).digest("hex");
}

export class StoreBackup {
  readonly health: BackupHealth;

  constructor(
    private readonly path: string,
    private readonly store: PolicyStore,
    private readonly logger: Logger,
    /** Told of every save's outcome (metrics). */
    private readonly onSaved: (ok: boolean) => void = () => undefined,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.health = { path, ok: true, failures: 0 };
  }

  /**
   * Writes the backup: a temporary file, flushed, then renamed over the old one. On any
   * failure the temporary file is removed, the old backup stays, and `health` says why.
   */
  async save(signal?: AbortSignal): Promise<void> {
    try {
      const written = await this.write(signal);
      if (!written) return;
    } catch (error) {
      if (signal?.aborted === true) throw error;
      this.health.ok = false;
      this.health.failures++;
      this.health.lastFailureAt = this.now().toISOString();
      this.health.lastError = (error as Error).message;
      this.onSaved(false);
      throw error;
    }
    this.health.ok = true;
    this.health.lastSuccessAt = this.now().toISOString();
    delete this.health.lastError;
    this.onSaved(true);
  }

  private async write(signal?: AbortSignal): Promise<boolean> {
    const status = await this.store.readData(STATUS_PATH, signal);
    if (status === undefined) return false; // nothing consistent to save yet
    // OPA leaves its `system` namespace out of a root read: the status is saved beside the data.
    const data = (await this.store.readData("/", signal)) ?? {};
    const backup: BackupFile = {
      version: 1,
      saved_at: this.now().toISOString(),
      policies: await this.store.listPolicies(signal),
      data,
      status,
      data_sha256: dataDigest(data),
    };
    await mkdir(dirname(this.path), { recursive: true });
    const temporary = `${this.path}.${process.pid}.tmp`;
    let file: FileHandle | undefined;
    let created = false;
    try {
      // "wx": never write through a file (or link) already at the temporary name.
      await unlink(temporary).catch(() => undefined); // usually not there: "wx" below fails if it still is
      file = await open(temporary, "wx", 0o600);
      created = true;
      await file.writeFile(JSON.stringify(backup));
      await file.sync();
      await file.close();
      file = undefined;
      await rename(temporary, this.path);
      created = false;
      await syncDirectory(dirname(this.path));
    } catch (error) {
      // Cleaning up after the error that is thrown (and recorded in health): theirs would add nothing.
      await file?.close().catch(() => undefined);
      if (created) await unlink(temporary).catch(() => undefined);
      throw error;
    }
    return true;
  }

  /**
   * Loads the backup into an empty store and checks OPA holds what it says. Not used (and
   * OPA's data emptied again) when it is unreadable in part, refused, or does not verify.
   */
  async restore(signal?: AbortSignal): Promise<RestoreOutcome> {
    let backup: BackupFile;
    try {
      backup = JSON.parse(await readFile(this.path, "utf8")) as BackupFile;
      if (typeof backup !== "object" || backup === null || backup.version !== 1 || !Array.isArray(backup.policies) || backup.data === undefined || backup.status === undefined) throw new Error("unknown backup format");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return { used: false };
      const problem = `the store backup at ${this.path} is unreadable (${(error as Error).message})`;
      this.logger.warn({ path: this.path, err: (error as Error).message }, "ignoring an unreadable store backup");
      return { used: false, problem };
    }
    const activeSignal = signal ?? new AbortController().signal;
    let problem: string | undefined;
    try {
      problem = await this.load(backup, activeSignal);
    } catch (error) {
      if (activeSignal.aborted) throw error;
      problem = `OPA refused it: ${(error as Error).message}`;
    }
    if (problem === undefined) {
      this.logger.info({ path: this.path, savedAt: backup.saved_at, policies: backup.policies.length }, "started from the store backup");
      return { used: true };
    }
    const message = `the store backup at ${this.path} was not used: ${problem}`;
    this.logger.error({ path: this.path, problem }, "the store backup does not verify; loading from the server instead");
    // What got in must not pass for the backup's state: the status (and data) go again.
    await this.store.writeData({ method: "PUT", path: "/", body: Buffer.from("{}") }, activeSignal);
    await this.store.writeData({ method: "DELETE", path: STATUS_PATH }, activeSignal);
    return { used: false, problem: message };
  }

  /** Writes the backup; returns what OPA, read back, does not hold as the backup says. */
  private async load(backup: BackupFile, signal: AbortSignal): Promise<string | undefined> {
    if (backup.data_sha256 !== undefined && dataDigest(backup.data) !== backup.data_sha256) {
      return "its data does not match the checksum saved with it (the file was changed or cut short)";
    }
    const bundle = create(PolicyBundleSchema, {
      hash: "backup",
      manifest: backup.policies.map((policy) => policy.id),
      policyModules: backup.policies.map((policy) => ({ path: policy.id, rego: policy.raw })),
    });
    await applyPolicyBundle(this.store, bundle, new GlobSet([]), signal);
    await this.store.writeData({ method: "PUT", path: "/", body: Buffer.from(JSON.stringify(backup.data)) }, signal);
    await this.store.writeData({ method: "PUT", path: STATUS_PATH, body: Buffer.from(JSON.stringify(backup.status)) }, signal);
    const held = new Map((await this.store.listPolicies(signal)).map((policy) => [policy.id, policy.raw]));
    const missing = backup.policies.filter((policy) => held.get(policy.id) !== policy.raw).map((policy) => policy.id);
    if (missing.length > 0) return `OPA does not hold ${missing.length} of its policies (${missing.slice(0, 5).join(", ")})`;
    const status = await this.store.readData(STATUS_PATH, signal);
    if (canonicalJson(status) !== canonicalJson(backup.status)) return "OPA, read back, does not hold the backup's status document";
    const expected = backup.data_sha256 ?? dataDigest(backup.data);
    const data = await this.store.readData("/", signal);
    if (dataDigest(data) !== expected) return "OPA, read back, does not hold the data the backup's position says";
    return undefined;
  }
}

/** Flushes a directory entry (the rename) to disk; some file systems refuse, which is harmless. */
async function syncDirectory(directory: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(directory, "r");
    await handle.sync();
  } catch {
    // EISDIR/EINVAL/EPERM on some platforms: the rename itself is atomic either way.
  } finally {
    await handle?.close().catch(() => undefined); // a read-only handle: nothing is lost
  }
}
