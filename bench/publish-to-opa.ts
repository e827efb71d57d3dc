/**
 * Time from PublishDataUpdate (Connect) to the value being readable in OPA, one client,
 * inline data, embedded server. The system under test (server, client, OPA) runs in
 * child processes; this process publishes and polls OPA.
 *
 *   npm run bench:publish-to-opa [-- --updates 200]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { request } from "undici";
import { TriggerService } from "../gen/opal/mesh/v1/trigger_pb.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const flag = process.argv.indexOf("--updates");
const updates = flag === -1 ? 200 : Number(process.argv[flag + 1]);
if (!Number.isInteger(updates) || updates < 1) throw new Error("--updates needs a positive integer");
const warmup = 20;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function run(command: string, env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, [`${root}bin/opal-mesh.js`, command], { env: { ...process.env, OPAL_LOG_LEVEL: "WARNING", ...env }, stdio: ["ignore", "inherit", "inherit"] });
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

const [serverPort, streamPort, apiPort, opaPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
const server = run("server", { OPAL_SERVER_BIND_PORT: String(serverPort), OPAL_MESH_STREAM_PORT: String(streamPort) });
const client = run("client", {
  OPAL_SERVER_URL: `http://127.0.0.1:${serverPort}`,
  OPAL_CLIENT_API_SERVER_PORT: String(apiPort),
  OPAL_INLINE_OPA_CONFIG: JSON.stringify({ addr: `127.0.0.1:${opaPort}` }),
});
try {
  await until(async () => (await request(`http://127.0.0.1:${apiPort}/ready`)).statusCode === 200, "the client to be ready");
  const trigger = createClient(TriggerService, createConnectTransport({ baseUrl: `http://127.0.0.1:${serverPort}`, httpVersion: "1.1" }));
  const opa = `http://127.0.0.1:${opaPort}/v1/data/bench/value`;
  const samples: number[] = [];
  for (let i = 0; i < warmup + updates; i++) {
    const started = performance.now();
    await trigger.publishDataUpdate({ entries: [{ dstPath: "/bench/value", topics: ["policy_data"], data: { kind: { case: "numberValue", value: i } } }] });
    for (;;) {
      const response = await request(opa);
      const { result } = (await response.body.json()) as { result?: number };
      if (result === i) break;
    }
    if (i >= warmup) samples.push(performance.now() - started);
  }
  samples.sort((a, b) => a - b);
  const result = {
    scenario: "publish-to-opa",
    description: "PublishDataUpdate (Connect, HTTP/1.1) until the value is readable in OPA; 1 client, inline data, embedded server",
    updates,
    node: process.version,
    date: new Date().toISOString(),
    ms: { median: percentile(samples, 50), p90: percentile(samples, 90), p99: percentile(samples, 99), min: samples[0], max: samples.at(-1) },
  };
  console.log(JSON.stringify(result, null, 2));
  await mkdir(`${root}bench/results`, { recursive: true });
  await writeFile(`${root}bench/results/publish-to-opa.json`, `${JSON.stringify(result, null, 2)}\n`);
} finally {
  client.kill("SIGTERM");
  server.kill("SIGTERM");
}
