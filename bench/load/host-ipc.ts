/**
 * Request/response over a child process's IPC channel: the bench process asks its load
 * processes (client hosts, publishers, ACK-only clients) for state by message, so the
 * measuring process never shares an event loop with the system under test.
 */
import type { ChildProcess } from "node:child_process";

export interface IpcRequest {
  id: number;
  type: string;
  [field: string]: unknown;
}

export interface IpcReply {
  id?: number;
  type: string;
  error?: string;
  [field: string]: unknown;
}

let nextId = 1;

/** The first message from `child` that `accept` answers (true: resolve, an Error: reject), or a rejection on its exit or after `timeoutMs`. */
function awaitMessage<T extends IpcReply>(child: ChildProcess, accept: (message: IpcReply) => boolean | Error, timeoutMs: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer);
      child.off("message", onMessage);
      child.off("exit", onExit);
    };
    const onMessage = (message: IpcReply): void => {
      const verdict = accept(message);
      if (verdict === false) return;
      cleanup();
      if (verdict instanceof Error) reject(verdict);
      else resolve(message as T);
    };
    const onExit = (code: number | null): void => {
      cleanup();
      reject(new Error(`the load process exited (${code}) before ${what}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no ${what} in ${timeoutMs} ms`));
    }, timeoutMs);
    child.on("message", onMessage);
    child.once("exit", onExit);
  });
}

/** Sends a request and resolves with the child's reply to it (rejects on its error or exit). */
export function ask<T extends IpcReply>(child: ChildProcess, type: string, fields: Record<string, unknown> = {}, timeoutMs = 120_000): Promise<T> {
  const id = nextId++;
  const reply = awaitMessage<T>(child, (message) => message.id === id && (message.error === undefined || new Error(`${type}: ${message.error}`)), timeoutMs, `the answer to "${type}"`);
  child.send({ id, type, ...fields } satisfies IpcRequest);
  return reply;
}

/** Waits for a message the child sends unasked (e.g. "ready"). */
export function expectMessage<T extends IpcReply>(child: ChildProcess, type: string, timeoutMs = 180_000): Promise<T> {
  return awaitMessage<T>(child, (message) => (message.type === "failed" ? new Error(message.error ?? "the load process failed") : message.type === type), timeoutMs, `"${type}"`);
}

/**
 * In a load process: answers the parent's requests with `handle`, errors as replies. A
 * "stop" request exits the process once its reply is sent (so a --cpu-prof profile is
 * written, and the reply is not lost with the process).
 */
export function serve(handle: (request: IpcRequest) => Promise<Record<string, unknown>>): void {
  process.on("message", (request: IpcRequest) => {
    const reply = (message: Record<string, unknown>): void => {
      process.send?.({ id: request.id, type: request.type, ...message }, undefined, {}, () => {
        if (request.type === "stop") process.exit(0);
      });
    };
    handle(request).then(reply, (error: unknown) => reply({ error: (error as Error).message }));
  });
}

/** A flag's value from argv (`--name value`). */
export function argument(name: string, fallback?: string): string {
  const index = process.argv.indexOf(`--${name}`);
  const value = index === -1 ? fallback : process.argv[index + 1];
  if (value === undefined) throw new Error(`--${name} is required`);
  return value;
}
