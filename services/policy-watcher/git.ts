/** Runs the system `git`, never prompting, with an optional deadline and abort signal. */
import { spawn } from "node:child_process";

export class GitError extends Error {
  override readonly name = "GitError";
}

export interface GitRunOptions {
  cwd?: string;
  env: Readonly<Record<string, string | undefined>>;
  signal?: AbortSignal;
  timeoutMs?: number;
  input?: string;
  /** Text to remove from error messages (a token inside the repo URL). */
  secrets?: readonly string[];
}

export function runGit(args: readonly string[], options: GitRunOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn("git", args, {
      cwd: options.cwd,
      env: { ...options.env, GIT_TERMINAL_PROMPT: "0", GIT_ASKPASS: "true", LC_ALL: "C" },
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      signal: options.signal,
    });
    const stdout: Buffer[] = [];
    let stderr = "";
    child.stdout?.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4_000);
    });
    const timer = options.timeoutMs !== undefined && options.timeoutMs > 0 ? setTimeout(() => child.kill("SIGKILL"), options.timeoutMs) : undefined;
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(new GitError(scrub(`git ${args[0] ?? ""}: ${error.message}`, options.secrets)));
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(Buffer.concat(stdout));
      else reject(new GitError(scrub(`git ${args[0] ?? ""} failed (${signal ?? `exit ${code}`}): ${stderr.trim()}`, options.secrets)));
    });
    if (options.input !== undefined && child.stdin !== null) {
      // git may exit before reading everything (on an error): that is reported by its exit status.
      child.stdin.on("error", () => undefined);
      child.stdin.end(options.input);
    }
  });
}

function scrub(message: string, secrets: readonly string[] | undefined): string {
  let result = message;
  for (const secret of secrets ?? []) if (secret !== "") result = result.split(secret).join("***");
  return result;
}
