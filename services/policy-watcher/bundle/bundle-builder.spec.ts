import { test } from "node:test";
import assert from "node:assert/strict";
import type { PolicyBundle } from "../../../gen/opal/mesh/v1/policy_pb.js";
import { regoPackage } from "../../common/rego.js";
import type { PolicyTree, TreeChanges } from "../types.js";
import { BundleBuilder, type BundleFilters, changedDirectories, DEFAULT_FILTERS, dataModulePath, inDirectories } from "./bundle-builder.js";

function treeOf(files: Record<string, string>): PolicyTree {
  return new Map(Object.entries(files).map(([path, content]) => [path, Buffer.from(content)]));
}

function builder(filters: Partial<BundleFilters> = {}): BundleBuilder {
  return new BundleBuilder({ ...DEFAULT_FILTERS, ...filters });
}

/** The parts of a bundle a case compares, without protobuf bookkeeping. */
function summary(bundle: PolicyBundle) {
  return {
    hash: bundle.hash,
    oldHash: bundle.oldHash,
    policyModules: bundle.policyModules.map((module) => module.path),
    dataModules: bundle.dataModules.map((module) => module.path),
    deletedFiles: bundle.deletedFiles === undefined ? undefined : { policyModules: bundle.deletedFiles.policyModules, dataModules: bundle.deletedFiles.dataModules },
  };
}

// A repo at its newest version: a root manifest that pulls in lib/ first, then rbac.
const REPO = {
  ".manifest": "lib\nrbac/policy.rego\n",
  "lib/.manifest": "utils.rego\n",
  "lib/utils.rego": "package lib.utils\n\nallowed_roles := {\"admin\"}\n",
  "rbac/policy.rego": "# Role-based access\npackage app.rbac\n\nimport data.lib.utils\n",
  "rbac/data.json": '{"roles":["admin"]}',
  "rbac/roles.json": "{}",
  "abac/policy.rego": "package app.abac\n",
  "tests/rbac_test.rego": "package app.rbac_test\n",
  "data.json": '{"root":true}',
  "README.md": "# policies\n",
  "schemas/input.yaml": "type: object\n",
};

test("regoPackage", async (t) => {
  const cases: Array<[string, string, string]> = [
    ["a plain package", "package app.rbac\n\nallow := true\n", "app.rbac"],
    ["after comments and blank lines", "# RBAC\n\n# more\npackage app.rbac\n", "app.rbac"],
    ["a package named in a comment is not the package", "# package fake\npackage real\n", "real"],
    ["a commented-out package line is skipped", "#package old\n# package older\npackage new\n", "new"],
    ["a trailing comment is not part of the name", "package app.rbac # the rules\n", "app.rbac"],
    ["a comment right after the name", "package app.rbac#x\n", "app.rbac"],
    ["indented", "  \tpackage app.rbac\n", "app.rbac"],
    ["a tab after the keyword", "package\tapp.rbac\n", "app.rbac"],
    ["CRLF line endings", "package app.rbac\r\nallow := true\r\n", "app.rbac"],
    ["without a trailing newline", "package app", "app"],
    ["a bracketed path segment", 'package app["with-dash"].rules\n', 'app["with-dash"].rules'],
    ["the first package wins", "package first\nx := 1\npackage second\n", "first"],
    ["no package", "allow := true\n", ""],
    ["an empty module", "", ""],
    ["only a comment naming a package", "# package nothing\n", ""],
    ["a word starting with package is not the keyword", "packages app\n", ""],
    ["package inside an import is not the keyword", "import data.package.x\n", ""],
  ];
  for (const [name, rego, expected] of cases) {
    await t.test(name, () => assert.equal(regoPackage(rego), expected));
  }
});

test("dataModulePath", async (t) => {
  const cases: Array<[string, string, string]> = [
    ["a data.json at the root is the root", "data.json", ""],
    ["one level down", "users/data.json", "users"],
    ["several levels down", "a/b/c/data.json", "a/b/c"],
  ];
  for (const [name, path, expected] of cases) {
    await t.test(name, () => assert.equal(dataModulePath(path), expected));
  }
});

