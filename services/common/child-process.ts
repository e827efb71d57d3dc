/** Ending a child process the same way everywhere: SIGTERM, then SIGKILL if it lingers. */
import type { ChildProcess } from "node:child_process";

/** Resolves once the process is gone; SIGKILL after `graceMs` if SIGTERM did not end it. */
export async function terminate(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}
