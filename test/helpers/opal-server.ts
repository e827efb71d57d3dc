/**
 * The real, unmodified OPAL server (`opal-server` from PyPI, in the venv `npm run opal --
 * --server` builds into the cache), for comparing opal-mesh with OPAL itself: one worker
 * (OPAL's CLI otherwise starts 2×CPU+1 uvicorn workers, which without a broadcaster do not
 * see each other's publishes), no broadcaster, a local git policy repo (a plain path: OPAL
 * clones it with pygit2), its own clone dir, leader lock and working dir (the defaults are
 * shared paths under /tmp and ./), on a free port. It runs in its own process group:
 * stop() ends it and whatever it started.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "undici";
import { howToGetOpal, opalCommand } from "../../deploy/opal/opal.js";
import { cacheDirFrom } from "../../services/common/config/client-config.js";
import { freePort } from "./ports.js";
import { spawnOpal } from "./opal-process.js";
import { waitFor } from "./wait.js";

export interface OpalServerOptions {
  /** The policy repo: a local path (or any URL OPAL can clone). */
  policyRepo: string;
  branch?: string;
  /** Seconds between polls of the repo; 0 (OPAL's default) polls never. */
  pollingIntervalSeconds?: number;
  /** OPAL_DATA_CONFIG_SOURCES; default: no baseline entries. */
  dataConfigSources?: unknown;
  /** Secure mode: PEM keys and the master token for POST /token. */
  auth?: { privatePem: string; publicPem: string; masterToken: string };
  /** Resolve once the repo is cloned and `/policy` answers (default); false: once `/` answers. */
  waitForPolicy?: boolean;
  env?: Record<string, string>;
}

export interface OpalServer {
  url: string;
  /** What it printed so far. */
  logs(): string;
  stop(): Promise<void>;
}


async function status(url: string, headers: Record<string, string> = {}): Promise<number> {
  const response = await request(url, { headers, headersTimeout: 5_000, bodyTimeout: 5_000 });
  await response.body.dump();
  return response.statusCode;
}

/** A client token from the server's own POST /token, to read /policy in secure mode. */
async function clientToken(url: string, masterToken: string): Promise<string> {
  const response = await request(`${url}/token`, { method: "POST", headers: { authorization: `Bearer ${masterToken}`, "content-type": "application/json" }, body: JSON.stringify({ type: "client" }) });
  const body = (await response.body.json()) as { token?: string };
  if (response.statusCode !== 200 || body.token === undefined) throw new Error(`POST /token answered ${response.statusCode}`);
  return body.token;
}

export async function startOpalServer(options: OpalServerOptions): Promise<OpalServer> {
  const cacheDir = cacheDirFrom(process.env);
  const command = opalCommand(cacheDir, "opal-server");
  if (command === undefined) throw new Error(howToGetOpal(cacheDir, "opal-server"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const work = mkdtempSync(join(tmpdir(), "opal-mesh-opal-server-"));
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "/tmp",
    OPAL_SERVER_HOST: "127.0.0.1",
    OPAL_SERVER_BIND_PORT: String(port),
    OPAL_SERVER_WORKER_COUNT: "1",
    UVICORN_NUM_WORKERS: "1",
    OPAL_POLICY_REPO_URL: options.policyRepo,
    OPAL_POLICY_REPO_MAIN_BRANCH: options.branch ?? "main",
    OPAL_POLICY_REPO_POLLING_INTERVAL: String(options.pollingIntervalSeconds ?? 0),
    OPAL_POLICY_REPO_CLONE_PATH: join(work, "clone"),
    OPAL_LEADER_LOCK_FILE_PATH: join(work, "leader.lock"),
    OPAL_BASE_DIR: join(work, "state"),
    OPAL_AUTH_JWKS_STATIC_DIR: join(work, "jwks"),
    OPAL_DATA_CONFIG_SOURCES: JSON.stringify(options.dataConfigSources ?? { config: { entries: [] } }),
    OPAL_LOG_COLORIZE: "false",
    OPAL_LOG_LEVEL: "INFO",
    ...(options.auth === undefined
      ? {}
      : { OPAL_AUTH_PRIVATE_KEY: options.auth.privatePem, OPAL_AUTH_PUBLIC_KEY: options.auth.publicPem, OPAL_AUTH_PUBLIC_KEY_FORMAT: "pem", OPAL_AUTH_MASTER_TOKEN: options.auth.masterToken }),
    ...options.env,
  };
  const { child, logs, exited } = spawnOpal(command, work, env);
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  const server: OpalServer = {
    url,
    logs,
    async stop() {
      const group = (signal: NodeJS.Signals): void => {
        try {
          process.kill(-(child.pid as number), signal);
        } catch {
          // The group is gone.
        }
      };
      if (running()) {
        group("SIGTERM");
        const timer = setTimeout(() => group("SIGKILL"), 5_000);
        await exited;
        clearTimeout(timer);
      }
      group("SIGKILL"); // a git or other child that outlived it
      rmSync(work, { recursive: true, force: true });
    },
  };
  try {
    const died = (): Error => new Error(`OPAL's server exited (${String(child.exitCode ?? child.signalCode)}):\n${logs().slice(-3000)}`);
    await waitFor(
      async () => {
        if (!running()) throw died();
        return (await status(`${url}/`)) === 200;
      },
      { timeoutMs: 60_000, intervalMs: 100, message: () => `OPAL's server at ${url} to answer\n${logs().slice(-3000)}` },
    );
    if (options.waitForPolicy !== false) {
      const headers: Record<string, string> = options.auth === undefined ? {} : { authorization: `Bearer ${await clientToken(url, options.auth.masterToken)}` };
      // 503 until the repo is cloned.
      await waitFor(
        async () => {
          if (!running()) throw died();
          return (await status(`${url}/policy?path=.`, headers)) === 200;
        },
        { timeoutMs: 60_000, intervalMs: 100, message: () => `OPAL's server to have cloned ${options.policyRepo}\n${logs().slice(-3000)}` },
      );
    }
  } catch (error) {
    await server.stop();
    throw error;
  }
  return server;
}