test("inDirectories", async (t) => {
  const cases: Array<{ name: string; path: string; dirs: string[]; expected: boolean; todo?: string }> = [
    { name: "no directories means the whole repo", path: "a/b.rego", dirs: [], expected: true },
    { name: "'.' means the whole repo", path: "a/b.rego", dirs: ["."], expected: true },
    { name: "'./' means the whole repo", path: "b.rego", dirs: ["./"], expected: true },
    { name: "'' means the whole repo", path: "a/b.rego", dirs: [""], expected: true },
    { name: "a file in the directory", path: "rbac/policy.rego", dirs: ["rbac"], expected: true },
    { name: "a file deeper in the directory", path: "rbac/admin/policy.rego", dirs: ["rbac"], expected: true },
    { name: "the directory path itself", path: "rbac", dirs: ["rbac"], expected: true },
    { name: "a root file is outside a directory", path: "policy.rego", dirs: ["rbac"], expected: false },
    { name: "a sibling sharing the prefix is outside", path: "rbac2/policy.rego", dirs: ["rbac"], expected: false },
    { name: "a file named like the prefix is outside", path: "rbac.rego", dirs: ["rbac"], expected: false },
    { name: "a same-named directory deeper down is outside", path: "other/rbac/policy.rego", dirs: ["rbac"], expected: false },
    { name: "a trailing slash is ignored", path: "rbac/policy.rego", dirs: ["rbac/"], expected: true },
    { name: "a leading ./ is ignored", path: "rbac/policy.rego", dirs: ["./rbac"], expected: true },
    { name: "a nested directory", path: "a/b/c.rego", dirs: ["a/b"], expected: true },
    { name: "the parent of a nested directory is outside", path: "a/c.rego", dirs: ["a/b"], expected: false },
    { name: "any one of several directories", path: "abac/policy.rego", dirs: ["rbac", "abac"], expected: true },
    { name: "none of several directories", path: "tests/policy.rego", dirs: ["rbac", "abac"], expected: false },
    { name: "a directory whose name starts with a dot", path: ".opal/policy.rego", dirs: [".opal"], expected: true },
    { name: "a dotted directory does not select its undotted twin", path: "opal/policy.rego", dirs: [".opal"], expected: false },
  ];
  for (const { name, path, dirs, expected, todo } of cases) {
    await t.test(name, { todo }, () => assert.equal(inDirectories(path, dirs), expected));
  }
});

test("changedDirectories", async (t) => {
  const cases: Array<[string, string[], string[]]> = [
    ["nothing changed is the root only", [], ["."]],
    ["a root file is the root only", ["policy.rego"], ["."]],
    ["a nested file gives every parent", ["a/b/c/policy.rego"], [".", "a", "a/b", "a/b/c"]],
    ["shared parents appear once", ["a/b/x.rego", "a/b/y.rego", "a/z.rego"], [".", "a", "a/b"]],
    ["sorted whatever the input order", ["zeta/x.rego", "alpha/y.rego", "mid/data.json"], [".", "alpha", "mid", "zeta"]],
    ["siblings sharing a prefix stay apart", ["rbac/x.rego", "rbac2/y.rego"], [".", "rbac", "rbac2"]],
  ];
  for (const [name, paths, expected] of cases) {
    await t.test(name, () => assert.deepEqual(changedDirectories(paths), expected));
  }
});

test("BundleBuilder.isBundled", async (t) => {
  const cases: Array<[string, Partial<BundleFilters>, string, boolean]> = [
    ["a rego file", {}, "rbac/policy.rego", true],
    ["a rego file at the root", {}, "policy.rego", true],
    ["a data.json", {}, "rbac/data.json", true],
    ["a data.json at the root", {}, "data.json", true],
    ["another json file is not a module", {}, "rbac/roles.json", false],
    ["a json file ending in data.json is not data.json", {}, "rbac/mydata.json", false],
    ["a markdown file", {}, "README.md", false],
    ["the manifest", {}, ".manifest", false],
    ["a backup of a rego file", {}, "policy.rego.bak", false],
    ["a yaml file", {}, "schemas/input.yaml", false],
    ["data.json when only .rego is bundled", { extensions: [".rego"] }, "rbac/data.json", false],
    ["rego when only .json is bundled", { extensions: [".json"] }, "rbac/policy.rego", false],
    ["data.json when only .json is bundled", { extensions: [".json"] }, "rbac/data.json", true],
    ["an extension that is bundled but not a module kind", { extensions: [".rego", ".json", ".md"] }, "README.md", false],
    ["another policy extension", { extensions: [".rego", ".fga"], policyExtensions: [".rego", ".fga"] }, "model.fga", true],
    ["a policy extension not in the extension filter", { extensions: [".rego"], policyExtensions: [".rego", ".fga"] }, "model.fga", false],
    ["an ignored directory", { ignore: ["tests/**"] }, "tests/rbac_test.rego", false],
    ["a sibling of an ignored directory", { ignore: ["tests/**"] }, "tests2/rbac_test.rego", true],
    ["an ignored data.json at any depth", { ignore: ["**/data.json"] }, "a/b/data.json", false],
    ["an ignored data.json glob matches at the root", { ignore: ["**/data.json"] }, "data.json", false],
    ["an ignore glob on one level", { ignore: ["*_test.rego"] }, "rbac_test.rego", false],
    ["an ignore glob on one level does not reach deeper", { ignore: ["*_test.rego"] }, "tests/rbac_test.rego", true],
    ["a negated ignore brings a file back", { ignore: ["tests/**", "!tests/keep.rego"] }, "tests/keep.rego", true],
    ["a negated ignore leaves the rest ignored", { ignore: ["tests/**", "!tests/keep.rego"] }, "tests/drop.rego", false],
  ];
  for (const [name, filters, path, expected] of cases) {
    await t.test(name, () => assert.equal(builder(filters).isBundled(path), expected));
  }
});

