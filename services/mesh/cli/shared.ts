/**
 * What the `opal-mesh` verbs that talk to a server share: exit codes, flag errors, the
 * HTTP call with the bearer token, and terminal output (colors only on a TTY).
 */
import { Command, type CommanderError } from "commander";
import { Agent, request } from "undici";
import type { Env } from "../../common/config/env-reader.js";

/** Exit codes of the verbs (64 and 69 as in sysexits.h). */
export const ExitCode = {
  ok: 0,
  /** A client failed the update (or: the update is unknown). */
  failed: 1,
  /** Clients were still pending when --timeout ran out. */
  timeout: 2,
  /** The server refused the request (4xx/5xx): its detail is printed. */
  refused: 3,
  /** Bad flags: nothing was sent. */
  usage: 64,
  /** The server could not be reached. */
  unavailable: 69,
} as const;

/** A bad flag, found before any request. */
export class UsageError extends Error {
  override readonly name = "UsageError";
  constructor(
    readonly flag: string,
    reason: string,
  ) {
    super(`${flag}: ${reason}`);
  }
}

/** The server answered with an error status. */
export class RefusedError extends Error {
  override readonly name = "RefusedError";
  constructor(
    readonly status: number,
    readonly detail: unknown,
  ) {
    super(`the server refused the request (HTTP ${status}):\n${formatDetail(detail)}`);
  }
}

export class UnreachableError extends Error {
  override readonly name = "UnreachableError";
  constructor(url: string, cause: unknown) {
    const reason = cause instanceof Error ? (cause as Error & { code?: string }).code ?? cause.message : String(cause);
    super(`cannot reach ${url}: ${reason}`, { cause });
  }
}

/** FastAPI's `detail`: a string, or a list of {loc, msg} (422), one line per field. */
export function formatDetail(detail: unknown): string {
  if (typeof detail === "string") return `  ${detail}`;
  if (Array.isArray(detail)) {
    return detail
      .map((item: unknown) => {
        const { loc, msg } = (item ?? {}) as { loc?: unknown; msg?: unknown };
        const where = Array.isArray(loc) ? loc.filter((part) => part !== "body").join(".") : "";
        return `  ${where === "" ? "" : `${where}: `}${typeof msg === "string" ? msg : JSON.stringify(item)}`;
      })
      .join("\n");
  }
  return `  ${JSON.stringify(detail)}`;
}

export function parseJsonFlag(flag: string, text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new UsageError(flag, `not valid JSON (${(error as Error).message})`);
  }
}

export function positiveNumberFlag(flag: string, text: string): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value) || value <= 0) throw new UsageError(flag, `expected a positive number, got ${JSON.stringify(text)}`);
  return value;
}

/** --server-url, else the first of OPAL_SERVER_URL (a client may list several), else OPAL's default. */
export function serverUrlFrom(flag: string | undefined, env: Env): string {
  const fromEnv = env.OPAL_SERVER_URL?.trim();
  let url = flag ?? "http://localhost:7002";
  if (flag === undefined && fromEnv !== undefined && fromEnv !== "") {
    let list: unknown = fromEnv.split(",");
    if (fromEnv.startsWith("[")) {
      try {
        list = JSON.parse(fromEnv) as unknown;
      } catch {
        throw new UsageError("OPAL_SERVER_URL", "not a URL, a comma-separated list or a JSON list of URLs");
      }
    }
    const first: unknown = Array.isArray(list) ? list[0] : undefined;
    if (typeof first === "string") url = first.trim();
  }
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new Error("scheme");
  } catch {
    throw new UsageError(flag === undefined ? "OPAL_SERVER_URL" : "--server-url", `not an http(s) URL: ${JSON.stringify(url)}`);
  }
  return url.replace(/\/+$/, "");
}

/** The first of: the flag, the positional argument, the environment variable. */
export function tokenFrom(flag: string | undefined, positional: string | undefined, env: Env, variable: string): string | undefined {
  const token = flag ?? positional ?? env[variable];
  return token === undefined || token.trim() === "" ? undefined : token.trim();
}

export interface HttpAnswer {
  status: number;
  json: unknown;
}

/** JSON calls to one server with one bearer token; `close()` frees its connections. */
export class ServerConnection {
  private readonly agent = new Agent({ connect: { timeout: 10_000 } });

  constructor(
    readonly serverUrl: string,
    private readonly token: string | undefined,
  ) {}

  async call(method: "GET" | "POST", path: string, body?: unknown): Promise<HttpAnswer> {
    const url = `${this.serverUrl}${path}`;
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    let response;
    try {
      response = await request(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), dispatcher: this.agent });
    } catch (error) {
      throw new UnreachableError(this.serverUrl, error);
    }
    const text = await response.body.text();
    let json: unknown = text;
    try {
      json = text === "" ? undefined : (JSON.parse(text) as unknown);
    } catch {
      // not JSON (a proxy's error page): keep the text
    }
    return { status: response.statusCode, json };
  }

  /** The body of a 2xx answer; anything else is refused with the server's detail. */
  async expectOk(method: "GET" | "POST", path: string, body?: unknown): Promise<unknown> {
    const answer = await this.call(method, path, body);
    if (answer.status < 200 || answer.status >= 300) throw new RefusedError(answer.status, detailOf(answer.json));
    return answer.json;
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

export function detailOf(json: unknown): unknown {
  return typeof json === "object" && json !== null && "detail" in json ? (json).detail : json;
}

const ANSI = { red: 31, green: 32, yellow: 33, cyan: 36, bold: 1, dim: 2 } as const;
export type Color = keyof typeof ANSI;

/** stdout for results, stderr for progress and errors; colors only where a person looks. */
export class Terminal {
  constructor(
    private readonly env: Env,
    readonly stdout: NodeJS.WriteStream = process.stdout,
    readonly stderr: NodeJS.WriteStream = process.stderr,
  ) {}

  colorsOn(stream: NodeJS.WriteStream): boolean {
    return stream.isTTY === true && (this.env.NO_COLOR ?? "") === "";
  }

  paint(stream: NodeJS.WriteStream, color: Color, text: string): string {
    return this.colorsOn(stream) ? `\u001b[${ANSI[color]}m${text}\u001b[0m` : text;
  }

  out(line: string): void {
    this.stdout.write(`${line}\n`);
  }

  err(line: string): void {
    this.stderr.write(`${line}\n`);
  }
}

/**
 * A verb's command: commander's own flag errors exit 64 like ours; the action returns an
 * exit code, and known errors become a message and their code (no stack trace).
 */
export function verbCommand(name: string): Command {
  return new Command(name)
    .showHelpAfterError(`(opal-mesh ${name} --help shows the flags)`)
    .exitOverride((error: CommanderError) => {
      process.exit(error.exitCode === 0 ? 0 : ExitCode.usage);
    });
}

export async function runVerb(name: string, terminal: Terminal, action: () => Promise<number>): Promise<void> {
  let code: number;
  try {
    code = await action();
  } catch (error) {
    const say = (message: string): void => terminal.err(`${terminal.paint(terminal.stderr, "red", `opal-mesh ${name}:`)} ${message}`);
    if (error instanceof UsageError) {
      say(error.message);
      code = ExitCode.usage;
    } else if (error instanceof RefusedError) {
      say(error.message);
      code = ExitCode.refused;
    } else if (error instanceof UnreachableError) {
      say(error.message);
      code = ExitCode.unavailable;
    } else {
      throw error;
    }
  }
  process.exitCode = code;
}
