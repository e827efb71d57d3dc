/** The `opal-mesh` command line: OPAL's verbs, and the run commands of each part. */
import { Command } from "commander";
import { loadClientConfig } from "../common/config/client-config.js";
import { loadServerConfig } from "../common/config/server-config.js";
import { createLogger } from "../common/logger.js";
import { generateSecretCommand, obtainTokenCommand, printConfigCommand, publishDataUpdateCommand, rolloutCommand, statusCommand } from "./cli/index.js";
import { createClientAgent } from "../client/agent.js";
import { clientAgentOptions } from "./client-command.js";
import { broadcasterProcess, distributorProcess, policyWatcherProcess, triggerApiProcess } from "./distributed.js";
import { EmbeddedServer } from "./embedded-server.js";
import { runExample } from "./example.js";
import { exitOnConfigError, runUntilSignal } from "./run.js";
import { showBaselineProgress } from "./cli/baseline-progress.js";

const program = new Command("opal-mesh")
  .description("Keeps Open Policy Agent instances in sync with policy and data (OPAL's job, as a gRPC service mesh).\nConfigured by environment variables with OPAL's names; see the README.")
  .showHelpAfterError();

program
  .command("server")
  .description("run the server: trigger-api, broadcaster, policy-watcher and distributor in one process (embedded)")
  .action(async () => {
    const config = (() => {
      try {
        return loadServerConfig(process.env);
      } catch (error) {
        return exitOnConfigError(error);
      }
    })();
    const logger = createLogger(config.logging);
    let server: EmbeddedServer;
    try {
      server = new EmbeddedServer(config, logger);
    } catch (error) {
      exitOnConfigError(error);
    }
    await runUntilSignal([server], logger);
  });

const services = {
  "trigger-api": { run: triggerApiProcess, about: "the trigger-api alone: publishing (Connect, gRPC, OPAL's REST routes) and delivery status" },
  broadcaster: { run: broadcasterProcess, about: "the broadcaster alone: the log (OPAL_BROADCAST_URI=kafka://…) served over gRPC" },
  "policy-watcher": { run: policyWatcherProcess, about: "the policy-watcher alone: policy sources, bundles, webhooks; one replica publishes (elected through Kafka)" },
  distributor: { run: distributorProcess, about: "the distributor alone: client streams, fan-out, ACKs, bundles (OPAL_SERVER_URL of clients points here)" },
} as const;

for (const [role, { run, about }] of Object.entries(services)) {
  program
    .command(role)
    .description(about)
    .action(async () => {
      let process;
      let logger;
      try {
        const config = loadServerConfig(globalThis.process.env, role as keyof typeof services);
        logger = createLogger({ ...config.logging, name: `opal-mesh-${role}` });
        process = run(config, logger);
      } catch (error) {
        return exitOnConfigError(error);
      }
      await runUntilSignal([process], logger);
    });
}

program
  .command("client")
  .description("run a client agent: holds the stream to a server and keeps one OPA (inline or at OPAL_POLICY_STORE_URL) in sync")
  .action(async () => {
    const config = (() => {
      try {
        return loadClientConfig(process.env);
      } catch (error) {
        return exitOnConfigError(error);
      }
    })();
    const logger = createLogger(config.logging);
    // The process exits once the agent stopped, its spans flushed by then.
    const agent = await createClientAgent(await clientAgentOptions(config, logger, process.env));
    if (process.stderr.isTTY) showBaselineProgress(agent);
    await runUntilSignal([agent], logger);
  });

program
  .command("example")
  .description("what `npm start` runs: the server, one client with inline OPA, and the example policy and data")
  .action(async () => {
    await runExample(process.env);
  });

// OPAL's verbs (opal-client publish-data-update, obtain-token, generate-secret, print-config) and status.
for (const verb of [publishDataUpdateCommand, statusCommand, rolloutCommand, obtainTokenCommand, generateSecretCommand, printConfigCommand]) program.addCommand(verb(process.env));

program.parseAsync().catch((error: unknown) => {
  process.stderr.write(`opal-mesh: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
