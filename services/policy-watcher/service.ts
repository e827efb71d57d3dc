/**
 * PolicyService over the watcher. Without a configured source it serves an empty bundle
 * and says so in its status, so clients and health checks are not misled.
 */
import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { HealthState } from "../../gen/opal/mesh/v1/health_pb.js";
import {
  type GetBundleRequest,
  GetBundleResponseSchema,
  GetSourceStatusResponseSchema,
  type PolicyService,
  RefreshResponseSchema,
} from "../../gen/opal/mesh/v1/policy_pb.js";
import type { PolicyWatcher } from "./watcher.js";

const NO_SOURCE = "no policy source configured (set OPAL_POLICY_REPO_URL, or OPAL_POLICY_SOURCE_TYPE=API with OPAL_POLICY_BUNDLE_URL): serving an empty bundle";

export function createPolicyService(watcher: PolicyWatcher | undefined): ServiceImpl<typeof PolicyService> {
  return {
    async getBundle(request: GetBundleRequest, context: HandlerContext) {
      if (watcher === undefined) return create(GetBundleResponseSchema, { bundle: { hash: "" } });
      await watcher.whenReady(context.signal);
      return create(GetBundleResponseSchema, { bundle: await watcher.bundle(request.baseHash, request.paths) });
    },
    async refresh() {
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
