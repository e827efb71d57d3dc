import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { DataSourceEntrySchema, SaveMethod } from "../../../gen/opal/mesh/v1/data_pb.js";
import { PolicyStoreError } from "../policy-store.js";
import { type Json, MemoryStore, type RecordedOperation } from "./spec-support/memory-store.js";
import { DataTransactions, type EntryWrite, pointer, StoreLostStateError } from "./data-transaction.js";
import { StreamedSource } from "../fetch/streamed-source.js";
import type { OpenedBody } from "../fetch/types.js";

const STATUS = { position: 7, log_id: "log-1" };
const statusBytes = (): Uint8Array => Buffer.from(JSON.stringify(STATUS));
const SIGNAL = new AbortController().signal;

function put(dstPath: string, value: Json): EntryWrite {
  return { entry: create(DataSourceEntrySchema, { dstPath, saveMethod: SaveMethod.PUT }), data: Buffer.from(JSON.stringify(value)) };
}

function putRaw(dstPath: string, raw: string): EntryWrite {
  return { entry: create(DataSourceEntrySchema, { dstPath, saveMethod: SaveMethod.PUT }), data: Buffer.from(raw) };
}

/** A PUT of a document streamed from its source, in pieces (the first ones blank). */
function putStreamed(dstPath: string, raw: string): EntryWrite {
  const pieces = ["  ", "\n", ...raw.match(/.{1,4}/gs) ?? []];
  const body = (): OpenedBody => ({
    chunks: (async function* () {
      for (const piece of pieces) yield Buffer.from(piece);
    })(),
    discard: () => undefined,
  });
  return { entry: create(DataSourceEntrySchema, { dstPath, saveMethod: SaveMethod.PUT }), data: new StreamedSource(body(), async () => body(), "http://source/data") };
}

function patch(dstPath: string, operations: Json[]): EntryWrite {
  return { entry: create(DataSourceEntrySchema, { dstPath, saveMethod: SaveMethod.PATCH }), data: Buffer.from(JSON.stringify(operations)) };
}

function remove(dstPath: string): EntryWrite {
  return { entry: create(DataSourceEntrySchema, { dstPath, saveMethod: SaveMethod.DELETE }), data: undefined };
}

function setup(document: Json = {}) {
  const store = new MemoryStore(document);
  const transactions = new DataTransactions(store);
  /** Commits and answers with what this commit alone asked and patched. */
  const commit = async (writes: readonly EntryWrite[], statusExists = false) => {
    const attemptsBefore = store.attempts.length;
    const existsBefore = store.existsCalls.length;
    await transactions.commit(writes, statusBytes(), SIGNAL, statusExists);
    return { attempts: store.attempts.slice(attemptsBefore), exists: store.existsCalls.slice(existsBefore) };
  };
  return { store, transactions, commit };
}

const LIMIT = { timeout: 5_000 };

test("pointer escapes ~ and / as RFC 6901 says", async (t) => {
  const cases: Array<[string, string[], string]> = [
    ["no segments is the root", [], ""],
    ["one segment", ["users"], "/users"],
    ["nested segments", ["a", "b", "c"], "/a/b/c"],
    ["tilde", ["a~b"], "/a~0b"],
    ["slash", ["a/b"], "/a~1b"],
    ["tilde escaped before slash (~1 stays literal)", ["~1"], "/~01"],
    ["both in one segment", ["~/"], "/~0~1"],
    ["an empty segment is kept", [""], "/"],
  ];
  for (const [name, parts, expected] of cases) {
    await t.test(name, () => assert.equal(pointer(parts), expected));
  }
});

