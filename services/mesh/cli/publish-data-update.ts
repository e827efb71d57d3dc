/** `opal-mesh publish-data-update`: OPAL's verb, flag for flag, plus --wait for delivery and --bulk for NDJSON over one stream. */
import { createReadStream } from "node:fs";
import type { Readable } from "node:stream";
import { type Command } from "commander";
import type { Env } from "../../common/config/env-reader.js";
import { BulkReport, publishBulk } from "./bulk-publish.js";
import { deliveryExitCode, printDelivery, watchDelivery } from "./delivery-watch.js";
import { StreamPublisher, statusName } from "./publish-stream-client.js";
import { ExitCode, ServerConnection, Terminal, UsageError, parseJsonFlag, positiveNumberFlag, runVerb, serverUrlFrom, tokenFrom, verbCommand } from "./shared.js";

export interface PublishFlags {
  srcUrl?: string;
  topic?: string[];
  dstPath: string;
  saveMethod: string;
  data?: string;
  entries?: string;
  srcConfig?: string;
  reason?: string;
}

const SAVE_METHODS = ["PUT", "PATCH", "DELETE"];
/** Flags that shape the single entry: meaningless without it. */
const SINGLE_ENTRY_FLAGS = [
  ["topic", "--topic"],
  ["dstPath", "--dst-path"],
  ["saveMethod", "--save-method"],
  ["srcConfig", "--src-config"],
] as const;

/**
 * OPAL's DataUpdate body from the flags: the --entries list, then the single entry of
 * --src-url/--data (or a DELETE at --dst-path). `given` names the flags set on the command line.
 */
export function buildDataUpdate(flags: PublishFlags, given: (flag: keyof PublishFlags) => boolean): { entries: unknown[]; reason?: string } {
  const entries: unknown[] = [];
  if (flags.entries !== undefined) {
    const list = parseJsonFlag("--entries", flags.entries);
    if (!Array.isArray(list)) throw new UsageError("--entries", "expected a JSON list of entries, like [{\"url\": ..., \"dst_path\": ...}]");
    entries.push(...(list as unknown[]));
  }
  const saveMethod = flags.saveMethod.trim().toUpperCase();
  if (!SAVE_METHODS.includes(saveMethod)) throw new UsageError("--save-method", `expected PUT, PATCH or DELETE, got ${JSON.stringify(flags.saveMethod)}`);
  const single = flags.srcUrl !== undefined || flags.data !== undefined || (given("saveMethod") && saveMethod === "DELETE");
  if (single) {
    const entry: Record<string, unknown> = { topics: flags.topic ?? ["policy_data"], dst_path: flags.dstPath, save_method: saveMethod };
    if (flags.srcUrl !== undefined) entry.url = flags.srcUrl;
    if (flags.data !== undefined) entry.data = parseJsonFlag("--data", flags.data);
    if (flags.srcConfig !== undefined) {
      const config = parseJsonFlag("--src-config", flags.srcConfig);
      if (typeof config !== "object" || config === null || Array.isArray(config)) throw new UsageError("--src-config", "expected a JSON object (a fetcher config)");
      entry.config = config;
    }
    entries.push(entry);
  } else {
    const stray = SINGLE_ENTRY_FLAGS.find(([key]) => given(key));
    if (stray !== undefined) throw new UsageError(stray[1], "shapes the single entry, which needs --src-url or --data (or --save-method DELETE)");
  }
  if (entries.length === 0) throw new UsageError("--src-url/--data/--entries", "nothing to publish: give --src-url or --data (one entry), or --entries");
  return flags.reason === undefined ? { entries } : { entries, reason: flags.reason };
}

interface CommandFlags extends PublishFlags {
  serverUrl?: string;
  serverRoute: string;
  token?: string;
  wait?: boolean;
  timeout: string;
  bulk?: string;
}

/** Flags that make the one update of the plain mode: meaningless with --bulk. */
const UPDATE_FLAGS = [
  ["srcUrl", "--src-url"],
  ["data", "--data"],
  ["entries", "--entries"],
  ["reason", "--reason"],
  ...SINGLE_ENTRY_FLAGS,
] as const;

/** Opens --bulk's input before anything is sent: a missing file is a usage error. */
async function openBulkInput(path: string): Promise<Readable> {
  if (path === "-") return process.stdin;
  const stream = createReadStream(path);
  await new Promise<void>((resolve, reject) => {
    stream.once("open", () => resolve());
    stream.once("error", (error) => reject(new UsageError("--bulk", `cannot read ${JSON.stringify(path)}: ${(error as NodeJS.ErrnoException).code ?? error.message}`)));
  });
  return stream;
}

