/** `opal-mesh client`: one agent beside one OPA. */
import { ClientAgent } from "../client/agent.js";
import { locateOpa } from "../client/opa/opa-binary.js";
import type { ClientConfig } from "../common/config/client-config.js";
import type { Env } from "../common/config/env-reader.js";
import type { Logger } from "../common/logger.js";
import { createMetricsRegistry } from "../common/telemetry/metrics.js";

export async function createClientAgent(config: ClientConfig, logger: Logger, environment: Env, moduleBaseDir = process.cwd()): Promise<ClientAgent> {
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
  return new ClientAgent({ config, logger, opaBinary, moduleBaseDir, registry: createMetricsRegistry() });
}
