/**
 * An in-memory policy store for unit tests of what writes to OPA: JSON Patch applied as
 * RFC 6902 says, all or nothing, with OPA's 404 for what is missing.
 */
import { type DataWrite, type PatchOperation, type PolicyStore, PolicyStoreError, type ValueStream } from "../../policy-store.js";

export type Json = unknown;

export interface RecordedOperation {
  op: PatchOperation["op"];
  path: string;
  value?: Json;
}

export interface PatchAttempt {
  operations: RecordedOperation[];
  /** The error the store answered with; undefined when the patch was applied. */
  error: string | undefined;
}

/** A value's bytes, reading a streamed one as OPA would (to its end, in the request). */
async function bytesOf(value: Uint8Array | ValueStream): Promise<Uint8Array> {
  if (value instanceof Uint8Array) return value;
  const chunks: Uint8Array[] = [];
  for await (const chunk of value.chunks()) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function isContainer(value: Json): value is Record<string, Json> | Json[] {
  return typeof value === "object" && value !== null;
}

function isPlainObject(value: Json): value is Record<string, Json> {
  return isContainer(value) && !Array.isArray(value);
}

/** RFC 6901: "" is the whole document; "~1" is "/" and "~0" is "~" inside a token. */
function parsePointer(path: string): string[] {
  if (path === "") return [];
  if (!path.startsWith("/")) throw new PolicyStoreError(`bad pointer ${JSON.stringify(path)}`, 400);
  return path
    .slice(1)
    .split("/")
    .map((token) => token.replaceAll("~1", "/").replaceAll("~0", "~"));
}

function child(container: Json, token: string): { found: boolean; value: Json } {
  if (Array.isArray(container)) {
    const index = Number(token);
    return Number.isInteger(index) && index >= 0 && index < container.length ? { found: true, value: container[index] } : { found: false, value: undefined };
  }
  if (isPlainObject(container) && Object.hasOwn(container, token)) return { found: true, value: container[token] };
  return { found: false, value: undefined };
}

function resolve(document: Json, tokens: readonly string[]): { found: boolean; value: Json } {
  let current: { found: boolean; value: Json } = { found: true, value: document };
  for (const token of tokens) {
    if (!current.found) break;
    current = child(current.value, token);
  }
  return current;
}

/**
 * An in-memory policy store applying JSON Patch as RFC 6902 says (add needs the parent,
 * remove and replace need the target), all or nothing, with OPA's 404 for what is missing.
 * Every patch (applied or refused) and every `exists` question is recorded.
 */
export class MemoryStore implements PolicyStore {
  readonly name = "memory";
  document: Json;
  readonly attempts: PatchAttempt[] = [];
  readonly existsCalls: string[] = [];
  /** Errors the next patches answer with, whatever they hold. */
  readonly failures: PolicyStoreError[] = [];

  constructor(document: Json = {}) {
    this.document = structuredClone(document);
  }

  async patch(operations: readonly PatchOperation[]): Promise<void> {
    const recorded: RecordedOperation[] = [];
    for (const { op, path, value } of operations) recorded.push(value === undefined ? { op, path } : { op, path, value: JSON.parse(Buffer.from(await bytesOf(value)).toString("utf8")) as Json });
    const attempt: PatchAttempt = { operations: recorded, error: undefined };
    this.attempts.push(attempt);
    try {
      const injected = this.failures.shift();
      if (injected !== undefined) throw injected;
      let next = structuredClone(this.document);
      for (const operation of recorded) next = applyOperation(next, operation);
      if (!isPlainObject(next)) throw new PolicyStoreError("the data root must be an object", 400);
      this.document = next;
    } catch (error) {
      attempt.error = (error as Error).message;
      throw error;
    }
  }

  async exists(path: string): Promise<boolean> {
    this.existsCalls.push(path);
    return resolve(
      this.document,
      path.split("/").filter((segment) => segment !== ""),
    ).found;
  }

  /** Patches the store applied. */
  get applied(): RecordedOperation[][] {
    return this.attempts.filter((attempt) => attempt.error === undefined).map((attempt) => attempt.operations);
  }

  async isHealthy(): Promise<boolean> {
    return true;
  }
  async writeData(_write: DataWrite): Promise<void> {
    throw new Error("DataTransactions writes with patch() only");
  }
  async readData(path: string): Promise<unknown> {
    return resolve(this.document, parsePointer(path === "/" ? "" : path)).value;
  }
  async putPolicy(): Promise<void> {
    throw new Error("not used");
  }
  async deletePolicy(): Promise<void> {
    throw new Error("not used");
  }
  async listPolicies(): Promise<Array<{ id: string; raw: string }>> {
    return [];
  }
  async close(): Promise<void> {}
}

function applyOperation(document: Json, { op, path, value }: RecordedOperation): Json {
  const tokens = parsePointer(path);
  const key = tokens.at(-1);
  if (key === undefined) {
    if (op === "remove") throw new PolicyStoreError("cannot remove the root", 400);
    return structuredClone(value);
  }
  const parent = resolve(document, tokens.slice(0, -1));
  if (!parent.found || !isContainer(parent.value)) throw new PolicyStoreError(`${op} ${path}: parent not found`, 404);
  const container = parent.value;
  const target = child(container, key);
  if (op !== "add" && !target.found) throw new PolicyStoreError(`${op} ${path}: document missing`, 404);
  if (Array.isArray(container)) {
    const index = key === "-" ? container.length : Number(key);
    if (!Number.isInteger(index) || index < 0 || index > container.length) throw new PolicyStoreError(`${op} ${path}: bad index`, 400);
    if (op === "add") container.splice(index, 0, structuredClone(value));
    else if (op === "replace") container[index] = structuredClone(value);
    else container.splice(index, 1);
    return document;
  }
  if (op === "remove") delete container[key];
  else container[key] = structuredClone(value);
  return document;
}
