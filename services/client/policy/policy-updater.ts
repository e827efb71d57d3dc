/**
 * Keeps the store's policy at the server's version. The server's policy source may be
 * empty (hash ""), in which case there is nothing to load and the policy counts as loaded.
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { PolicyService } from "../../../gen/opal/mesh/v1/policy_pb.js";
import type { Logger } from "../../common/logger.js";
import type { ClientHealth } from "../health.js";

export interface PolicyUpdaterOptions {
  serverUrl: () => string;
  token: string | undefined;
  dirs: readonly string[];
  health: ClientHealth;
  logger: Logger;
  timeoutMs: number;
}

export class PolicyUpdater {
  constructor(private readonly options: PolicyUpdaterOptions) {}

  async refresh(signal: AbortSignal): Promise<void> {
    const { health } = this.options;
    try {
      const transport = createConnectTransport({ baseUrl: this.options.serverUrl(), httpVersion: "1.1" });
      const headers: Record<string, string> = this.options.token === undefined ? {} : { authorization: `Bearer ${this.options.token}` };
      const response = await createClient(PolicyService, transport).getBundle(
        { baseHash: health.policyHash, paths: [...this.options.dirs] },
        { signal, headers, timeoutMs: this.options.timeoutMs },
      );
      const bundle = response.bundle;
      if (bundle === undefined || bundle.hash === "") {
        health.policyLoaded = true;
        health.recordPolicy({ ok: true, kind: "policy", id: "" });
        return;
      }
      throw new Error(`the server offered policy ${bundle.hash}, but this client cannot apply policy bundles yet`);
    } catch (error) {
      if (signal.aborted) return;
      health.recordPolicy({ ok: false, kind: "policy", id: "", error: (error as Error).message });
      this.options.logger.error({ err: (error as Error).message }, "policy update failed");
    }
  }
}
