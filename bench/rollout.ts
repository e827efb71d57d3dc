/**
 * Staged rollout: the time from a canary's NACK to the rollback complete (every canary
 * holds the stable version again). One embedded server polling a real git repo every
 * 100 ms with OPAL_MESH_ROLLOUT_CANARY_LABELS=canary=true, 10 clients with inline OPA
 * (2 canaries) in this process. Each round commits a version canary-a's OPA refuses
 * (a local module makes it fail to compile there only); t0 = canary-a's failed policy
 * transaction, t1 = both canaries answer with the stable version again.
 *   node --import tsx bench/rollout.ts [ROUNDS]   (writes bench/results/rollout.json)
 */
import { writeFileSync } from "node:fs";
import { GitRepo, tempDir } from "../test/helpers/git-repo.js";
import { decide, type RunningClient, startClient, startServer, waitReady } from "../test/helpers/mesh.js";
import { waitFor } from "../test/helpers/wait.js";

const ROUNDS = Number(process.argv[2] ?? 10);
const policy = (version: number): string => `package app.rollout\n\nversion := ${version}\n`;

function stats(samples: number[]): { median: number; p99: number; min: number; max: number; n: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number): number => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number);
  return { median: at(0.5), p99: at(0.99), min: Math.round(sorted[0] as number), max: Math.round(sorted.at(-1) as number), n: sorted.length };
}

const repo = new GitRepo();
repo.commit({ "app/rollout.rego": policy(1) }, "v1");
const server = await startServer({
  OPAL_POLICY_REPO_URL: repo.dir,
  OPAL_POLICY_REPO_MAIN_BRANCH: repo.branch,
  OPAL_POLICY_REPO_CLONE_PATH: tempDir("opal-mesh-clones-"),
  OPAL_POLICY_REPO_POLLING_INTERVAL: "0.1",
  OPAL_MESH_ROLLOUT_CANARY_LABELS: "canary=true",
  OPAL_MESH_ROLLOUT_SOAK_SECONDS: "3600",
});
const ids = ["canary-a", "canary-b", ...Array.from({ length: 8 }, (_unused, index) => `edge-${index}`)];
const clients = new Map<string, RunningClient>();
try {
  for (const id of ids) {
    const client = await startClient(server.url, { OPAL_CLIENT_STAT_ID: id, OPAL_POLICY_STORE_POLICY_PATHS_TO_IGNORE: "local/**", OPAL_LOG_LEVEL: "ERROR", ...(id.startsWith("canary") ? { OPAL_MESH_CLIENT_LABELS: "canary=true" } : {}) });
    clients.set(id, client);
    await waitReady(client);
  }
  const canaryA = clients.get("canary-a") as RunningClient;
  const canaries = [canaryA, clients.get("canary-b") as RunningClient];
  const pinned = await fetch(`${canaryA.opaUrl}/v1/policies/local/pin.rego`, { method: "PUT", body: "package app.rollout\n\ndefault version := 0\n" });
  if (!pinned.ok) throw new Error(`could not pin canary-a's local module: ${pinned.status}`);
  const samples: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const before = canaryA.agent.health.report().policy.lastTransaction?.at;
    repo.commit({ "app/rollout.rego": `${policy(100 + round)}\ndefault version := ${100 + round}\n` }, `bad ${round}`);
    const nack = await waitFor(
      () => {
        const last = canaryA.agent.health.report().policy.lastTransaction;
        return last !== undefined && !last.ok && last.at !== before ? Date.parse(last.at) : undefined;
      },
      { timeoutMs: 30_000, message: `round ${round}: canary-a refuses` },
    );
    // canary-b took the candidate meanwhile (it compiles there): back to 1 on both is the rollback done.
    await waitFor(async () => (await Promise.all(canaries.map((client) => decide(client, "app/rollout/version", {})))).every((version) => version === 1), { timeoutMs: 30_000, intervalMs: 1, message: `round ${round}: canaries back on v1` });
    samples.push(Date.now() - nack);
  }
  const result = { scenario: "rollout", measured: new Date().toISOString(), clients: ids.length, canaries: 2, nackToRollbackCompleteMs: stats(samples), samples: samples.map((sample) => Math.round(sample)) };
  writeFileSync("bench/results/rollout.json", `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result, null, 2));
} finally {
  await Promise.all([...clients.values()].map((client) => client.stop()));
  await server.stop();
  repo.remove();
}