test("BundleBuilder.full", async (t) => {
  const cases: Array<{ name: string; filters?: Partial<BundleFilters>; dirs: string[]; manifest: string[]; policy: string[]; data: string[] }> = [
    {
      name: "every module, in manifest order",
      dirs: ["."],
      manifest: ["lib/utils.rego", "rbac/policy.rego", "abac/policy.rego", "data.json", "rbac/data.json", "tests/rbac_test.rego"],
      policy: ["lib/utils.rego", "rbac/policy.rego", "abac/policy.rego", "tests/rbac_test.rego"],
      data: ["", "rbac"],
    },
    {
      name: "no directories means the whole repo",
      dirs: [],
      manifest: ["lib/utils.rego", "rbac/policy.rego", "abac/policy.rego", "data.json", "rbac/data.json", "tests/rbac_test.rego"],
      policy: ["lib/utils.rego", "rbac/policy.rego", "abac/policy.rego", "tests/rbac_test.rego"],
      data: ["", "rbac"],
    },
    {
      name: "one directory",
      dirs: ["rbac"],
      manifest: ["rbac/policy.rego", "rbac/data.json"],
      policy: ["rbac/policy.rego"],
      data: ["rbac"],
    },
    {
      name: "several directories, written loosely",
      dirs: ["./abac/", "lib"],
      manifest: ["lib/utils.rego", "abac/policy.rego"],
      policy: ["lib/utils.rego", "abac/policy.rego"],
      data: [],
    },
    {
      name: "a directory with nothing bundled",
      dirs: ["schemas"],
      manifest: [],
      policy: [],
      data: [],
    },
    {
      name: "only .rego files are bundled",
      filters: { extensions: [".rego"] },
      dirs: ["."],
      manifest: ["lib/utils.rego", "rbac/policy.rego", "abac/policy.rego", "tests/rbac_test.rego"],
      policy: ["lib/utils.rego", "rbac/policy.rego", "abac/policy.rego", "tests/rbac_test.rego"],
      data: [],
    },
    {
      name: "only .json files are bundled",
      filters: { extensions: [".json"] },
      dirs: ["."],
      manifest: ["data.json", "rbac/data.json"],
      policy: [],
      data: ["", "rbac"],
    },
    {
      name: "ignored files are left out",
      filters: { ignore: ["tests/**", "data.json"] },
      dirs: ["."],
      manifest: ["lib/utils.rego", "rbac/policy.rego", "abac/policy.rego", "rbac/data.json"],
      policy: ["lib/utils.rego", "rbac/policy.rego", "abac/policy.rego"],
      data: ["rbac"],
    },
    {
      name: "a negated ignore keeps a file",
      filters: { ignore: ["**/*.rego", "!tests/**"] },
      dirs: ["."],
      manifest: ["data.json", "rbac/data.json", "tests/rbac_test.rego"],
      policy: ["tests/rbac_test.rego"],
      data: ["", "rbac"],
    },
    {
      name: "a missing custom manifest leaves path order (the root .manifest is not read)",
      filters: { manifestPath: "rbac/.order" },
      dirs: ["."],
      manifest: ["abac/policy.rego", "data.json", "lib/utils.rego", "rbac/data.json", "rbac/policy.rego", "tests/rbac_test.rego"],
      policy: ["abac/policy.rego", "lib/utils.rego", "rbac/policy.rego", "tests/rbac_test.rego"],
      data: ["", "rbac"],
    },
  ];
  for (const { name, filters, dirs, manifest, policy, data } of cases) {
    await t.test(name, () => {
      const bundle = builder(filters).full(treeOf(REPO), "h1", dirs);
      assert.deepEqual(bundle.manifest, manifest, "manifest");
      assert.deepEqual(summary(bundle), { hash: "h1", oldHash: "", policyModules: policy, dataModules: data, deletedFiles: undefined });
    });
  }

  await t.test("a custom manifest file is read from the tree", () => {
    const tree = treeOf({ ...REPO, "rbac/.order": "data.json\npolicy.rego\n" });
    const bundle = builder({ manifestPath: "rbac/.order" }).full(tree, "h1", ["."]);
    assert.deepEqual(bundle.manifest, ["rbac/data.json", "rbac/policy.rego", "abac/policy.rego", "data.json", "lib/utils.rego", "tests/rbac_test.rego"]);
    assert.deepEqual(
      bundle.dataModules.map((module) => module.path),
      ["rbac", ""],
    );
  });
});

