/** `opal-mesh print-config [server|client]`: the configuration the environment gives, secrets redacted. */
import { Argument, type Command } from "commander";
import type { CallbackTarget, DataSourcesConfig } from "../../../gen/opal/mesh/v1/data_pb.js";
import { loadClientConfig, type ClientConfig } from "../../common/config/client-config.js";
import type { Env } from "../../common/config/env-reader.js";
import { loadServerConfig, type ServerConfig } from "../../common/config/server-config.js";
import { dataSourcesConfigToJson, parseJsonBytes } from "../../common/data-entries.js";
import { exitOnConfigError } from "../run.js";
import { redactSecrets } from "./redact.js";
import { ExitCode, Terminal, runVerb, verbCommand } from "./shared.js";

/** OPAL's OPAL_DATA_CONFIG_SOURCES shape. */
function dataSourcesView(config: DataSourcesConfig | undefined): unknown {
  if (config === undefined) return null;
  return config.externalSourceUrl !== "" ? { external_source_url: config.externalSourceUrl } : { config: dataSourcesConfigToJson(config) };
}

/** OPAL's callback shape: a URL, or [URL, fetcher config]. */
function callbacksView(callbacks: readonly CallbackTarget[]): unknown[] {
  return callbacks.map((callback) => (callback.configJson.length > 0 ? [callback.url, parseJsonBytes(callback.configJson)] : callback.url));
}

/**
 * The loaded configuration as plain JSON (protobuf fields in OPAL's JSON shape). The
 * server's `environment` (the raw environment, handed to git) is left out: it is not
 * configuration, and holds whatever else the shell has.
 */
export function serverConfigView(config: ServerConfig): unknown {
  const { environment: _environment, ...rest } = config;
  return redactSecrets({ ...rest, dataConfigSources: dataSourcesView(config.dataConfigSources) });
}

export function clientConfigView(config: ClientConfig): unknown {
  return redactSecrets({ ...config, reporting: { ...config.reporting, callbacks: callbacksView(config.reporting.callbacks) } });
}

export function printConfigCommand(env: Env): Command {
  return verbCommand("print-config")
    .description("print the configuration the environment gives a server or a client, as JSON, secrets redacted (as OPAL's print-config)")
    .addArgument(new Argument("[part]", "server or client").choices(["server", "client"]).default("server"))
    .addHelpText(
      "after",
      "\nTokens, keys, passwords, the master token, fetcher headers and URL credentials print as\n\"[redacted]\" (null when unset). A bad variable exits 2, as the run commands do.\n\nExamples:\n  $ OPAL_SERVER_PORT=7100 opal-mesh print-config server\n  $ opal-mesh print-config client | jq .dataTopics",
    )
    .action(async (part: "server" | "client") => {
      const terminal = new Terminal(env);
      await runVerb("print-config", terminal, async () => {
        let view: unknown;
        try {
          view = part === "client" ? clientConfigView(loadClientConfig(env)) : serverConfigView(loadServerConfig(env));
        } catch (error) {
          exitOnConfigError(error);
        }
        terminal.out(JSON.stringify(view, null, 2));
        return ExitCode.ok;
      });
    });
}
