/**
 * Keeps the store's policy at the server's version: asks the distributor for a bundle
 * (a delta from the version recorded in OPA, or a full one), applies it safely, and
 * records the new version in OPA itself so a restarted client knows what it has.
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { PolicyService } from "../../../gen/opal/mesh/v1/policy_pb.js";
import type { GlobSet } from "../../common/globs.js";
import type { Logger } from "../../common/logger.js";
import type { ClientHealth } from "../health.js";
import type { PolicyStore } from "../policy-store.js";
import { applyPolicyBundle } from "./policy-applier.js";

/** Where the applied policy version is kept in OPA. */
export const POLICY_MARKER_PATH = "/system/opal_mesh/policy";

export interface PolicyUpdaterOptions {
  serverUrl: () => string;
  token: string | undefined;
  dirs: readonly string[];
  store: PolicyStore;
  ignore: GlobSet;
  health: ClientHealth;
  logger: Logger;
  timeoutMs: number;
}

export class PolicyUpdater {
  private hash = "";
  private rootDataKeys: string[] = [];

  constructor(private readonly options: PolicyUpdaterOptions) {}

  get currentHash(): string {
    return this.hash;
  }

  /** Reads the version OPA already holds (empty after OPA started fresh). */
  async loadRecordedHash(signal: AbortSignal): Promise<void> {
    try {
      const marker = (await this.options.store.readData(POLICY_MARKER_PATH, signal)) as { hash?: unknown; root_data_keys?: unknown } | undefined;
      this.hash = typeof marker?.hash === "string" ? marker.hash : "";
      this.rootDataKeys = Array.isArray(marker?.root_data_keys) ? marker.root_data_keys.filter((key): key is string => typeof key === "string") : [];
    } catch {
      this.hash = "";
      this.rootDataKeys = [];
    }
    this.options.health.policyHash = this.hash;
  }

  /** Forgets the version: the next sync asks for a full bundle (OPA restarted empty). */
  forget(): void {
    this.hash = "";
    this.rootDataKeys = [];
    this.options.health.policyHash = "";
    this.options.health.policyLoaded = false;
  }

  /** Brings the store to the server's current version; throws (after reporting) on failure. */
  async sync(signal: AbortSignal, reason: string): Promise<void> {
    const { health, logger } = this.options;
    try {
      const transport = createConnectTransport({ baseUrl: this.options.serverUrl(), httpVersion: "1.1" });
      const headers: Record<string, string> = this.options.token === undefined ? {} : { authorization: `Bearer ${this.options.token}` };
      const { bundle } = await createClient(PolicyService, transport).getBundle({ baseHash: this.hash, paths: [...this.options.dirs] }, { signal, headers, timeoutMs: this.options.timeoutMs });
      if (bundle === undefined || bundle.hash === "") {
        // The server has no policy source: nothing to load, and nothing is missing.
        health.policyLoaded = true;
        health.recordPolicy({ ok: true, kind: "policy", id: "" });
        return;
      }
      const outcome = await applyPolicyBundle(this.options.store, bundle, this.options.ignore, signal, this.rootDataKeys);
      this.rootDataKeys = outcome.rootDataKeys;
      const marker = { hash: bundle.hash, root_data_keys: outcome.rootDataKeys };
      await this.options.store.writeData({ method: "PUT", path: POLICY_MARKER_PATH, body: Buffer.from(JSON.stringify(marker)) }, signal);
      this.hash = bundle.hash;
      health.policyHash = bundle.hash;
      health.policyLoaded = true;
      health.recordPolicy({ ok: true, kind: "policy", id: bundle.hash });
      logger.info({ hash: bundle.hash, oldHash: bundle.oldHash, reason, ...outcome }, bundle.oldHash === "" ? "policy loaded (full bundle)" : "policy updated (delta bundle)");
    } catch (error) {
      if (signal.aborted) throw error;
      const message = (error as Error).message;
      health.recordPolicy({ ok: false, kind: "policy", id: this.hash, error: message });
      logger.error({ err: message, keeping: this.hash }, "policy update failed; keeping the last good policy");
      throw error;
    }
  }
}
