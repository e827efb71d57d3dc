/**
 * PolicyService over the watcher. Without a configured source it serves an empty bundle
 * and says so in its status, so clients and health checks are not misled.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { HealthState } from "../../gen/opal/mesh/v1/health_pb.js";
import {
  type GetBundleRequest,
  GetBundleResponseSchema,
  GetSourceStatusResponseSchema,
  type PolicyService,
  type RefreshRequest,
  RefreshResponseSchema,
} from "../../gen/opal/mesh/v1/policy_pb.js";
import { isDefaultScope } from "../common/scopes/scoped-topics.js";
import { ScopeWatchers } from "./scope-watchers.js";
import type { PolicyWatcher } from "./watcher.js";

const NO_SOURCE = "no policy source configured (set OPAL_POLICY_REPO_URL, or OPAL_POLICY_SOURCE_TYPE=API with OPAL_POLICY_BUNDLE_URL): serving an empty bundle";

export function createPolicyService(watcher: PolicyWatcher | undefined, scopes?: ScopeWatchers): ServiceImpl<typeof PolicyService> {
  const scoped = (scope: string): { watcher: PolicyWatcher; directories: string[] } => {
    if (scopes === undefined) throw new ConnectError(`scope ${JSON.stringify(scope)} asked for, but this server does not serve scopes (OPAL_SCOPES=false)`, Code.FailedPrecondition);
    const entry = scopes.get(scope);
    if (entry === undefined) throw new ConnectError(`scope ${JSON.stringify(scope)} is not defined (create it with PUT /scopes)`, Code.NotFound);
    return entry;
  };
  return {
    async getBundle(request: GetBundleRequest, context: HandlerContext) {
      if (!isDefaultScope(request.scope)) {
        // Unlike OPAL (#919: a 500 for an unknown scope) a missing scope is NotFound, and
        // never falls back to the default scope's policy.
        const entry = scoped(request.scope);
        await entry.watcher.whenReady(context.signal);
        return create(GetBundleResponseSchema, { bundle: await entry.watcher.bundle(request.baseHash, ScopeWatchers.directoriesFor(entry.directories, request.paths), request.version) });
      }
      if (watcher === undefined) return create(GetBundleResponseSchema, { bundle: { hash: "" } });
      await watcher.whenReady(context.signal);
      return create(GetBundleResponseSchema, { bundle: await watcher.bundle(request.baseHash, request.paths, request.version) });
    },
    async refresh(request: RefreshRequest) {
      if (request.allScopes) {
        await scopes?.refreshAll();
        return create(RefreshResponseSchema, { hash: "" });
      }
      if (!isDefaultScope(request.scope)) return create(RefreshResponseSchema, { hash: await scoped(request.scope).watcher.refresh() });
      return create(RefreshResponseSchema, { hash: watcher === undefined ? "" : await watcher.refresh() });
    },
    getSourceStatus() {
      if (watcher === undefined) {
        return create(GetSourceStatusResponseSchema, { health: { component: "policy-watcher", state: HealthState.WARN, message: NO_SOURCE }, hash: "" });
      }
      const status = watcher.health();
      return create(GetSourceStatusResponseSchema, { health: { component: "policy-watcher", state: status.state, message: status.message }, hash: status.hash });
    },
  };
}
