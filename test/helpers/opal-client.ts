/**
 * The real, unmodified OPAL client (`opal-client` from PyPI, in the venv `npm run opal`
 * builds into the cache) with its own inline real OPA, on free ports. OPAL's client writes
 * to OPAL_POLICY_STORE_URL (default localhost:8181): it is pointed at its own OPA, so
 * several share a machine. It runs in its own process group: stop() ends it and its OPA.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { dirname } from "node:path";
import { request } from "undici";
import { opalCommand } from "../../deploy/opal/opal.js";
import { cacheDirFrom } from "../../services/common/config/client-config.js";
import { opaBinary } from "./opa.js";
import { freePort } from "./ports.js";
import { waitFor } from "./wait.js";

export interface OpalClientOptions {
  serverUrl: string;
  token?: string;
  scopeId?: string;
  dataTopics?: string[];
  reportUpdates?: boolean;
  /** Resolve once its OPA answers (default); false: once the process started. */
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

const MAX_LOG = 1 << 20;

export async function startOpalClient(options: OpalClientOptions): Promise<OpalClient> {
  const command = opalCommand(cacheDirFrom(process.env), "opal-client");
  if (command === undefined) throw new Error("the real OPAL client is not installed: run `npm run opal` (npm test does it before the integration tests) to install opal-client from PyPI into the cache");
  const opa = await opaBinary();
  const [opaPort, apiPort] = [await freePort(), await freePort()];
  const opaUrl = `http://127.0.0.1:${opaPort}`;
  const env: Record<string, string> = {
    PATH: `${dirname(opa)}:${process.env.PATH ?? ""}`,
    HOME: process.env.HOME ?? "/tmp",
    OPAL_SERVER_URL: options.serverUrl,
    OPAL_INLINE_OPA_EXEC_PATH: opa,
    OPAL_INLINE_OPA_CONFIG: JSON.stringify({ addr: `127.0.0.1:${opaPort}` }),
    OPAL_POLICY_STORE_URL: opaUrl,
    OPAL_CLIENT_API_SERVER_HOST: "127.0.0.1",
    OPAL_CLIENT_API_SERVER_PORT: String(apiPort),
    OPAL_SHOULD_REPORT_ON_DATA_UPDATES: String(options.reportUpdates ?? false),
    OPAL_LOG_COLORIZE: "false",
    ...(options.token === undefined ? {} : { OPAL_CLIENT_TOKEN: options.token }),
    ...(options.scopeId === undefined ? {} : { OPAL_SCOPE_ID: options.scopeId }),
    ...(options.dataTopics === undefined ? {} : { OPAL_DATA_TOPICS: options.dataTopics.join(",") }),
    ...options.env,
  };
  const child: ChildProcess = spawn(command, ["run"], { env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const keep = (chunk: Buffer): void => {
    output += chunk.toString();
    if (output.length > MAX_LOG) output = output.slice(-MAX_LOG / 2);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const get = async (path: string): Promise<{ status: number; body: unknown }> => {
    const response = await request(`${opaUrl}${path}`);
    return { status: response.statusCode, body: await response.body.json() };
  };
  const client: OpalClient = {
    opaUrl,
    apiUrl: `http://127.0.0.1:${apiPort}`,
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
    logs: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const group = (signal: NodeJS.Signals): void => {
        try {
          process.kill(-(child.pid as number), signal);
        } catch {
          // already gone
        }
      };
      group("SIGTERM");
      const timer = setTimeout(() => group("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
      group("SIGKILL"); // its OPA, should it outlive the client
    },
  };
  if (options.waitReady !== false) {
    await waitFor(async () => child.exitCode === null && (await client.policyIds()) !== undefined, {
      timeoutMs: 60_000,
      message: () => `the OPAL client's OPA to answer (exit ${String(child.exitCode)})\n${output.slice(-3000)}`,
    }).catch(async (error: unknown) => {
      await client.stop();
      throw error;
    });
  }
  return client;
}
