/** Shared pieces of the benchmarks: free ports, child processes of the real system, stats. */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { terminate } from "../services/common/child-process.js";
import type { Metric, Target } from "./scenario.js";

export const root = fileURLToPath(new URL("..", import.meta.url));

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Runs `opal-mesh <command>` in its own process, as a user would. */
export function runMesh(command: string, env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, [`${root}bin/opal-mesh.js`, command], { env: { ...process.env, OPAL_LOG_LEVEL: "WARNING", ...env }, stdio: ["ignore", "inherit", "inherit"] });
}

export async function until(check: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

export function summary(samples: number[]): { median: number; p90: number; p99: number; min: number; max: number; n: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  const round = (value: number): number => Math.round(value * 100) / 100;
  return { median: round(percentile(sorted, 50)), p90: round(percentile(sorted, 90)), p99: round(percentile(sorted, 99)), min: round(sorted[0] ?? 0), max: round(sorted.at(-1) ?? 0), n: sorted.length };
}

export async function record(name: string, result: Record<string, unknown>): Promise<void> {
  const full = { scenario: name, node: process.version, date: new Date().toISOString(), ...result };
  console.log(JSON.stringify(full, null, 2));
  await mkdir(`${root}bench/results`, { recursive: true });
  await writeFile(`${root}bench/results/${name}.json`, `${JSON.stringify(full, null, 2)}\n`);
}

/** A Metric from repeated samples: median and p99 (the scenario contract, bench/scenario.ts). */
export function metricOf(name: string, unit: string, samples: readonly number[], target?: Target): Metric {
  if (samples.length === 0) throw new Error(`no samples for "${name}"`);
  const { median, p99, n } = summary([...samples]);
  return target === undefined ? { name, unit, median, p99, n } : { name, unit, median, p99, n, target };
}

/** Ends a child process and waits for it to be gone (SIGKILL after `graceMs`). */
export function stopProcess(child: ChildProcess, graceMs = 10_000): Promise<void> {
  return terminate(child, graceMs);
}

/** Runs a TypeScript module of bench/ in its own Node process (a load generator or a host of clients). */
export function runBenchProcess(module: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, ["--import", "tsx", `${root}bench/${module}`, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "inherit", "ipc"] });
}

/**
 * A fresh data-only `opal-mesh client` process with its inline OPA on free ports (the
 * policy side has its own scenario). BENCH_CLIENT_NODE_OPTIONS reaches its Node, to
 * profile it (e.g. "--heapsnapshot-signal=SIGUSR2" or "--import ./memory-log.mjs").
 */
export async function spawnDataClient(serverUrl: string, env: Record<string, string> = {}): Promise<{ client: ChildProcess; opa: string }> {
  const [apiPort, opaPort] = await Promise.all([freePort(), freePort()]);
  const client = runMesh("client", {
    OPAL_SERVER_URL: serverUrl,
    OPAL_CLIENT_API_SERVER_PORT: String(apiPort),
    OPAL_INLINE_OPA_CONFIG: JSON.stringify({ addr: `127.0.0.1:${opaPort}` }),
    OPAL_POLICY_UPDATER_ENABLED: "false",
    ...(process.env.BENCH_CLIENT_NODE_OPTIONS === undefined ? {} : { NODE_OPTIONS: process.env.BENCH_CLIENT_NODE_OPTIONS }),
    ...env,
  });
  return { client, opa: `http://127.0.0.1:${opaPort}` };
}
