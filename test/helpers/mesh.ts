/**
 * Starts the real embedded server and real clients (each with a real inline OPA) in the
 * test process, on free ports.
 */
import { isDeepStrictEqual } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { request } from "undici";
import { DistributorService } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { PolicyService } from "../../gen/opal/mesh/v1/policy_pb.js";
import { TriggerService } from "../../gen/opal/mesh/v1/trigger_pb.js";
import type { ClientAgent } from "../../services/client/agent.js";
import { loadClientConfig } from "../../services/common/config/client-config.js";
import type { Env } from "../../services/common/config/env-reader.js";
import { loadServerConfig } from "../../services/common/config/server-config.js";
import { createLogger, type Logger } from "../../services/common/logger.js";
import { createClientAgent } from "../../services/client/agent.js";
import { clientAgentOptions } from "../../services/mesh/client-command.js";
import { EmbeddedServer } from "../../services/mesh/embedded-server.js";
import { opaBinary } from "./opa.js";
import { freePort } from "./ports.js";
import { waitFor } from "./wait.js";

export function testLogger(name: string): Logger {
  return createLogger({ level: process.env.TEST_LOG_LEVEL === undefined ? "error" : (process.env.TEST_LOG_LEVEL as "info"), format: "json", name });
}

/** A debug-level logger (with the production redaction) whose lines are kept, to look for secrets in them. */
export function capturingLogger(name: string, lines: string[]): Logger {
  return createLogger({ level: "debug", format: "json", name }, { write: (line: string) => void lines.push(line) });
}

export interface RunningServer {
  server: EmbeddedServer;
  url: string;
  trigger: ReturnType<typeof createClient<typeof TriggerService>>;
  distributor: ReturnType<typeof createClient<typeof DistributorService>>;
  /** PolicyService as clients reach it (through the distributor's bundle cache). */
  policy: ReturnType<typeof createClient<typeof PolicyService>>;
  stop(): Promise<void>;
}

export async function startServer(env: Env = {}, logger: Logger = testLogger("server")): Promise<RunningServer> {
  const config = loadServerConfig({ OPAL_SERVER_BIND_PORT: "0", OPAL_MESH_STREAM_PORT: "0", ...env });
  const server = new EmbeddedServer(config, logger);
  const controller = new AbortController();
  await server.start(controller.signal);
  const transport = createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" });
  return {
    server,
    url: server.url,
    trigger: createClient(TriggerService, transport),
    distributor: createClient(DistributorService, transport),
    policy: createClient(PolicyService, transport),
    async stop() {
      controller.abort();
      await server.stop();
    },
  };
}

export interface RunningClient {
  agent: ClientAgent;
  opaUrl: string;
  apiUrl: string;
  /** GET from OPA's data API; undefined when the document does not exist. */
  read(path: string): Promise<unknown>;
  stop(): Promise<void>;
}

export async function startClient(serverUrl: string, env: Env = {}, moduleBaseDir = process.cwd(), logger?: Logger): Promise<RunningClient> {
  const opaPort = await freePort();
  const config = loadClientConfig({
    OPAL_SERVER_URL: serverUrl,
    OPAL_CLIENT_API_SERVER_PORT: "0",
    OPAL_INLINE_OPA_EXEC_PATH: await opaBinary(),
    OPAL_INLINE_OPA_CONFIG: JSON.stringify({ addr: `127.0.0.1:${opaPort}` }),
    OPAL_DATA_UPDATER_CONN_RETRY: JSON.stringify({ wait_strategy: "fixed", wait_time: 0.05, attempts: 2 }),
    PATH: process.env.PATH,
    ...env,
  });
  const options = await clientAgentOptions(config, logger ?? testLogger(config.clientId), process.env, moduleBaseDir);
  const agent = await createClientAgent(options);
  const controller = new AbortController();
  await agent.start(controller.signal);
  const opaUrl = agent.storeUrl;
  return {
    agent,
    opaUrl,
    apiUrl: `${config.apiTls === undefined ? "http" : "https"}://127.0.0.1:${agent.apiPort}`,
    async read(path: string) {
      const response = await request(`${opaUrl}/v1/data${path}`);
      return ((await response.body.json()) as { result?: unknown }).result;
    },
    async stop() {
      controller.abort();
      await agent.stop();
      await options.tracing.shutdown();
    },
  };
}

/** Waits until the client loaded its policy and every baseline source. */
export async function waitReady(client: RunningClient, timeoutMs = 20_000): Promise<void> {
  await waitFor(() => client.agent.health.isReady(), { timeoutMs, message: () => `client ready: ${JSON.stringify(client.agent.health.report())}` });
}

/** Waits until an OPA document equals the expected value. */
export async function waitForData(client: RunningClient, path: string, expected: unknown, timeoutMs = 15_000): Promise<void> {
  let last: unknown;
  await waitFor(
    async () => {
      last = await client.read(path);
      return isDeepStrictEqual(last, expected);
    },
    { timeoutMs, message: () => `OPA ${path} to be ${JSON.stringify(expected)}, last ${JSON.stringify(last)}` },
  );
}

/** Asks OPA for a decision at a rule path (e.g. "app/rbac/allow"). */
export async function decide(client: RunningClient, rule: string, input: unknown): Promise<unknown> {
  const response = await request(`${client.opaUrl}/v1/data/${rule}`, { method: "POST", body: JSON.stringify({ input }) });
  return ((await response.body.json()) as { result?: unknown }).result;
}

/** Module ids loaded in the client's OPA, sorted. */
export async function policyIds(client: RunningClient): Promise<string[]> {
  const response = await request(`${client.opaUrl}/v1/policies`);
  return ((await response.body.json()) as { result: Array<{ id: string }> }).result.map((policy) => policy.id).sort();
}