test("commit writes the entries and the status as one patch", LIMIT, async (t) => {
  const status = { opal: STATUS };
  const cases: Array<{ name: string; before: Json; writes: EntryWrite[]; statusExists?: boolean; after: Json; exists: string[] }> = [
    { name: "PUT into an empty store creates every ancestor", before: {}, writes: [put("/a/b/c", 1)], after: { a: { b: { c: 1 } }, system: status }, exists: ["/a/b", "/a", "/system"] },
    { name: "PUT under an existing parent asks only for the parent", before: { a: { b: { x: 0 } } }, writes: [put("/a/b/c", 1)], after: { a: { b: { x: 0, c: 1 } }, system: status }, exists: ["/a/b", "/system"] },
    { name: "PUT replaces a top-level document without asking", before: { a: { old: true } }, writes: [put("/a", { new: true })], after: { a: { new: true }, system: status }, exists: ["/system"] },
    { name: "sibling writes share their created parent", before: {}, writes: [put("/a/x", 1), put("/a/y", 2)], after: { a: { x: 1, y: 2 }, system: status }, exists: ["/a", "/system"] },
    { name: "a dst_path with ~ is escaped in the patch, not in exists", before: {}, writes: [put("/a~b/c", 1)], after: { "a~b": { c: 1 }, system: status }, exists: ["/a~b", "/system"] },
    { name: "DELETE removes an existing document", before: { a: { b: 1, c: 2 } }, writes: [remove("/a/b")], after: { a: { c: 2 }, system: status }, exists: ["/a/b", "/system"] },
    { name: "DELETE of a missing path leaves the store as it was", before: { a: {} }, writes: [remove("/a/x")], after: { a: {}, system: status }, exists: ["/a/x", "/system"] },
    { name: "DELETE of the root empties the store but for the status", before: { a: 1, system: { other: 1 } }, writes: [remove("/")], after: { system: status }, exists: [] },
    { name: "root PUT of an object replaces everything", before: { a: 1, system: { opal: { old: true }, other: 1 } }, writes: [put("/", { b: 2 })], statusExists: true, after: { b: 2, system: status }, exists: [] },
    { name: "root PUT of a list is wrapped as items", before: { a: 1 }, writes: [putRaw("/", ' \n[1, 2]')], after: { items: [1, 2], system: status }, exists: [] },
    { name: "a streamed PUT goes in the same patch as the status", before: { a: { old: true } }, writes: [putStreamed("/a/b", '{"big": [1, 2, 3]}')], after: { a: { old: true, b: { big: [1, 2, 3] } }, system: status }, exists: ["/a", "/system"] },
    { name: "a streamed root PUT of a list is wrapped as items", before: { a: 1 }, writes: [putStreamed("/", "[1, 2, 3, 4, 5]")], after: { items: [1, 2, 3, 4, 5], system: status }, exists: [] },
    { name: "a streamed root PUT of an object is not wrapped", before: { a: 1 }, writes: [putStreamed("/", '{"b": [1, 2]}')], after: { b: [1, 2], system: status }, exists: [] },
    { name: "root PUT's own system key gives way to the status", before: {}, writes: [put("/", { x: 1, system: { mine: 1 } })], after: { x: 1, system: status }, exists: [] },
    {
      name: "PATCH operations are re-rooted under dst_path",
      before: { users: { alice: { role: "user" }, carol: {} } },
      writes: [
        patch("/users", [
          { op: "replace", path: "/alice/role", value: "admin" },
          { op: "add", path: "/bob", value: { role: "user" } },
          { op: "remove", path: "/carol" },
        ]),
      ],
      after: { users: { alice: { role: "admin" }, bob: { role: "user" } }, system: status },
      exists: ["/system"],
    },
    { name: "PATCH at a nested dst_path creates its ancestors", before: {}, writes: [patch("/a/b", [{ op: "add", path: "", value: { x: 1 } }])], after: { a: { b: { x: 1 } }, system: status }, exists: ["/a", "/system"] },
    { name: "PATCH appending to a list", before: { l: [1] }, writes: [patch("/l", [{ op: "add", path: "/-", value: 2 }])], after: { l: [1, 2], system: status }, exists: ["/system"] },
    { name: "an existing status is replaced", before: { system: { opal: { old: true }, other: 1 } }, writes: [], statusExists: true, after: { system: { opal: STATUS, other: 1 } }, exists: [] },
    { name: "a status next to other system documents is added", before: { system: { other: 1 } }, writes: [], after: { system: { opal: STATUS, other: 1 } }, exists: ["/system"] },
  ];
  for (const { name, before, writes, statusExists = false, after, exists } of cases) {
    await t.test(name, async () => {
      const { store, commit } = setup(before);
      const result = await commit(writes, statusExists);
      assert.deepEqual(store.document, after);
      assert.equal(result.attempts.length, 1, "one patch");
      assert.deepEqual(result.exists, exists);
    });
  }
});