test("BundleBuilder.full carries module contents", () => {
  const bundle = builder().full(treeOf(REPO), "h1", ["."]);
  assert.deepEqual(
    bundle.policyModules.map(({ path, packageName, rego }) => ({ path, packageName, rego })),
    [
      { path: "lib/utils.rego", packageName: "lib.utils", rego: REPO["lib/utils.rego"] },
      { path: "rbac/policy.rego", packageName: "app.rbac", rego: REPO["rbac/policy.rego"] },
      { path: "abac/policy.rego", packageName: "app.abac", rego: REPO["abac/policy.rego"] },
      { path: "tests/rbac_test.rego", packageName: "app.rbac_test", rego: REPO["tests/rbac_test.rego"] },
    ],
  );
  assert.deepEqual(
    bundle.dataModules.map(({ path, dataJson }) => ({ path, data: Buffer.from(dataJson).toString() })),
    [
      { path: "", data: REPO["data.json"] },
      { path: "rbac", data: REPO["rbac/data.json"] },
    ],
  );
});

test("BundleBuilder.full: a module without a package has an empty package name", () => {
  const bundle = builder().full(treeOf({ "a.rego": "allow := true\n", "b.rego": "package b\n" }), "h1", ["."]);
  assert.deepEqual(
    bundle.policyModules.map(({ path, packageName }) => ({ path, packageName })),
    [
      { path: "a.rego", packageName: "" },
      { path: "b.rego", packageName: "b" },
    ],
  );
});

test("BundleBuilder.full: data.json bytes are passed through unchanged", () => {
  const bytes = Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0xa9, 0x22, 0x7d]); // {"a":"é"}
  const tree: PolicyTree = new Map([["users/data.json", bytes]]);
  const bundle = builder().full(tree, "h1", ["."]);
  assert.equal(bundle.dataModules.length, 1);
  assert.deepEqual(Buffer.from(bundle.dataModules[0]?.dataJson ?? []), bytes);
});

// The new version of REPO's history: files changed and deleted since "base".
const CHANGES: TreeChanges = {
  // Deliberately not in manifest order.
  changed: ["tests/rbac_test.rego", "README.md", "rbac/data.json", "abac/policy.rego", "rbac/policy.rego", "rbac/roles.json", ".manifest"],
  deleted: ["data.json", "old/policy.rego", "old/data.json", "docs/notes.md", "tests/old_test.rego", "old/nested/deep.rego"],
};
const NEW_REPO = Object.fromEntries(Object.entries(REPO).filter(([path]) => path !== "data.json"));

