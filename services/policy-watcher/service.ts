/**
 * PolicyService. Until git and bundle sources land (the policy issue), it serves an
 * empty bundle and says so in its status, so clients and health checks are not misled.
 */
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { HealthState } from "../../gen/opal/mesh/v1/health_pb.js";
import {
  GetBundleResponseSchema,
  GetSourceStatusResponseSchema,
  type PolicyService,
  RefreshResponseSchema,
} from "../../gen/opal/mesh/v1/policy_pb.js";

const STUB_MESSAGE = "no policy source: this build serves an empty policy bundle (git and bundle-server sources are not implemented yet)";

export function createPolicyService(): ServiceImpl<typeof PolicyService> {
  return {
    getBundle() {
      return create(GetBundleResponseSchema, { bundle: { hash: "" } });
    },
    refresh() {
      return create(RefreshResponseSchema, { hash: "" });
    },
    getSourceStatus() {
      return create(GetSourceStatusResponseSchema, {
        health: { component: "policy-watcher", state: HealthState.WARN, message: STUB_MESSAGE },
        hash: "",
      });
    },
  };
}
