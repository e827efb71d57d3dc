/**
 * The client agent's configuration, parsed and validated once at start-up, with OPAL's
 * variable names and defaults where OPAL has them.
 */
import { randomUUID } from "node:crypto";
import { homedir } from "node:os";
import { join } from "node:path";
import type { CallbackTarget } from "../../../gen/opal/mesh/v1/data_pb.js";
import { parseCallbacks } from "../data-entries.js";
import type { LoggerOptions } from "../logger.js";
import { collapseTopics } from "../topics.js";
import { scopeIdProblem } from "../scopes/scoped-topics.js";
import { type AuthConfig, readAuthConfig } from "./auth-config.js";
import { type Env, EnvReader } from "./env-reader.js";
import { readFetchAllowlist } from "./limits-config.js";
import { readWritableSystemPaths } from "./reserved-paths-config.js";
import { type ListenerLimits, readAllowedOrigins, readListenerLimits } from "./listener-config.js";
import { type ClientTls, readClientTls, readServerTls, type ServerTls } from "./tls-config.js";
import { readTelemetryConfig, type TelemetryConfig } from "./telemetry-config.js";
import { readLoggingConfig } from "./logging-config.js";
import { defaultRetryPolicy, parseConnRetryOptions, type RetryPolicy } from "./retry-options.js";
import type { BundleVerifier } from "../bundle-signing/bundle-signature.js";
import { readPolicySigningConfig } from "./policy-signing-config.js";
import { readClientLabels } from "./client-labels-config.js";

export interface InlineOpaConfig {
  enabled: boolean;
  /** OPAL_INLINE_OPA_EXEC_PATH; otherwise PATH, then the project's cache. */
  execPath: string | undefined;
  /** host:port OPA listens on. */
  addr: string;
  logLevel: string;
  configFile: string | undefined;
  /** Files and directories OPA loads at start (`opa run` arguments). */
  files: string[];
  /** How OPA's own log lines reach ours: none, minimal, http or full. */
  logFormat: "none" | "minimal" | "http" | "full";
}

export interface ClientConfig {
  /** One or more server URLs, tried in order (fail-over). */
  serverUrls: string[];
  token: string | undefined;
  clientId: string;
  scopeId: string;
  /** OPAL_MESH_CLIENT_LABELS (`zone=eu,canary=true`): sent in every Hello; what staged rollout selects by. */
  labels: Record<string, string>;
  dataTopics: string[];
  dataUpdaterEnabled: boolean;
  policyUpdaterEnabled: boolean;
  policySubscriptionDirs: string[];
  /** When set, the baseline comes from this URL (OPAL's REST format) instead of the server's RPC. */
  dataSourcesConfigUrl: string | undefined;
  apiHost: string;
  apiPort: number;
  policyStore: { url: string; authToken: string | undefined };
  /** OPAL_POLICY_STORE_POLICY_PATHS_TO_IGNORE: module ids (globs) the client never touches. */
  policyPathsToIgnore: string[];
  inlineOpa: InlineOpaConfig;
  fetchProviderModules: string[];
  fetchingWorkerCount: number;
  /** Per attempt: time to response headers and between body chunks. */
  httpFetcherTimeoutMs: number;
  dataUpdaterRetry: RetryPolicy;
  /** OPAL_POLICY_UPDATER_CONN_RETRY: fetching a bundle from the server. */
  policyUpdaterRetry: RetryPolicy;
  policyStoreRetry: RetryPolicy;
  /** OPAL_MESH_POLICY_VERIFICATION_KEY: only full bundles with a good signature are applied. */
  policyVerifier: BundleVerifier | undefined;
  splitRootData: boolean;
  /** OPAL_OFFLINE_MODE_ENABLED: back the store up to disk, start from the backup. */
  offline: { enabled: boolean; backupPath: string; backupIntervalMs: number };
  /** OPAL_SHOULD_REPORT_ON_DATA_UPDATES: POST a DataUpdateReport after each update. */
  reporting: { enabled: boolean; callbacks: CallbackTarget[]; defaultConfig: Record<string, unknown> };
  /** OPAL_AUTH_PUBLIC_KEY: with it, the client's own API requires listener tokens. */
  auth: AuthConfig;
  /** TLS to the server (OPAL_CLIENT_SSL_CONTEXT_TRUSTED_CA_FILE) and the client's certificate for mTLS. */
  serverTls: ClientTls;
  /** TLS to OPA (OPAL_POLICY_STORE_TLS_*). */
  storeTls: ClientTls;
  telemetry: TelemetryConfig;
  /** TLS (and mTLS) on the client's own API (OPAL_MESH_TLS_*, as on every opal-mesh listener). */
  apiTls: ServerTls | undefined;
  /** Timeouts and the connection cap of the client's API port. */
  apiListener: ListenerLimits;
  /** OPAL_ALLOWED_ORIGINS on the client's API: empty means no CORS headers (closed). */
  allowedOrigins: string[];
  /** OPAL_FETCH_URL_ALLOWLIST: sources the client refuses to fetch from otherwise. */
  fetchAllowlist: string[];
  /** OPAL_MESH_WRITABLE_SYSTEM_PATHS: parts of OPA's data.system updates may write (none by default). */
  writableSystemPaths: string[];
  /** How often the store is probed (reachable, and still holding our status). */
  livenessProbeIntervalMs: number;
  /**
   * When the data in OPA counts as stale (data.system.opal.stale): the stream down longer
   * than OPAL_MESH_MAX_STALENESS_SECONDS, more than OPAL_MESH_MAX_LAG_POSITIONS behind
   * the head (0 turns either off); and how long /wait and ?min_position= may wait at most.
   */
  freshness: { maxStalenessMs: number; maxLagPositions: number; maxWaitMs: number };
  /** Where downloaded and built tools (OPA) are cached, outside the repo. */
  cacheDir: string;
  /** PATH, searched for `opa` and `go`. */
  searchPath: string;
  logging: LoggerOptions;
}

