import { test } from "node:test";
import assert from "node:assert/strict";
import type { PolicyTree } from "../types.js";
import { manifestOrder } from "./manifest.js";

/** A tree of text files; `.manifest` contents and policy files alike. */
function treeOf(files: Record<string, string>): PolicyTree {
  return new Map(Object.entries(files).map(([path, content]) => [path, Buffer.from(content)]));
}

/** Every `.rego` file of the tree: what a bundle would ask to order. */
function regoFiles(tree: PolicyTree): string[] {
  return [...tree.keys()].filter((path) => path.endsWith(".rego"));
}

interface Case {
  name: string;
  files: Record<string, string>;
  /** Defaults to every `.rego` file, in tree order. */
  candidates?: string[];
  manifestPath?: string;
  expected: string[];
  todo?: string;
}

const cases: Case[] = [
  // no manifest
  {
    name: "without a manifest the candidates are sorted by path",
    files: { "z.rego": "", "b/a.rego": "", "a.rego": "" },
    expected: ["a.rego", "b/a.rego", "z.rego"],
  },
  {
    name: "an empty manifest leaves the path order",
    files: { ".manifest": "", "z.rego": "", "a.rego": "" },
    expected: ["a.rego", "z.rego"],
  },
  // root manifest
  {
    name: "files named by the root manifest come first, in its order",
    files: { ".manifest": "z.rego\nm.rego\n", "a.rego": "", "m.rego": "", "z.rego": "" },
    expected: ["z.rego", "m.rego", "a.rego"],
  },
  {
    name: "files not named come after, sorted",
    files: { ".manifest": "m.rego", "z.rego": "", "m.rego": "", "b.rego": "", "a/x.rego": "" },
    expected: ["m.rego", "a/x.rego", "b.rego", "z.rego"],
  },
  {
    name: "entries may name files in subdirectories",
    files: { ".manifest": "b/y.rego\na/x.rego", "a/x.rego": "", "b/y.rego": "" },
    expected: ["b/y.rego", "a/x.rego"],
  },
  {
    name: "blank lines, comments, surrounding spaces and CRLF are tolerated",
    files: { ".manifest": "# load order\r\n\r\n  z.rego  \r\n\t# a.rego\r\nm.rego\r\n", "a.rego": "", "m.rego": "", "z.rego": "" },
    expected: ["z.rego", "m.rego", "a.rego"],
  },
  {
    name: "a leading ./ in an entry is resolved",
    files: { ".manifest": "./z.rego\n./sub/./y.rego", "a.rego": "", "z.rego": "", "sub/y.rego": "" },
    expected: ["z.rego", "sub/y.rego", "a.rego"],
  },
  {
    name: "an entry named twice keeps its first place",
    files: { ".manifest": "z.rego\nm.rego\nz.rego", "m.rego": "", "z.rego": "" },
    expected: ["z.rego", "m.rego"],
  },
  {
    name: "entries naming missing files are ignored",
    files: { ".manifest": "gone.rego\nz.rego\nmissing/dir/x.rego", "a.rego": "", "z.rego": "" },
    expected: ["z.rego", "a.rego"],
  },
  {
    name: "an entry naming ../ outside the repo is ignored",
    files: { ".manifest": "../z.rego\nm.rego\n../../etc/passwd", "a.rego": "", "m.rego": "", "z.rego": "" },
    expected: ["m.rego", "a.rego", "z.rego"],
  },
  {
    name: "an entry that climbs out and back in names a file inside the repo",
    files: { ".manifest": "sub/../z.rego", "a.rego": "", "z.rego": "" },
    expected: ["z.rego", "a.rego"],
  },
  {
    name: "a file whose name starts with '..' is inside the repo",
    files: { ".manifest": "..z.rego\nb.rego", "a.rego": "", "b.rego": "", "..z.rego": "" },
    expected: ["..z.rego", "b.rego", "a.rego"],
  },
  {
    name: "a root manifest naming the root itself does not loop",
    files: { ".manifest": ".\n./\nz.rego", "a.rego": "", "z.rego": "" },
    expected: ["z.rego", "a.rego"],
  },
  // only candidates
  {
    name: "files named but not candidates are not returned",
    files: { ".manifest": "README.md\nz.rego\nskip.rego", "README.md": "", "z.rego": "", "skip.rego": "", "a.rego": "" },
    candidates: ["a.rego", "z.rego"],
    expected: ["z.rego", "a.rego"],
  },
  {
    name: "non-candidate files not named are not returned",
    files: { "a.rego": "", "b.rego": "", "c.rego": "" },
    candidates: ["c.rego", "a.rego"],
    expected: ["a.rego", "c.rego"],
  },
  {
    name: "no candidates gives nothing, whatever the manifest names",
    files: { ".manifest": "a.rego", "a.rego": "" },
    candidates: [],
    expected: [],
  },
  {
    name: "candidates may include data files",
    files: { ".manifest": "users/data.json\na.rego", "a.rego": "", "users/data.json": "{}" },
    candidates: ["a.rego", "users/data.json"],
    expected: ["users/data.json", "a.rego"],
  },
  // nested manifests
  {
    name: "a directory entry pulls in that directory's manifest, relative to it",
    files: {
      ".manifest": "lib\nmain.rego",
      "lib/.manifest": "b.rego\na.rego",
      "lib/a.rego": "",
      "lib/b.rego": "",
      "main.rego": "",
      "extra.rego": "",
    },
    expected: ["lib/b.rego", "lib/a.rego", "main.rego", "extra.rego"],
  },
  {
    name: "a directory entry with a trailing slash or ./ is a directory entry",
    files: {
      ".manifest": "./one/\ntwo/",
      "one/.manifest": "z.rego",
      "two/.manifest": "y.rego",
      "one/a.rego": "",
      "one/z.rego": "",
      "two/y.rego": "",
    },
    expected: ["one/z.rego", "two/y.rego", "one/a.rego"],
  },
  {
    name: "nested manifests expand recursively",
    files: {
      ".manifest": "a",
      "a/.manifest": "b\na.rego",
      "a/b/.manifest": "c\nb.rego",
      "a/b/c/.manifest": "c.rego",
      "a/a.rego": "",
      "a/b/b.rego": "",
      "a/b/c/c.rego": "",
      "0.rego": "",
    },
    expected: ["a/b/c/c.rego", "a/b/b.rego", "a/a.rego", "0.rego"],
  },
  {
    name: "a nested manifest may name deeper paths",
    files: { ".manifest": "a", "a/.manifest": "deep/er/z.rego", "a/deep/er/z.rego": "", "a/0.rego": "" },
    expected: ["a/deep/er/z.rego", "a/0.rego"],
  },
  {
    name: "a nested entry is not resolved from the repo root",
    files: { ".manifest": "a", "a/.manifest": "z.rego", "z.rego": "", "a/z.rego": "", "0.rego": "" },
    expected: ["a/z.rego", "0.rego", "z.rego"],
  },
  {
    name: "a directory without its own manifest adds no order",
    files: { ".manifest": "lib\nz.rego", "lib/b.rego": "", "lib/a.rego": "", "z.rego": "" },
    expected: ["z.rego", "lib/a.rego", "lib/b.rego"],
  },
  {
    name: "a nested manifest's ../ outside the repo is ignored",
    files: { ".manifest": "a", "a/.manifest": "../../z.rego\nm.rego", "a/m.rego": "", "z.rego": "", "0.rego": "" },
    expected: ["a/m.rego", "0.rego", "z.rego"],
  },
  {
    name: "a nested manifest's missing entries are ignored",
    files: { ".manifest": "a", "a/.manifest": "gone.rego\nm.rego\ngone/", "a/m.rego": "", "0.rego": "" },
    expected: ["a/m.rego", "0.rego"],
  },
  {
    name: "a file named by the root and a nested manifest keeps its first place",
    files: { ".manifest": "a/y.rego\na", "a/.manifest": "x.rego\ny.rego", "a/x.rego": "", "a/y.rego": "" },
    expected: ["a/y.rego", "a/x.rego"],
  },
  {
    name: "a directory named twice is expanded once",
    files: { ".manifest": "a\nz.rego\na", "a/.manifest": "x.rego", "a/x.rego": "", "z.rego": "" },
    expected: ["a/x.rego", "z.rego"],
  },
  // cycles
  {
    name: "a manifest naming its own directory does not loop",
    files: { ".manifest": "a", "a/.manifest": "x.rego\n.\n./\ny.rego", "a/x.rego": "", "a/y.rego": "", "a/0.rego": "" },
    expected: ["a/x.rego", "a/y.rego", "a/0.rego"],
  },
  {
    name: "two manifests naming each other do not loop",
    files: {
      ".manifest": "a",
      "a/.manifest": "x.rego\n../b\nw.rego",
      "b/.manifest": "y.rego\n../a\nz.rego",
      "a/x.rego": "",
      "a/w.rego": "",
      "b/y.rego": "",
      "b/z.rego": "",
    },
    expected: ["a/x.rego", "b/y.rego", "b/z.rego", "a/w.rego"],
  },
  {
    name: "a nested manifest naming the root does not loop",
    files: { ".manifest": "a\nz.rego", "a/.manifest": "..\nx.rego", "a/x.rego": "", "z.rego": "", "0.rego": "" },
    expected: ["a/x.rego", "z.rego", "0.rego"],
  },
  // manifest path
  {
    name: "a custom manifest path is read instead of .manifest",
    files: { ".manifest": "a.rego", "order.txt": "z.rego", "a.rego": "", "z.rego": "" },
    manifestPath: "order.txt",
    expected: ["z.rego", "a.rego"],
  },
  {
    name: "a custom manifest's entries are relative to its directory",
    files: { "policies/order.txt": "z.rego\nlib", "policies/z.rego": "", "policies/lib/.manifest": "b.rego", "policies/lib/b.rego": "", "z.rego": "", "0.rego": "" },
    manifestPath: "policies/order.txt",
    expected: ["policies/z.rego", "policies/lib/b.rego", "0.rego", "z.rego"],
  },
  {
    name: "a custom manifest path with a leading ./",
    files: { "conf/.manifest": "z.rego", "conf/z.rego": "", "a.rego": "" },
    manifestPath: "./conf/.manifest",
    expected: ["conf/z.rego", "a.rego"],
  },
  {
    name: "a missing custom manifest gives the path order",
    files: { ".manifest": "z.rego", "a.rego": "", "z.rego": "" },
    manifestPath: "missing/.manifest",
    expected: ["a.rego", "z.rego"],
  },
  {
    name: "an empty manifest path means the root .manifest",
    files: { ".manifest": "z.rego", "a.rego": "", "z.rego": "" },
    manifestPath: "",
    expected: ["z.rego", "a.rego"],
  },
  {
    name: "a manifest path naming a directory reads that directory's .manifest (OPAL's newer form)",
    files: { "policies/.manifest": "z.rego", "policies/z.rego": "", "a.rego": "" },
    manifestPath: "policies",
    expected: ["policies/z.rego", "a.rego"],
  },
  {
    name: "a manifest path of '.' reads the root .manifest",
    files: { ".manifest": "z.rego", "a.rego": "", "z.rego": "" },
    manifestPath: ".",
    expected: ["z.rego", "a.rego"],
  },
];

