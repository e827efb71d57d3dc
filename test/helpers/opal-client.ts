/**
 * The real, unmodified OPAL client (`opal-client` from PyPI, in the venv `npm run opal`
 * builds into the cache) with its own inline real OPA, on free ports. OPAL's client writes
 * to OPAL_POLICY_STORE_URL (default localhost:8181): it is pointed at its own OPA, so
 * several share a machine; its offline backup goes to its own temp dir (the default,
 * /opal/backup/opa.json, would be shared). It runs in its own process group, and its
 * runner starts OPA in a session of its own (start_new_session): stop() ends both, and the
 * OPA is killed by its pid should the client not have ended it.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { request } from "undici";
import { howToGetOpal, opalCommand } from "../../deploy/opal/opal.js";
import { cacheDirFrom } from "../../services/common/config/client-config.js";
import { opaBinary } from "./opa.js";
import { freePort } from "./ports.js";
import { spawnOpal } from "./opal-process.js";
import { waitFor } from "./wait.js";

export interface OpalClientOptions {
  serverUrl: string;
  token?: string;
  scopeId?: string;
  dataTopics?: string[];
  reportUpdates?: boolean;
  /** OPAL_POLICY_SUBSCRIPTION_DIRS (default OPAL's: "."). */
  policySubscriptionDirs?: string[];
  /** Resolve once its OPA answers and its /ready or /healthcheck says ok (default); false: once the process started. */
  waitReady?: boolean;
  env?: Record<string, string>;
}

export interface OpalClient {
  opaUrl: string;
  apiUrl: string;
  /** GET from its OPA's data API; undefined when the document does not exist. */
  data(path: string): Promise<unknown>;
  /** The raw Rego of a module, undefined when OPA has no such module. */
  policy(id: string): Promise<string | undefined>;
  /** Module ids in its OPA, sorted; undefined while OPA does not answer. */
  policyIds(): Promise<string[] | undefined>;
  /** What it printed so far. */
  logs(): string;
  stop(): Promise<void>;
}


/** Every process below `pid` (its OPA among them), read from /proc while they live. */
function descendants(pid: number): number[] {
  const found: number[] = [];
  const visit = (parent: number): void => {
    let children: string[] = [];
    try {
      children = readFileSync(`/proc/${parent}/task/${parent}/children`, "utf8").trim().split(/\s+/).filter((child) => child !== "");
    } catch {
      // It exited meanwhile.
    }
    for (const child of children.map(Number)) {
      found.push(child);
      visit(child);
    }
  };
  visit(pid);
  return found;
}

/** The OPA serving at `addr`, wherever it is in the tree (its client may have exited without it). */
function opaServing(addr: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      if (argv.includes("run") && argv.includes(`--addr=${addr}`)) found.push(Number(entry));
    } catch {
      // It exited meanwhile.
    }
  }
  return found;
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

async function ok(url: string): Promise<boolean> {
  try {
    const response = await request(url, { headersTimeout: 2_000, bodyTimeout: 2_000 });
    await response.body.dump();
    return response.statusCode === 200;
  } catch {
    return false;
  }
}

