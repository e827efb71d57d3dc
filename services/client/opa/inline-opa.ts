/**
 * Runs OPA as a supervised child process: waits until it answers /health, restarts it
 * with backoff when it exits, and tells the agent so it can rehydrate the empty OPA.
 * It can also be restarted on purpose with policy files to load at start (`reloadWith`).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { terminate } from "../../common/child-process.js";
import { request } from "undici";
import { backoffDelay, sleep } from "../../common/backoff.js";
import type { InlineOpaConfig } from "../../common/config/client-config.js";
import { type Closed, Closing, type Component } from "../../common/lifecycle.js";
import type { Logger } from "../../common/logger.js";

export interface InlineOpaOptions {
  binary: string;
  config: InlineOpaConfig;
  /** Where OPA answers (derived from its addr). */
  url: string;
  logger: Logger;
  /** Called as soon as OPA exits unexpectedly: what it held is gone from this moment. */
  onExit?: () => void;
  /** Called after OPA came back from an unexpected exit: it is empty now. */
  onRestart: () => void;
  startTimeoutMs?: number;
}

export class InlineOpa implements Component {
  readonly name = "inline-opa";
  private readonly closing = new Closing();
  private stopped: Promise<void> | undefined;
  private child: ChildProcess | undefined;
  private stopping = false;
  private recentOutput: string[] = [];
  private supervising: Promise<void> | undefined;
  /** Set while `reloadWith` replaces the process: its exit is intended, not a crash. */
  private replacement: Promise<ChildProcess> | undefined;
  private readonly killOnExit = (): void => {
    this.child?.kill("SIGKILL");
  };

  constructor(private readonly options: InlineOpaOptions) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(signal: AbortSignal): Promise<void> {
    process.once("exit", this.killOnExit);
    const child = this.spawn();
    await this.waitHealthy(child, signal);
    this.supervising = this.supervise(child, signal);
  }

