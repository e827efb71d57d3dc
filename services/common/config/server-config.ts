/**
 * The server's configuration (embedded deployment), parsed and validated once at
 * start-up. OPAL's variable names where OPAL has one; OPAL_MESH_* for what OPAL lacks.
 */
import type { DataSourcesConfig } from "../../../gen/opal/mesh/v1/data_pb.js";
import { parseDataSourcesConfig } from "../data-entries.js";
import type { LoggerOptions } from "../logger.js";
import { cacheDirFrom } from "./client-config.js";
import { type Env, EnvReader } from "./env-reader.js";
import { type BroadcastConfig, readBroadcastConfig } from "./broadcast-config.js";
import { type PolicySourceConfig, readPolicySourceConfig } from "./policy-source-config.js";
import { readLoggingConfig } from "./logging-config.js";

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
  /** In-memory retention; with Kafka, the size of the recent-events window in front of it. */
  log: { maxEvents: number; maxBytes: number };
  broadcast: BroadcastConfig;
  policy: PolicySourceConfig;
  /** What every process of a deployment shares: the environment, for child processes (git). */
  environment: Env;
  logging: LoggerOptions;
}

export function loadServerConfig(environment: Env): ServerConfig {
  const env = new EnvReader(environment);
  const port = env.has("OPAL_SERVER_BIND_PORT") ? env.port("OPAL_SERVER_BIND_PORT", 7002) : env.port("OPAL_SERVER_PORT", 7002);
  const streamPort = env.port("OPAL_MESH_STREAM_PORT", 7003);
  if (streamPort !== 0 && streamPort === port) {
    env.problem("OPAL_MESH_STREAM_PORT", `must differ from the server port ${port}`);
  }
  const config: ServerConfig = {
    host: env.string("OPAL_SERVER_HOST", "127.0.0.1"),
    port,
    streamPort,
    advertisedUrl: env.has("OPAL_MESH_ADVERTISED_URL") ? env.url("OPAL_MESH_ADVERTISED_URL", "") : undefined,
    streamPublicUrl: env.has("OPAL_MESH_STREAM_PUBLIC_URL") ? env.url("OPAL_MESH_STREAM_PUBLIC_URL", "", ["http:", "https:"]) : undefined,
    dataConfigSources: env.json<DataSourcesConfig | undefined>("OPAL_DATA_CONFIG_SOURCES", undefined, parseDataSourcesConfig),
    allDataTopic: env.string("OPAL_ALL_DATA_TOPIC", "policy_data"),
    allDataRoute: env.string("OPAL_ALL_DATA_ROUTE", "/policy-data"),
    allDataUrl: env.optionalString("OPAL_ALL_DATA_URL"),
    log: {
      maxEvents: env.int("OPAL_MESH_LOG_RETENTION_EVENTS", 100_000, { min: 1 }),
      maxBytes: env.int("OPAL_MESH_LOG_RETENTION_BYTES", 256 * 1024 * 1024, { min: 1024 }),
    },
    broadcast: readBroadcastConfig(env),
    policy: readPolicySourceConfig(env, cacheDirFrom(environment)),
    environment,
    logging: readLoggingConfig(env, "opal-mesh-server"),
  };
  env.done();
  return config;
}