test("manifestOrder", async (t) => {
  for (const { name, files, candidates, manifestPath, expected, todo } of cases) {
    await t.test(name, { todo }, () => {
      const tree = treeOf(files);
      const wanted = candidates ?? regoFiles(tree);
      const order = manifestPath === undefined ? manifestOrder(tree, wanted) : manifestOrder(tree, wanted, manifestPath);
      assert.deepEqual(order, expected);
    });
  }
});

test("manifestOrder returns every candidate exactly once", () => {
  const tree = treeOf({ ".manifest": "b\nx.rego\nb/y.rego", "b/.manifest": "y.rego\n../x.rego", "x.rego": "", "b/y.rego": "", "c.rego": "" });
  const candidates = ["c.rego", "b/y.rego", "x.rego"];
  const order = manifestOrder(tree, candidates);
  assert.deepEqual(order, ["b/y.rego", "x.rego", "c.rego"]);
  assert.deepEqual([...order].sort(), [...candidates].sort());
});

test("manifestOrder does not change its inputs", () => {
  const tree = treeOf({ ".manifest": "z.rego", "a.rego": "", "z.rego": "" });
  const candidates = ["z.rego", "a.rego"];
  manifestOrder(tree, candidates);
  assert.deepEqual(candidates, ["z.rego", "a.rego"]);
  assert.deepEqual([...tree.keys()], [".manifest", "a.rego", "z.rego"]);
});
