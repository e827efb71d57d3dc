/** An OPAL process (client or server) in its own process group, its output kept for failure messages. */
import { type ChildProcess, spawn } from "node:child_process";

const MAX_LOG = 1 << 20;

export interface OpalProcess {
  child: ChildProcess;
  /** What it printed so far (the newest MiB). */
  logs: () => string;
  exited: Promise<void>;
}

export function spawnOpal(command: string, cwd: string, env: Record<string, string>): OpalProcess {
  const child = spawn(command, ["run"], { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const keep = (chunk: Buffer): void => {
    output += chunk.toString();
    if (output.length > MAX_LOG) output = output.slice(-MAX_LOG / 2);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  return { child, logs: () => output, exited: new Promise<void>((resolve) => child.once("exit", () => resolve())) };
}
