/**
 * Offline mode (OPAL_OFFLINE_MODE_ENABLED): the store's policy, data and status (with the
 * log position) are saved to disk atomically, from a quiet moment between transactions;
 * a client whose OPA starts empty loads the backup before it reaches the server, so it is
 * ready even when the server is unreachable, and then resumes from the backup's position.
 */
import { mkdir, open, readFile, rename } from "node:fs/promises";
import { dirname } from "node:path";
import { create } from "@bufbuild/protobuf";
import { PolicyBundleSchema } from "../../gen/opal/mesh/v1/policy_pb.js";
import { GlobSet } from "../common/globs.js";
import type { Logger } from "../common/logger.js";
import { STATUS_PATH } from "./opa-status.js";
import type { PolicyStore } from "./policy-store.js";
import { applyPolicyBundle } from "./policy/policy-applier.js";

interface BackupFile {
  version: 1;
  saved_at: string;
  policies: Array<{ id: string; raw: string }>;
  data: unknown;
  status: unknown;
}

export class StoreBackup {
  constructor(
    private readonly path: string,
    private readonly store: PolicyStore,
    private readonly logger: Logger,
  ) {}

  /** Writes the backup: a temporary file, flushed, then renamed over the old one. */
  async save(signal?: AbortSignal): Promise<void> {
    const status = await this.store.readData(STATUS_PATH, signal);
    if (status === undefined) return; // nothing consistent to save yet
    const backup: BackupFile = {
      version: 1,
      saved_at: new Date().toISOString(),
      policies: await this.store.listPolicies(signal),
      data: (await this.store.readData("/", signal)) ?? {},
      status,
    };
    await mkdir(dirname(this.path), { recursive: true });
    const temporary = `${this.path}.${process.pid}.tmp`;
    const file = await open(temporary, "w", 0o600);
    try {
      await file.writeFile(JSON.stringify(backup));
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temporary, this.path);
  }

  /** Loads the backup into an empty store; false when there is none (or it is unreadable). */
  async restore(signal?: AbortSignal): Promise<boolean> {
    let backup: BackupFile;
    try {
      backup = JSON.parse(await readFile(this.path, "utf8")) as BackupFile;
      if (backup.version !== 1 || !Array.isArray(backup.policies) || backup.data === undefined || backup.status === undefined) throw new Error("unknown backup format");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") this.logger.warn({ path: this.path, err: (error as Error).message }, "ignoring an unreadable store backup");
      return false;
    }
    const bundle = create(PolicyBundleSchema, {
      hash: "backup",
      manifest: backup.policies.map((policy) => policy.id),
      policyModules: backup.policies.map((policy) => ({ path: policy.id, rego: policy.raw })),
    });
    await applyPolicyBundle(this.store, bundle, new GlobSet([]), signal ?? new AbortController().signal);
    await this.store.writeData({ method: "PUT", path: "/", body: Buffer.from(JSON.stringify(backup.data)) }, signal);
    await this.store.writeData({ method: "PUT", path: STATUS_PATH, body: Buffer.from(JSON.stringify(backup.status)) }, signal);
    this.logger.info({ path: this.path, savedAt: backup.saved_at, policies: backup.policies.length }, "started from the store backup");
    return true;
  }
}
