/**
 * Which ScopeStore a process uses: the compacted `<topic>-scopes` Kafka topic whenever the
 * log is Kafka (every replica reads it; it outlives restarts), else a JSON file for the
 * embedded server. Distributed processes without Kafka have nowhere shared to keep scopes.
 */
import { ConfigError } from "../common/config/env-reader.js";
import type { ServerConfig } from "../common/config/server-config.js";
import type { Logger } from "../common/logger.js";
import { FileScopeStore } from "../common/scopes/file-scope-store.js";
import { KafkaScopeStore } from "../common/scopes/kafka-scope-store.js";
import type { ScopeStore } from "../common/scopes/scope-store.js";
import { kafkaClientConfig } from "./peers.js";

export function createScopeStore(config: ServerConfig, logger: Logger, deployment: "embedded" | "distributed"): ScopeStore | undefined {
  if (!config.scopes.enabled) return undefined;
  const log = logger.child({ component: "scopes" });
  if (config.broadcast.type === "kafka") {
    return new KafkaScopeStore({ client: kafkaClientConfig(config.broadcast, "opal-mesh-scopes"), topic: `${config.broadcast.topic}-scopes`, logger: log });
  }
  if (deployment === "distributed") {
    throw new ConfigError(["OPAL_SCOPES: the distributed processes share scopes through Kafka; set OPAL_BROADCAST_URI=kafka://… (or run the embedded server)"]);
  }
  return new FileScopeStore(config.scopes.stateFile, log);
}
