/**
 * The server's configuration (embedded deployment), parsed and validated once at
 * start-up. OPAL's variable names where OPAL has one; OPAL_MESH_* for what OPAL lacks.
 */
import type { DataSourcesConfig } from "../../../gen/opal/mesh/v1/data_pb.js";
import { parseDataSourcesConfig } from "../data-entries.js";
import type { LoggerOptions } from "../logger.js";
import { cacheDirFrom } from "./client-config.js";
import { type Env, EnvReader } from "./env-reader.js";
import { type AuthConfig, readAuthConfig } from "./auth-config.js";
import { type BroadcastConfig, readBroadcastConfig } from "./broadcast-config.js";
import { type DashboardConfig, readDashboardConfig } from "./dashboard-config.js";
import { type Limits, readFetchAllowlist, readLimits } from "./limits-config.js";
import { readWritableSystemPaths } from "./reserved-paths-config.js";
import { ReservedPaths } from "../reserved-paths.js";
import { UrlAllowlist } from "../url-allowlist.js";
import { type ListenerLimits, readAllowedOrigins, readListenerLimits } from "./listener-config.js";
import { type ClientTls, readClientTls, readServerTls, type ServerTls } from "./tls-config.js";
import { type PolicySourceConfig, readPolicySourceConfig } from "./policy-source-config.js";
import { readLoggingConfig } from "./logging-config.js";
import { readScopesConfig, type ScopesConfig } from "./scopes-config.js";
import { readTelemetryConfig, type TelemetryConfig } from "./telemetry-config.js";
import { type PolicySigningConfig, readPolicySigningConfig } from "./policy-signing-config.js";
import { readRolloutConfig, type RolloutConfig } from "./rollout-config.js";

export interface ServerConfig {
  host: string;
  /** REST and Connect/gRPC (HTTP/1.1 and h2c on one port). */
  port: number;
  /** The client-stream listener (grpc-js owns its own HTTP/2 listener). */
  streamPort: number;
  /** How other processes reach this one (announced to peers through Kafka); default from host and port. */
  advertisedUrl: string | undefined;
  /** Overrides the stream address handed to clients (e.g. behind a load balancer). */
  streamPublicUrl: string | undefined;
  /** OPAL_DATA_CONFIG_SOURCES; undefined means OPAL's default (one entry at /policy-data). */
  dataConfigSources: DataSourcesConfig | undefined;
  allDataTopic: string;
  allDataRoute: string;
  allDataUrl: string | undefined;
  /** Other services, when this process runs one service alone. */
  broadcasterUrls: string[];
  policyWatcherUrls: string[];
  /** Distributors to ask for delivery status, besides those announced through Kafka. */
  distributorUrls: string[];
  /** In-memory retention; with Kafka, the size of the recent-events window in front of it. */
  log: { maxEvents: number; maxBytes: number };
  /**
   * OPAL_MESH_SNAPSHOT_MAX_BYTES: the most the log's snapshot (what late clients write)
   * may hold; a publish of inline data past it is refused, never silently dropped.
   */
  snapshot: { maxBytes: number };
  broadcast: BroadcastConfig;
  auth: AuthConfig;
  limits: Limits;
  /** Timeouts and the connection cap of every port this process listens on. */
  listener: ListenerLimits;
  /** OPAL_ALLOWED_ORIGINS: empty means no CORS headers (closed). */
  allowedOrigins: string[];
  /** TLS (and mTLS) on every listener of this process. */
  tls: ServerTls | undefined;
  /** How this process reaches other opal-mesh processes over https (and its mTLS certificate). */
  serviceTls: ClientTls;
  /** OPAL_FETCH_URL_ALLOWLIST: updates naming other sources are refused at publish. */
  fetchAllowlist: string[];
  /** OPAL_MESH_WRITABLE_SYSTEM_PATHS: parts of OPA's data.system updates may write (none by default). */
  writableSystemPaths: string[];
  policy: PolicySourceConfig;
  /** Signed policy bundles: the key full bundles are signed with, the key fetched bundles are verified with. */
  policySigning: PolicySigningConfig;
  /** OPAL_MESH_ROLLOUT_*: a new policy version goes to canaries first; undefined: to everyone at once. */
  rollout: RolloutConfig | undefined;
  scopes: ScopesConfig;
  /** The distributor's web dashboard (OPAL_MESH_TRACE_UI_URL). */
  dashboard: DashboardConfig;
  telemetry: TelemetryConfig;
  /** What every process of a deployment shares: the environment, for child processes (git). */
  environment: Env;
  logging: LoggerOptions;
}

/** What a process runs: everything (`server`), or one service of the distributed deployment. */
export type ServerRole = "server" | "trigger-api" | "broadcaster" | "policy-watcher" | "distributor";

/** Ports a service binds by default when it runs alone, so they can share a host. */
const DEFAULT_PORTS: Record<ServerRole, { port: number; stream: number }> = {
  server: { port: 7002, stream: 7003 },
  "trigger-api": { port: 7002, stream: 7003 },
  broadcaster: { port: 7010, stream: 7003 },
  "policy-watcher": { port: 7011, stream: 7003 },
  distributor: { port: 7012, stream: 7013 },
};

