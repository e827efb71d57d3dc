/**
 * Scopes in one JSON file, for the embedded server. Every change rewrites the whole file
 * atomically (temp file, fsync, rename), one write at a time, and memory follows the file
 * only once the write succeeded: what GET shows is always what a restart will load. The
 * file holds git credentials, so it is created readable by its owner only.
 */
import { randomUUID } from "node:crypto";
import { mkdir, open, readFile, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { clone, fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { type Scope, ScopeSchema } from "../../../gen/opal/mesh/v1/scope_pb.js";
import { Closing } from "../lifecycle.js";
import type { Logger } from "../logger.js";
import type { ScopeListener, ScopeStore } from "./scope-store.js";

const FILE_VERSION = 1;

/** The scope file cannot be read or does not hold what this store writes. */
export class ScopeFileError extends Error {
  override readonly name = "ScopeFileError";
  constructor(
    readonly path: string,
    problem: string,
    options?: ErrorOptions,
  ) {
    super(`scope file ${path}: ${problem}`, options);
  }
}

export class FileScopeStore implements ScopeStore {
  readonly name = "scopes";
  readonly description: string;
  private readonly closing = new Closing();
  readonly closed = this.closing.closed;
  private scopes = new Map<string, Scope>();
  private readonly listeners: ScopeListener[] = [];
  /** The tail of the write queue; never rejects. */
  private writes: Promise<unknown> = Promise.resolve();
  private started = false;

  constructor(
    private readonly path: string,
    private readonly logger: Logger,
  ) {
    this.description = `file ${path}`;
  }

  async start(signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    this.scopes = await readScopeFile(this.path);
    this.started = true;
    this.logger.info({ store: this.description, scopes: this.scopes.size }, "scopes loaded");
  }

  /** Waits for writes in flight; the store holds nothing else open. */
  async stop(): Promise<void> {
    await this.writes;
    this.closing.stopped();
  }

  list(): Scope[] {
    return [...this.scopes.values()];
  }

  get(id: string): Scope | undefined {
    return this.scopes.get(id);
  }

  put(scope: Scope): Promise<Scope | undefined> {
    const stored = clone(ScopeSchema, scope);
    const id = stored.scopeId;
    return this.serialize(async () => {
      if (id === "") throw new Error("a scope needs a scope_id");
      const previous = this.scopes.get(id);
      const next = new Map(this.scopes).set(id, stored);
      await this.commit(next);
      this.notify(id, stored, previous);
      return previous;
    });
  }

  delete(id: string): Promise<Scope | undefined> {
    return this.serialize(async () => {
      const previous = this.scopes.get(id);
      if (previous === undefined) return undefined;
      const next = new Map(this.scopes);
      next.delete(id);
      await this.commit(next);
      this.notify(id, undefined, previous);
      return previous;
    });
  }

  onChange(listener: ScopeListener): void {
    this.listeners.push(listener);
  }

  /** Runs writes one after another, so none is built on a state another is replacing. */
  private serialize<T>(task: () => Promise<T>): Promise<T> {
    if (!this.started) return Promise.reject(new Error(`the scope store (${this.description}) is not started`));
    const result = this.writes.then(task);
    // The queue only orders writes: this write's failure goes to its caller (result), not to the next write.
    this.writes = result.catch(() => undefined);
    return result;
  }

  private async commit(next: Map<string, Scope>): Promise<void> {
    await writeScopeFile(this.path, next);
    this.scopes = next;
  }

  private notify(id: string, scope: Scope | undefined, previous: Scope | undefined): void {
    for (const listener of this.listeners) {
      try {
        listener(id, scope, previous);
      } catch (error) {
        this.logger.error({ store: this.description, scopeId: id, err: (error as Error).message }, "a scope listener failed");
      }
    }
  }
}

async function readScopeFile(path: string): Promise<Map<string, Scope>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return new Map();
    throw new ScopeFileError(path, `cannot be read: ${(error as Error).message}`, { cause: error });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ScopeFileError(path, `is not valid JSON (${(error as Error).message}); fix or remove it`, { cause: error });
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ScopeFileError(path, `must hold an object like {"version": ${FILE_VERSION}, "scopes": [...]}`);
  }
  const { version, scopes } = json as { version?: unknown; scopes?: unknown };
  if (version !== FILE_VERSION) throw new ScopeFileError(path, `has version ${JSON.stringify(version)}; this build reads version ${FILE_VERSION}`);
  if (!Array.isArray(scopes)) throw new ScopeFileError(path, '"scopes" must be a list');
  const loaded = new Map<string, Scope>();
  scopes.forEach((entry: unknown, index) => {
    let scope: Scope;
    try {
      scope = fromJson(ScopeSchema, entry as JsonValue);
    } catch (error) {
      throw new ScopeFileError(path, `scopes[${index}] is not a valid scope: ${(error as Error).message}`, { cause: error });
    }
    if (scope.scopeId === "") throw new ScopeFileError(path, `scopes[${index}] has no scopeId`);
    if (loaded.has(scope.scopeId)) throw new ScopeFileError(path, `holds scope ${JSON.stringify(scope.scopeId)} twice`);
    loaded.set(scope.scopeId, scope);
  });
  return loaded;
}

async function writeScopeFile(path: string, scopes: Map<string, Scope>): Promise<void> {
  const sorted = [...scopes.values()].sort((a, b) => (a.scopeId < b.scopeId ? -1 : a.scopeId > b.scopeId ? 1 : 0));
  const text = `${JSON.stringify({ version: FILE_VERSION, scopes: sorted.map((scope) => toJson(ScopeSchema, scope)) }, null, 2)}\n`;
  const directory = dirname(path);
  // Same directory, so the rename cannot cross file systems and is atomic.
  const temp = join(directory, `.${basename(path)}.${randomUUID()}.tmp`);
  try {
    await mkdir(directory, { recursive: true, mode: 0o700 });
    const handle = await open(temp, "wx", 0o600);
    try {
      await handle.chmod(0o600); // whatever the umask
      await handle.writeFile(text, "utf8");
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    // The temp file may never have been created; the write's own error is the one that matters.
    await unlink(temp).catch(() => undefined);
    throw new ScopeFileError(path, `cannot be written: ${(error as Error).message}`, { cause: error });
  }
  await syncDirectory(directory);
}

/** Makes the rename itself durable; not every platform can open a directory, so best effort. */
async function syncDirectory(directory: string): Promise<void> {
  try {
    const handle = await open(directory, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // e.g. Windows: the rename is still atomic, only its durability on power loss is weaker
  }
}
