/**
 * What read-your-writes costs a decision: the same POST /v1/data/app/rbac/allow asked of
 * the client's OPA directly (:8181), of the client's API without a position (a plain
 * pass-through), and with ?min_position= of a position OPA already holds; then publish →
 * decided with the write in (POST /data/config, then one decision with ?min_position= of
 * the position the publish answered). One embedded server and one client with its inline
 * OPA, in this process; decisions one at a time, the three kinds in turns.
 *   node --import tsx bench/read-your-writes.ts [N]   (writes bench/results/read-your-writes.json)
 */
import { readFileSync, writeFileSync } from "node:fs";
import { Pool } from "undici";
import { GitRepo } from "../test/helpers/git-repo.js";
import { startClient, startServer, waitReady } from "../test/helpers/mesh.js";

const N = Number(process.argv[2] ?? 2000);
const policy = readFileSync(new URL("../examples/policy/rbac/policy.rego", import.meta.url), "utf8");
const input = JSON.stringify({ input: { user: "alice", action: "read" } });

function stats(samples: number[]): { median: number; p99: number; n: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number): number => Number((sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number).toFixed(3));
  return { median: at(0.5), p99: at(0.99), n: sorted.length };
}

async function timed(pool: Pool, path: string, body: string, expect: string): Promise<number> {
  const start = performance.now();
  const answer = await pool.request({ method: "POST", path, headers: { "content-type": "application/json" }, body });
  const text = await answer.body.text();
  const ms = performance.now() - start;
  if (answer.statusCode !== 200 || !text.includes(expect)) throw new Error(`${path} answered ${answer.statusCode}: ${text}`);
  return ms;
}

const repo = new GitRepo();
repo.commit({ "rbac/policy.rego": policy });
const server = await startServer({
  OPAL_POLICY_REPO_URL: repo.dir,
  OPAL_POLICY_REPO_MAIN_BRANCH: "main",
  OPAL_DATA_CONFIG_SOURCES: JSON.stringify({ config: { entries: [{ url: "", data: { alice: { roles: ["reader"] } }, dst_path: "/users", topics: ["policy_data"] }, { url: "", data: { reader: ["read"] }, dst_path: "/roles", topics: ["policy_data"] }] } }),
});
const client = await startClient(server.url);
try {
  await waitReady(client);
  const opa = new Pool(client.opaUrl, { connections: 1 });
  const api = new Pool(client.apiUrl, { connections: 1 });
  const trigger = new Pool(server.url, { connections: 1 });
  const held = client.agent.health.appliedPosition;
  const samples = { direct: [] as number[], passThrough: [] as number[], minPosition: [] as number[], publishToDecided: [] as number[] };
  for (let index = 0; index < N + 100; index++) {
    const keep = index >= 100; // the first 100 of each warm up
    const direct = await timed(opa, "/v1/data/app/rbac/allow", input, "true");
    const pass = await timed(api, "/v1/data/app/rbac/allow", input, "true");
    const waited = await timed(api, `/v1/data/app/rbac/allow?min_position=${held}`, input, "true");
    if (keep) {
      samples.direct.push(direct);
      samples.passThrough.push(pass);
      samples.minPosition.push(waited);
    }
  }
  // Publish, then decide at once with that write in (the decision waits for it).
  for (let index = 0; index < Math.min(N, 500) + 20; index++) {
    const start = performance.now();
    const published = await trigger.request({ method: "POST", path: "/data/config", headers: { "content-type": "application/json" }, body: JSON.stringify({ entries: [{ url: "", data: { n: index }, dst_path: `/bench/n${index}`, topics: ["policy_data"] }] }) });
    const { position } = (await published.body.json()) as { position: number };
    await timed(api, `/v1/data/bench/n${index}?min_position=${position}&timeout=10s`, "{}", `"n":${index}`);
    if (index >= 20) samples.publishToDecided.push(performance.now() - start);
  }
  const result = {
    scenario: "read-your-writes",
    measured: new Date().toISOString(),
    decisions: N,
    directToOpaMs: stats(samples.direct),
    clientApiPassThroughMs: stats(samples.passThrough),
    clientApiMinPositionHeldMs: stats(samples.minPosition),
    publishThenDecideWithWriteMs: stats(samples.publishToDecided),
  };
  writeFileSync("bench/results/read-your-writes.json", `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result, null, 2));
  await Promise.all([opa.close(), api.close(), trigger.close()]);
} finally {
  await client.stop();
  await server.stop();
  repo.remove();
}
