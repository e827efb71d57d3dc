/**
 * OPAL's Scope JSON (the body of PUT /scopes, what GET /scopes returns) in and out of the
 * Scope message. Strict where OPAL is lenient: an unknown key is an error, so a typo
 * cannot silently drop part of a tenant's configuration.
 */
import { clone, create, equals } from "@bufbuild/protobuf";
import { type DataSourcesConfig, DataSourcesConfigSchema } from "../../../gen/opal/mesh/v1/data_pb.js";
import {
  type GitAuth,
  GitAuthSchema,
  type GitPolicyScopeSource,
  GitPolicyScopeSourceSchema,
  type Scope,
  ScopeSchema,
} from "../../../gen/opal/mesh/v1/scope_pb.js";
import { dataSourcesConfigToJson, parseDataSourcesConfig } from "../data-entries.js";
import { ValidationError } from "../validation-error.js";

export const SCOPE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** OPAL's defaults for a git policy source, stored explicitly in every parsed scope. */
export const POLICY_DEFAULTS = {
  directories: ["."],
  extensions: [".rego", ".json"],
  manifest: ".manifest",
  branch: "main",
} as const;

export type GitAuthType = "none" | "ssh" | "github_token" | "userpass";

type JsonObject = Record<string, unknown>;

const SCOPE_KEYS = ["scope_id", "policy", "data"];
const POLICY_KEYS = ["source_type", "url", "auth", "directories", "extensions", "bundle_ignore", "manifest", "poll_updates", "branch"];
const AUTH_KEYS: Record<GitAuthType, string[]> = {
  none: ["auth_type"],
  ssh: ["auth_type", "username", "private_key", "public_key"],
  github_token: ["auth_type", "token"],
  userpass: ["auth_type", "username", "password"],
};
const AUTH_TYPES = Object.keys(AUTH_KEYS) as GitAuthType[];

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isAbsent(value: unknown): value is undefined | null {
  return value === undefined || value === null;
}

function rejectUnknownKeys(json: JsonObject, known: readonly string[], prefix: string): void {
  for (const key of Object.keys(json)) {
    if (!known.includes(key)) {
      throw new ValidationError(`${prefix}${key}`, `is not a known field (expected one of ${known.join(", ")})`);
    }
  }
}

/** A required string; secrets are never echoed back in the reason. */
function requiredString(value: unknown, field: string): string {
  if (typeof value !== "string" || value.trim() === "") throw new ValidationError(field, "is required and must be a non-empty string");
  return value;
}

function optionalString(value: unknown, field: string, fallback: string): string {
  if (isAbsent(value)) return fallback;
  if (typeof value !== "string" || value.trim() === "") throw new ValidationError(field, "must be a non-empty string (or omitted)");
  return value;
}

function stringList(value: unknown, field: string, fallback: readonly string[]): string[] {
  if (isAbsent(value)) return [...fallback];
  if (!Array.isArray(value)) throw new ValidationError(field, "must be a list of strings");
  const list = value.map((item: unknown, index) => {
    if (typeof item !== "string" || item.trim() === "") throw new ValidationError(`${field}[${index}]`, "must be a non-empty string");
    return item;
  });
  // The proto reads an empty list as the default; store what it means.
  return list.length === 0 ? [...fallback] : list;
}

function parseAuth(value: unknown): GitAuth | undefined {
  if (isAbsent(value)) return undefined;
  if (!isObject(value)) throw new ValidationError("policy.auth", 'must be an object like {"auth_type": "none"}');
  const type = value.auth_type;
  if (typeof type !== "string" || !AUTH_TYPES.includes(type as GitAuthType)) {
    throw new ValidationError("policy.auth.auth_type", `must be one of ${AUTH_TYPES.map((name) => JSON.stringify(name)).join(", ")}, got ${JSON.stringify(type)}`);
  }
  const authType = type as GitAuthType;
  rejectUnknownKeys(value, AUTH_KEYS[authType], "policy.auth.");
  switch (authType) {
    case "none":
      return undefined;
    case "ssh": {
      const publicKey = isAbsent(value.public_key) ? "" : value.public_key;
      if (typeof publicKey !== "string") throw new ValidationError("policy.auth.public_key", "must be a string (or omitted)");
      return create(GitAuthSchema, {
        kind: {
          case: "ssh",
          value: {
            username: requiredString(value.username, "policy.auth.username"),
            privateKey: requiredString(value.private_key, "policy.auth.private_key"),
            publicKey,
          },
        },
      });
    }
    case "github_token":
      return create(GitAuthSchema, { kind: { case: "githubToken", value: { token: requiredString(value.token, "policy.auth.token") } } });
    case "userpass":
      return create(GitAuthSchema, {
        kind: {
          case: "userpass",
          value: {
            username: requiredString(value.username, "policy.auth.username"),
            password: requiredString(value.password, "policy.auth.password"),
          },
        },
      });
  }
}

