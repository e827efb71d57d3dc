/**
 * PolicyService.GetBundle as the distributor serves it to clients: proxied to the
 * policy-watcher and cached, so N clients asking for the same bundle cost one build.
 * Concurrent identical requests share one call; a PolicyChanged event empties the cache.
 */
import type { Client, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { type GetBundleRequest, type GetBundleResponse, type PolicyService, type RefreshRequest } from "../../gen/opal/mesh/v1/policy_pb.js";
import { toConnectError } from "../common/auth/connect-auth.js";
import { PRINCIPAL } from "../common/auth/security.js";
import { AuthError, type Principal } from "../common/auth/tokens.js";
import { DEFAULT_SCOPE, isDefaultScope } from "../common/scopes/scoped-topics.js";
import type { Event } from "../../gen/opal/mesh/v1/event_pb.js";
import type { DistributorObserver } from "./observer.js";

const MAX_ENTRIES = 64;

export class BundleCache implements DistributorObserver {
  private readonly entries = new Map<string, { response: Promise<GetBundleResponse>; hash?: string; scope: string; pinned: boolean }>();
  /** The newest version announced on the log, per scope. */
  private readonly latestHash = new Map<string, string>();
  /** Calls that reached the policy-watcher (the rest were served from the cache). */
  upstreamCalls = 0;

  constructor(
    private readonly policy: Client<typeof PolicyService>,
    /** Throws AuthError when the caller may not read the scope's policy. */
    private readonly authorizeScope: (principal: Principal | undefined, scope: string) => Promise<void> = () => Promise.resolve(),
  ) {}

  /** Told of every log event; bundles of any other version than the announced one go. */
  onEvent(event: Event): void {
    if (event.payload.case !== "policyChanged") return;
    const scope = scopeName(event.payload.value.scope);
    const latest = event.payload.value.hash;
    this.latestHash.set(scope, latest);
    for (const [key, entry] of this.entries) {
      // A bundle asked for by its version never changes: it stays (bounded by MAX_ENTRIES).
      if (entry.scope === scope && !entry.pinned && entry.hash !== undefined && entry.hash !== latest) this.entries.delete(key);
    }
  }

  get(request: GetBundleRequest, signal: AbortSignal): Promise<GetBundleResponse> {
    const scope = scopeName(request.scope);
    const key = `${scope}\u0000${request.version}\u0000${request.baseHash}\u0000${[...request.paths].sort().join("\u0000")}`;
    const pinned = request.version !== "";
    let entry = this.entries.get(key);
    if (entry === undefined) {
      this.upstreamCalls++;
      // Not tied to the first caller's signal: others may be waiting on the same call.
      const response = this.policy.getBundle({ baseHash: request.baseHash, paths: request.paths, scope: scope === DEFAULT_SCOPE ? "" : scope, version: request.version }, { timeoutMs: 60_000 });
      const created: { response: Promise<GetBundleResponse>; hash?: string; scope: string; pinned: boolean } = { response, scope, pinned };
      entry = created;
      this.entries.set(key, created);
      response.then(
        (value) => {
          created.hash = value.bundle?.hash ?? "";
          // Built before a newer version was announced: serve it to who asked, keep it no longer.
          const latest = this.latestHash.get(scope);
          if (!pinned && latest !== undefined && created.hash !== latest && this.entries.get(key) === created) this.entries.delete(key);
        },
        // A failed build is not cached (the next caller tries again); its callers get the error.
        () => this.entries.delete(key),
      );
      if (this.entries.size > MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value as string);
    }
    return abortable(entry.response, signal);
  }

  private async authorize(context: HandlerContext, scope: string): Promise<void> {
    try {
      await this.authorizeScope(context.values.get(PRINCIPAL), scope);
    } catch (error) {
      if (error instanceof AuthError) throw toConnectError(error);
      throw error;
    }
  }

  /** The public PolicyService: bundles through the cache, the rest passed through. */
  service(): ServiceImpl<typeof PolicyService> {
    return {
      getBundle: async (request: GetBundleRequest, context: HandlerContext) => {
        await this.authorize(context, scopeName(request.scope));
        return this.get(request, context.signal);
      },
      refresh: async (request: RefreshRequest, context: HandlerContext) => {
        if (!request.allScopes) await this.authorize(context, scopeName(request.scope));
        return this.policy.refresh(request, { signal: context.signal });
      },
      getSourceStatus: (_request, context: HandlerContext) => this.policy.getSourceStatus({}, { signal: context.signal }),
    };
  }
}

function scopeName(scope: string): string {
  return isDefaultScope(scope) ? DEFAULT_SCOPE : scope;
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
