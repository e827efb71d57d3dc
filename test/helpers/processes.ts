/** opal-mesh processes for tests of the distributed deployment: spawned, watched, killed. */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Agent, request } from "undici";
import { waitFor } from "./wait.js";

const BIN = fileURLToPath(new URL("../../bin/opal-mesh.js", import.meta.url));

export class MeshProcess {
  child: ChildProcess;
  private output: string[] = [];
  /** Every line it wrote since it was made (across restarts), bounded: for `logged`. */
  private readonly history: string[] = [];
  private readyAgent: Agent | undefined;

  constructor(
    readonly command: string,
    readonly env: Record<string, string>,
    /** What answers when it is up (a /healthcheck or /ready URL). */
    readonly readyUrl: string,
    /** For an https readyUrl: the CA (and the certificate, when the process requires one). */
    private readonly readyTls?: { ca: Buffer; cert?: Buffer; key?: Buffer },
  ) {
    this.child = this.spawn();
  }

  private spawn(): ChildProcess {
    const child = spawn(process.execPath, [BIN, this.command], {
      env: { ...process.env, OPAL_LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "WARNING", OPAL_LOG_SERIALIZE: "true", ...this.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const keep = (chunk: Buffer): void => {
      for (const line of chunk.toString().split("\n")) {
        if (line.trim() === "") continue;
        this.output.push(line);
        if (this.output.length > 40) this.output.shift();
        this.history.push(line);
        if (this.history.length > 10_000) this.history.shift();
        const only = process.env.TEST_LOG_COMMANDS?.split(",");
        if (process.env.TEST_LOG_LEVEL !== undefined && (only === undefined || only.includes(this.command))) process.stderr.write(`[${this.command}] ${line}\n`);
      }
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    return child;
  }

  /** How many lines it wrote (since it was made) match `pattern`. */
  logged(pattern: RegExp): number {
    return this.history.filter((line) => pattern.test(line)).length;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async ready(timeoutMs = 60_000): Promise<void> {
    await waitFor(
      async () => {
        if (!this.alive) throw new Error(`${this.command} exited: ${this.output.join("\n")}`);
        const response = await request(this.readyUrl, this.readyTls === undefined ? {} : { dispatcher: (this.readyAgent ??= new Agent({ connect: this.readyTls })) });
        await response.body.dump();
        return response.statusCode === 200;
      },
      { timeoutMs, message: () => `${this.command} at ${this.readyUrl} to be ready:\n${this.output.slice(-10).join("\n")}` },
    );
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    if (!this.alive) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.kill(signal);
    await exited;
  }

  /** Starts it again with the same command and environment. */
  restart(): void {
    this.child = this.spawn();
  }
}