function parsePolicy(value: unknown): GitPolicyScopeSource {
  if (isAbsent(value)) throw new ValidationError("policy", 'is required: {"source_type": "git", "url": ...}');
  if (!isObject(value)) throw new ValidationError("policy", 'must be an object like {"source_type": "git", "url": ...}');
  rejectUnknownKeys(value, POLICY_KEYS, "policy.");
  if (!isAbsent(value.source_type) && value.source_type !== "git") {
    throw new ValidationError("policy.source_type", `must be "git" (the only policy source OPAL scopes support), got ${JSON.stringify(value.source_type)}`);
  }
  const pollUpdates = isAbsent(value.poll_updates) ? false : value.poll_updates;
  if (typeof pollUpdates !== "boolean") {
    throw new ValidationError("policy.poll_updates", `must be true or false, got ${JSON.stringify(pollUpdates)}`);
  }
  const policy = create(GitPolicyScopeSourceSchema, {
    url: requiredString(value.url, "policy.url").trim(),
    directories: stringList(value.directories, "policy.directories", POLICY_DEFAULTS.directories),
    extensions: stringList(value.extensions, "policy.extensions", POLICY_DEFAULTS.extensions),
    bundleIgnore: stringList(value.bundle_ignore, "policy.bundle_ignore", []),
    manifest: optionalString(value.manifest, "policy.manifest", POLICY_DEFAULTS.manifest),
    pollUpdates,
    branch: optionalString(value.branch, "policy.branch", POLICY_DEFAULTS.branch),
  });
  const auth = parseAuth(value.auth);
  if (auth !== undefined) policy.auth = auth;
  return policy;
}

function parseData(value: unknown): DataSourcesConfig {
  if (isAbsent(value)) return create(DataSourcesConfigSchema, { entries: [] });
  try {
    return parseDataSourcesConfig(value);
  } catch (error) {
    if (error instanceof ValidationError) throw new ValidationError(error.field === "" ? "data" : `data.${error.field}`, error.reason);
    throw error;
  }
}

/** OPAL's Scope JSON, validated, with OPAL's defaults filled in. */
export function parseScope(json: unknown): Scope {
  if (!isObject(json)) throw new ValidationError("", 'the scope must be a JSON object like {"scope_id": ..., "policy": {...}}');
  rejectUnknownKeys(json, SCOPE_KEYS, "");
  const id = json.scope_id;
  if (typeof id !== "string" || !SCOPE_ID_PATTERN.test(id)) {
    throw new ValidationError(
      "scope_id",
      `must match ${SCOPE_ID_PATTERN.source} (a letter or digit, then up to 127 letters, digits, "_", "." or "-"), got ${JSON.stringify(id)}`,
    );
  }
  return create(ScopeSchema, { scopeId: id, policy: parsePolicy(json.policy), data: parseData(json.data) });
}

export function gitAuthType(auth: GitAuth | undefined): GitAuthType {
  switch (auth?.kind.case) {
    case "ssh":
      return "ssh";
    case "githubToken":
      return "github_token";
    case "userpass":
      return "userpass";
    default:
      return "none";
  }
}

function authToJson(auth: GitAuth | undefined, includeSecrets: boolean): JsonObject {
  const type = gitAuthType(auth);
  if (!includeSecrets || auth === undefined) return { auth_type: type };
  switch (auth.kind.case) {
    case "ssh": {
      const { username, privateKey, publicKey } = auth.kind.value;
      return { auth_type: type, username, private_key: privateKey, public_key: publicKey === "" ? null : publicKey };
    }
    case "githubToken":
      return { auth_type: type, token: auth.kind.value.token };
    case "userpass":
      return { auth_type: type, username: auth.kind.value.username, password: auth.kind.value.password };
    default:
      return { auth_type: type };
  }
}

/** The policy source with OPAL's defaults where it leaves fields empty, and "no auth" as no auth message. */
function policyWithDefaults(policy: GitPolicyScopeSource | undefined): GitPolicyScopeSource {
  const full = policy === undefined ? create(GitPolicyScopeSourceSchema) : clone(GitPolicyScopeSourceSchema, policy);
  if (full.directories.length === 0) full.directories = [...POLICY_DEFAULTS.directories];
  if (full.extensions.length === 0) full.extensions = [...POLICY_DEFAULTS.extensions];
  if (full.manifest === "") full.manifest = POLICY_DEFAULTS.manifest;
  if (full.branch === "") full.branch = POLICY_DEFAULTS.branch;
  if (full.auth?.kind.case === undefined) full.auth = undefined;
  return full;
}

function dataToJson(data: DataSourcesConfig | undefined): JsonObject {
  // OPAL's ServerDataSourceConfig: exactly one of the two is set, the other null.
  if (data !== undefined && data.externalSourceUrl !== "") return { config: null, external_source_url: data.externalSourceUrl };
  return { config: dataSourcesConfigToJson(data ?? create(DataSourcesConfigSchema)), external_source_url: null };
}

/** OPAL's Scope JSON. Without secrets, policy.auth holds only auth_type (as OPAL's GET /scopes). */
export function scopeToJson(scope: Scope, options: { includeSecrets: boolean }): Record<string, unknown> {
  const policy = policyWithDefaults(scope.policy);
  return {
    scope_id: scope.scopeId,
    policy: {
      source_type: "git",
      url: policy.url,
      auth: authToJson(policy.auth, options.includeSecrets),
      directories: policy.directories,
      extensions: policy.extensions,
      bundle_ignore: policy.bundleIgnore,
      manifest: policy.manifest,
      poll_updates: policy.pollUpdates,
      branch: policy.branch,
    },
    data: dataToJson(scope.data),
  };
}

/** Whether two versions of a scope serve the same data sources (both absent counts as same). */
export function sameDataConfig(a: Scope | undefined, b: Scope | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  const empty = create(DataSourcesConfigSchema);
  return equals(DataSourcesConfigSchema, a.data ?? empty, b.data ?? empty);
}

/** Whether two versions of a scope bundle the same repository the same way, credentials included. */
export function samePolicySource(a: Scope | undefined, b: Scope | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return equals(GitPolicyScopeSourceSchema, policyWithDefaults(a.policy), policyWithDefaults(b.policy));
}
