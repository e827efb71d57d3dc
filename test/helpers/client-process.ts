/**
 * A client as its own process (`opal-mesh client`), as users run it: with its inline OPA
 * (a child it supervises, which can be killed with it or alone) or with an external OPA
 * that outlives it (holding what the client wrote, position included).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { request } from "undici";
import { type OpaReader, opaReader } from "./checker.js";
import { opaBinary } from "./opa.js";
import { freePort } from "./ports.js";
import { MeshProcess } from "./processes.js";
import { waitFor } from "./wait.js";

async function answers(url: string): Promise<boolean> {
  try {
    const response = await request(url, { headersTimeout: 1_000, bodyTimeout: 1_000 });
    await response.body.dump();
    return response.statusCode === 200;
  } catch {
    return false;
  }
}

function alive(pid: number): boolean {
  try {
    // A zombie (dead, not yet reaped by whoever inherited it) is dead too.
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

export class ClientProcess {
  readonly reader: OpaReader;

  private constructor(
    readonly name: string,
    readonly process: MeshProcess,
    readonly opaUrl: string,
    readonly apiUrl: string,
    private readonly inlineOpaAddr: string | undefined,
  ) {
    this.reader = opaReader(opaUrl);
  }

  /** Spawned with an inline OPA on a free port (not yet ready: see `ready`). */
  static async inline(name: string, serverUrl: string, env: Record<string, string> = {}): Promise<ClientProcess> {
    const [apiPort, opaPort] = [await freePort(), await freePort()];
    const addr = `127.0.0.1:${opaPort}`;
    const process = new MeshProcess(
      "client",
      { OPAL_SERVER_URL: serverUrl, OPAL_CLIENT_STAT_ID: name, OPAL_CLIENT_API_SERVER_PORT: String(apiPort), OPAL_INLINE_OPA_EXEC_PATH: await opaBinary(), OPAL_INLINE_OPA_CONFIG: JSON.stringify({ addr }), ...env },
      `http://127.0.0.1:${apiPort}/ready`,
    );
    return new ClientProcess(name, process, `http://${addr}`, `http://127.0.0.1:${apiPort}`, addr);
  }

  /** Spawned against an OPA it does not own (`opa.url`). */
  static async external(name: string, serverUrl: string, opa: ExternalOpa, env: Record<string, string> = {}): Promise<ClientProcess> {
    const apiPort = await freePort();
    const process = new MeshProcess(
      "client",
      { OPAL_SERVER_URL: serverUrl, OPAL_CLIENT_STAT_ID: name, OPAL_CLIENT_API_SERVER_PORT: String(apiPort), OPAL_INLINE_OPA_ENABLED: "false", OPAL_POLICY_STORE_URL: opa.url, OPAL_POLICY_STORE_LIVENESS_PROBE_INTERVAL_SECONDS: "0.2", ...env },
      `http://127.0.0.1:${apiPort}/ready`,
    );
    return new ClientProcess(name, process, opa.url, `http://127.0.0.1:${apiPort}`, undefined);
  }

  async ready(timeoutMs = 60_000): Promise<this> {
    await this.process.ready(timeoutMs);
    return this;
  }

  /** The inline OPA's pid: the client's child serving at its address (started through setpriv, which execs it). */
  inlineOpaPid(): number | undefined {
    const pid = this.process.child.pid;
    if (pid === undefined || this.inlineOpaAddr === undefined) return undefined;
    let children: string[];
    try {
      children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter((child) => child !== "");
    } catch {
      return undefined;
    }
    for (const child of children) {
      try {
        if (readFileSync(`/proc/${child}/cmdline`, "utf8").includes(`--addr=${this.inlineOpaAddr}`)) return Number(child);
      } catch {
        // It exited meanwhile.
      }
    }
    return undefined;
  }

  /** kill -9 of the client process and its inline OPA together; returns once both are gone. */
  async killWithOpa(): Promise<void> {
    const opa = await waitFor(() => this.inlineOpaPid(), { message: `${this.name}'s inline OPA` });
    process.kill(opa, "SIGKILL");
    await this.process.kill("SIGKILL");
    await waitFor(async () => !alive(opa) && !(await answers(`${this.opaUrl}/health`)), { message: `${this.name}'s OPA (pid ${opa}) to be gone` });
  }

  /** kill -9 of the inline OPA alone; returns once the client's supervisor has started another. */
  async killOpa(): Promise<void> {
    const opa = await waitFor(() => this.inlineOpaPid(), { message: `${this.name}'s inline OPA` });
    process.kill(opa, "SIGKILL");
    await waitFor(
      async () => {
        const next = this.inlineOpaPid();
        return next !== undefined && next !== opa && (await answers(`${this.opaUrl}/health`));
      },
      { timeoutMs: 30_000, message: `${this.name}'s supervisor to start another OPA` },
    );
  }

  /** Started again with the same ports and environment. */
  restart(): void {
    this.process.restart();
  }

  async stop(): Promise<void> {
    const opa = this.inlineOpaPid();
    await this.process.kill("SIGKILL");
    if (opa !== undefined && alive(opa)) process.kill(opa, "SIGKILL");
  }
}

/** An OPA of its own process, on a free port: it keeps its state while its client is away. */
export class ExternalOpa {
  private child: ChildProcess | undefined;

  private constructor(readonly port: number) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<ExternalOpa> {
    const opa = new ExternalOpa(await freePort());
    opa.child = spawn(await opaBinary(), ["run", "--server", `--addr=127.0.0.1:${opa.port}`, "--log-level=error"], { stdio: "ignore" });
    await waitFor(() => answers(`${opa.url}/health`), { message: "the external OPA to answer" });
    return opa;
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }
}
