/**
 * Writes data entries and the status document (with the new position) into the store in
 * one transaction: a single JSON Patch at the data root. JSON Patch `add` needs the parent
 * to exist, so missing ancestors are created in the same patch; which exist is asked of
 * OPA (cheaply) and remembered until a write could have changed it.
 */
import { type DataSourceEntry, SaveMethod } from "../../../gen/opal/mesh/v1/data_pb.js";
import { parseJsonBytes } from "../../common/data-entries.js";
import type { PolicyStore, ValueStream } from "../policy-store.js";
import { STATUS_PATH } from "../opa-status.js";
import type { StreamedSource } from "../fetch/streamed-source.js";
import { PatchPlan, targetsOf } from "./patch-plan.js";

/** A fetched document: its JSON bytes, or (too big to hold) its body still on the wire. */
export type EntryData = Uint8Array | StreamedSource;

export interface EntryWrite {
  entry: DataSourceEntry;
  /** The document; undefined for DELETE. */
  data: EntryData | undefined;
}

const OPEN_BRACKET = 0x5b;
const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);
const EMPTY_OBJECT = Buffer.from("{}");

function segments(path: string): string[] {
  return path.split("/").filter((segment) => segment !== "");
}

/** A JSON Pointer for data-path segments ("~" and "/" escaped as RFC 6901 says). */
export function pointer(parts: readonly string[]): string {
  return parts.map((part) => `/${part.replaceAll("~", "~0").replaceAll("/", "~1")}`).join("");
}


function startsWithBracket(bytes: Uint8Array): boolean {
  for (const byte of bytes) if (!WHITESPACE.has(byte)) return byte === OPEN_BRACKET;
  return false;
}

const ITEMS_OPEN = Buffer.from('{"items":');
const ITEMS_CLOSE = Buffer.from("}");

/** A document for OPA's root, where a list must be wrapped as {"items": [...]} (OPAL does so). */
function rootValue(value: Uint8Array | ValueStream): Uint8Array | ValueStream {
  if (value instanceof Uint8Array) return startsWithBracket(value) ? Buffer.concat([ITEMS_OPEN, value, ITEMS_CLOSE]) : value;
  return {
    source: value.source,
    // Decided on the first non-blank byte as it streams by: blanks before the wrapper are still valid JSON.
    async *chunks(signal?: AbortSignal): AsyncGenerator<Uint8Array> {
      let decided = false;
      let wrapped = false;
      for await (const chunk of value.chunks(signal)) {
        if (!decided) {
          const first = chunk.find((byte) => !WHITESPACE.has(byte));
          if (first !== undefined) {
            decided = true;
            wrapped = first === OPEN_BRACKET;
            if (wrapped) yield ITEMS_OPEN;
          }
        }
        yield chunk;
      }
      if (wrapped) yield ITEMS_CLOSE;
    },
  };
}


/** How far a commit got: the writes whose patches were applied, and whether one of them replaced the status. */
interface Progress {
  landed: number;
  statusReplaced: boolean;
}

const landedCounts = new WeakMap<object, number>();

function landedWith(error: unknown, landed: number): unknown {
  if (landed > 0 && typeof error === "object" && error !== null) landedCounts.set(error, landed);
  return error;
}

/** How many of a failed commit's writes are in the store all the same (its earlier patches); 0 for other errors. */
export function writesLanded(error: unknown): number {
  return typeof error === "object" && error !== null ? (landedCounts.get(error) ?? 0) : 0;
}

/** The store no longer holds our status document: it lost its state (restarted empty). */
export class StoreLostStateError extends Error {
  override readonly name = "StoreLostStateError";
  constructor() {
    super("the policy store lost its state (it restarted empty); reloading policy and data");
  }
}

export class DataTransactions {
  /** Container paths known to exist in the store. */
  private readonly known = new Set<string>();
  /** The status document as this process last committed it: what a guard writes back. */
  private lastStatus: Uint8Array | undefined;

  constructor(private readonly store: PolicyStore) {}

  /** Everything the store holds may have changed (OPA restarted, a failed patch, a resync). */
  forget(): void {
    this.known.clear();
  }

