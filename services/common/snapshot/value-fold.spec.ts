/** OPA emulated on one document: certain outcomes only ("unsure" where OPA's store does something else). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ABSENT, foldDelete, foldPatch, foldPut, parseExact, type PatchStep, type Slot } from "./value-fold.js";

const slot = (value: unknown): Slot => ({ value: structuredClone(value) });
const step = (op: PatchStep["op"], path: string, value?: unknown): PatchStep => ({ op, target: path === "" ? [] : path.slice(1).split("/"), value: value ?? null });

test("PUT below a document: missing parents become objects; through a scalar it is refused; through an array unsure", () => {
  const cases: Array<[unknown, string[], string, unknown]> = [
    [{ a: 1 }, ["b", "c"], "applied", { a: 1, b: { c: 9 } }],
    [{ a: 1 }, ["a", "c"], "fails", { a: 1 }],
    [{ a: null }, ["a", "c"], "fails", { a: null }],
    [{ l: [1] }, ["l", "0"], "unsure", { l: [1] }],
    [{ l: [1] }, ["l", "x", "y"], "unsure", { l: [1] }],
    [{ a: 1 }, ["__proto__", "x"], "unsure", { a: 1 }],
  ];
  for (const [document, path, outcome, after] of cases) {
    const held = slot(document);
    assert.equal(foldPut(held, path, 9), outcome, JSON.stringify([document, path]));
    assert.deepEqual(held.value, after);
  }
  const removed: Slot = { value: ABSENT };
  assert.equal(foldPut(removed, ["x"], 1), "applied", "under a deleted document: PUT creates it");
  assert.deepEqual(removed.value, { x: 1 });
});

test("DELETE below a document removes what is there, changes nothing otherwise, and does not guess through arrays or strings", () => {
  const cases: Array<[unknown, string[], string, unknown]> = [
    [{ a: { b: 1 } }, ["a", "b"], "applied", { a: {} }],
    [{ a: 1 }, ["a", "b"], "applied", { a: 1 }],
    [{ a: 1 }, ["x", "y"], "applied", { a: 1 }],
    [{ l: [1, 2] }, ["l", "0"], "unsure", { l: [1, 2] }],
    [{ s: "abc" }, ["s", "0"], "unsure", { s: "abc" }],
  ];
  for (const [document, path, outcome, after] of cases) {
    const held = slot(document);
    assert.equal(foldDelete(held, path), outcome, JSON.stringify([document, path]));
    assert.deepEqual(held.value, after);
  }
});

test("PATCH into a document: all or nothing, appends, certain refusals, and what OPA's store mishandles left unsure", () => {
  const cases: Array<{ name: string; document: unknown; at?: string[]; steps: PatchStep[]; outcome: string; after: unknown }> = [
    { name: "append and replace", document: { roles: ["r"], team: "a" }, steps: [step("add", "/roles/-", "w"), step("replace", "/team", "b")], outcome: "applied", after: { roles: ["r", "w"], team: "b" } },
    { name: "insert at an index", document: { l: [1, 3] }, steps: [step("add", "/l/1", 2)], outcome: "applied", after: { l: [1, 2, 3] } },
    { name: "index past the end", document: { l: [1] }, steps: [step("add", "/l/5", 2)], outcome: "fails", after: { l: [1] } },
    { name: "a non-canonical index", document: { l: [1] }, steps: [step("add", "/l/01", 2)], outcome: "unsure", after: { l: [1] } },
    { name: "replace of what is missing undoes the earlier step", document: { a: 1 }, steps: [step("add", "/b", 2), step("replace", "/c", 3)], outcome: "fails", after: { a: 1 } },
    { name: "below the document, its parents made", document: {}, at: ["x", "y"], steps: [step("add", "", { k: 1 })], outcome: "applied", after: { x: { y: { k: 1 } } } },
    { name: "ensureParents stops above the destination", document: {}, at: ["x", "y"], steps: [step("add", "/k", 1)], outcome: "fails", after: {} },
    { name: "the document itself", document: { a: 1 }, steps: [step("add", "", { b: 2 }), step("add", "/c", 3)], outcome: "applied", after: { b: 2, c: 3 } },
    { name: "PATCH [] under a scalar changes nothing", document: { a: 1 }, at: ["a", "b"], steps: [], outcome: "fails", after: { a: 1 } },
    { name: "add then remove of one path", document: {}, steps: [step("add", "/a", null), step("remove", "/a")], outcome: "unsure", after: {} },
    { name: "add then replace of one path", document: {}, steps: [step("add", "/a", 1), step("replace", "/a", 2)], outcome: "unsure", after: {} },
    { name: "two steps on one array", document: { l: [1] }, steps: [step("add", "/l/-", 2), step("remove", "/l/1")], outcome: "unsure", after: { l: [1] } },
  ];
  for (const { name, document, at, steps, outcome, after } of cases) {
    const held = slot(document);
    assert.equal(foldPatch(held, at ?? [], steps), outcome, name);
    assert.deepEqual(held.value, after, name);
  }
  const removed: Slot = { value: ABSENT };
  assert.equal(foldPatch(removed, [], [step("add", "/x", 1)]), "fails", "an add under a deleted document's own path");
  assert.equal(foldPatch(removed, [], [step("remove", "")]), "fails");
});

test("a document is parsed for folding only when writing it back gives OPA's bytes", () => {
  const parsed = (text: string) => parseExact(new TextEncoder().encode(text));
  assert.deepEqual(parsed('{"a":[1,2.5,-3,"x"]}'), { value: { a: [1, 2.5, -3, "x"] } });
  for (const text of ["1.0", '{"a":1e3}', "18446744073709551616", "-0", '{"__proto__":1}', "{", '"\\ud800"'.slice(0, 3)]) assert.equal(parsed(text), undefined, text);
  assert.equal(parseExact(new Uint8Array([0x22, 0xff, 0x22])), undefined, "not UTF-8");
});
