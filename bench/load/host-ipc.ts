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

/** Sends a request and resolves with the child's reply to it (rejects on its error or exit). */
export function ask<T extends IpcReply>(child: ChildProcess, type: string, fields: Record<string, unknown> = {}, timeoutMs = 120_000): Promise<T> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer);
      child.off("message", onMessage);
      child.off("exit", onExit);
    };
    const onMessage = (message: IpcReply): void => {
      if (message.id !== id) return;
      cleanup();
      if (message.error !== undefined) reject(new Error(`${type}: ${message.error}`));
      else resolve(message as T);
    };
    const onExit = (code: number | null): void => {
      cleanup();
      reject(new Error(`${type}: the load process exited (${code})`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${type}: no answer in ${timeoutMs} ms`));
    }, timeoutMs);
    child.on("message", onMessage);
    child.once("exit", onExit);
    child.send({ id, type, ...fields } satisfies IpcRequest);
  });
}

/** Waits for a message the child sends unasked (e.g. "ready"). */
export function expectMessage<T extends IpcReply>(child: ChildProcess, type: string, timeoutMs = 180_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer);
      child.off("message", onMessage);
      child.off("exit", onExit);
    };
    const onMessage = (message: IpcReply): void => {
      if (message.type !== type && message.type !== "failed") return;
      cleanup();
      if (message.type === "failed") reject(new Error(message.error ?? "the load process failed"));
      else resolve(message as T);
    };
    const onExit = (code: number | null): void => {
      cleanup();
      reject(new Error(`the load process exited (${code}) before "${type}"`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no "${type}" in ${timeoutMs} ms`));
    }, timeoutMs);
    child.on("message", onMessage);
    child.once("exit", onExit);
  });
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