/** OPAL_MESH_CACHE_DIR, else $XDG_CACHE_HOME/opal-mesh, else ~/.cache/opal-mesh. */
function scopeId(env: EnvReader): string {
  const id = env.string("OPAL_SCOPE_ID", "default");
  const problem = id === "default" ? undefined : scopeIdProblem(id);
  if (problem !== undefined) env.problem("OPAL_SCOPE_ID", problem);
  return id;
}

export function cacheDirFrom(environment: Env): string {
  const explicit = environment.OPAL_MESH_CACHE_DIR;
  if (explicit !== undefined && explicit !== "") return explicit;
  const xdg = environment.XDG_CACHE_HOME;
  return join(xdg !== undefined && xdg !== "" ? xdg : join(homedir(), ".cache"), "opal-mesh");
}

const LOG_FORMATS = ["none", "minimal", "http", "full"] as const;

function parseInlineOpaOptions(value: unknown): Pick<InlineOpaConfig, "addr" | "logLevel" | "configFile" | "files"> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error('expected an object like {"addr": "127.0.0.1:8181"}');
  const record = value as Record<string, unknown>;
  const addr = record.addr ?? "127.0.0.1:8181";
  if (typeof addr !== "string" || !/^[^:]*:\d{1,5}$/.test(addr)) throw new Error(`addr must look like "host:port", got ${JSON.stringify(addr)}`);
  const logLevel = record.log_level ?? "error";
  if (typeof logLevel !== "string" || !["debug", "info", "error"].includes(logLevel)) throw new Error(`log_level must be debug, info or error, got ${JSON.stringify(logLevel)}`);
  const configFile = record.config_file ?? undefined;
  if (configFile !== undefined && typeof configFile !== "string") throw new Error("config_file must be a path");
  const files = record.files ?? [];
  if (!Array.isArray(files) || !files.every((file) => typeof file === "string")) throw new Error("files must be a list of paths");
  return { addr, logLevel, configFile, files: files };
}

/** "0.0.0.0:8181" is where OPA listens; clients reach it on loopback. */
export function opaUrlFromAddr(addr: string): string {
  const separator = addr.lastIndexOf(":");
  const host = addr.slice(0, separator);
  const port = addr.slice(separator + 1);
  const reachable = host === "" || host === "0.0.0.0" || host === "::" || host === "[::]" ? "127.0.0.1" : host;
  return `http://${reachable}:${port}`;
}

