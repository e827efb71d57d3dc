import { test } from "node:test";
import assert from "node:assert/strict";
import { ReservedPaths, resolveSegments } from "./reserved-paths.js";

const strict = ReservedPaths.NONE;

test("resolveSegments resolves ., .., empty segments and a missing leading slash", () => {
  assert.deepEqual(resolveSegments("system//opal/./x/../y"), ["system", "opal", "y"]);
  assert.deepEqual(resolveSegments("/../../system"), ["system"]);
  assert.deepEqual(resolveSegments("/"), []);
});

const refused: Array<[string, string]> = [
  ["/system", "the namespace itself"],
  ["system", "no leading slash"],
  ["system/opal", "the client's status, no leading slash"],
  ["/system/opal_mesh/policy", "the client's policy record"],
  ["/system/version", "anything else in system"],
  ["//system", "an empty segment"],
  ["/./system/x", "a dot segment"],
  ["/users/../system/authz", "climbing out of another document"],
  ["/%73ystem/x", "percent-encoded letter"],
  ["/%2Fsystem", "percent-encoded slash"],
  ["/users%2F..%2Fsystem", "encoded slashes around .."],
  ["/%2573ystem", "encoded twice"],
  ["/users/%2E%2E/system/x", "encoded dots"],
];

for (const [path, name] of refused) {
  test(`refused: ${name} (${path})`, () => {
    assert.match(strict.pathProblem(path) ?? "", /system|client's own/);
  });
}

const allowed = ["/", "/users", "/systems", "/System", "/users/system", "/a/b/system/opal", "/%zz"];
for (const path of allowed) {
  test(`allowed: ${path}`, () => assert.equal(strict.pathProblem(path), undefined));
}

test("writable prefixes open their part of data.system, never the client's own documents", () => {
  const opened = new ReservedPaths(["/system/authz"]);
  assert.equal(opened.pathProblem("/system/authz"), undefined);
  assert.equal(opened.pathProblem("system/authz/rules"), undefined);
  assert.match(opened.pathProblem("/system/authz/../opal") ?? "", /client's own document \/system\/opal/);
  assert.match(opened.pathProblem("/system/authz/%2E%2E/opal_mesh") ?? "", /client's own document/);
  assert.match(opened.pathProblem("/system/authzx") ?? "", /OPAL_MESH_WRITABLE_SYSTEM_PATHS/);
  assert.match(opened.pathProblem("/system") ?? "", /itself/);
});

test("configured prefixes are checked", () => {
  assert.equal(ReservedPaths.problem("/system/authz"), undefined);
  assert.equal(ReservedPaths.problem("/system/opal_meshes"), undefined);
  for (const bad of ["/system", "/system/opal", "/system/opal/x", "/system/opal_mesh", "system/authz", "/system/%61uthz", "/system//authz", "/system/x/../opal", "/users"]) {
    assert.ok(ReservedPaths.problem(bad) !== undefined, bad);
  }
});

test("a document at the root may not carry a system key", () => {
  assert.match(strict.rootDocumentProblem("/", { users: 1, system: {} }) ?? "", /"system"/);
  assert.match(strict.rootDocumentProblem("", { "%73ystem": {} }) ?? "", /system/);
  assert.match(strict.rootDocumentProblem("/users/..", { system: {} }) ?? "", /system/);
  assert.equal(strict.rootDocumentProblem("/", { users: 1 }), undefined);
  assert.equal(strict.rootDocumentProblem("/users", { system: 1 }), undefined, "below the root, system is an ordinary key");
  assert.equal(strict.rootDocumentProblem("/", [1, 2]), undefined);
});

test("JSON Patch operations are joined with dst_path", () => {
  assert.match(strict.patchProblem("/", [{ op: "add", path: "/system/opal", value: 1 }]) ?? "", /operation 0 path/);
  assert.match(strict.patchProblem("/users", [{ op: "add", path: "/x", value: 1 }, { op: "remove", path: "/../system/x" }]) ?? "", /operation 1 path/);
  assert.match(strict.patchProblem("/", [{ op: "replace", path: "", value: { system: {} } }]) ?? "", /operation 0: a document written at the data root/);
  assert.match(strict.patchProblem("/", [{ op: "add", path: "/a~1..~1system", value: 1 }]) ?? "", /system/);
  assert.match(strict.patchProblem("/users", [{ op: "move", from: "/../system/opal", path: "/x" }]) ?? "", /operation 0 from/);
  assert.equal(strict.patchProblem("/users", [{ op: "add", path: "/system", value: 1 }]), undefined);
  assert.equal(strict.patchProblem("/", [{ op: "add", path: "/users", value: { system: 1 } }]), undefined);
});

test("writeProblem combines the checks by method", () => {
  assert.match(strict.writeProblem({ path: "/system/opal_mesh", method: "DELETE" }) ?? "", /client's own/);
  assert.match(strict.writeProblem({ path: "/", method: "PUT", data: { system: 1 } }) ?? "", /root/);
  assert.match(strict.writeProblem({ path: "/", method: "PATCH", data: [{ op: "add", path: "/system", value: 1 }] }) ?? "", /system/);
  assert.equal(strict.writeProblem({ path: "/", method: "DELETE" }), undefined);
});
