/** `opal-mesh obtain-token`: OPAL's verb, a JWT from POST /token with the master token. */
import { type Command, Option } from "commander";
import type { Env } from "../../common/config/env-reader.js";
import { ExitCode, ServerConnection, Terminal, UsageError, parseJsonFlag, runVerb, serverUrlFrom, verbCommand } from "./shared.js";

const UNIT_SECONDS: Record<string, number> = {
  microseconds: 1e-6,
  milliseconds: 1e-3,
  seconds: 1,
  minutes: 60,
  hours: 3_600,
  days: 86_400,
  weeks: 604_800,
};

/**
 * --ttl as the server takes it: seconds or an ISO 8601 duration (passed on), or OPAL's
 * `<n> <unit>` ("365 days", unit as in Python's timedelta) turned into seconds.
 */
export function parseTtlFlag(text: string): number | string {
  const value = text.trim();
  if (/^\d+(\.\d+)?$/.test(value) && Number(value) > 0) return Number(value);
  if (/^P(?=.)(\d+D)?(T(?=.)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$/.test(value)) return value;
  const match = /^(\d+(?:\.\d+)?)\s+([a-z]+)$/i.exec(value);
  const unit = match?.[2]?.toLowerCase();
  const perUnit = unit === undefined ? undefined : (UNIT_SECONDS[unit] ?? UNIT_SECONDS[`${unit}s`]);
  if (match !== null && perUnit !== undefined) {
    const seconds = Math.floor(Number(match[1]) * perUnit);
    if (seconds > 0) return seconds;
  }
  throw new UsageError("--ttl", `expected seconds, an ISO 8601 duration (P30D, PT1H) or "<n> <unit>" (365 days), got ${JSON.stringify(text)}`);
}

interface Flags {
  serverUrl?: string;
  type: string;
  ttl?: string;
  claims: string;
  json?: boolean;
  justTheToken: boolean;
}

const HELP_AFTER = `
Examples:
  $ opal-mesh obtain-token "$OPAL_AUTH_MASTER_TOKEN" --type datasource --ttl P30D
  $ opal-mesh obtain-token "$MASTER" --type client --claims '{"permitted_topics": ["policy_data"]}' --json

Exit codes: 0 issued, 3 the server refused (wrong master token, dev mode), 64 bad flags, 69 unreachable.`;

export function obtainTokenCommand(env: Env): Command {
  return verbCommand("obtain-token")
    .description("obtain a JWT from the server for a client, a data source or a listener, with the master token (as OPAL's obtain-token)")
    .argument("[master-token]", "the server's OPAL_AUTH_MASTER_TOKEN (default: OPAL_MASTER_TOKEN)")
    .option("-s, --server-url <url>", "the server (default: OPAL_SERVER_URL, else http://localhost:7002)")
    .addOption(new Option("--type <type>", "who the token is for").choices(["client", "datasource", "listener"]).default("client"))
    .option("--ttl <ttl>", "lifetime: seconds, ISO 8601 (P30D) or OPAL's \"<n> <unit>\" (default: 365 days)")
    .option("--claims <json>", "claims as a JSON object (permitted_topics, allowed_scopes…)", "{}")
    .option("--json", "print the whole answer (token, type, details) instead of the token alone")
    .option("--no-just-the-token", "OPAL's spelling of --json")
    .addHelpText("after", HELP_AFTER)
    .action(async (positional: string | undefined, flags: Flags) => {
      const terminal = new Terminal(env);
      await runVerb("obtain-token", terminal, async () => {
        const masterToken = [positional, env.OPAL_MASTER_TOKEN].find((value) => value !== undefined && value.trim() !== "");
        if (masterToken === undefined) throw new UsageError("master-token", "give the master token as the argument (or OPAL_MASTER_TOKEN)");
        const claims = parseJsonFlag("--claims", flags.claims);
        if (typeof claims !== "object" || claims === null || Array.isArray(claims)) throw new UsageError("--claims", "expected a JSON object");
        const body: Record<string, unknown> = { type: flags.type, claims };
        if (flags.ttl !== undefined) body.ttl = parseTtlFlag(flags.ttl);
        const server = new ServerConnection(serverUrlFrom(flags.serverUrl, env), masterToken.trim());
        try {
          const answer = (await server.expectOk("POST", "/token", body)) as { token?: string };
          terminal.out(flags.json === true || !flags.justTheToken ? JSON.stringify(answer, null, 2) : String(answer.token));
          return ExitCode.ok;
        } finally {
          await server.close();
        }
      });
    });
}
