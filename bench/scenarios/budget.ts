/**
 * The latency budget: where the time of one update goes, hop by hop, for 1 and 10 clients
 * with real inline OPAs, embedded and on Kafka; and the headline it explains, publish →
 * readable in OPA for one client in its own process.
 *
 * Two passes per log backend, each on a fresh server:
 * 1. Hop timing off (what users run): OPAL's `POST /data/config` with inline data, one
 *    update at a time, timed from the request until a poller reading the client's OPA
 *    (`GET /v1/data/...`, back to back on one keep-alive connection) sees the new value.
 *    The client is an `opal-mesh client` process of its own, as in production.
 * 2. Hop timing on (OPAL_MESH_HOP_TIMING_FILE in every process): `POST
 *    /data/config?wait=true`, and every process marks each hop of each update
 *    (services/common/telemetry/hop-clock.ts); bench/hop-budget.ts joins the marks.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChildProcess } from "node:child_process";
import { Pool } from "undici";
import { budget, readTimelines } from "../hop-budget.js";
import { ClientFleet, profiling, startDeployment, type Deployment, type LogBackend } from "../load/deployment.js";
import { metricOf, spawnDataClient, stopProcess, until } from "../lib.js";
import type { Metric, Scenario, ScenarioOptions } from "../scenario.js";

const DOCUMENT = "/bench/budget";
/** What the poller waits on between reads (nothing ever wakes it: Atomics.wait is a sleep without a timer). */
const PAUSE = new Int32Array(new SharedArrayBuffer(4));

interface Sizes {
  warmup: number;
  updates: number;
  /** Clients of the larger budget run: one in its own process, the rest in client hosts. */
  clients: number;
  backends: LogBackend[];
}

const FULL: Sizes = { warmup: 30, updates: 300, clients: 10, backends: ["embedded", "kafka"] };
const SMOKE: Sizes = { warmup: 2, updates: 6, clients: 2, backends: ["embedded"] };

function body(value: number): string {
  return JSON.stringify({ entries: [{ dst_path: DOCUMENT, topics: ["policy_data"], data: { value } }], reason: "budget" });
}

async function post(server: Pool, value: number, wait: boolean): Promise<{ id: string; position: number; delivery?: { applied?: number; failed?: number } }> {
  const response = await server.request({ method: "POST", path: `/data/config${wait ? "?wait=true" : ""}`, headers: { "content-type": "application/json" }, body: body(value) });
  const answer = (await response.body.json()) as { id: string; position: number; delivery?: { applied?: number; failed?: number } };
  if (response.statusCode !== 200) throw new Error(`POST /data/config: ${response.statusCode} ${JSON.stringify(answer)}`);
  return answer;
}

async function readValue(opa: Pool): Promise<unknown> {
  const response = await opa.request({ method: "GET", path: `/v1/data${DOCUMENT}` });
  const result = ((await response.body.json()) as { result?: { value?: unknown } }).result;
  return result?.value;
}

/** Pass 1: publish → the value readable in the client's OPA, one update at a time. */
async function readable(server: Pool, opa: Pool, sizes: Sizes, first: number): Promise<{ samples: number[]; last: number }> {
  const samples: number[] = [];
  let value = first;
  for (let index = 0; index < sizes.warmup + sizes.updates; index++) {
    value++;
    const started = performance.now();
    const published = post(server, value, false);
    // Polled until it is there, 0.2 ms apart: reading back to back kept a core busy (on 2 cores, the
    // system's) and doubled the time measured. Atomics.wait sleeps without spinning; the
    // resolution is one OPA read plus the pause (≈0.3–0.5 ms).
    while ((await readValue(opa)) !== value) {
      if (performance.now() - started > 10_000) throw new Error(`update ${value}: not readable in OPA after 10 s`);
      Atomics.wait(PAUSE, 0, 0, 0.2);
    }
    const elapsed = performance.now() - started;
    await published;
    if (index >= sizes.warmup) samples.push(elapsed);
  }
  return { samples, last: value };
}

/** Pass 2: publish with wait, one at a time, the bench's own send and answer times per update id. */
async function timed(server: Pool, clients: number, sizes: Sizes, first: number): Promise<{ bench: Map<string, { sent: number; answered: number }>; measured: string[]; last: number }> {
  const bench = new Map<string, { sent: number; answered: number }>();
  const measured: string[] = [];
  let value = first;
  for (let index = 0; index < sizes.warmup + sizes.updates; index++) {
    value++;
    const sent = performance.timeOrigin + performance.now();
    const answer = await post(server, value, true);
    const answered = performance.timeOrigin + performance.now();
    if (answer.delivery?.applied !== clients || answer.delivery.failed !== 0) throw new Error(`update ${value}: applied by ${answer.delivery?.applied ?? 0} of ${clients} clients`);
    bench.set(answer.id, { sent, answered });
    if (index >= sizes.warmup) measured.push(answer.id);
  }
  return { bench, measured, last: value };
}

interface System {
  deployment: Deployment;
  client: ChildProcess;
  server: Pool;
  opa: Pool;
  fleet?: ClientFleet;
  stop(): Promise<void>;
}