  /**
   * Commits the writes and the status document. Writes that cannot share one patch (one
   * overwrites the parent of another) go in consecutive patches; the status goes in the
   * last. When a later patch fails, the earlier ones are in the store: the error says how
   * many writes landed (`writesLanded`), and a retry writes only the rest (an append
   * written twice would be a different state).
   */
  async commit(writes: readonly EntryWrite[], status: Uint8Array, signal: AbortSignal, statusExists = false): Promise<void> {
    let progress: Progress = { landed: 0, statusReplaced: false };
    try {
      await this.commitOnce(writes, status, signal, statusExists, progress);
    } catch (error) {
      this.forget();
      if (!isNotFound(error)) throw landedWith(error, progress.landed);
      // The status was written with `replace`: if it is gone, so is everything we wrote.
      if (statusExists && !progress.statusReplaced && !(await this.store.exists(STATUS_PATH, signal))) throw new StoreLostStateError();
      // Else our memory of the tree was stale (someone removed a parent): ask again, once.
      const done = progress.landed;
      progress = { landed: 0, statusReplaced: progress.statusReplaced };
      try {
        await this.commitOnce(writes.slice(done), status, signal, statusExists, progress);
      } catch (again) {
        throw landedWith(again, done + progress.landed);
      }
    }
  }

  private async commitOnce(writes: readonly EntryWrite[], status: Uint8Array, signal: AbortSignal, statusExists: boolean, progress: Progress): Promise<void> {
    let plan = new PatchPlan();
    const statusPath = pointer(segments(STATUS_PATH));
    // Once an earlier patch of this commit replaced the root or /system, the status is
    // gone by our own doing: it is added again, not replaced (which would look like loss).
    const flush = async (landed: number): Promise<void> => {
      if (statusExists && !progress.statusReplaced && plan.operations.length > 0) await this.guard(plan, signal);
      const replacesStatus = plan.rootReplaced || plan.overwritten.covers(statusPath);
      await this.apply(plan, signal);
      progress.landed = landed;
      progress.statusReplaced ||= replacesStatus;
      plan = new PatchPlan();
    };
    for (const [index, write] of writes.entries()) {
      const path = write.entry.dstPath === "/" ? "" : pointer(segments(write.entry.dstPath));
      // A write under one this patch replaced, or a DELETE of what it wrote or removed,
      // needs the store's answer after that patch: start a new one.
      const deletesWritten = write.entry.saveMethod === SaveMethod.DELETE && plan.overwritten.has(path);
      if (plan.touchesAbove(path) || deletesWritten || plan.collides(targetsOf(write, path))) await flush(index);
      await this.addEntry(plan, write, signal);
      plan.record();
    }
    if (!plan.rootReplaced && plan.touchesAbove(statusPath)) {
      // An entry wrote /system itself: the status cannot share its patch without guessing.
      await flush(writes.length);
    }
    await this.addStatus(plan, status, signal, statusExists && !progress.statusReplaced);
    await this.apply(plan, signal);
    progress.landed = writes.length;
    this.lastStatus = status;
  }

  /**
   * A patch before a commit's last puts the status back as it stands, with `replace`
   * (which fails when the document is missing): an OPA that restarted empty refuses it,
   * as it refuses the last, instead of taking the first part of the commit (which the
   * reload after the loss would then write a second time).
   */
  private async guard(plan: PatchPlan, signal: AbortSignal): Promise<void> {
    if (this.lastStatus === undefined) {
      const current = await this.store.readData(STATUS_PATH, signal);
      if (current === undefined) throw new StoreLostStateError();
      this.lastStatus = Buffer.from(JSON.stringify(current));
    }
    plan.operations.unshift({ op: "replace", path: pointer(segments(STATUS_PATH)), value: this.lastStatus });
  }

  private async apply(plan: PatchPlan, signal: AbortSignal): Promise<void> {
    if (plan.operations.length === 0) return;
    await this.store.patch(plan.operations, signal);
    if (plan.rootReplaced) this.known.clear();
    // Created first, then forgotten under what was replaced or removed: a container made
    // and then removed in the same patch must not be remembered as existing.
    for (const path of plan.created) this.known.add(path);
    if (plan.overwritten.size > 0) for (const path of [...this.known]) if (plan.overwritten.covers(path)) this.known.delete(path);
  }

