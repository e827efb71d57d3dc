/**
 * What OPA does to one document when an entry under it is applied, emulated on the parsed
 * document so a write can be folded into an inline PUT. The answer is "applied" only when
 * the outcome is certain; "fails" when OPA certainly refuses (the entry then stays an item
 * of its own, which is exact anyway); "unsure" for anything this does not model exactly —
 * above all arrays on the way of a data path, where the client's exists() checks and
 * OPA's index parsing disagree ("01", "1.0" and "+1" all address element 1).
 *
 * Semantics mirrored (services/client/data/data-transaction.ts and OPA's storage):
 * - PUT: every missing ancestor is created as {} (ensureParents), the deepest existing one
 *   must be an object, then the value is set.
 * - DELETE: removed when it exists, else nothing.
 * - PATCH: ensureParents of the destination's ancestors, then the operations in order,
 *   all or nothing: add needs its parent, "-" appends, remove/replace need their target.
 * A "__proto__" segment is "unsure": a plain object would take it as its prototype.
 */

/** The document's slot: its value, or ABSENT once removed (a tombstone). */
export const ABSENT: unique symbol = Symbol("absent");
export interface Slot {
  value: unknown;
}

export type FoldOutcome = "applied" | "fails" | "unsure";

export interface PatchStep {
  op: "add" | "remove" | "replace";
  /** Relative to the path it applies at (the entry's dst_path; the document's, once folded). */
  target: readonly string[];
  value: unknown;
}

const PROTO = "__proto__";
const hasProto = (path: readonly string[]): boolean => path.includes(PROTO);

const fatalDecoder = new TextDecoder("utf-8", { fatal: true });
const CANONICAL_INDEX = /^(0|[1-9][0-9]*)$/;
/** A segment OPA might read as an array index: its parsing accepts "01", "+1", "1.0", "-0". */
const ARRAYISH = /^[+-]?[0-9.]/;

export function isArrayish(segment: string): boolean {
  return segment === "-" || ARRAYISH.test(segment);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * JSON bytes parsed, when writing the parsed value back gives what OPA holds for the
 * original: valid UTF-8, every number spelled as JSON.stringify spells it (OPA keeps a
 * number's text: 1.0 stays 1.0, and 2^64 keeps its digits), no "__proto__" key (a plain
 * object would take it as its prototype). Undefined when not.
 */
export function parseExact(bytes: Uint8Array): { value: unknown } | undefined {
  let text: string;
  try {
    text = fatalDecoder.decode(bytes);
  } catch {
    return undefined;
  }
  if (text.includes("__proto__") || !numbersCanonical(text)) return undefined;
  try {
    return { value: JSON.parse(text) as unknown };
  } catch {
    return undefined;
  }
}

/** Every number token outside strings is written as JS writes it back. */
function numbersCanonical(text: string): boolean {
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code === 0x22) {
      // Skip the string, escapes included.
      for (index++; index < text.length && text.charCodeAt(index) !== 0x22; index++) if (text.charCodeAt(index) === 0x5c) index++;
    } else if (code === 0x2d || (code >= 0x30 && code <= 0x39)) {
      let end = index + 1;
      let plain = true;
      for (let next = text.charCodeAt(end); end < text.length && ((next >= 0x30 && next <= 0x39) || next === 0x2e || next === 0x65 || next === 0x45 || next === 0x2b || next === 0x2d); next = text.charCodeAt(++end)) {
        if (next < 0x30) plain = false;
        else if (next > 0x39) plain = false;
      }
      // A plain integer of up to 15 digits is written back as it is (unless "-0" or a leading zero).
      const token = text.slice(index, end);
      const length = end - index;
      const simple = plain && length <= 15 && (text.charCodeAt(index) !== 0x30 || length === 1) && !(code === 0x2d && (length === 1 || text.charCodeAt(index + 1) === 0x30));
      if (!simple && String(Number(token)) !== token) return false;
      index = end - 1;
    }
  }
  return true;
}

/** Changes made while applying one entry, undone in reverse when a later step fails. */
class Edit {
  private readonly undo: Array<() => void> = [];

  constructor(private readonly slot: Slot) {}

  setSlot(value: unknown): void {
    const old = this.slot.value;
    this.slot.value = value;
    this.undo.push(() => (this.slot.value = old));
  }

  setKey(object: Record<string, unknown>, key: string, value: unknown): void {
    const had = Object.hasOwn(object, key);
    const old = object[key];
    object[key] = value;
    this.undo.push(() => {
      if (had) object[key] = old;
      else delete object[key];
    });
  }

  deleteKey(object: Record<string, unknown>, key: string): void {
    const old = object[key];
    delete object[key];
    this.undo.push(() => (object[key] = old));
  }

  splice(array: unknown[], index: number, remove: number, ...insert: unknown[]): void {
    const removed = array.splice(index, remove, ...insert);
    this.undo.push(() => array.splice(index, insert.length, ...removed));
  }

  rollback(): void {
    for (const step of this.undo.reverse()) step();
  }
}

/**
 * ensureParents inside the document: every missing container along `path` (relative; the
 * slot itself first) becomes {}, and the deepest one that exists must be an object.
 * Returns the object at the end of `path`.
 */
function ensureObjects(edit: Edit, slot: Slot, path: readonly string[]): Record<string, unknown> | "fails" | "unsure" {
  if (slot.value === ABSENT) edit.setSlot({});
  let current = slot.value;
  for (const segment of path) {
    if (Array.isArray(current)) return "unsure";
    if (!isObject(current)) return "fails";
    if (!Object.hasOwn(current, segment)) edit.setKey(current, segment, {});
    current = current[segment];
  }
  if (Array.isArray(current)) return "unsure";
  return isObject(current) ? current : "fails";
}

