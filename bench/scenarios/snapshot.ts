/**
 * Scenario 7, the snapshot (issue 13): an embedded server holds 10,000 inline paths on its
 * log (published as updates of 100 entries, then 1,000 PATCHes into them), and a fresh
 * client process with its inline OPA starts against it. Measured per run: the wall time
 * from spawning the client to its OPA holding all 10,000 paths with the PATCHes applied
 * (read back and checked: a mismatch throws), and the server's snapshot entries and bytes
 * (its /metrics) and RSS before and after the log was filled. Each run starts a new
 * client, so every run writes the whole snapshot.
 */
import { request } from "undici";
import { freePort, metricOf, runMesh, spawnDataClient, stopProcess, until } from "../lib.js";
import { procStats } from "../proc-stats.js";
import type { Scenario, ScenarioOptions, ScenarioResult } from "../scenario.js";

interface Sizes {
  paths: number;
  patches: number;
  runs: number;
}

const FULL: Sizes = { paths: 10_000, patches: 1_000, runs: 5 };
const SMOKE: Sizes = { paths: 300, patches: 30, runs: 1 };
const PER_UPDATE = 100;
const MB = 1024 * 1024;

const user = (index: number) => ({ name: `user ${index}`, roles: ["reader"], team: `t${index % 50}` });

async function post(url: string, body: unknown): Promise<void> {
  const response = await request(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const text = await response.body.text();
  if (response.statusCode !== 200) throw new Error(`${url} answered ${response.statusCode}: ${text.slice(0, 200)}`);
}

/** The server's snapshot gauges from its /metrics. */
async function snapshotGauges(serverUrl: string): Promise<{ entries: number; bytes: number }> {
  const text = await (await request(`${serverUrl}/metrics`)).body.text();
  const gauge = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN);
  return { entries: gauge("opal_mesh_distributor_snapshot_entries"), bytes: gauge("opal_mesh_distributor_snapshot_bytes") };
}

async function publish(serverUrl: string, sizes: Sizes): Promise<void> {
  for (let first = 0; first < sizes.paths; first += PER_UPDATE) {
    const entries = [];
    for (let index = first; index < Math.min(sizes.paths, first + PER_UPDATE); index++) entries.push({ dst_path: `/users/u${index}`, data: user(index) });
    await post(`${serverUrl}/data/config`, { entries });
  }
  // PATCHes into documents already written: the fold must carry them to a late client.
  for (let index = 0; index < sizes.patches; index++) {
    await post(`${serverUrl}/data/config`, { entries: [{ dst_path: `/users/u${index * 7 % sizes.paths}`, save_method: "PATCH", data: [{ op: "add", path: "/roles/-", value: `writer${index}` }] }] });
  }
}

/** Throws unless OPA holds every path, with the PATCHes applied in order. */
async function verify(opa: string, sizes: Sizes): Promise<void> {
  const response = await request(`${opa}/v1/data/users`);
  const { result } = (await response.body.json()) as { result?: Record<string, { roles: string[] }> };
  const held = Object.keys(result ?? {}).length;
  if (held !== sizes.paths) throw new Error(`OPA holds ${held} of ${sizes.paths} paths`);
  const expected = new Map<number, string[]>();
  for (let index = 0; index < sizes.patches; index++) {
    const target = (index * 7) % sizes.paths;
    expected.set(target, [...(expected.get(target) ?? ["reader"]), `writer${index}`]);
  }
  for (const [index, roles] of expected) {
    const got = result?.[`u${index}`]?.roles;
    if (JSON.stringify(got) !== JSON.stringify(roles)) throw new Error(`u${index}'s roles are ${JSON.stringify(got)}, expected ${JSON.stringify(roles)}`);
  }
}

async function holdsAll(opa: string, paths: number): Promise<boolean> {
  const response = await request(`${opa}/v1/query`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query: "n := count(data.users)" }) });
  const { result } = (await response.body.json()) as { result?: Array<{ n?: number }> };
  if (result?.[0]?.n !== paths) return false;
  const status = (await (await request(`${opa}/v1/data/system/opal`)).body.json()) as { result?: { baseline_loaded?: boolean } };
  return status.result?.baseline_loaded === true;
}

async function runOnce(serverUrl: string, sizes: Sizes, options: ScenarioOptions): Promise<number> {
  const spawned = Date.now();
  const { client, opa } = await spawnDataClient(serverUrl);
  try {
    await until(() => holdsAll(opa, sizes.paths), "the fresh client to hold every path", 120_000);
    const seconds = (Date.now() - spawned) / 1000;
    await verify(opa, sizes);
    options.log(`fresh client identical ${seconds.toFixed(2)} s after it was spawned`);
    return seconds;
  } finally {
    await stopProcess(client);
  }
}

export const scenario: Scenario = {
  name: "snapshot",
  about: "a fresh client joins a log holding 10,000 inline paths (and PATCHes into them): time to an identical OPA, the server's snapshot size and memory",
  async run(options: ScenarioOptions): Promise<ScenarioResult> {
    const sizes = options.smoke ? SMOKE : FULL;
    const serverPort = await freePort();
    const server = runMesh("server", { OPAL_SERVER_BIND_PORT: String(serverPort), OPAL_MESH_STREAM_PORT: String(await freePort()), OPAL_DATA_CONFIG_SOURCES: JSON.stringify({ config: { entries: [] } }) });
    const serverUrl = `http://127.0.0.1:${serverPort}`;
    try {
      await until(async () => (await request(`${serverUrl}/healthcheck`)).statusCode === 200, "the server to be up");
      const before = procStats(server.pid as number).rss;
      options.log(`publishing ${sizes.paths.toLocaleString("en")} paths in updates of ${PER_UPDATE}, then ${sizes.patches} PATCHes`);
      await publish(serverUrl, sizes);
      const gauges = await snapshotGauges(serverUrl);
      const after = procStats(server.pid as number).rss;
      const samples: number[] = [];
      for (let run = 0; run < sizes.runs; run++) samples.push(await runOnce(serverUrl, sizes, options));
      return {
        scenario: "snapshot",
        description: `An embedded server whose log holds ${sizes.paths.toLocaleString("en")} inline paths and ${sizes.patches} PATCHes into them; ${sizes.runs} fresh client processes (inline OPA) join one after another.`,
        metrics: [
          metricOf(`fresh client spawned → OPA identical (${sizes.paths.toLocaleString("en")} paths)`, "s", samples),
          metricOf("server snapshot entries (distributor's fold)", "entries", [gauges.entries]),
          metricOf("server snapshot data bytes", "MB", [gauges.bytes / MB]),
          metricOf("server RSS growth for the filled log (window + both folds)", "MB", [(after - before) / MB]),
        ],
        notes: [
          "The client's time includes its own start-up (Node, the inline OPA, the policy skipped): the snapshot arrives in parts of ≤ 512 KiB after the Welcome and is written with the (empty) baseline in one baseline job.",
          "RSS growth covers the whole server: the broadcaster's event window and its fold, and the distributor's fold (the embedded server keeps both), sharing the events' bytes.",
        ],
      };
    } finally {
      await stopProcess(server);
    }
  },
};
