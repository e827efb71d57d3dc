/**
 * publish → applied for one unmodified OPAL client, on opal-mesh's server versus on OPAL's
 * own server, measured in one run: N sequential inline updates to each, each a distinct
 * numbered value; applied = readable in that client's OPA (polled every millisecond).
 * Needs `npm run opal -- --server` (OPAL's client and server from PyPI).
 *   node --import tsx bench/opal-compat.ts [N]
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { ensureOpal } from "../deploy/opal/opal.js";
import { cacheDirFrom } from "../services/common/config/client-config.js";
import { GitRepo } from "../test/helpers/git-repo.js";
import { startServer } from "../test/helpers/mesh.js";
import { type OpalClient, startOpalClient } from "../test/helpers/opal-client.js";
import { freePort } from "../test/helpers/ports.js";
import { waitFor } from "../test/helpers/wait.js";

const N = Number(process.argv[2] ?? 200);
const policy = "package app\n\nimport rego.v1\n\nallow := true\n";

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

async function measure(label: string, serverUrl: string, client: OpalClient): Promise<{ label: string; p50: number; p99: number; mean: number }> {
  const samples: number[] = [];
  for (let index = 0; index < N + 20; index++) {
    const start = performance.now();
    const answer = await fetch(`${serverUrl}/data/config`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ entries: [{ url: "", data: index, dst_path: `/bench/n${index}`, topics: ["policy_data"] }] }) });
    if (!answer.ok) throw new Error(`${label}: publish answered ${answer.status}`);
    await waitFor(async () => (await client.data(`/bench/n${index}`)) === index, { intervalMs: 1, timeoutMs: 20_000, message: `${label}: update ${index} readable` });
    if (index >= 20) samples.push(performance.now() - start); // the first 20 warm up
  }
  return { label, p50: percentile(samples, 50), p99: percentile(samples, 99), mean: samples.reduce((a, b) => a + b, 0) / samples.length };
}

const cache = cacheDirFrom(process.env);
const opalServer = ensureOpal(cache, "opal-server", (message) => process.stderr.write(`${message}\n`));
const repo = new GitRepo();
repo.commit({ "app/policy.rego": policy });
const mesh = await startServer({ OPAL_POLICY_REPO_URL: repo.dir, OPAL_POLICY_REPO_MAIN_BRANCH: "main" });
const port = await freePort();
const opal = spawn(opalServer, ["run"], {
  detached: true,
  stdio: "ignore",
  env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", OPAL_SERVER_BIND_PORT: String(port), UVICORN_NUM_WORKERS: "1", OPAL_POLICY_REPO_URL: repo.dir, OPAL_POLICY_REPO_MAIN_BRANCH: "main", OPAL_DATA_CONFIG_SOURCES: '{"config":{"entries":[]}}', OPAL_LOG_LEVEL: "WARNING" },
});
const opalUrl = `http://127.0.0.1:${port}`;
try {
  await waitFor(async () => (await fetch(opalUrl).catch(() => undefined))?.ok === true, { timeoutMs: 60_000, message: "OPAL's server up" });
  const onMesh = await startOpalClient({ serverUrl: mesh.url, env: { OPAL_LOG_LEVEL: "WARNING" } });
  const onOpal = await startOpalClient({ serverUrl: opalUrl, env: { OPAL_LOG_LEVEL: "WARNING" } });
  try {
    for (const client of [onMesh, onOpal]) await waitFor(async () => (await client.policyIds())?.includes("app/policy.rego") === true, { timeoutMs: 60_000, message: "policy loaded" });
    const results = [await measure("OPAL client on opal-mesh's server", mesh.url, onMesh), await measure("OPAL client on OPAL's server", opalUrl, onOpal)];
    const output = { measured: new Date().toISOString(), updates: N, results, ratio_p50: results[1]!.p50 / results[0]!.p50 };
    writeFileSync("bench/results/opal-compat.json", `${JSON.stringify(output, null, 2)}\n`);
    for (const result of results) console.log(`${result.label}: p50 ${result.p50.toFixed(2)} ms, p99 ${result.p99.toFixed(2)} ms, mean ${result.mean.toFixed(2)} ms`);
  } finally {
    await Promise.all([onMesh.stop(), onOpal.stop()]);
  }
} finally {
  process.kill(-(opal.pid as number), "SIGKILL");
  await mesh.stop();
  repo.remove();
}