test("the status is written with replace only when it is said to exist", async (t) => {
  const cases: Array<[string, boolean, RecordedOperation[]]> = [
    [
      "missing: added with its parent",
      false,
      [
        { op: "add", path: "/system", value: {} },
        { op: "add", path: "/system/opal", value: STATUS },
      ],
    ],
    ["existing: replaced", true, [{ op: "replace", path: "/system/opal", value: STATUS }]],
  ];
  for (const [name, statusExists, operations] of cases) {
    await t.test(name, async () => {
      const { store, commit } = setup(statusExists ? { system: { opal: {} } } : {});
      await commit([], statusExists);
      assert.deepEqual(store.applied, [operations]);
    });
  }
});

test("the operations of one commit", async (t) => {
  const cases: Array<[string, Json, EntryWrite[], RecordedOperation[][]]> = [
    [
      "PUT creates the missing ancestors outermost first",
      { system: { opal: {} } },
      [put("/a/b/c", 1)],
      [
        [
          { op: "add", path: "/a", value: {} },
          { op: "add", path: "/a/b", value: {} },
          { op: "add", path: "/a/b/c", value: 1 },
          { op: "replace", path: "/system/opal", value: STATUS },
        ],
      ],
    ],
    ["DELETE of a missing path emits nothing", { system: { opal: {} } }, [remove("/gone")], [[{ op: "replace", path: "/system/opal", value: STATUS }]]],
    [
      "PATCH paths are prefixed with the escaped dst_path",
      { "x~y": { j: 0 }, system: { opal: {} } },
      [{ entry: create(DataSourceEntrySchema, { dstPath: "/x~y", saveMethod: SaveMethod.PATCH }), data: Buffer.from(JSON.stringify([{ op: "add", path: "/k", value: 1 }, { op: "remove", path: "/j" }])) }],
      [
        [
          { op: "add", path: "/x~0y/k", value: 1 },
          { op: "remove", path: "/x~0y/j" },
          { op: "replace", path: "/system/opal", value: STATUS },
        ],
      ],
    ],
    [
      "a write under a path replaced earlier goes in the next patch",
      { system: { opal: {} } },
      [put("/a", { b: {} }), put("/a/b/c", 1)],
      [
        // The first patch carries the status as it stands: a store that lost it refuses this one too.
        [
          { op: "replace", path: "/system/opal", value: {} },
          { op: "add", path: "/a", value: { b: {} } },
        ],
        [
          { op: "add", path: "/a/b/c", value: 1 },
          { op: "replace", path: "/system/opal", value: STATUS },
        ],
      ],
    ],
  ];
  for (const [name, before, writes, patches] of cases) {
    await t.test(name, async () => {
      const { store, commit } = setup(before);
      await commit(writes, true);
      assert.deepEqual(store.applied, patches);
    });
  }
});

