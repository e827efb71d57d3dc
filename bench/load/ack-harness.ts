/**
 * The scenario side of the ACK-only load: the system under test in the distributed
 * deployment (broadcaster with its in-memory log, trigger-api, and the distributor alone
 * in its own process, on a fixed stream port so it can be killed and restarted), and the
 * load-generator process (bench/load/ack-fleet.ts) driven over IPC.
 *
 * BENCH_DISTRIBUTOR_NODE_OPTIONS is passed to the distributor as NODE_OPTIONS, e.g.
 * `--cpu-prof --cpu-prof-dir=/tmp/prof` or `--heapsnapshot-signal=SIGUSR2` to profile it.
 */
import type { ChildProcess } from "node:child_process";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { TriggerService } from "../../gen/opal/mesh/v1/trigger_pb.js";
import { freePort, runBenchProcess, runMesh, stopProcess, until } from "../lib.js";
import type { AckLoadReport, AckLoadRequest, AckLoadStats } from "./ack-protocol.js";

export const now = (): number => performance.timeOrigin + performance.now();

async function healthy(port: number): Promise<boolean> {
  const response = await fetch(`http://127.0.0.1:${port}/healthcheck`);
  await response.body?.cancel();
  return response.status === 200;
}

export class MeshUnderTest {
  distributor: ChildProcess | undefined;
  private broadcaster: ChildProcess | undefined;
  private trigger: ChildProcess | undefined;
  private triggerClient: Client<typeof TriggerService> | undefined;
  private ports = { broadcaster: 0, trigger: 0, distributor: 0, stream: 0 };
  private value = 0;

  get streamTarget(): string {
    return `127.0.0.1:${this.ports.stream}`;
  }

  async start(): Promise<void> {
    this.ports = { broadcaster: await freePort(), trigger: await freePort(), distributor: await freePort(), stream: await freePort() };
    this.broadcaster = runMesh("broadcaster", { OPAL_SERVER_HOST: "127.0.0.1", OPAL_SERVER_BIND_PORT: String(this.ports.broadcaster) });
    await until(() => healthy(this.ports.broadcaster), "the broadcaster");
    this.trigger = runMesh("trigger-api", { OPAL_SERVER_HOST: "127.0.0.1", OPAL_SERVER_BIND_PORT: String(this.ports.trigger), OPAL_MESH_BROADCASTER_URLS: this.broadcasterUrl });
    await until(() => healthy(this.ports.trigger), "the trigger-api");
    this.triggerClient = createClient(TriggerService, createConnectTransport({ baseUrl: `http://127.0.0.1:${this.ports.trigger}`, httpVersion: "1.1" }));
    this.spawnDistributor();
    await this.distributorReady();
  }

  private get broadcasterUrl(): string {
    return `http://127.0.0.1:${this.ports.broadcaster}`;
  }

  /** Starts the distributor process (not waiting for it): the clock of a restart starts here. */
  spawnDistributor(): ChildProcess {
    const nodeOptions = process.env.BENCH_DISTRIBUTOR_NODE_OPTIONS;
    this.distributor = runMesh("distributor", {
      OPAL_SERVER_HOST: "127.0.0.1",
      OPAL_SERVER_BIND_PORT: String(this.ports.distributor),
      OPAL_MESH_STREAM_PORT: String(this.ports.stream),
      OPAL_MESH_BROADCASTER_URLS: this.broadcasterUrl,
      // Required to run a distributor alone; bundles are never asked for here.
      OPAL_MESH_POLICY_WATCHER_URLS: this.broadcasterUrl,
      ...(nodeOptions === undefined ? {} : { NODE_OPTIONS: nodeOptions }),
    });
    return this.distributor;
  }

  async distributorReady(timeoutMs = 60_000): Promise<void> {
    await until(() => healthy(this.ports.distributor), "the distributor", timeoutMs);
  }

  get distributorPid(): number {
    const pid = this.distributor?.pid;
    if (pid === undefined) throw new Error("the distributor is not running");
    return pid;
  }

