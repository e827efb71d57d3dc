import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { equals } from "@bufbuild/protobuf";
import { type Scope, ScopeSchema } from "../../../gen/opal/mesh/v1/scope_pb.js";
import { silentLogger } from "../logger.js";
import { FileScopeStore, ScopeFileError } from "./file-scope-store.js";
import { parseScope } from "./scope-json.js";

function scope(id: string, token = "ghp_secret"): Scope {
  return parseScope({
    scope_id: id,
    policy: { source_type: "git", url: `https://github.com/acme/${id}.git`, auth: { auth_type: "github_token", token } },
    data: { config: { entries: [{ url: "https://data.example.com/users", dst_path: "users", config: { headers: { a: "b" } } }] } },
  });
}

async function withTempDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "scope-store-"));
  try {
    await run(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function started(path: string): Promise<FileScopeStore> {
  const store = new FileScopeStore(path, silentLogger());
  await store.start(AbortSignal.timeout(5_000));
  return store;
}

test("a missing file starts empty", () =>
  withTempDir(async (dir) => {
    const store = await started(join(dir, "scopes.json"));
    assert.deepEqual(store.list(), []);
    assert.equal(store.description, `file ${join(dir, "scopes.json")}`);
  }));

test("scopes persist across instances, in a file only its owner can read", () =>
  withTempDir(async (dir) => {
    const path = join(dir, "nested", "deeper", "scopes.json");
    const first = await started(path);
    assert.equal(await first.put(scope("acme")), undefined);
    assert.equal(await first.put(scope("globex")), undefined);
    await first.stop();
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const file = JSON.parse(await readFile(path, "utf8")) as { version: number; scopes: unknown[] };
    assert.equal(file.version, 1);
    assert.equal(file.scopes.length, 2);

    const second = await started(path);
    assert.deepEqual(second.list().map((s) => s.scopeId).sort(), ["acme", "globex"]);
    const loaded = second.get("acme");
    assert.ok(loaded !== undefined && equals(ScopeSchema, loaded, scope("acme")));
    assert.deepEqual(await readdir(join(dir, "nested", "deeper")), ["scopes.json"], "no temp file is left behind");
  }));

test("put returns what it replaced; delete returns what it deleted", () =>
  withTempDir(async (dir) => {
    const path = join(dir, "scopes.json");
    const store = await started(path);
    await store.put(scope("acme", "one"));
    const replaced = await store.put(scope("acme", "two"));
    assert.ok(replaced !== undefined && equals(ScopeSchema, replaced, scope("acme", "one")));
    const deleted = await store.delete("acme");
    assert.ok(deleted !== undefined && equals(ScopeSchema, deleted, scope("acme", "two")));
    assert.equal(await store.delete("acme"), undefined);
    assert.equal(store.get("acme"), undefined);
    assert.deepEqual((await started(path)).list(), []);
  }));

test("concurrent puts all survive", () =>
  withTempDir(async (dir) => {
    const path = join(dir, "scopes.json");
    const store = await started(path);
    const ids = Array.from({ length: 25 }, (_, index) => `tenant-${index}`);
    await Promise.all(ids.map((id) => store.put(scope(id))));
    await Promise.all([store.delete("tenant-0"), store.put(scope("tenant-0", "again")), store.delete("tenant-1")]);
    const expected = ids.filter((id) => id !== "tenant-1").sort();
    assert.deepEqual(store.list().map((s) => s.scopeId).sort(), expected);
    assert.deepEqual((await started(path)).list().map((s) => s.scopeId).sort(), expected);
  }));

test("a corrupt file fails start, naming the path", async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ["not JSON", "{not json", /not valid JSON/],
    ["not an object", "[]", /must hold an object/],
    ["wrong version", '{"version": 2, "scopes": []}', /version 2/],
    ["scopes not a list", '{"version": 1, "scopes": {}}', /"scopes" must be a list/],
    ["a scope that does not decode", '{"version": 1, "scopes": [{"scopeId": "a", "policy": {"nope": 1}}]}', /scopes\[0\]/],
    ["a scope without id", '{"version": 1, "scopes": [{}]}', /scopes\[0\] has no scopeId/],
    ["a duplicate", '{"version": 1, "scopes": [{"scopeId": "a"}, {"scopeId": "a"}]}', /twice/],
  ];
  for (const [name, content, problem] of cases) {
    await t.test(name, () =>
      withTempDir(async (dir) => {
        const path = join(dir, "scopes.json");
        await writeFile(path, content);
        const store = new FileScopeStore(path, silentLogger());
        await assert.rejects(store.start(AbortSignal.timeout(5_000)), (error: Error) => {
          assert.ok(error instanceof ScopeFileError);
          assert.ok(error.message.includes(path), error.message);
          assert.match(error.message, problem);
          return true;
        });
        assert.equal(await readFile(path, "utf8"), content, "the corrupt file is left as it was");
      }));
  }
});

test("writes before start are refused", () =>
  withTempDir(async (dir) => {
    const store = new FileScopeStore(join(dir, "scopes.json"), silentLogger());
    await assert.rejects(store.put(scope("acme")), /not started/);
  }));

test("a failed write changes nothing in memory and leaves no temp file", () =>
  withTempDir(async (dir) => {
    const path = join(dir, "scopes.json");
    const store = await started(path);
    // A directory where the file should go: the rename onto it fails.
    await mkdir(path);
    await assert.rejects(store.put(scope("acme")), (error: Error) => error instanceof ScopeFileError && error.message.includes(path));
    assert.deepEqual(store.list(), []);
    assert.deepEqual(await readdir(dir), ["scopes.json"]);
    await rm(path, { recursive: true });
    await store.put(scope("globex"));
    assert.deepEqual(store.list().map((s) => s.scopeId), ["globex"], "a later write still goes through");
  }));

test("listeners hear every change with what it replaced, and one that throws breaks nothing", () =>
  withTempDir(async (dir) => {
    const store = await started(join(dir, "scopes.json"));
    const heard: Array<[string, string | undefined, string | undefined]> = [];
    const token = (s: Scope | undefined) => (s?.policy?.auth?.kind.case === "githubToken" ? s.policy.auth.kind.value.token : undefined);
    store.onChange(() => {
      throw new Error("listener bug");
    });
    store.onChange((id, current, previous) => heard.push([id, token(current), token(previous)]));
    await store.put(scope("acme", "one"));
    await store.put(scope("acme", "two"));
    await store.delete("acme");
    await store.delete("acme");
    assert.deepEqual(heard, [
      ["acme", "one", undefined],
      ["acme", "two", "one"],
      ["acme", undefined, "two"],
    ]);
  }));

test("start honours an aborted signal", () =>
  withTempDir(async (dir) => {
    const store = new FileScopeStore(join(dir, "scopes.json"), silentLogger());
    await assert.rejects(store.start(AbortSignal.abort(new Error("shutting down"))), /shutting down/);
  }));
