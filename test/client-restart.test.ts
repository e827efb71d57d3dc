/**
 * A client process killed with SIGKILL and started again resumes from the position stored
 * in OPA (no loss, no reorder, no baseline refetch); an external OPA that restarts empty is
 * noticed and reloaded.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { request } from "undici";
import { DeliveryChecker, type OpaReader } from "./helpers/checker.js";
import { type RunningServer, startServer } from "./helpers/mesh.js";
import { opaBinary } from "./helpers/opa.js";
import { freePort } from "./helpers/ports.js";
import { waitFor } from "./helpers/wait.js";

const BIN = fileURLToPath(new URL("../bin/opal-mesh.js", import.meta.url));

let checker: DeliveryChecker;
let server: RunningServer;
let opaPort: number;
let opa: ChildProcess | undefined;
let client: ChildProcess | undefined;
let apiPort: number;

async function startOpa(): Promise<void> {
  opa = spawn(await opaBinary(), ["run", "--server", `--addr=127.0.0.1:${opaPort}`, "--log-level=error"], { stdio: "ignore" });
  await waitFor(async () => (await request(`http://127.0.0.1:${opaPort}/health`)).statusCode === 200, { message: "OPA to answer" });
}

async function startClientProcess(): Promise<void> {
  client = spawn(process.execPath, [BIN, "client"], {
    env: {
      ...process.env,
      OPAL_SERVER_URL: server.url,
      OPAL_INLINE_OPA_ENABLED: "false",
      OPAL_POLICY_STORE_URL: `http://127.0.0.1:${opaPort}`,
      OPAL_CLIENT_API_SERVER_PORT: String(apiPort),
      OPAL_CLIENT_STAT_ID: "restarting-client",
      OPAL_POLICY_STORE_LIVENESS_PROBE_INTERVAL_SECONDS: "0.2",
      OPAL_LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "ERROR",
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  await waitFor(async () => (await request(`http://127.0.0.1:${apiPort}/ready`)).statusCode === 200, { timeoutMs: 30_000, message: "the client process to be ready" });
}

const reader: OpaReader = {
  async read(path: string) {
    const response = await request(`http://127.0.0.1:${opaPort}/v1/data${path}`);
    return ((await response.body.json()) as { result?: unknown }).result;
  },
};

before(async () => {
  checker = await new DeliveryChecker().start();
  server = await startServer({ OPAL_DATA_CONFIG_SOURCES: JSON.stringify({ config: { entries: checker.baselineEntries() } }) });
  opaPort = await freePort();
  apiPort = await freePort();
  await startOpa();
  await startClientProcess();
});

after(async () => {
  client?.kill("SIGKILL");
  opa?.kill("SIGKILL");
  await server?.stop();
  await checker?.source.stop();
});

test("kill -9 of the client process: the restarted client resumes from the position in OPA", async () => {
  await checker.publish(server, 150);
  await waitFor(async () => ((await reader.read("/check/last")) as number | undefined ?? -1) >= 50, { message: "the client to be mid-stream" });
  client?.kill("SIGKILL");
  await new Promise((resolve) => client?.once("exit", resolve));
  const baselineFetches = checker.source.hits.get("/check");
  await checker.publish(server, 150);
  await startClientProcess();
  await checker.publish(server, 100);
  await checker.verify(reader);
  assert.equal(checker.source.hits.get("/check"), baselineFetches, "the restarted client did not load its baseline again");
  const status = (await reader.read("/system/opal")) as { position: number; healthy: boolean };
  assert.equal(BigInt(status.position), checker.positions.at(-1));
  assert.equal(status.healthy, true);
});

test("an external OPA that restarts empty is noticed and reloaded", async () => {
  opa?.kill("SIGKILL");
  await new Promise((resolve) => opa?.once("exit", resolve));
  await startOpa();
  await checker.publish(server, 20);
  await checker.verify(reader);
  assert.equal(((await reader.read("/system/opal")) as { ready: boolean }).ready, true);
});
