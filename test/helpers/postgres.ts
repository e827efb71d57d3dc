/**
 * A real PostgreSQL server for a test, from the Debian binaries (`npm test` installs them
 * through scripts/ensure-postgres.js): a fresh cluster in a temp dir, on a free loopback
 * port, trust auth for the `postgres` role. PostgreSQL refuses to run as root, so as root
 * the cluster belongs to the `postgres` system user and runs through `runuser`.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chownSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freePort } from "./ports.js";

export interface RunningPostgres {
  /** postgresql://postgres@127.0.0.1:PORT/postgres */
  url: string;
  port: number;
  /** Runs one statement as the `postgres` superuser on the `postgres` database; returns the rows. */
  query<Row extends Record<string, unknown> = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<Row[]>;
  /** Stops the server (fast shutdown, then SIGKILL) and removes its files. */
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

async function postgresBinDir(): Promise<string> {
  // A plain JS script without declarations: imported by URL, typed here.
  const script = new URL("../../scripts/ensure-postgres.js", import.meta.url).href;
  const { findPostgresBin } = (await import(script)) as { findPostgresBin: () => string | undefined };
  const dir = findPostgresBin();
  if (dir === undefined) {
    throw new Error(
      "PostgreSQL server binaries (initdb, postgres) were not found on PATH or under /usr/lib/postgresql: " +
        "run `npm test` (which installs them) or `apt-get install postgresql`.",
    );
  }
  return dir;
}

interface RunAs {
  /** The command line that runs `binary args` as the cluster's owner. */
  command(binary: string, args: string[]): [string, string[]];
  /** Gives a directory to the cluster's owner. */
  own(dir: string): void;
}

function runAs(): RunAs {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) {
    return { command: (binary, args) => [binary, args], own: () => undefined };
  }
  const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
  const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error("cannot find the `postgres` system user (PostgreSQL refuses to run as root)");
  return {
    command: (binary, args) => ["runuser", ["-u", "postgres", "--", binary, ...args]],
    own: (dir) => chownSync(dir, uid, gid),
  };
}

/** Runs a command to completion; rejects with its output when it fails. */
function run(command: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.once("error", reject);
    child.once("exit", (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${command} ${args.join(" ")} failed (${code ?? signal}):\n${output}`));
    });
  });
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/**
 * Signals the server's process group: runuser and the postmaster. (The postmaster's
 * children run in their own sessions; they exit with it, also when it is SIGKILLed.)
 */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

async function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (exited(child)) return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function canQuery(port: number): Promise<boolean> {
  const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "postgres", connectionTimeoutMillis: 1_000 });
  client.on("error", () => undefined);
  try {
    await client.connect();
    await client.query("SELECT 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function startPostgres(): Promise<RunningPostgres> {
  const bin = await postgresBinDir();
  const as = runAs();
  const root = await mkdtemp(join(tmpdir(), "opal-mesh-pg-"));
  const dataDir = join(root, "data");
  const socketDir = join(root, "socket");
  let child: ChildProcess | undefined;
  const killOnExit = (): void => {
    if (child !== undefined && !exited(child)) signalGroup(child, "SIGKILL");
  };
  process.once("exit", killOnExit);

  const cleanUp = async (): Promise<void> => {
    if (child !== undefined && !exited(child)) {
      // SIGINT is PostgreSQL's fast shutdown: it ends open sessions instead of waiting for them.
      signalGroup(child, "SIGINT");
      if (!(await waitExit(child, STOP_TIMEOUT_MS))) {
        signalGroup(child, "SIGKILL");
        await waitExit(child, STOP_TIMEOUT_MS);
      }
    }
    process.off("exit", killOnExit);
    await rm(root, { recursive: true, force: true });
  };

  try {
    await mkdir(socketDir);
    as.own(root);
    as.own(socketDir);
    const [initCommand, initArgs] = as.command(join(bin, "initdb"), ["-D", dataDir, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"]);
    await run(initCommand, initArgs, root);

    // freePort() can race with another process taking the port: try a few.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const args = ["-D", dataDir, "-p", String(port), "-k", socketDir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off"];
      const [command, commandArgs] = as.command(join(bin, "postgres"), args);
      // Its own process group (runuser and the postmaster), so stop() can signal both at once.
      const server = spawn(command, commandArgs, { cwd: root, detached: true, stdio: ["ignore", "pipe", "pipe"] });
      child = server;
      let output = "";
      const collect = (chunk: Buffer): void => {
        output = (output + chunk.toString()).slice(-4_000);
      };
      server.stdout?.on("data", collect);
      server.stderr?.on("data", collect);
      let spawnError: Error | undefined;
      server.once("error", (error) => (spawnError = error));

      const deadline = Date.now() + START_TIMEOUT_MS;
      let ready = false;
      while (!ready) {
        if (spawnError !== undefined) throw spawnError;
        if (exited(server)) break;
        if (Date.now() > deadline) throw new Error(`PostgreSQL did not accept connections on port ${port} within ${START_TIMEOUT_MS} ms:\n${output}`);
        ready = await canQuery(port);
        if (!ready) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      if (!ready) {
        if (attempt < 3 && /could not bind|address already in use/i.test(output)) continue;
        throw new Error(`PostgreSQL exited during start-up (${server.exitCode ?? server.signalCode}):\n${output}`);
      }

      const pool = new pg.Pool({ host: "127.0.0.1", port, user: "postgres", database: "postgres", max: 2 });
      pool.on("error", () => undefined);
      let stopped: Promise<void> | undefined;
      return {
        url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
        port,
        async query<Row extends Record<string, unknown>>(sql: string, params?: unknown[]): Promise<Row[]> {
          return (await pool.query<Row>(sql, params)).rows;
        },
        stop() {
          stopped ??= (async () => {
            await pool.end().catch(() => undefined);
            await cleanUp();
          })();
          return stopped;
        },
      };
    }
  } catch (error) {
    await cleanUp();
    throw error;
  }
}
