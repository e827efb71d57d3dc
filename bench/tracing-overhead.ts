/**
 * End-to-end throughput with tracing off and on (every update sampled): an embedded server
 * and 3 clients with inline OPA, each in its own process; N updates published by 8
 * concurrent publishers over REST; timed until every client's OPA holds the last one.
 * "on" is measured twice: exporting to a real Jaeger on the same machine, and to an OTLP
 * endpoint that discards what it gets (the SDK's own cost, without the backend's). Rounds
 * rotate off / on-discard / on-Jaeger so drift hits all alike.
 *
 *   npm run bench:tracing-overhead [-- --updates 2000 --rounds 5]
 */
import { type ChildProcess } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { request } from "undici";
import { ensureJaeger, startJaeger } from "../deploy/jaeger/jaeger.js";
import { cacheDirFrom } from "../services/common/config/client-config.js";
import { freePort, record, runMesh, summary, until } from "./lib.js";

function option(name: string, fallback: number): number {
  const index = process.argv.indexOf(name);
  const value = index === -1 ? fallback : Number(process.argv[index + 1]);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} needs a positive integer`);
  return value;
}
const updates = option("--updates", 2000);
const rounds = option("--rounds", 5);
const CLIENTS = 3;
const PUBLISHERS = 8;

const jaegerPorts = { otlpGrpc: await freePort(), otlpHttp: await freePort(), query: await freePort(), health: await freePort() };
const jaeger = startJaeger(ensureJaeger(cacheDirFrom(process.env), (message) => console.error(message)), jaegerPorts);
await until(async () => (await request(`http://127.0.0.1:${jaegerPorts.health}/status`)).statusCode === 200, "Jaeger");

// Answers every OTLP export with an empty ExportTraceServiceResponse, after reading it.
const sink = createServer((request, response) => {
  request.resume();
  request.on("end", () => response.writeHead(200, { "content-type": "application/x-protobuf" }).end());
}).listen(0, "127.0.0.1");
await new Promise((resolve) => sink.once("listening", resolve));
const sinkPort = (sink.address() as AddressInfo).port;

type Mode = "off" | "discard" | "jaeger";

async function round(mode: Mode): Promise<number> {
  const endpoint = mode === "jaeger" ? `http://127.0.0.1:${jaegerPorts.otlpHttp}` : `http://127.0.0.1:${sinkPort}`;
  const otel: Record<string, string> =
    mode === "off" ? { OTEL_TRACES_EXPORTER: "none" } : { OTEL_TRACES_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf", OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_TRACES_SAMPLER: "always_on" };
  const [serverPort, streamPort] = [await freePort(), await freePort()];
  const processes: ChildProcess[] = [runMesh("server", { ...otel, OPAL_SERVER_BIND_PORT: String(serverPort), OPAL_MESH_STREAM_PORT: String(streamPort) })];
  const opas: string[] = [];
  const apis: number[] = [];
  for (let index = 0; index < CLIENTS; index++) {
    const [apiPort, opaPort] = [await freePort(), await freePort()];
    processes.push(
      runMesh("client", { ...otel, OPAL_SERVER_URL: `http://127.0.0.1:${serverPort}`, OPAL_CLIENT_API_SERVER_PORT: String(apiPort), OPAL_INLINE_OPA_CONFIG: JSON.stringify({ addr: `127.0.0.1:${opaPort}` }) }),
    );
    opas.push(`http://127.0.0.1:${opaPort}/v1/data/bench/last`);
    apis.push(apiPort);
  }
  try {
    for (const port of apis) await until(async () => (await request(`http://127.0.0.1:${port}/ready`)).statusCode === 200, "a client to be ready");
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: PUBLISHERS }, async () => {
        for (let i = next++; i < updates; i = next++) {
          const response = await request(`http://127.0.0.1:${serverPort}/data/config`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ entries: [{ url: "", data: { n: i, payload: "x".repeat(200) }, dst_path: `/bench/items/${i % 100}`, topics: ["policy_data"] }] }),
          });
          await response.body.dump();
          if (response.statusCode !== 200) throw new Error(`publish answered ${response.statusCode}`);
        }
      }),
    );
    // A marker after every update: when each OPA has it, it has everything before it (log order).
    await request(`http://127.0.0.1:${serverPort}/data/config`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ entries: [{ url: "", data: updates, dst_path: "/bench/last", topics: ["policy_data"] }] }) }).then((response) => response.body.dump());
    for (const opa of opas) await until(async () => ((await (await request(opa)).body.json()) as { result?: number }).result === updates, "every client to apply the last update", 300_000);
    const seconds = (performance.now() - started) / 1000;
    return Math.round((updates + 1) / seconds);
  } finally {
    for (const child of processes) child.kill("SIGTERM");
    await Promise.all(processes.map((child) => new Promise((resolve) => (child.exitCode !== null ? resolve(undefined) : child.once("exit", resolve)))));
  }
}

const results: Record<Mode, number[]> = { off: [], discard: [], jaeger: [] };
try {
  await round("off"); // warm-up: caches, JIT
  for (let index = 0; index < rounds; index++) {
    for (const mode of ["off", "discard", "jaeger"] as const) results[mode].push(await round(mode));
    console.error(`round ${index + 1}: off ${results.off.at(-1)}, on (discarding exporter) ${results.discard.at(-1)}, on (to Jaeger) ${results.jaeger.at(-1)} updates/s`);
  }
  const median = (mode: Mode): number => summary(results[mode]).median;
  const overhead = (mode: Mode): number => Math.round((1 - median(mode) / median("off")) * 1000) / 10;
  await record("tracing-overhead", {
    description: `end-to-end throughput (publish over REST by ${PUBLISHERS} publishers → applied in all ${CLIENTS} clients' OPA), ${updates} updates per round, embedded server and clients in their own processes on one 2-core machine; tracing off vs on (always_on sampler, OTLP http/protobuf) exporting to an endpoint that discards, and to a Jaeger on the same machine`,
    updates_per_second: { off: summary(results.off), on_discarding_exporter: summary(results.discard), on_to_jaeger: summary(results.jaeger) },
    overhead_percent_of_median: { on_discarding_exporter: overhead("discard"), on_to_jaeger: overhead("jaeger") },
  });
} finally {
  jaeger.kill("SIGTERM");
  sink.close();
}