export function loadClientConfig(environment: Env): ClientConfig {
  const env = new EnvReader(environment);
  const serverUrls = env.list("OPAL_SERVER_URL", ["http://localhost:7002"]).map((url, index) => {
    try {
      const parsed = new URL(url);
      if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new Error("scheme");
    } catch {
      env.problem("OPAL_SERVER_URL", `entry ${index} is not an http(s) URL: ${JSON.stringify(url)}`);
    }
    return url.replace(/\/+$/, "");
  });
  if (serverUrls.length === 0) env.problem("OPAL_SERVER_URL", "must name at least one server URL");

  const inlineEnabled = env.bool("OPAL_INLINE_OPA_ENABLED", true);
  const inlineOptions = env.json("OPAL_INLINE_OPA_CONFIG", parseInlineOpaOptions({}), parseInlineOpaOptions);
  const inlineOpa: InlineOpaConfig = {
    enabled: inlineEnabled,
    execPath: env.optionalString("OPAL_INLINE_OPA_EXEC_PATH"),
    ...inlineOptions,
    logFormat: env.oneOf("OPAL_INLINE_OPA_LOG_FORMAT", "none", LOG_FORMATS),
  };
  // With inline OPA the store is wherever it listens, unless the user says otherwise.
  const storeUrl = env.has("OPAL_POLICY_STORE_URL") || !inlineEnabled ? env.url("OPAL_POLICY_STORE_URL", "http://localhost:8181") : opaUrlFromAddr(inlineOpa.addr);
  const authType = env.oneOf("OPAL_POLICY_STORE_AUTH_TYPE", "none", ["none", "token", "tls"] as const);
  const authToken = env.optionalString("OPAL_POLICY_STORE_AUTH_TOKEN");
  if (authType === "token" && authToken === undefined) env.problem("OPAL_POLICY_STORE_AUTH_TOKEN", "is required when OPAL_POLICY_STORE_AUTH_TYPE=token");

  const storeTls = readClientTls(env, { ca: "OPAL_POLICY_STORE_TLS_CA", cert: "OPAL_POLICY_STORE_TLS_CLIENT_CERT", key: "OPAL_POLICY_STORE_TLS_CLIENT_KEY" });
  // OPA's --authentication=tls: the store knows the client by its certificate.
  if (authType === "tls" && storeTls.cert === undefined) env.problem("OPAL_POLICY_STORE_TLS_CLIENT_CERT", "is required when OPAL_POLICY_STORE_AUTH_TYPE=tls");
  if (authType === "tls" && !storeUrl.startsWith("https:")) env.problem("OPAL_POLICY_STORE_URL", "must be https:// when OPAL_POLICY_STORE_AUTH_TYPE=tls");

  const retryDefaults = { strategy: "random_exponential", waitTime: 1, attempts: 5, maxWait: 10 } as const;
  const storeRetryDefaults = { strategy: "fixed", waitTime: 2, attempts: 2, maxWait: 2 } as const;
  const dataTopics = env.list("OPAL_DATA_TOPICS", ["policy_data"]);
  if (dataTopics.length === 0) env.problem("OPAL_DATA_TOPICS", "must name at least one topic");

  const config: ClientConfig = {
    serverUrls,
    token: env.optionalString("OPAL_CLIENT_TOKEN"),
    clientId: env.optionalString("OPAL_CLIENT_STAT_ID") ?? `CLIENT_${randomUUID().replaceAll("-", "")}`,
    scopeId: scopeId(env),
    labels: readClientLabels(env),
    dataTopics,
    dataUpdaterEnabled: env.bool("OPAL_DATA_UPDATER_ENABLED", true),
    policyUpdaterEnabled: env.bool("OPAL_POLICY_UPDATER_ENABLED", true),
    policySubscriptionDirs: collapseTopics(env.list("OPAL_POLICY_SUBSCRIPTION_DIRS", ["."], ":")),
    dataSourcesConfigUrl: env.has("OPAL_DEFAULT_DATA_SOURCES_CONFIG_URL") ? env.url("OPAL_DEFAULT_DATA_SOURCES_CONFIG_URL", "") : undefined,
    apiHost: env.string("OPAL_CLIENT_API_SERVER_HOST", "127.0.0.1"),
    apiPort: env.port("OPAL_CLIENT_API_SERVER_PORT", 7000),
    policyStore: { url: storeUrl, authToken: authType === "token" ? authToken : undefined },
    policyPathsToIgnore: env.list("OPAL_POLICY_STORE_POLICY_PATHS_TO_IGNORE", []),
    inlineOpa,
    fetchProviderModules: env.list("OPAL_FETCH_PROVIDER_MODULES", []),
    fetchingWorkerCount: env.int("OPAL_FETCHING_WORKER_COUNT", 6, { min: 1, max: 256 }),
    httpFetcherTimeoutMs: env.number("OPAL_HTTP_FETCHER_TIMEOUT", 5, { min: 0.001 }) * 1000,
    dataUpdaterRetry: env.json("OPAL_DATA_UPDATER_CONN_RETRY", defaultRetryPolicy(retryDefaults), (value) => parseConnRetryOptions(value, retryDefaults)),
    policyUpdaterRetry: env.json("OPAL_POLICY_UPDATER_CONN_RETRY", defaultRetryPolicy(retryDefaults), (value) => parseConnRetryOptions(value, retryDefaults)),
    policyStoreRetry: env.json("OPAL_POLICY_STORE_CONN_RETRY", defaultRetryPolicy(storeRetryDefaults), (value) => parseConnRetryOptions(value, storeRetryDefaults)),
    policyVerifier: readPolicySigningConfig(env, "client").verifier,
    splitRootData: env.bool("OPAL_SPLIT_ROOT_DATA", false),
    offline: {
      enabled: env.bool("OPAL_OFFLINE_MODE_ENABLED", false),
      backupPath: env.string("OPAL_STORE_BACKUP_PATH", join(cacheDirFrom(environment), "backup", "opa.json")),
      backupIntervalMs: env.number("OPAL_STORE_BACKUP_INTERVAL", 60, { min: 0.05 }) * 1000,
    },
    reporting: {
      enabled: env.bool("OPAL_SHOULD_REPORT_ON_DATA_UPDATES", false),
      callbacks: env.json("OPAL_DEFAULT_UPDATE_CALLBACKS", parseCallbacks({ callbacks: [`${serverUrls[0] ?? "http://localhost:7002"}/data/callback_report`] }), parseCallbacks),
      defaultConfig: env.json<Record<string, unknown>>("OPAL_DEFAULT_UPDATE_CALLBACK_CONFIG", { method: "post", headers: { "content-type": "application/json" }, process_data: false }, (value) => {
        if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("expected an HTTP fetcher config object");
        return value as Record<string, unknown>;
      }),
    },
    auth: readAuthConfig(env, "client"),
    fetchAllowlist: readFetchAllowlist(env),
    writableSystemPaths: readWritableSystemPaths(env),
    serverTls: readClientTls(env, { ca: "OPAL_CLIENT_SSL_CONTEXT_TRUSTED_CA_FILE", cert: "OPAL_MESH_CLIENT_TLS_CERT_FILE", key: "OPAL_MESH_CLIENT_TLS_KEY_FILE" }),
    storeTls,
    apiTls: readServerTls(env),
    apiListener: readListenerLimits(env),
    allowedOrigins: readAllowedOrigins(env),
    telemetry: readTelemetryConfig(env, "opal-mesh-client"),
    livenessProbeIntervalMs: env.number("OPAL_POLICY_STORE_LIVENESS_PROBE_INTERVAL_SECONDS", 10, { min: 0.05 }) * 1000,
    freshness: {
      maxStalenessMs: env.number("OPAL_MESH_MAX_STALENESS_SECONDS", 60, { min: 0 }) * 1000,
      maxLagPositions: env.int("OPAL_MESH_MAX_LAG_POSITIONS", 10_000, { min: 0 }),
      maxWaitMs: env.number("OPAL_MESH_MAX_CONSISTENCY_WAIT_SECONDS", 30, { min: 0.001 }) * 1000,
    },
    cacheDir: cacheDirFrom(environment),
    searchPath: environment.PATH ?? "",
    logging: readLoggingConfig(env, "opal-mesh-client"),
  };
  env.done();
  return config;
}