/** Its output without the access-log lines of our own readiness polls, which would hide the rest. */
function withoutProbes(output: string): string {
  return output
    .split("\n")
    .filter((line) => !/"GET \/(ready|healthcheck) HTTP/.test(line))
    .join("\n");
}

/**
 * Starts several at once; when one fails, the others that started are stopped before the
 * error is thrown (else they would outlive the test and keep its process from exiting).
 */
export async function startOpalClients<const T extends readonly OpalClientOptions[]>(options: T): Promise<{ [K in keyof T]: OpalClient }> {
  const settled = await Promise.allSettled(options.map((each) => startOpalClient(each)));
  const failed = settled.find((result) => result.status === "rejected");
  if (failed === undefined) return settled.map((result) => (result as PromiseFulfilledResult<OpalClient>).value) as { [K in keyof T]: OpalClient };
  await Promise.all(settled.flatMap((result) => (result.status === "fulfilled" ? [result.value.stop()] : [])));
  throw failed.reason;
}

export async function startOpalClient(options: OpalClientOptions): Promise<OpalClient> {
  const cacheDir = cacheDirFrom(process.env);
  const command = opalCommand(cacheDir, "opal-client");
  if (command === undefined) throw new Error(howToGetOpal(cacheDir, "opal-client"));
  const opa = await opaBinary();
  const [opaPort, apiPort] = [await freePort(), await freePort()];
  const opaAddr = `127.0.0.1:${opaPort}`;
  const opaUrl = `http://${opaAddr}`;
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const work = mkdtempSync(join(tmpdir(), "opal-mesh-opal-client-"));
  const env: Record<string, string> = {
    PATH: `${dirname(opa)}:${process.env.PATH ?? ""}`,
    HOME: process.env.HOME ?? "/tmp",
    OPAL_SERVER_URL: options.serverUrl,
    OPAL_INLINE_OPA_EXEC_PATH: opa,
    OPAL_INLINE_OPA_CONFIG: JSON.stringify({ addr: opaAddr }),
    OPAL_POLICY_STORE_URL: opaUrl,
    OPAL_CLIENT_API_SERVER_HOST: "127.0.0.1",
    OPAL_CLIENT_API_SERVER_PORT: String(apiPort),
    OPAL_SHOULD_REPORT_ON_DATA_UPDATES: String(options.reportUpdates ?? false),
    OPAL_LOG_COLORIZE: "false",
    OPAL_STORE_BACKUP_PATH: join(work, "backup", "opa.json"),
    ...(options.policySubscriptionDirs === undefined ? {} : { OPAL_POLICY_SUBSCRIPTION_DIRS: options.policySubscriptionDirs.join(":") }),
    ...(options.token === undefined ? {} : { OPAL_CLIENT_TOKEN: options.token }),
    ...(options.scopeId === undefined ? {} : { OPAL_SCOPE_ID: options.scopeId }),
    ...(options.dataTopics === undefined ? {} : { OPAL_DATA_TOPICS: options.dataTopics.join(",") }),
    ...options.env,
  };
  const { child, logs, exited } = spawnOpal(command, work, env);
  const get = async (path: string): Promise<{ status: number; body: unknown }> => {
    // Bounded: a request that never answers fails the caller's poll instead of hanging it.
    const response = await request(`${opaUrl}${path}`, { headersTimeout: 10_000, bodyTimeout: 10_000 });
    return { status: response.statusCode, body: await response.body.json() };
  };
  const client: OpalClient = {
    opaUrl,
    apiUrl,
    async data(path) {
      return ((await get(`/v1/data${path}`)).body as { result?: unknown }).result;
    },
    async policy(id) {
      const answer = await get(`/v1/policies/${id}`);
      return answer.status === 200 ? (answer.body as { result: { raw: string } }).result.raw : undefined;
    },
    async policyIds() {
      try {
        return ((await get("/v1/policies")).body as { result: Array<{ id: string }> }).result.map((policy) => policy.id).sort();
      } catch {
        return undefined;
      }
    },
    logs,
    async stop() {
      const pid = child.pid as number;
      const below = child.exitCode === null && child.signalCode === null ? descendants(pid) : [];
      if (child.exitCode === null && child.signalCode === null) {
        kill(-pid, "SIGTERM"); // the client stops its OPA's group on SIGTERM
        const timer = setTimeout(() => kill(-pid, "SIGKILL"), 5_000);
        await exited;
        clearTimeout(timer);
      }
      kill(-pid, "SIGKILL");
      for (const orphan of new Set([...below, ...opaServing(opaAddr)])) kill(orphan, "SIGKILL");
      rmSync(work, { recursive: true, force: true });
    },
  };
  if (options.waitReady !== false) {
    await waitFor(
      async () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the OPAL client exited (${String(child.exitCode ?? child.signalCode)})`);
        return (await client.policyIds()) !== undefined && ((await ok(`${apiUrl}/ready`)) || (await ok(`${apiUrl}/healthcheck`)));
      },
      {
        timeoutMs: 60_000,
        intervalMs: 100,
        message: () => `the OPAL client's OPA to answer and its /ready or /healthcheck to say ok\n${withoutProbes(logs()).slice(-6000)}`,
      },
    ).catch(async (error: unknown) => {
      await client.stop();
      throw error;
    });
  }
  return client;
}