  async killDistributor(): Promise<void> {
    const child = this.distributor;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGKILL");
    await exited;
  }

  /** One data update with inline data on the clients' topic; resolves with its log position. */
  async publish(): Promise<number> {
    if (this.triggerClient === undefined) throw new Error("not started");
    const value = ++this.value;
    const response = await this.triggerClient.publishDataUpdate({ entries: [{ dstPath: "/bench/value", topics: ["policy_data"], data: { kind: { case: "numberValue", value } } }], reason: `bench ${value}` });
    return Number(response.position);
  }

  async stop(): Promise<void> {
    await Promise.all([this.distributor, this.trigger, this.broadcaster].map(async (child) => (child === undefined ? undefined : stopProcess(child))));
  }
}

export type Delivered = Omit<Extract<AckLoadReport, { type: "delivered" }>, "type">;

/** The load-generator process: N ACK-only clients on one distributor stream port. */
export class AckLoad {
  readonly process: ChildProcess;
  private readonly delivered = new Map<number, Delivered>();
  private readonly waiters = new Set<() => void>();
  private statsReply: ((stats: AckLoadStats) => void) | undefined;
  private exited = false;

  constructor(target: string, clients: number, options: { perConnection?: number; idPrefix?: string } = {}) {
    this.process = runBenchProcess("load/ack-fleet.ts", ["--target", target, "--clients", String(clients), "--per-connection", String(options.perConnection ?? 1), "--id-prefix", options.idPrefix ?? "load"]);
    this.process.stdout?.resume();
    this.process.on("message", (message: AckLoadReport) => {
      if (message.type === "delivered") {
        this.delivered.set(message.position, message);
        for (const wake of this.waiters) wake();
      } else this.statsReply?.(message.stats);
    });
    this.process.once("exit", () => {
      this.exited = true;
      for (const wake of this.waiters) wake();
    });
  }

  private send(request: AckLoadRequest): void {
    this.process.send(request);
  }

  async stats(): Promise<AckLoadStats> {
    if (this.exited) throw new Error("the load generator exited");
    return new Promise((resolve) => {
      this.statsReply = resolve;
      this.send({ type: "stats" });
    });
  }

  async connected(count: number, timeoutMs: number): Promise<AckLoadStats> {
    let last: AckLoadStats | undefined;
    await until(async () => (last = await this.stats()).connected >= count, `${count} load-generator clients to connect`, timeoutMs).catch((error: unknown) => {
      throw new Error(`${(error as Error).message} (${JSON.stringify(last)})`);
    });
    return last as AckLoadStats;
  }

  /** Resolves when every client has received `position`; throws at the deadline with the stats. */
  async deliveredAll(position: number, timeoutMs: number): Promise<Delivered> {
    const deadline = Date.now() + timeoutMs;
    while (!this.delivered.has(position)) {
      if (this.exited) throw new Error("the load generator exited");
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`not every client received position ${position} within ${timeoutMs} ms: ${JSON.stringify(await this.stats())}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(remaining, 1_000));
        function done(): void {
          clearTimeout(timer);
          waiters.delete(done);
          resolve();
        }
        const waiters = this.waiters;
        waiters.add(done);
      });
    }
    return this.delivered.get(position) as Delivered;
  }

  async stop(): Promise<AckLoadStats | undefined> {
    if (this.exited) return undefined;
    const stopped = new Promise<AckLoadStats>((resolve) => (this.statsReply = resolve));
    this.send({ type: "stop" });
    const stats = await Promise.race([stopped, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 5_000))]);
    // It exits by itself once its streams are closed (and writes a --cpu-prof when asked to).
    const exited = new Promise<void>((resolve) => this.process.once("exit", () => resolve()));
    if (!this.exited) await Promise.race([exited, new Promise<void>((resolve) => setTimeout(resolve, 5_000))]);
    await stopProcess(this.process, 2_000);
    return stats;
  }
}