export function loadServerConfig(environment: Env, role: ServerRole = "server"): ServerConfig {
  const env = new EnvReader(environment);
  const defaults = DEFAULT_PORTS[role];
  const port = env.has("OPAL_SERVER_BIND_PORT") ? env.port("OPAL_SERVER_BIND_PORT", defaults.port) : env.port("OPAL_SERVER_PORT", defaults.port);
  const streamPort = env.port("OPAL_MESH_STREAM_PORT", defaults.stream);
  const urls = (name: string): string[] =>
    env.list(name, []).map((url) => {
      try {
        const parsed = new URL(url);
        if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new Error("scheme");
      } catch {
        env.problem(name, `not an http(s) URL: ${JSON.stringify(url)}`);
      }
      return url.replace(/\/+$/, "");
    });
  const broadcasterUrls = urls("OPAL_MESH_BROADCASTER_URLS");
  const policyWatcherUrls = urls("OPAL_MESH_POLICY_WATCHER_URLS");
  const distributorUrls = urls("OPAL_MESH_DISTRIBUTOR_URLS");
  if ((role === "trigger-api" || role === "distributor" || role === "policy-watcher") && broadcasterUrls.length === 0) {
    env.problem("OPAL_MESH_BROADCASTER_URLS", `is required to run the ${role} alone (comma-separated broadcaster URLs)`);
  }
  if (role === "distributor" && policyWatcherUrls.length === 0) env.problem("OPAL_MESH_POLICY_WATCHER_URLS", "is required to run the distributor alone");
  if (streamPort !== 0 && streamPort === port) {
    env.problem("OPAL_MESH_STREAM_PORT", `must differ from the server port ${port}`);
  }
  // Read first: the entries of OPAL_DATA_CONFIG_SOURCES are checked against them.
  const fetchAllowlist = readFetchAllowlist(env);
  const writableSystemPaths = readWritableSystemPaths(env);
  const config: ServerConfig = {
    host: env.string("OPAL_SERVER_HOST", "127.0.0.1"),
    port,
    streamPort,
    advertisedUrl: env.has("OPAL_MESH_ADVERTISED_URL") ? env.url("OPAL_MESH_ADVERTISED_URL", "") : undefined,
    streamPublicUrl: env.has("OPAL_MESH_STREAM_PUBLIC_URL") ? env.url("OPAL_MESH_STREAM_PUBLIC_URL", "", ["http:", "https:"]) : undefined,
    dataConfigSources: env.json<DataSourcesConfig | undefined>("OPAL_DATA_CONFIG_SOURCES", undefined, (value) => parseDataSourcesConfig(value, { allowlist: new UrlAllowlist(fetchAllowlist), reservedPaths: new ReservedPaths(writableSystemPaths) })),
    allDataTopic: env.string("OPAL_ALL_DATA_TOPIC", "policy_data"),
    allDataRoute: env.string("OPAL_ALL_DATA_ROUTE", "/policy-data"),
    allDataUrl: env.optionalString("OPAL_ALL_DATA_URL"),
    log: {
      maxEvents: env.int("OPAL_MESH_LOG_RETENTION_EVENTS", 100_000, { min: 1 }),
      maxBytes: env.int("OPAL_MESH_LOG_RETENTION_BYTES", 256 * 1024 * 1024, { min: 1024 }),
    },
    snapshot: { maxBytes: env.int("OPAL_MESH_SNAPSHOT_MAX_BYTES", 256 * 1024 * 1024, { min: 1024 }) },
    broadcasterUrls,
    policyWatcherUrls,
    distributorUrls,
    broadcast: readBroadcastConfig(env),
    auth: readAuthConfig(env, "server"),
    limits: readLimits(env),
    listener: readListenerLimits(env),
    allowedOrigins: readAllowedOrigins(env),
    tls: readServerTls(env),
    // By default a process shows its own server certificate when it calls another (mTLS).
    serviceTls: readClientTls(env, { ca: "OPAL_MESH_SERVICE_CA_FILE", cert: env.has("OPAL_MESH_SERVICE_TLS_CERT_FILE") ? "OPAL_MESH_SERVICE_TLS_CERT_FILE" : "OPAL_MESH_TLS_CERT_FILE", key: env.has("OPAL_MESH_SERVICE_TLS_KEY_FILE") ? "OPAL_MESH_SERVICE_TLS_KEY_FILE" : "OPAL_MESH_TLS_KEY_FILE" }),
    fetchAllowlist,
    writableSystemPaths,
    policy: readPolicySourceConfig(env, cacheDirFrom(environment)),
    policySigning: readPolicySigningConfig(env, "server"),
    rollout: readRolloutConfig(env),
    scopes: readScopesConfig(env, environment),
    dashboard: readDashboardConfig(env),
    telemetry: readTelemetryConfig(env, `opal-mesh-${role}`),
    environment,
    logging: readLoggingConfig(env, "opal-mesh-server"),
  };
  env.done();
  return config;
}
