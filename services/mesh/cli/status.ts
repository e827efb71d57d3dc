/** `opal-mesh status <update-id>`: where an update stands on every client it was addressed to. */
import { type Command } from "commander";
import type { Env } from "../../common/config/env-reader.js";
import { deliveryExitCode, fetchDelivery, printDelivery, watchDelivery } from "./delivery-watch.js";
import { ExitCode, ServerConnection, Terminal, positiveNumberFlag, runVerb, serverUrlFrom, tokenFrom, verbCommand } from "./shared.js";

interface Flags {
  serverUrl?: string;
  token?: string;
  wait?: boolean;
  timeout: string;
  json?: boolean;
}

const HELP_AFTER = `
Examples:
  $ opal-mesh status 6f1c…            # a table: client, state, latency, error
  $ opal-mesh status 6f1c… --wait --timeout 60
  $ opal-mesh status 6f1c… --json | jq '.clients[] | select(.state == "DELIVERY_STATE_FAILED")'

Exit codes: 0 applied by every addressed client, 1 a client failed it (or the update is
unknown), 2 clients still pending (with --wait: at --timeout), 3 refused, 64 bad flags,
69 unreachable.`;

export function statusCommand(env: Env): Command {
  return verbCommand("status")
    .description("show an update's delivery: which clients applied it, failed it (and why) or are pending (GET /updates/{id})")
    .argument("<update-id>", "the id publish-data-update printed (or POST /data/config answered)")
    .option("-s, --server-url <url>", "the server (default: OPAL_SERVER_URL, else http://localhost:7002)")
    .option("--token <jwt>", "the server's JWT, a datasource token (default: OPAL_CLIENT_TOKEN)")
    .option("--wait", "poll until no client is pending, with progress")
    .option("--timeout <seconds>", "how long --wait waits", "30")
    .option("--json", "print the server's answer as JSON")
    .addHelpText("after", HELP_AFTER)
    .action(async (updateId: string, flags: Flags) => {
      const terminal = new Terminal(env);
      await runVerb("status", terminal, async () => {
        const timeoutMs = positiveNumberFlag("--timeout", flags.timeout) * 1000;
        const server = new ServerConnection(serverUrlFrom(flags.serverUrl, env), tokenFrom(flags.token, undefined, env, "OPAL_CLIENT_TOKEN"));
        try {
          const delivery = flags.wait === true ? (await watchDelivery(server, terminal, updateId, { timeoutMs, unknownIsFinal: true })).delivery : await fetchDelivery(server, updateId);
          if (delivery === undefined) {
            terminal.err(`${terminal.paint(terminal.stderr, "red", "opal-mesh status:")} unknown update ${JSON.stringify(updateId)} (never published, or too old to be remembered)`);
            return ExitCode.failed;
          }
          if (flags.json === true) terminal.out(JSON.stringify(delivery, null, 2));
          else printDelivery(terminal, updateId, delivery, { everyClient: true });
          return deliveryExitCode(delivery);
        } finally {
          await server.close();
        }
      });
    });
}
