/** An OPAL process (client or server) in its own process group, its output kept for failure messages. */
import { type ChildProcess, spawn } from "node:child_process";
import type { Readable } from "node:stream";

const MAX_LOG = 1 << 20;

export interface OpalProcess {
  child: ChildProcess;
  /** What it printed so far (the newest MiB). */
  logs: () => string;
  exited: Promise<void>;
}

// Groups still running. A test that forgets one (a hook that threw half-way) must neither
// hang its file (the pipes would keep the event loop alive) nor leave python and OPA
// running after it: they are unreferenced, and killed when the test process exits.
const running = new Set<number>();
process.once("exit", () => {
  for (const pid of running) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
});

export function spawnOpal(command: string, cwd: string, env: Record<string, string>): OpalProcess {
  const child = spawn(command, ["run"], { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const keep = (chunk: Buffer): void => {
    output += chunk.toString();
    if (output.length > MAX_LOG) output = output.slice(-MAX_LOG / 2);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  if (child.pid !== undefined) running.add(child.pid);
  child.unref();
  for (const stream of [child.stdout, child.stderr]) (stream as Readable & { unref?: () => void }).unref?.();
  const exited = new Promise<void>((resolve) =>
    child.once("exit", () => {
      if (child.pid !== undefined) running.delete(child.pid);
      resolve();
    }),
  );
  return { child, logs: () => output, exited };
}
