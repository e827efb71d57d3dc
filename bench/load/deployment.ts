/**
 * The system under test for the latency and throughput scenarios: an `opal-mesh server`
 * process (embedded log, or backed by a real Kafka 4 broker), and client-host processes
 * holding real client agents with real inline OPAs.
 */
import type { ChildProcess } from "node:child_process";
import { request } from "undici";
import { startKafka, type RunningKafka } from "../../deploy/kafka/kafka.js";
import { freePort, runBenchProcess, runMesh, stopProcess, until } from "../lib.js";
import { ask, expectMessage } from "./host-ipc.js";
import { warmUpKafka } from "./kafka-warmup.js";

export type LogBackend = "embedded" | "kafka";

/** Extra environment for every process of the system under test (OPAL_BENCH_CPU_PROF=<dir> profiles them). */
export function profiling(): Record<string, string> {
  const dir = process.env.OPAL_BENCH_CPU_PROF;
  return dir === undefined || dir === "" ? {} : { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${dir}` };
}

export interface Deployment {
  backend: LogBackend;
  url: string;
  /** The server process (all four services). */
  server: ChildProcess;
  stop(): Promise<void>;
}

/**
 * `serverEnv` adds to the server's environment (NODE_OPTIONS=--cpu-prof… to profile it).
 * Kafka runs a single KRaft node on loopback with replication factor 1, warmed up first
 * (kafka-warmup.ts) as a broker in service is.
 */
export async function startDeployment(backend: LogBackend, serverEnv: Record<string, string> = {}): Promise<Deployment> {
  let kafka: RunningKafka | undefined;
  if (backend === "kafka") {
    kafka = await startKafka({ port: await freePort() });
    await warmUpKafka(kafka.bootstrap).catch(async (error: unknown) => {
      await kafka?.destroy();
      throw error;
    });
  }
  const port = await freePort();
  const server = runMesh("server", {
    OPAL_SERVER_BIND_PORT: String(port),
    OPAL_MESH_STREAM_PORT: String(await freePort()),
    ...(kafka === undefined ? {} : { OPAL_BROADCAST_URI: `kafka://${kafka.bootstrap}`, OPAL_MESH_KAFKA_REPLICATION_FACTOR: "1" }),
    KAFKAJS_NO_PARTITIONER_WARNING: "1",
    ...serverEnv,
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    await stopProcess(server);
    await kafka?.destroy();
  };
  try {
    await until(async () => (await request(`${url}/healthcheck`)).statusCode === 200, "the server", 120_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return { backend, url, server, stop };
}

/**
 * A process of clients seen from the bench process: real agents (bench/load/client-host.ts)
 * or ACK-only load clients (bench/load/ack-clients.ts), which answer the same requests.
 */
export class ClientHost {
  private constructor(
    readonly child: ChildProcess,
    readonly count: number,
  ) {}

  /** Starts `count` clients of `serverUrl` and resolves once every one is ready. */
  static async start(serverUrl: string, count: number, prefix: string, env: Record<string, string> = {}, module = "load/client-host.ts"): Promise<ClientHost> {
    const child = runBenchProcess(module, ["--server", serverUrl, "--clients", String(count), "--prefix", prefix], env);
    child.stdout?.resume();
    try {
      await expectMessage(child, "ready");
    } catch (error) {
      await stopProcess(child);
      throw error;
    }
    return new ClientHost(child, count);
  }

  async positions(): Promise<bigint[]> {
    return (await ask<{ type: string; positions: string[] }>(this.child, "positions")).positions.map(BigInt);
  }

  /** Events each client applied (its updates_applied_total{kind="event"}). */
  async applied(): Promise<number[]> {
    return (await ask<{ type: string; applied: number[] }>(this.child, "applied")).applied;
  }

  /** The document at `path` in each client's OPA. */
  async read(path: string): Promise<unknown[]> {
    return (await ask<{ type: string; values: unknown[] }>(this.child, "read", { path })).values;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    await ask(this.child, "stop", {}, 60_000).catch(() => stopProcess(this.child));
    await exited;
  }
}

/**
 * Clients spread over several processes (`perProcess` each), as real clients each have
 * their own: one process hosting all of them would serialize their work on one thread.
 */
export class ClientFleet {
  private constructor(readonly hosts: readonly ClientHost[]) {}

  static async start(serverUrl: string, count: number, prefix: string, options: { perProcess: number; env?: Record<string, string>; module?: string }): Promise<ClientFleet> {
    const sizes: number[] = [];
    for (let left = count; left > 0; left -= options.perProcess) sizes.push(Math.min(options.perProcess, left));
    const started = await Promise.allSettled(sizes.map((size, index) => ClientHost.start(serverUrl, size, `${prefix}-${index}`, options.env, options.module)));
    const hosts = started.flatMap((outcome) => (outcome.status === "fulfilled" ? [outcome.value] : []));
    const failed = started.find((outcome) => outcome.status === "rejected");
    if (failed !== undefined) {
      await Promise.all(hosts.map((host) => host.stop()));
      throw failed.reason;
    }
    return new ClientFleet(hosts);
  }

  get count(): number {
    return this.hosts.reduce((sum, host) => sum + host.count, 0);
  }

  async positions(): Promise<bigint[]> {
    return (await Promise.all(this.hosts.map((host) => host.positions()))).flat();
  }

  async applied(): Promise<number[]> {
    return (await Promise.all(this.hosts.map((host) => host.applied()))).flat();
  }

  async read(path: string): Promise<unknown[]> {
    return (await Promise.all(this.hosts.map((host) => host.read(path)))).flat();
  }

  async stop(): Promise<void> {
    await Promise.all(this.hosts.map((host) => host.stop()));
  }
}