async function startSystem(backend: LogBackend, env: Record<string, string>): Promise<System> {
  const deployment = await startDeployment(backend, { ...profiling(), ...env });
  const { client, opa: opaUrl } = await spawnDataClient(deployment.url, { ...profiling(), ...env });
  const server = new Pool(deployment.url, { connections: 1 });
  const opa = new Pool(opaUrl, { connections: 1 });
  const system: System = {
    deployment,
    client,
    server,
    opa,
    async stop() {
      await system.fleet?.stop();
      await stopProcess(client);
      await Promise.all([server.close(), opa.close()]);
      await deployment.stop();
    },
  };
  try {
    // The client is ready once a published value reaches its OPA.
    await until(async () => {
      await post(server, -1, false);
      return (await readValue(opa).catch(() => undefined)) === -1;
    }, "the client to apply a first update", 120_000);
  } catch (error) {
    await system.stop();
    throw error;
  }
  return system;
}

async function runBackend(backend: LogBackend, sizes: Sizes, options: ScenarioOptions, metrics: Metric[], notes: string[]): Promise<void> {
  const where = backend === "embedded" ? "embedded" : "Kafka";
  options.log(`${backend}: pass 1, hop timing off`);
  let system = await startSystem(backend, {});
  try {
    const { samples, last } = await readable(system.server, system.opa, sizes, 0);
    if ((await readValue(system.opa)) !== last) throw new Error(`${where}: the client's OPA does not hold the last value ${last}`);
    const target = backend === "embedded" && !options.smoke ? { op: "<=" as const, value: 2.5, on: "median" as const } : undefined;
    metrics.push(metricOf(`publish (REST, inline) → readable in OPA, 1 client, separate processes, ${where}`, "ms", samples, target));
  } finally {
    await system.stop();
  }

  options.log(`${backend}: pass 2, hop timing on`);
  const dir = await mkdtemp(join(tmpdir(), "opal-mesh-hops-"));
  // One file for every process: each appends whole lines (O_APPEND).
  const file = join(dir, "hops.tsv");
  const files = [file];
  system = await startSystem(backend, { OPAL_MESH_HOP_TIMING_FILE: file });
  try {
    for (const clients of [1, sizes.clients]) {
      if (clients > 1) {
        system.fleet = await ClientFleet.start(system.deployment.url, clients - 1, `budget-${backend}`, { perProcess: 5, env: { ...profiling(), OPAL_MESH_HOP_TIMING_FILE: file } });
      }
      const { bench, measured, last } = await timed(system.server, clients, sizes, clients * 1_000_000);
      // The processes flush their marks every 250 ms.
      let rows: ReturnType<typeof budget> = [];
      await until(async () => {
        try {
          rows = budget(await readTimelines(files), measured, bench, clients);
          return true;
        } catch {
          return false;
        }
      }, "every process's hop marks", 10_000).catch(async () => {
        rows = budget(await readTimelines(files), measured, bench, clients); // throws, naming the missing mark
      });
      for (const row of rows) metrics.push(metricOf(`${row.name} — ${clients} client${clients === 1 ? "" : "s"}, ${where}`, "ms", row.samples));
      const held = [await readValue(system.opa), ...((await system.fleet?.read(DOCUMENT)) ?? []).map((document) => (document as { value?: unknown } | undefined)?.value)];
      if (held.some((value) => value !== last)) throw new Error(`${where}, ${clients} clients: the OPAs hold ${JSON.stringify(held)}, not the last value ${last}`);
    }
    notes.push(`${where}: every update of both passes was applied by every client (delivery.applied = clients), and every OPA held the last value.`);
  } finally {
    await system.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

export const scenario: Scenario = {
  name: "budget",
  about: "the latency budget per hop (1 and 10 clients, embedded and Kafka), and publish → readable in OPA for one client in its own process",
  async run(options) {
    const sizes = options.smoke ? SMOKE : FULL;
    const metrics: Metric[] = [];
    const notes: string[] = [
      `Pass 1 (hop timing off): one OPAL POST /data/config (inline data) at a time from the bench process, timed until a poller reading the client's OPA back to back sees the value; the server (\`opal-mesh server\`) and the client (\`opal-mesh client\` with its inline OPA) are processes of their own. ${sizes.warmup} warm-up updates, then ${sizes.updates}.`,
      `Pass 2 (OPAL_MESH_HOP_TIMING_FILE set in every process): POST /data/config?wait=true, one at a time; each process marks each hop of each update on the machine's one clock (performance.timeOrigin + now()), and the rows are the time between consecutive marks, per update (and per client for the client's hops: n = updates × clients). 1 client, then ${sizes.clients} (1 in its own process, the others in client hosts of 5). Marks cost a timestamp and a string per hop.`,
    ];
    // OPAL_BENCH_ONLY=embedded (or kafka) runs one backend, to profile it.
    const only = process.env.OPAL_BENCH_ONLY?.split(",").filter((name) => name !== "");
    const backends = only === undefined || only.length === 0 ? sizes.backends : sizes.backends.filter((backend) => only.includes(backend));
    for (const backend of backends) await runBackend(backend, sizes, options, metrics, notes);
    return { scenario: "budget", description: "where the time of one update goes: per hop, 1 and 10 clients, embedded and Kafka", metrics, notes };
  },
};
