/** The path index: what overlaps a path, and whether its newest item hangs on it. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { PathTree } from "./path-tree.js";

interface Item {
  seq: number;
  name: string;
}
const path = (text: string) => text.split("/").filter((segment) => segment !== "");

function tree(...items: Array<[string, number]>): { tree: PathTree<Item>; items: Map<string, Item> } {
  const built = new PathTree<Item>();
  const byName = new Map<string, Item>();
  for (const [at, seq] of items) {
    const item = { seq, name: `${at}#${seq}` };
    built.add(path(at), item);
    byName.set(item.name, item);
  }
  return { tree: built, items: byName };
}

test("newest: the item on the path (at it or an ancestor) and the newest seq overlapping it", () => {
  const { tree: index } = tree(["/a", 1], ["/a/b", 2], ["/a/c/d", 3], ["/x", 4]);
  assert.deepEqual(index.newest(path("/a/b")), { onPath: { seq: 2, name: "/a/b#2" }, seq: 2 });
  assert.deepEqual(index.newest(path("/a/b/z")), { onPath: { seq: 2, name: "/a/b#2" }, seq: 2 }, "below an item, nothing deeper");
  assert.equal(index.newest(path("/a")).seq, 3, "the newest below /a is newer than /a's own");
  assert.equal(index.newest(path("/a")).onPath?.seq, 1);
  assert.deepEqual(index.newest(path("/q")), { onPath: undefined, seq: -1 });
});

test("ancestors and subtreeAbove list what a write at a path must look at, newest first, above a floor", () => {
  const { tree: index } = tree(["", 0], ["/a", 1], ["/a/b", 2], ["/a/b/c", 3], ["/a/b/d", 5], ["/a/b", 6], ["/a/x", 7]);
  assert.deepEqual(
    index.ancestors(path("/a/b")).map((own) => own.map((item) => item.seq)),
    [[0], [1]],
  );
  const below = [...index.subtreeAbove(path("/a/b"), 2)].map((item) => item.seq).sort();
  assert.deepEqual(below, [3, 5, 6]);
  assert.deepEqual([...index.subtreeAbove(path("/a/b"), 6)], [], "nothing above the floor");
});

test("remove keeps the newest seq of every subtree right, and empty branches go", () => {
  const { tree: index, items } = tree(["/a/b/c", 1], ["/a/b", 2], ["/a/d", 3]);
  index.remove(path("/a/d"), items.get("/a/d#3") as Item);
  assert.equal(index.newest(path("/a")).seq, 2);
  index.remove(path("/a/b"), items.get("/a/b#2") as Item);
  assert.equal(index.newest(path("/a")).seq, 1);
  index.remove(path("/a/b/c"), items.get("/a/b/c#1") as Item);
  assert.deepEqual(index.newest(path("/a/b/c")), { onPath: undefined, seq: -1 });
  assert.deepEqual([...index.subtreeAbove([], -1)], []);
});