  private async addEntry(plan: PatchPlan, { entry, data }: EntryWrite, signal: AbortSignal): Promise<void> {
    const parts = segments(entry.dstPath);
    const path = pointer(parts);
    switch (entry.saveMethod) {
      case SaveMethod.DELETE: {
        if (parts.length === 0) {
          plan.operations.push({ op: "add", path: "", value: EMPTY_OBJECT });
          plan.rootReplaced = true;
        } else if (plan.created.has(path) || (!plan.touchesAbove(path) && (await this.store.exists(entry.dstPath, signal)))) {
          // Removing what is not there leaves the store as asked (and JSON Patch would refuse it).
          plan.operations.push({ op: "remove", path });
          plan.overwritten.add(path);
        }
        return;
      }
      case SaveMethod.PATCH: {
        await this.ensureParents(plan, parts, signal);
        if (data !== undefined && !(data instanceof Uint8Array)) throw new Error("internal: a PATCH entry's operations must be fetched whole");
        for (const operation of parseJsonBytes(data ?? Buffer.from("[]")) as Array<{ op: "add" | "remove" | "replace"; path: string; value?: unknown }>) {
          const target = `${path}${operation.path}`;
          plan.operations.push({ op: operation.op, path: target, value: operation.op === "remove" ? undefined : Buffer.from(JSON.stringify(operation.value ?? null)) });
          plan.overwritten.add(target.endsWith("/-") ? path : target);
        }
        return;
      }
      default: {
        const value = data ?? Buffer.from("null");
        if (parts.length === 0) {
          // OPA's root must be an object; OPAL wraps a list written there as {"items": [...]}.
          plan.operations.push({ op: "add", path: "", value: rootValue(value) });
          plan.rootReplaced = true;
          return;
        }
        await this.ensureParents(plan, parts, signal);
        plan.operations.push({ op: "add", path, value });
        plan.overwritten.add(path);
      }
    }
  }

  private async addStatus(plan: PatchPlan, status: Uint8Array, signal: AbortSignal, statusExists: boolean): Promise<void> {
    const parts = segments(STATUS_PATH);
    if (statusExists && !plan.rootReplaced) {
      // `replace` fails when the document is missing: an OPA that lost its state cannot
      // silently take our writes as if nothing happened.
      plan.operations.push({ op: "replace", path: pointer(parts), value: status });
      return;
    }
    if (plan.rootReplaced) {
      // The root was replaced: rebuild /system around the status (a root document's own
      // "system" key, if any, gives way to it).
      plan.operations.push({ op: "add", path: pointer(parts.slice(0, 1)), value: Buffer.concat([Buffer.from(`{${JSON.stringify(parts[1])}:`), status, Buffer.from("}")]) });
      plan.created.add(pointer(parts.slice(0, 1)));
      return;
    }
    await this.ensureParents(plan, parts, signal);
    plan.operations.push({ op: "add", path: pointer(parts), value: status });
  }

  /** Adds `{}` for every missing ancestor of the path, outermost first. */
  private async ensureParents(plan: PatchPlan, parts: readonly string[], signal: AbortSignal): Promise<void> {
    const missing: string[] = [];
    for (let depth = parts.length - 1; depth >= 1; depth--) {
      const ancestor = pointer(parts.slice(0, depth));
      if (plan.created.has(ancestor)) break;
      if (plan.touchesAbove(ancestor) || plan.overwritten.has(ancestor)) {
        // commitOnce starts a new patch before this can happen; adding {} here would erase a write.
        throw new Error(`internal: ${ancestor} was written earlier in the same patch`);
      }
      if (this.known.has(ancestor)) break;
      if (await this.store.exists(`/${parts.slice(0, depth).join("/")}`, signal)) {
        for (let up = depth; up >= 1; up--) this.known.add(pointer(parts.slice(0, up)));
        break;
      }
      missing.push(ancestor);
    }
    for (const ancestor of missing.reverse()) {
      plan.operations.push({ op: "add", path: ancestor, value: EMPTY_OBJECT });
      plan.created.add(ancestor);
    }
  }
}


function isNotFound(error: unknown): boolean {
  return typeof error === "object" && error !== null && (error as { status?: unknown }).status === 404;
}
