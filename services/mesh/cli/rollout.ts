/** `opal-mesh rollout status|promote|pause|resume|rollback`: a staged policy rollout by hand (/policy/rollout). */
import { type Command } from "commander";
import type { Env } from "../../common/config/env-reader.js";
import { ExitCode, ServerConnection, Terminal, UsageError, runVerb, serverUrlFrom, tokenFrom, verbCommand } from "./shared.js";

const ACTIONS = ["status", "promote", "pause", "resume", "rollback"] as const;

interface Flags {
  serverUrl?: string;
  token?: string;
  json?: boolean;
}

interface RolloutJson {
  stable: string;
  rejected: string | null;
  rollout: null | { candidate: string; stable: string; stage: string; message: string; canaries: string; soak_seconds: number; clients: Array<{ client_id: string; delivery: string; healthy: boolean | null; message: string }> };
}

const HELP_AFTER = `
Examples:
  $ opal-mesh rollout status            # the stage, the candidate, each canary's delivery and health
  $ opal-mesh rollout promote           # everyone takes the candidate now
  $ opal-mesh rollout rollback          # the canaries go back to the stable version
  $ opal-mesh rollout pause             # no promotion until resumed (a canary's refusal still rolls back)

Exit codes: 0 done, 3 refused (e.g. 409: no rollout under way), 64 bad arguments, 69 unreachable.`;

function print(terminal: Terminal, answer: RolloutJson): void {
  const { rollout } = answer;
  terminal.out(`stable   ${answer.stable || "(none)"}`);
  if (answer.rejected !== null) terminal.out(`rejected ${answer.rejected} (rolled back; not offered again until the source moves on)`);
  if (rollout === null) {
    terminal.out("no staged rollout has run");
    return;
  }
  terminal.out(`rollout  ${rollout.candidate} → ${rollout.stage} (canaries: ${rollout.canaries}; soak ${rollout.soak_seconds} s)`);
  terminal.out(`         ${rollout.message}`);
  for (const client of rollout.clients) terminal.out(`  ${client.client_id.padEnd(24)} ${client.delivery.padEnd(8)} ${client.healthy === null ? "no report" : client.healthy ? "healthy" : "unhealthy"}${client.message === "" ? "" : `  ${client.message}`}`);
}

export function rolloutCommand(env: Env): Command {
  return verbCommand("rollout")
    .description("a staged policy rollout: where it stands, or promote, pause, resume or roll it back (/policy/rollout)")
    .argument("[action]", `one of ${ACTIONS.join(", ")}`, "status")
    .option("-s, --server-url <url>", "the server (default: OPAL_SERVER_URL, else http://localhost:7002)")
    .option("--token <jwt>", "a datasource token (default: OPAL_CLIENT_TOKEN)")
    .option("--json", "print the server's answer as JSON")
    .addHelpText("after", HELP_AFTER)
    .action(async (action: string, flags: Flags) => {
      const terminal = new Terminal(env);
      await runVerb("rollout", terminal, async () => {
        if (!(ACTIONS as readonly string[]).includes(action)) throw new UsageError("action", `${JSON.stringify(action)} is not one of ${ACTIONS.join(", ")}`);
        const server = new ServerConnection(serverUrlFrom(flags.serverUrl, env), tokenFrom(flags.token, undefined, env, "OPAL_CLIENT_TOKEN"));
        try {
          const answer = (action === "status" ? await server.expectOk("GET", "/policy/rollout") : await server.expectOk("POST", `/policy/rollout/${action}`)) as RolloutJson;
          if (flags.json === true) terminal.out(JSON.stringify(answer, null, 2));
          else print(terminal, answer);
          return ExitCode.ok;
        } finally {
          await server.close();
        }
      });
    });
}