test("writes that overwrite the parent of a later write go in consecutive patches", LIMIT, async (t) => {
  const status = { opal: STATUS };
  const cases: Array<{ name: string; before: Json; writes: EntryWrite[]; after: Json; patches: number; exists: string[] }> = [
    { name: "PUT then PUT below it", before: {}, writes: [put("/a", { b: {} }), put("/a/b/c", 1)], after: { a: { b: { c: 1 } }, system: status }, patches: 2, exists: ["/a/b", "/system"] },
    { name: "DELETE then PUT below it", before: { a: { old: 1 } }, writes: [remove("/a"), put("/a/b", 1)], after: { a: { b: 1 }, system: status }, patches: 2, exists: ["/a", "/a", "/system"] },
    { name: "PATCH then PUT below what it added", before: { a: {} }, writes: [patch("/a", [{ op: "add", path: "/b", value: {} }]), put("/a/b/c", 1)], after: { a: { b: { c: 1 } }, system: status }, patches: 2, exists: ["/a/b", "/system"] },
    { name: "root PUT then PUT below it", before: { x: 1 }, writes: [put("/", { a: {} }), put("/a/b", 1)], after: { a: { b: 1 }, system: status }, patches: 2, exists: ["/a", "/system"] },
    { name: "three levels, three patches", before: {}, writes: [put("/a", {}), put("/a/b", {}), put("/a/b/c", 1)], after: { a: { b: { c: 1 } }, system: status }, patches: 3, exists: ["/a", "/a/b", "/system"] },
    { name: "PUT below then PUT above share a patch", before: {}, writes: [put("/a/b", 1), put("/a", { c: 2 })], after: { a: { c: 2 }, system: status }, patches: 1, exists: ["/a", "/system"] },
    { name: "the same path twice shares a patch, last wins", before: {}, writes: [put("/a", 1), put("/a", 2)], after: { a: 2, system: status }, patches: 1, exists: ["/system"] },
    { name: "an entry writing /system puts the status in its own patch", before: {}, writes: [put("/system", { x: 1 })], after: { system: { x: 1, opal: STATUS } }, patches: 2, exists: ["/system"] },
    // OPA's transaction does not end as two patches would when a path added is then removed or replaced, or removed then added.
    { name: "DELETE of a path created in the same commit goes in the next patch", before: {}, writes: [put("/a/b/c", 1), remove("/a/b")], after: { a: {}, system: status }, patches: 2, exists: ["/a/b", "/a", "/a/b", "/system"] },
    { name: "a PATCH removing what a PUT added (null) goes in the next patch", before: {}, writes: [put("/a/x", null), patch("/a", [{ op: "remove", path: "/x" }])], after: { a: {}, system: status }, patches: 2, exists: ["/a", "/system"] },
    { name: "a PUT (null) where a DELETE removed goes in the next patch", before: { a: 1 }, writes: [remove("/a"), put("/a", null)], after: { a: null, system: status }, patches: 2, exists: ["/a", "/system"] },
    { name: "a PATCH replacing what a PUT added goes in the next patch", before: {}, writes: [put("/a", { x: 1 }), patch("/a", [{ op: "replace", path: "/x", value: 2 }])], after: { a: { x: 2 }, system: status }, patches: 2, exists: ["/system"] },
    { name: "appends after a PUT share its patch", before: {}, writes: [put("/c", { log: [] }), patch("/c", [{ op: "add", path: "/log/-", value: 1 }]), patch("/c", [{ op: "add", path: "/log/-", value: 2 }])], after: { c: { log: [1, 2] }, system: status }, patches: 1, exists: ["/system"] },
  ];
  for (const { name, before, writes, after, patches, exists } of cases) {
    await t.test(name, async () => {
      const { store, commit } = setup(before);
      const result = await commit(writes);
      assert.deepEqual(store.document, after);
      assert.equal(result.attempts.length, patches);
      assert.ok(
        result.attempts.every((attempt) => attempt.error === undefined),
        "every patch applied",
      );
      assert.deepEqual(result.exists, exists);
    });
  }
});

