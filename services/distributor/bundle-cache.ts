/**
 * PolicyService.GetBundle as the distributor serves it to clients: proxied to the
 * policy-watcher and cached, so N clients asking for the same bundle cost one build.
 * Concurrent identical requests share one call; a PolicyChanged event empties the cache.
 */
import type { Client, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { type GetBundleRequest, type GetBundleResponse, type PolicyService } from "../../gen/opal/mesh/v1/policy_pb.js";
import type { Event } from "../../gen/opal/mesh/v1/event_pb.js";

const MAX_ENTRIES = 64;

export class BundleCache {
  private readonly entries = new Map<string, { response: Promise<GetBundleResponse>; hash?: string }>();
  /** The newest version announced on the log. */
  private latestHash: string | undefined;
  /** Calls that reached the policy-watcher (the rest were served from the cache). */
  upstreamCalls = 0;

  constructor(private readonly policy: Client<typeof PolicyService>) {}

  /** Feed it every log event; bundles of any other version than the announced one go. */
  observe(event: Event): void {
    if (event.payload.case !== "policyChanged") return;
    this.latestHash = event.payload.value.hash;
    for (const [key, entry] of this.entries) {
      if (entry.hash !== undefined && entry.hash !== this.latestHash) this.entries.delete(key);
    }
  }

  get(request: GetBundleRequest, signal: AbortSignal): Promise<GetBundleResponse> {
    const key = `${request.baseHash}\u0000${[...request.paths].sort().join("\u0000")}`;
    let entry = this.entries.get(key);
    if (entry === undefined) {
      this.upstreamCalls++;
      // Not tied to the first caller's signal: others may be waiting on the same call.
      const response = this.policy.getBundle({ baseHash: request.baseHash, paths: request.paths }, { timeoutMs: 60_000 });
      const created: { response: Promise<GetBundleResponse>; hash?: string } = { response };
      entry = created;
      this.entries.set(key, created);
      response.then(
        (value) => {
          created.hash = value.bundle?.hash ?? "";
          // Built before a newer version was announced: serve it to who asked, keep it no longer.
          if (this.latestHash !== undefined && created.hash !== this.latestHash && this.entries.get(key) === created) this.entries.delete(key);
        },
        () => this.entries.delete(key),
      );
      if (this.entries.size > MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value as string);
    }
    return abortable(entry.response, signal);
  }

  /** The public PolicyService: bundles through the cache, the rest passed through. */
  service(): ServiceImpl<typeof PolicyService> {
    return {
      getBundle: (request: GetBundleRequest, context: HandlerContext) => this.get(request, context.signal),
      refresh: (_request, context: HandlerContext) => this.policy.refresh({}, { signal: context.signal }),
      getSourceStatus: (_request, context: HandlerContext) => this.policy.getSourceStatus({}, { signal: context.signal }),
    };
  }
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
