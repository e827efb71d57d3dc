/** The server's policy source settings (OPAL's POLICY_REPO_* and POLICY_BUNDLE_* variables). */
import { join } from "node:path";
import type { EnvReader } from "./env-reader.js";

export interface PolicySourceConfig {
  /** "none" when neither a repo nor a bundle server is configured. */
  type: "git" | "bundle" | "none";
  repoUrl: string;
  branch: string;
  sshKey: string | undefined;
  clonePath: string;
  cloneTimeoutMs: number;
  pollIntervalMs: number;
  bundleUrl: string;
  bundleToken: string | undefined;
  manifestPath: string;
  extensions: string[];
  policyExtensions: string[];
  ignore: string[];
  webhook: {
    secret: string | undefined;
    enforceBranch: boolean;
    /** OPAL_POLICY_REPO_WEBHOOK_PARAMS as given; validated by the composition root. */
    params: unknown;
  };
}

export function readPolicySourceConfig(env: EnvReader, cacheDir: string): PolicySourceConfig {
  const sourceType = env.oneOf("OPAL_POLICY_SOURCE_TYPE", "GIT", ["GIT", "API"] as const);
  const repoUrl = env.string("OPAL_POLICY_REPO_URL", "");
  const bundleUrl = env.string("OPAL_POLICY_BUNDLE_URL", "");
  if (sourceType === "API" && bundleUrl === "") env.problem("OPAL_POLICY_BUNDLE_URL", "is required when OPAL_POLICY_SOURCE_TYPE=API");
  if (bundleUrl !== "") env.url("OPAL_POLICY_BUNDLE_URL", "");
  const serverType = env.oneOf("OPAL_POLICY_BUNDLE_SERVER_TYPE", "HTTP", ["HTTP", "AWS-S3"] as const);
  if (serverType === "AWS-S3") env.problem("OPAL_POLICY_BUNDLE_SERVER_TYPE", "AWS-S3 bundle servers are not supported yet; use HTTP");
  const type = sourceType === "API" ? "bundle" : repoUrl !== "" ? "git" : "none";
  const seconds = (name: string, fallback: number): number => env.number(name, fallback, { min: 0 }) * 1000;
  let webhookParams: unknown;
  const rawParams = env.optionalString("OPAL_POLICY_REPO_WEBHOOK_PARAMS");
  if (rawParams !== undefined) webhookParams = env.json<unknown>("OPAL_POLICY_REPO_WEBHOOK_PARAMS", undefined, (value) => value);
  return {
    type,
    repoUrl,
    branch: env.string("OPAL_POLICY_REPO_MAIN_BRANCH", "master"),
    sshKey: env.optionalString("OPAL_POLICY_REPO_SSH_KEY"),
    clonePath: env.string("OPAL_POLICY_REPO_CLONE_PATH", join(cacheDir, "policy-clones")),
    cloneTimeoutMs: seconds("OPAL_POLICY_REPO_CLONE_TIMEOUT", 0),
    // OPAL polls bundle servers on the same interval as repos.
    pollIntervalMs: seconds("OPAL_POLICY_REPO_POLLING_INTERVAL", 0),
    bundleUrl,
    bundleToken: env.optionalString("OPAL_POLICY_BUNDLE_SERVER_TOKEN"),
    manifestPath: env.string("OPAL_POLICY_REPO_MANIFEST_PATH", ".manifest"),
    extensions: env.list("OPAL_FILTER_FILE_EXTENSIONS", [".rego", ".json"]),
    policyExtensions: env.list("OPAL_POLICY_REPO_POLICY_EXTENSIONS", [".rego"]),
    ignore: env.list("OPAL_BUNDLE_IGNORE", []),
    webhook: {
      secret: env.optionalString("OPAL_POLICY_REPO_WEBHOOK_SECRET"),
      enforceBranch: env.bool("OPAL_POLICY_REPO_WEBHOOK_ENFORCE_BRANCH", false),
      params: webhookParams,
    },
  };
}