/** --bulk: every line over one PublishStream; the report's lines on stdout, its exit code. */
async function publishBulkFile(flags: CommandFlags, given: (flag: keyof CommandFlags) => boolean, terminal: Terminal, env: Env, positionalToken: string | undefined): Promise<number> {
  const stray = UPDATE_FLAGS.find(([key]) => given(key));
  if (stray !== undefined) throw new UsageError(stray[1], "makes the one update of the plain mode; with --bulk every line is a whole DataUpdate");
  const timeoutMs = positiveNumberFlag("--timeout", flags.timeout) * 1000;
  const serverUrl = serverUrlFrom(flags.serverUrl, env);
  const input = await openBulkInput(flags.bulk ?? "-");
  const publisher = new StreamPublisher({ url: serverUrl, token: tokenFrom(flags.token, positionalToken, env, "OPAL_CLIENT_TOKEN") });
  const report = new BulkReport();
  try {
    await publishBulk(input, publisher, { wait: flags.wait === true, timeoutMs }, report);
    const status = await publisher.end();
    for (const line of report.lines(flags.wait === true)) terminal.out(line);
    if (statusName(status.code) === "OK") return report.exitCode();
    terminal.err(`${terminal.paint(terminal.stderr, "red", "opal-mesh publish-data-update:")} the stream to ${serverUrl} ended ${statusName(status.code)}: ${status.details}`);
    return statusName(status.code) === "UNAVAILABLE" ? ExitCode.unavailable : ExitCode.refused;
  } finally {
    publisher.close();
  }
}

const HELP_AFTER = `
Examples:
  $ opal-mesh publish-data-update --src-url https://api/users -t policy_data --dst-path /users
  $ opal-mesh publish-data-update --data '{"active": false}' --dst-path /users/bob --wait
  $ opal-mesh publish-data-update --entries '[{"url": "https://api/roles", "dst_path": "/roles"}]' --reason sync

  $ opal-mesh publish-data-update --bulk updates.ndjson --wait    # one DataUpdate JSON per line, over one stream
  $ producer | opal-mesh publish-data-update --bulk -

Exit codes: 0 published (with --wait: applied by every addressed client), 1 a client failed
it, 2 clients still pending at --timeout, 3 the server refused it (--bulk: any line), 64 bad
flags (nothing sent), 69 the server is unreachable.`;

export function publishDataUpdateCommand(env: Env): Command {
  return verbCommand("publish-data-update")
    .description("publish a DataUpdate through the server: one entry from --src-url/--data and its flags, a list from --entries, or both (as OPAL's opal-client publish-data-update)")
    .argument("[token]", "the server's JWT (a datasource token, see obtain-token); also --token or OPAL_CLIENT_TOKEN")
    .option("--src-url <url>", "[single entry] where clients fetch the data")
    .option("-t, --topic <topic>", "[single entry] topic clients subscribe to; repeat for several (default: policy_data)", (value: string, previous: string[] | undefined) => [...(previous ?? []), value])
    .option("--dst-path <path>", "[single entry] where the data goes in OPA's data tree", "")
    .option("--save-method <method>", "[single entry] PUT, PATCH (data is a JSON Patch) or DELETE", "PUT")
    .option("--data <json>", "[single entry] inline data as JSON (nothing is fetched)")
    .option("--src-config <json>", "[single entry] fetcher config as JSON (headers, method, fetcher…)")
    .option("-e, --entries <json>", "a JSON list of whole DataSourceEntry objects")
    .option("--reason <text>", "why the data changed (shown in logs and reports)")
    .option("-s, --server-url <url>", "the server (default: OPAL_SERVER_URL, else http://localhost:7002)")
    .option("--server-route <route>", "the server's publish route", "/data/config")
    .option("--token <jwt>", "the server's JWT (instead of the positional argument)")
    .option("--wait", "wait until every addressed client applied the update (or failed it), with progress")
    .option("--timeout <seconds>", "how long --wait waits", "30")
    .option("--bulk <file>", "NDJSON, one OPAL DataUpdate JSON object per line (- for stdin), all sent over one PublishStream; refused lines are reported with their numbers")
    .addHelpText("after", HELP_AFTER)
    .action(async (positionalToken: string | undefined, flags: CommandFlags, command: Command) => {
      const terminal = new Terminal(env);
      await runVerb("publish-data-update", terminal, async () => {
        if (flags.bulk !== undefined) return publishBulkFile(flags, (flag) => command.getOptionValueSource(flag) === "cli", terminal, env, positionalToken);
        const update = buildDataUpdate(flags, (flag) => command.getOptionValueSource(flag) === "cli");
        const timeoutMs = positiveNumberFlag("--timeout", flags.timeout) * 1000;
        const server = new ServerConnection(serverUrlFrom(flags.serverUrl, env), tokenFrom(flags.token, positionalToken, env, "OPAL_CLIENT_TOKEN"));
        try {
          const published = (await server.expectOk("POST", flags.serverRoute, update)) as { id?: string; position?: number };
          const updateId = published.id ?? "";
          terminal.out(`${terminal.paint(terminal.stdout, "green", "published")} update ${updateId} (position ${published.position ?? "?"}, ${update.entries.length} ${update.entries.length === 1 ? "entry" : "entries"})`);
          if (flags.wait !== true) return ExitCode.ok;
          const outcome = await watchDelivery(server, terminal, updateId, { timeoutMs, unknownIsFinal: false });
          if (outcome.delivery === undefined) {
            terminal.out(`update ${updateId}: no distributor dispatched it within ${flags.timeout} s`);
          } else {
            printDelivery(terminal, updateId, outcome.delivery, { everyClient: false });
            if (outcome.timedOut && outcome.delivery.pending > 0) terminal.out(`timed out after ${flags.timeout} s with ${outcome.delivery.pending} client(s) pending`);
          }
          return deliveryExitCode(outcome.delivery);
        } finally {
          await server.close();
        }
      });
    });
}