test("BundleBuilder.delta", async (t) => {
  const cases: Array<{
    name: string;
    filters?: Partial<BundleFilters>;
    dirs: string[];
    changes: TreeChanges;
    policy: string[];
    data: string[];
    deleted: { policyModules: string[]; dataModules: string[] } | undefined;
    todo?: string;
  }> = [
    {
      name: "changed modules in manifest order, deletions split by kind",
      dirs: ["."],
      changes: CHANGES,
      policy: ["rbac/policy.rego", "abac/policy.rego", "tests/rbac_test.rego"],
      data: ["rbac"],
      deleted: { policyModules: ["tests/old_test.rego", "old/policy.rego", "old/nested/deep.rego"], dataModules: ["old", ""] },
    },
    {
      name: "directory filter on changes and deletions",
      dirs: ["old", "rbac"],
      changes: CHANGES,
      policy: ["rbac/policy.rego"],
      data: ["rbac"],
      deleted: { policyModules: ["old/policy.rego", "old/nested/deep.rego"], dataModules: ["old"] },
    },
    {
      name: "extension filter on changes and deletions",
      filters: { extensions: [".rego"] },
      dirs: ["."],
      changes: CHANGES,
      policy: ["rbac/policy.rego", "abac/policy.rego", "tests/rbac_test.rego"],
      data: [],
      deleted: { policyModules: ["tests/old_test.rego", "old/policy.rego", "old/nested/deep.rego"], dataModules: [] },
    },
    {
      name: "ignore globs on changes and deletions",
      filters: { ignore: ["tests/**", "old/**", "!old/data.json"] },
      dirs: ["."],
      changes: CHANGES,
      policy: ["rbac/policy.rego", "abac/policy.rego"],
      data: ["rbac"],
      deleted: { policyModules: [], dataModules: ["old", ""] },
    },
    {
      name: "no deletions means no deleted_files",
      dirs: ["."],
      changes: { changed: ["rbac/policy.rego"], deleted: [] },
      policy: ["rbac/policy.rego"],
      data: [],
      deleted: undefined,
    },
    {
      name: "deletions of unbundled files mean no deleted_files",
      dirs: ["."],
      changes: { changed: ["abac/policy.rego"], deleted: ["docs/notes.md", "rbac/roles.json", "tests/x.yaml"] },
      policy: ["abac/policy.rego"],
      data: [],
      deleted: undefined,
    },
    {
      name: "deletions outside the directories mean no deleted_files",
      dirs: ["rbac"],
      changes: { changed: [], deleted: ["old/policy.rego", "data.json"] },
      policy: [],
      data: [],
      deleted: undefined,
    },
    {
      name: "only unbundled changes give an empty delta",
      dirs: ["."],
      changes: { changed: ["README.md", "schemas/input.yaml", ".manifest"], deleted: [] },
      policy: [],
      data: [],
      deleted: undefined,
    },
    {
      name: "no changes give an empty delta",
      dirs: ["."],
      changes: { changed: [], deleted: [] },
      policy: [],
      data: [],
      deleted: undefined,
    },
    {
      name: "nested policy deletions leave before their parents",
      dirs: ["."],
      changes: { changed: [], deleted: ["a.rego", "a/b/c.rego", "a/b.rego"] },
      policy: [],
      data: [],
      deleted: { policyModules: ["a/b/c.rego", "a/b.rego", "a.rego"], dataModules: [] },
    },
    {
      name: "nested data deletions leave before their parents",
      dirs: ["."],
      changes: { changed: [], deleted: ["a/data.json", "a/b/data.json", "data.json"] },
      policy: [],
      data: [],
      deleted: { policyModules: [], dataModules: ["a/b", "a", ""] },
    },
  ];
  for (const { name, filters, dirs, changes, policy, data, deleted, todo } of cases) {
    await t.test(name, { todo }, () => {
      const bundle = builder(filters).delta(treeOf(NEW_REPO), "h2", "base", changes, dirs);
      assert.deepEqual(summary(bundle), { hash: "h2", oldHash: "base", policyModules: policy, dataModules: data, deletedFiles: deleted });
      for (const module of bundle.policyModules) assert.ok(bundle.manifest.includes(module.path), `${module.path} is in the manifest`);
    });
  }
});

test("BundleBuilder.delta carries the changed modules' contents", () => {
  const tree = treeOf({ ...NEW_REPO, "rbac/policy.rego": "package app.rbac.v2\n", "rbac/data.json": '{"roles":[]}' });
  const bundle = builder().delta(tree, "h2", "base", { changed: ["rbac/data.json", "rbac/policy.rego"], deleted: [] }, ["."]);
  assert.deepEqual(
    bundle.policyModules.map(({ path, packageName, rego }) => ({ path, packageName, rego })),
    [{ path: "rbac/policy.rego", packageName: "app.rbac.v2", rego: "package app.rbac.v2\n" }],
  );
  assert.deepEqual(
    bundle.dataModules.map(({ path, dataJson }) => ({ path, data: Buffer.from(dataJson).toString() })),
    [{ path: "rbac", data: '{"roles":[]}' }],
  );
});

test("BundleBuilder.delta does not change the caller's changes", () => {
  const changes: TreeChanges = { changed: ["README.md", "rbac/policy.rego"], deleted: ["b.rego", "a.rego"] };
  builder().delta(treeOf(NEW_REPO), "h2", "base", changes, ["."]);
  assert.deepEqual(changes, { changed: ["README.md", "rbac/policy.rego"], deleted: ["b.rego", "a.rego"] });
});
