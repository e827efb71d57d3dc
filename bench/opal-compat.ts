/**
 * publish → applied for one unmodified OPAL client (0.9.9, its own inline OPA), on
 * opal-mesh's server versus on OPAL's own server (one uvicorn worker, no broadcaster),
 * measured in one run: N inline updates, each a distinct numbered value, sent to the two
 * servers in turns (A, B, A, B …) so both see the same machine load; applied = readable in
 * that client's OPA, polled every millisecond. The first 20 of each warm up.
 * Needs OPAL's client and server from PyPI (`npm run opal -- --server`).
 *   node --import tsx bench/opal-compat.ts [N]   (writes bench/results/opal-compat.json)
 */
import { writeFileSync } from "node:fs";
import { ensureOpal } from "../deploy/opal/opal.js";
import { cacheDirFrom } from "../services/common/config/client-config.js";
import { GitRepo } from "../test/helpers/git-repo.js";
import { startServer } from "../test/helpers/mesh.js";
import { type OpalClient, startOpalClients } from "../test/helpers/opal-client.js";
import { startOpalServer } from "../test/helpers/opal-server.js";
import { waitFor } from "../test/helpers/wait.js";

const N = Number(process.argv[2] ?? 300);
const WARM_UP = 20;
const policy = "package app\n\nimport rego.v1\n\nallow := true\n";

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

interface Target {
  label: string;
  serverUrl: string;
  client: OpalClient;
  samples: number[];
}

async function once(target: Target, index: number): Promise<void> {
  const start = performance.now();
  const answer = await fetch(`${target.serverUrl}/data/config`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ entries: [{ url: "", data: { n: index }, dst_path: `/bench/n${index}`, topics: ["policy_data"] }] }),
  });
  if (!answer.ok) throw new Error(`${target.label}: publish answered ${answer.status}: ${await answer.text()}`);
  await answer.body?.cancel();
  await waitFor(async () => ((await target.client.data(`/bench/n${index}`)) as { n?: number } | undefined)?.n === index, {
    intervalMs: 1,
    timeoutMs: 20_000,
    message: () => `${target.label}: update ${index} readable\n${target.client.logs().slice(-2000)}`,
  });
  if (index >= WARM_UP) target.samples.push(performance.now() - start);
}

ensureOpal(cacheDirFrom(process.env), "opal-server", (message) => process.stderr.write(`${message}\n`));
const repo = new GitRepo();
repo.commit({ "app/policy.rego": policy });
// OPAL's client is ready only once it wrote some data: the same inline baseline on both.
const baseline = { config: { entries: [{ url: "", data: { from: "baseline" }, dst_path: "/baseline", topics: ["policy_data"] }] } };
const mesh = await startServer({ OPAL_POLICY_REPO_URL: repo.dir, OPAL_POLICY_REPO_MAIN_BRANCH: "main", OPAL_DATA_CONFIG_SOURCES: JSON.stringify(baseline) });
const opal = await startOpalServer({ policyRepo: repo.dir, dataConfigSources: baseline, env: { OPAL_LOG_LEVEL: "WARNING" } });
try {
  const [onMesh, onOpal] = await startOpalClients([
    { serverUrl: mesh.url, env: { OPAL_LOG_LEVEL: "WARNING" } },
    { serverUrl: opal.url, env: { OPAL_LOG_LEVEL: "WARNING" } },
  ]);
  const targets: Target[] = [
    { label: "OPAL client on opal-mesh's server", serverUrl: mesh.url, client: onMesh, samples: [] },
    { label: "OPAL client on OPAL's server", serverUrl: opal.url, client: onOpal, samples: [] },
  ];
  try {
    for (const target of targets) await waitFor(async () => (await target.client.policyIds())?.includes("app/policy.rego") === true, { timeoutMs: 60_000, message: `${target.label}: policy loaded` });
    for (let index = 0; index < N + WARM_UP; index++) for (const target of targets) await once(target, index);
    const results = targets.map(({ label, samples }) => ({ label, samples: samples.length, p50_ms: percentile(samples, 50), p99_ms: percentile(samples, 99), mean_ms: samples.reduce((a, b) => a + b, 0) / samples.length }));
    const output = { measured: new Date().toISOString(), opal_version: "0.9.9", updates: N, results, opal_over_mesh_p50: (results[1] as { p50_ms: number }).p50_ms / (results[0] as { p50_ms: number }).p50_ms };
    writeFileSync("bench/results/opal-compat.json", `${JSON.stringify(output, null, 2)}\n`);
    for (const result of results) console.log(`${result.label}: p50 ${result.p50_ms.toFixed(2)} ms, p99 ${result.p99_ms.toFixed(2)} ms, mean ${result.mean_ms.toFixed(2)} ms (${result.samples} updates)`);
  } finally {
    await Promise.all(targets.map((target) => target.client.stop()));
  }
} finally {
  await opal.stop();
  await mesh.stop();
  repo.remove();
}