/** A PUT of `value` at `path` below the document (empty: the document itself). */
export function foldPut(slot: Slot, path: readonly string[], value: unknown): FoldOutcome {
  if (hasProto(path)) return "unsure";
  const edit = new Edit(slot);
  if (path.length === 0) {
    edit.setSlot(value);
    return "applied";
  }
  const parent = ensureObjects(edit, slot, path.slice(0, -1));
  if (typeof parent === "string") {
    edit.rollback();
    return parent;
  }
  edit.setKey(parent, path.at(-1) as string, value);
  return "applied";
}

/** A DELETE at `path` below the document: removed when it exists (the client asks OPA first). */
export function foldDelete(slot: Slot, path: readonly string[]): FoldOutcome {
  if (hasProto(path)) return "unsure";
  if (path.length === 0) {
    slot.value = ABSENT;
    return "applied";
  }
  let current = slot.value;
  for (const segment of path.slice(0, -1)) {
    if (Array.isArray(current) || typeof current === "string") return "unsure";
    if (!isObject(current) || !Object.hasOwn(current, segment)) return "applied";
    current = current[segment];
  }
  if (Array.isArray(current) || typeof current === "string") return "unsure";
  const last = path.at(-1) as string;
  if (isObject(current) && Object.hasOwn(current, last)) delete current[last];
  return "applied";
}

function isPrefix(prefix: readonly string[], path: readonly string[]): boolean {
  return prefix.length <= path.length && prefix.every((segment, index) => path[index] === segment);
}

/**
 * Operations OPA's in-memory store does not apply as JSON Patch says when they share one
 * transaction: a path written and then written again or removed (a remove of what was
 * added as null leaves null; of anything else added, it is refused), an ancestor written
 * after a descendant, anything below what was replaced or removed, array elements below
 * what was added. Only adds below an added object (what ensureParents does) are plain.
 */
function interfering(steps: readonly PatchStep[]): boolean {
  for (let later = 1; later < steps.length; later++) {
    const { target } = steps[later] as PatchStep;
    for (let earlier = 0; earlier < later; earlier++) {
      const { op, target: written } = steps[earlier] as PatchStep;
      if (isPrefix(target, written)) return true;
      if (isPrefix(written, target) && (op !== "add" || target.slice(written.length).some(isArrayish))) return true;
      const parent = target.length > 0 && written.length === target.length && isPrefix(target.slice(0, -1), written);
      if (parent && (isArrayish(target.at(-1) as string) || isArrayish(written.at(-1) as string))) return true;
    }
  }
  return false;
}

/** A PATCH whose destination is `destination` below the document, its operations (relative to it) in order, atomically. */
export function foldPatch(slot: Slot, destination: readonly string[], steps: readonly PatchStep[]): FoldOutcome {
  if (hasProto(destination) || steps.some((step) => hasProto(step.target)) || interfering(steps)) return "unsure";
  const edit = new Edit(slot);
  let outcome: FoldOutcome = "applied";
  if (destination.length > 0) {
    const parent = ensureObjects(edit, slot, destination.slice(0, -1));
    if (typeof parent === "string") outcome = parent;
  }
  for (const step of steps) {
    if (outcome !== "applied") break;
    outcome = applyStep(edit, slot, { ...step, target: [...destination, ...step.target] });
  }
  if (outcome !== "applied") edit.rollback();
  return outcome;
}

/** Where a step lands: the container and the key or index in it, as OPA's storage resolves it. */
function resolveParent(slot: Slot, target: readonly string[]): unknown {
  let current = slot.value;
  for (const segment of target.slice(0, -1)) {
    if (current === ABSENT) return ABSENT;
    if (isObject(current)) {
      if (!Object.hasOwn(current, segment)) return ABSENT;
      current = current[segment];
    } else if (Array.isArray(current)) {
      const index = arrayIndex(segment, current.length - 1);
      if (typeof index !== "number") return index === "unsure" ? undefined : ABSENT;
      current = current[index];
    } else {
      return ABSENT;
    }
  }
  return current;
}

/** A canonical index within 0..max; "unsure" for spellings OPA may read differently; "fails" for the rest. */
function arrayIndex(segment: string, max: number): number | "fails" | "unsure" {
  if (CANONICAL_INDEX.test(segment)) {
    const index = Number(segment);
    return index <= max ? index : "fails";
  }
  return segment !== "-" && isArrayish(segment) ? "unsure" : "fails";
}

function applyStep(edit: Edit, slot: Slot, { op, target, value }: PatchStep): FoldOutcome {
  if (target.length === 0) {
    if (op === "add") edit.setSlot(value);
    else if (slot.value === ABSENT) return "fails";
    // Removing the document itself would leave its ancestors, which only the PUT said: not folded.
    else if (op === "remove") return "unsure";
    else edit.setSlot(value);
    return "applied";
  }
  const parent = resolveParent(slot, target);
  if (parent === undefined) return "unsure";
  const key = target.at(-1) as string;
  if (isObject(parent)) {
    if (op !== "add" && !Object.hasOwn(parent, key)) return "fails";
    if (op === "remove") edit.deleteKey(parent, key);
    else edit.setKey(parent, key, value);
    return "applied";
  }
  if (!Array.isArray(parent)) return "fails";
  if (op === "add" && key === "-") {
    edit.splice(parent, parent.length, 0, value);
    return "applied";
  }
  const index = arrayIndex(key, op === "add" ? parent.length : parent.length - 1);
  if (typeof index !== "number") return index;
  if (op === "add") edit.splice(parent, index, 0, value);
  else if (op === "remove") edit.splice(parent, index, 1);
  else edit.splice(parent, index, 1, value);
  return "applied";
}