test("what exists is remembered between commits", LIMIT, async (t) => {
  await t.test("a second commit under the same parents asks nothing", async () => {
    const { store, commit } = setup();
    await commit([put("/a/b/c", 1)]);
    const second = await commit([put("/a/b/d", 2)], true);
    assert.deepEqual(second.exists, []);
    assert.equal(second.attempts.length, 1);
    assert.deepEqual(store.document, { a: { b: { c: 1, d: 2 } }, system: { opal: STATUS } });
  });

  await t.test("a created status parent is not asked about again", async () => {
    const { commit } = setup();
    await commit([]);
    const second = await commit([]);
    assert.deepEqual(second.exists, []);
  });

  await t.test("an existing ancestor is remembered with its own ancestors", async () => {
    const { store, commit } = setup({ x: { y: {} }, system: { opal: {} } });
    const first = await commit([put("/x/y/z", 1)], true);
    assert.deepEqual(first.exists, ["/x/y"]);
    const second = await commit([put("/x/w/q", 2)], true);
    assert.deepEqual(second.exists, ["/x/w"], "/x is known from the first commit");
    assert.deepEqual(store.document, { x: { y: { z: 1 }, w: { q: 2 } }, system: { opal: STATUS } });
  });

  await t.test("forget() makes it ask again", async () => {
    const { transactions, commit } = setup({ system: { opal: {} } });
    await commit([put("/a/b", 1)], true);
    transactions.forget();
    const second = await commit([put("/a/c", 2)], true);
    assert.deepEqual(second.exists, ["/a"]);
  });

  await t.test("a write over a container forgets what was known below it", async () => {
    const { store, commit } = setup({ system: { opal: {} } });
    await commit([put("/a/b/c", 1)], true);
    await commit([put("/a", {})], true);
    const third = await commit([put("/a/b/d", 2)], true);
    assert.deepEqual(third.exists, ["/a/b", "/a"]);
    assert.equal(third.attempts.length, 1, "no refused patch");
    assert.deepEqual(store.document, { a: { b: { d: 2 } }, system: { opal: STATUS } });
  });

  await t.test("a root replacement forgets everything known", async () => {
    const { store, commit } = setup({ system: { opal: {} } });
    await commit([put("/a/b/c", 1)], true);
    await commit([put("/", { z: 1 })], true);
    const third = await commit([put("/a/b/d", 2)], true);
    assert.deepEqual(third.exists, ["/a/b", "/a"]);
    assert.equal(third.attempts.length, 1, "no refused patch");
    assert.deepEqual(store.document, { z: 1, a: { b: { d: 2 } }, system: { opal: STATUS } });
  });

  await t.test(
    "a container deleted in the patch that created it is not remembered",
    {
      },
    async () => {
      const { store, commit } = setup({ system: { opal: {} } });
      await commit([put("/a/b", 1), remove("/a")], true);
      assert.deepEqual(store.document, { system: { opal: STATUS } });
      const second = await commit([put("/a/c", 2)], true);
      assert.deepEqual(store.document, { a: { c: 2 }, system: { opal: STATUS } });
      assert.equal(second.attempts.length, 1, "no refused patch");
      assert.deepEqual(second.exists, ["/a"]);
    },
  );
});

test("a refused commit", LIMIT, async (t) => {
  await t.test("a parent removed behind our back is created again after one 404", async () => {
    const { store, commit } = setup();
    await commit([put("/a/b", 1)]);
    delete (store.document as Record<string, Json>).a;
    const second = await commit([put("/a/c", 2)], true);
    assert.deepEqual(
      second.attempts.map((attempt) => attempt.error !== undefined),
      [true, false],
      "refused, then applied",
    );
    assert.deepEqual(second.exists, ["/system/opal", "/a"], "checks the status, then asks again about the forgotten parent");
    assert.deepEqual(store.document, { a: { c: 2 }, system: { opal: STATUS } });
  });

  await t.test("without a status, the retry does not check for it", async () => {
    const { store, commit } = setup();
    await commit([put("/a/b", 1)]);
    delete (store.document as Record<string, Json>).a;
    const second = await commit([put("/a/c", 2)]);
    assert.equal(second.attempts.length, 2);
    assert.deepEqual(second.exists, ["/a", "/system"]);
    assert.deepEqual(store.document, { a: { c: 2 }, system: { opal: STATUS } });
  });

  await t.test("a store that restarted empty throws StoreLostStateError", async () => {
    const { store, commit } = setup();
    await commit([put("/a/b", 1)]);
    store.document = {};
    await assert.rejects(commit([put("/a/c", 2)], true), StoreLostStateError);
    assert.equal(store.attempts.length, 2, "the first commit and one refused patch, no retry");
    assert.deepEqual(store.existsCalls.slice(-1), ["/system/opal"]);
    assert.deepEqual(store.document, {}, "nothing was written");
  });

  await t.test("a commit in several patches to a store that restarted empty writes none of them", async () => {
    const { store, commit } = setup();
    await commit([put("/x", 1)]);
    store.document = {};
    // PUT /a then a write below it: two patches, the first of which used to land unguarded.
    await assert.rejects(commit([put("/a", { b: {} }), patch("/check", [{ op: "add", path: "/log/-", value: 1 }]), put("/a/b/c", 1)], true), StoreLostStateError);
    assert.deepEqual(store.document, {}, "not even the first patch was taken");
  });

  await t.test("a guard before the first commit reads the status as the store holds it", async () => {
    const { store, commit } = setup({ system: { opal: { position: "7" } } });
    const { attempts } = await commit([put("/a", { b: {} }), put("/a/b/c", 1)], true);
    assert.deepEqual(attempts[0]?.operations[0], { op: "replace", path: "/system/opal", value: { position: "7" } });
    assert.deepEqual(store.document, { a: { b: { c: 1 } }, system: { opal: STATUS } });
  });

  await t.test("a store that lost its state is reported even when our memory is right", async () => {
    const { store, commit } = setup({ system: { opal: {} } });
    store.document = {};
    await assert.rejects(commit([], true), StoreLostStateError);
    assert.deepEqual(store.document, {});
  });

  // `asksAgain`: the commit failed before its retry, so it forgot what it knew. After a
  // failed retry it keeps only what the store itself answered during that retry.
  const failures: Array<{ name: string; injected: PolicyStoreError[]; status: number | undefined; attempts: number; asksAgain: boolean }> = [
    { name: "a second 404 is thrown", injected: [new PolicyStoreError("missing", 404), new PolicyStoreError("still missing", 404)], status: 404, attempts: 2, asksAgain: false },
    { name: "a rejection other than 404 is not retried", injected: [new PolicyStoreError("bad request", 400)], status: 400, attempts: 1, asksAgain: true },
    { name: "a server error is not retried", injected: [new PolicyStoreError("boom", 500)], status: 500, attempts: 1, asksAgain: true },
    { name: "an unreachable store is not retried", injected: [new PolicyStoreError("unreachable", undefined)], status: undefined, attempts: 1, asksAgain: true },
  ];
  for (const { name, injected, status, attempts, asksAgain } of failures) {
    await t.test(name, async () => {
      const { store, commit } = setup();
      await commit([put("/a/b", 1)]);
      store.failures.push(...injected);
      await assert.rejects(commit([put("/a/c", 2)]), (error: unknown) => error instanceof PolicyStoreError && error.status === status);
      assert.equal(store.attempts.length, 1 + attempts);
      assert.deepEqual(store.document, { a: { b: 1 }, system: { opal: STATUS } }, "nothing was written");
      const next = await commit([put("/a/d", 3)]);
      assert.deepEqual(next.exists, asksAgain ? ["/a", "/system"] : []);
      assert.deepEqual(store.document, { a: { b: 1, d: 3 }, system: { opal: STATUS } });
    });
  }
});

