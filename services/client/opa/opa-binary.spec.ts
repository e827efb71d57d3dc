import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cachedOpaPath, locateOpa, OPA_VERSION, OpaNotFoundError } from "./opa-binary.js";

/** A stand-in `opa` that only answers `opa version` (this module only asks that). */
function fakeOpa(dir: string, version: string): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, "opa");
  writeFileSync(path, `#!/bin/sh\necho "Version: ${version}"\n`);
  chmodSync(path, 0o755);
  return path;
}

function options(overrides: Partial<Parameters<typeof locateOpa>[0]>): Parameters<typeof locateOpa>[0] {
  return { execPath: undefined, cacheDir: "/nonexistent-cache", searchPath: "", allowBuild: false, environment: {}, ...overrides };
}

test("without OPA and without Go the error says exactly how to get OPA", async (t) => {
  const cacheDir = mkdtempSync(join(tmpdir(), "opa-binary-"));
  t.after(() => rmSync(cacheDir, { recursive: true, force: true }));
  await assert.rejects(locateOpa(options({ cacheDir, allowBuild: true })), (error: unknown) => {
    assert.ok(error instanceof OpaNotFoundError);
    assert.match(error.message, new RegExp(`OPA ${OPA_VERSION.replaceAll(".", "\\.")} was not found`));
    assert.match(error.message, /install Go/);
    assert.match(error.message, /go install github\.com\/open-policy-agent\/opa@v/);
    assert.match(error.message, /OPAL_INLINE_OPA_EXEC_PATH/);
    assert.ok(error.message.includes(cachedOpaPath(cacheDir)), "names where it looked");
    return true;
  });
});

test("OPAL_INLINE_OPA_EXEC_PATH wins, and a bad one is named", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "opa-binary-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const opa = fakeOpa(join(dir, "custom"), "1.5.0");
  assert.equal(await locateOpa(options({ execPath: opa, searchPath: join(dir, "elsewhere") })), opa);
  await assert.rejects(locateOpa(options({ execPath: join(dir, "missing") })), /OPAL_INLINE_OPA_EXEC_PATH=.*missing is not an executable file/);
});

test("an OPA 1.x on PATH is used; a 0.x one is passed over", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "opa-binary-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const v1 = fakeOpa(join(dir, "v1"), "1.9.0");
  fakeOpa(join(dir, "v0"), "0.70.0");
  assert.equal(await locateOpa(options({ searchPath: `${join(dir, "v0")}:${join(dir, "v1")}` })), v1);
  const seen: string[] = [];
  await assert.rejects(locateOpa(options({ searchPath: join(dir, "v0"), onProgress: (message) => seen.push(message) })), OpaNotFoundError);
  assert.match(seen.join("\n"), /needs OPA 1\.x/);
});

test("the pinned build in the cache is found without building", async (t) => {
  const cacheDir = mkdtempSync(join(tmpdir(), "opa-binary-"));
  t.after(() => rmSync(cacheDir, { recursive: true, force: true }));
  const cached = fakeOpa(join(cachedOpaPath(cacheDir), ".."), OPA_VERSION);
  assert.equal(await locateOpa(options({ cacheDir })), cached);
});