  get closed(): Promise<Closed> {
    return this.closing.closed;
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.stopping = true;
      process.off("exit", this.killOnExit);
      if (this.child !== undefined) await terminate(this.child);
      await this.supervising;
    })().finally(() => this.closing.stopped());
    return this.stopped;
  }

  /** OPAL_INLINE_OPA_CONFIG lists files to load at start (then a reload would drop them). */
  get hasStartupFiles(): boolean {
    return this.options.config.files.length > 0;
  }

  /**
   * Restarts OPA loading `files` (paths relative to `cwd`, which become the policies' ids)
   * at start-up: one compile for all of them, where `PUT /v1/policies` recompiles the whole
   * set on every call. Everything OPA held is gone, so callers use it on an empty OPA only.
   * Resolves false, with OPA back up and empty, when OPA refused to start with them.
   */
  async reloadWith(cwd: string, files: readonly string[], signal: AbortSignal): Promise<boolean> {
    let settle: (child: ChildProcess) => void = () => undefined;
    let fail: (error: Error) => void = () => undefined;
    this.replacement = new Promise<ChildProcess>((resolve, reject) => {
      settle = resolve;
      fail = reject;
    });
    // The supervisor may never look at it (when stopping); a failure must not go unhandled.
    this.replacement.catch(() => undefined);
    try {
      if (this.child !== undefined) await terminate(this.child);
      const loaded = this.spawn(files, cwd);
      try {
        await this.waitHealthy(loaded, signal);
        settle(loaded);
        return true;
      } catch (error) {
        if (signal.aborted) throw error;
        this.options.logger.warn({ err: (error as Error).message, files: files.length }, "OPA refused to start with the policy files; loading them one by one instead");
        await terminate(loaded);
        const empty = this.spawn();
        await this.waitHealthy(empty, signal);
        settle(empty);
        return false;
      }
    } catch (error) {
      fail(error as Error);
      throw error;
    }
  }

  private args(files: readonly string[] = this.options.config.files): string[] {
    const { config } = this.options;
    const args = ["run", "--server", `--addr=${config.addr}`, `--log-level=${config.logLevel}`, "--log-format=json"];
    if (config.configFile !== undefined) args.push(`--config-file=${config.configFile}`);
    return [...args, ...files];
  }

  private spawn(files?: readonly string[], cwd?: string): ChildProcess {
    const [command, args] = diesWithParent(this.options.binary, this.args(files));
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], cwd });
    this.child = child;
    this.recentOutput = [];
    const onOutput = (chunk: Buffer): void => {
      for (const line of chunk.toString().split("\n")) {
        if (line.trim() === "") continue;
        this.recentOutput.push(line);
        if (this.recentOutput.length > 20) this.recentOutput.shift();
        if (this.options.config.logFormat !== "none") this.options.logger.info({ opa: line }, "opa");
      }
    };
    child.stdout?.on("data", onOutput);
    child.stderr?.on("data", onOutput);
    child.on("error", (error) => this.options.logger.error({ err: error }, "could not run OPA"));
    return child;
  }

  /** Polls /health with backoff (as OPAL: up to ~30 tries), failing early if OPA exits. */
  private async waitHealthy(child: ChildProcess, signal: AbortSignal): Promise<void> {
    const deadline = Date.now() + (this.options.startTimeoutMs ?? 30_000);
    for (let attempt = 1; ; attempt++) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`OPA exited during start-up (code ${child.exitCode ?? child.signalCode}):\n${this.recentOutput.join("\n")}`);
      }
      try {
        const response = await request(`${this.options.url}/health`, { signal, headersTimeout: 1_000, bodyTimeout: 1_000 });
        await response.body.dump();
        if (response.statusCode === 200) return;
      } catch (error) {
        if (signal.aborted) throw error;
      }
      if (Date.now() > deadline) throw new Error(`OPA did not become healthy at ${this.options.url} within the start timeout:\n${this.recentOutput.join("\n")}`);
      await sleep(backoffDelay(attempt, { initialMs: 50, maxMs: 1_000, jitter: 0 }), signal);
    }
  }

  private async supervise(first: ChildProcess, signal: AbortSignal): Promise<void> {
    let child = first;
    let restarts = 0;
    while (!this.stopping && !signal.aborted) {
      const code = await new Promise<number | string | null>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode ?? child.signalCode);
        else child.once("exit", (exitCode, exitSignal) => resolve(exitCode ?? exitSignal));
      });
      if (this.stopping || signal.aborted) return;
      const replacement = this.replacement;
      if (replacement !== undefined) {
        // A reload ended this process: supervise the one that replaces it.
        this.replacement = undefined;
        try {
          child = await replacement;
          continue;
        } catch {
          // The reload could not bring OPA back: restart it as after a crash.
        }
      }
      this.options.onExit?.();
      restarts++;
      const delay = backoffDelay(restarts, { initialMs: 500, maxMs: 10_000, jitter: 0.2 });
      this.options.logger.error({ code, restartInMs: delay, output: this.recentOutput.slice(-5) }, "inline OPA exited; restarting");
      try {
        await sleep(delay, signal);
        child = this.spawn();
        await this.waitHealthy(child, signal);
        restarts = 0;
        this.options.onRestart();
      } catch (error) {
        if (signal.aborted || this.stopping) return;
        this.options.logger.error({ err: error }, "inline OPA failed to restart");
      }
    }
  }
}

/**
 * On Linux, OPA is started through util-linux's `setpriv --pdeathsig SIGKILL`, which execs
 * it (same pid) with the kernel told to kill it when this process dies. A client killed
 * with SIGKILL (no exit handler runs) would otherwise leave its OPA behind, holding the
 * port its restart needs. Elsewhere, or without setpriv, OPA is started directly.
 */
const SETPRIV = process.platform === "linux" ? ["/usr/bin/setpriv", "/bin/setpriv"].find((path) => existsSync(path)) : undefined;

function diesWithParent(binary: string, args: string[]): [string, string[]] {
  return SETPRIV === undefined ? [binary, args] : [SETPRIV, ["--pdeathsig", "SIGKILL", "--", binary, ...args]];
}