test("several updates in one commit", LIMIT, async (t) => {
  const status = { opal: STATUS };
  const cases: Array<{ name: string; before: Json; writes: EntryWrite[]; statusExists: boolean; after: Json; todo?: string }> = [
    {
      name: "PUT then DELETE of the same new path leaves it deleted",
      before: { system: { opal: {} } },
      writes: [put("/a", 1), remove("/a")],
      statusExists: true,
      after: { system: status },
    },
    {
      name: "PUT then DELETE of the same nested new path leaves it deleted",
      before: { a: {}, system: { opal: {} } },
      writes: [put("/a/b", 1), remove("/a/b")],
      statusExists: true,
      after: { a: {}, system: status },
    },
    {
      name: "two DELETEs of the same path",
      before: { a: 1, system: { opal: {} } },
      writes: [remove("/a"), remove("/a")],
      statusExists: true,
      after: { system: status },
    },
    {
      name: "an entry replacing /system while the status exists",
      before: { system: { opal: { old: true } } },
      writes: [put("/system", { x: 1 })],
      statusExists: true,
      after: { system: { x: 1, opal: STATUS } },
    },
    {
      name: "a root replacement in an earlier patch while the status exists",
      before: { system: { opal: { old: true } } },
      writes: [put("/", { a: {} }), put("/a/b", 1)],
      statusExists: true,
      after: { a: { b: 1 }, system: status },
    },
    {
      name: "PUT then DELETE of an existing path",
      before: { a: 0, system: { opal: {} } },
      writes: [put("/a", 1), remove("/a")],
      statusExists: true,
      after: { system: status },
    },
    {
      name: "DELETE then PUT of the same path",
      before: { a: 0, system: { opal: {} } },
      writes: [remove("/a"), put("/a", 1)],
      statusExists: true,
      after: { a: 1, system: status },
    },
  ];
  for (const { name, before, writes, statusExists, after, todo } of cases) {
    await t.test(name, todo === undefined ? {} : { todo }, async () => {
      const { store, commit } = setup(before);
      await commit(writes, statusExists);
      assert.deepEqual(store.document, after);
    });
  }
});
