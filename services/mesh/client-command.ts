/**
 * `opal-mesh client`: one agent beside one OPA. The composition root of a client: it finds
 * (or builds) the OPA binary, makes the process's metrics registry and tracing, and hands
 * them to `createClientAgent` (services/client/agent.ts), the one way to build an agent.
 */
import type { ClientAgentOptions } from "../client/agent.js";
import { locateOpa } from "../client/opa/opa-binary.js";
import type { ClientConfig } from "../common/config/client-config.js";
import type { Env } from "../common/config/env-reader.js";
import type { Logger } from "../common/logger.js";
import { createMetricsRegistry } from "../common/telemetry/metrics.js";
import { createTracing } from "../common/telemetry/tracing.js";

/** What `createClientAgent` needs for this configuration; the caller shuts `tracing` down when the agent has stopped. */
export async function clientAgentOptions(config: ClientConfig, logger: Logger, environment: Env, moduleBaseDir = process.cwd()): Promise<ClientAgentOptions> {
  const opaBinary = config.inlineOpa.enabled
    ? await locateOpa({
        execPath: config.inlineOpa.execPath,
        cacheDir: config.cacheDir,
        searchPath: config.searchPath,
        allowBuild: true,
        environment,
        onProgress: (message) => logger.info(message),
      })
    : undefined;
  return { config, logger, opaBinary, moduleBaseDir, registry: createMetricsRegistry(), tracing: createTracing(config.telemetry) };
}
