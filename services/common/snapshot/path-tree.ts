/**
 * The snapshot's items indexed by data path: a trie of path segments where each item
 * hangs at one node (its anchor), so what overlaps a path — the items at its ancestors
 * and in its subtree — is found in O(depth + matches), never by scanning the snapshot.
 *
 * Each node keeps the newest sequence number in its subtree, so "is anything newer than
 * this item overlapping that path?" (the question every fold asks) costs O(depth).
 */

/** What the tree holds: anything with the order it was appended in. */
export interface Sequenced {
  readonly seq: number;
}

const NONE: never[] = [];

class PathNode<T extends Sequenced> {
  children: Map<string, PathNode<T>> | undefined;
  /** Items anchored exactly here, oldest first (made to measure: most nodes hold one). */
  own: T[] = NONE;
  /** The newest seq in this subtree (own items and below); -1 when empty. */
  subtreeMax = -1;

  constructor(
    readonly parent: PathNode<T> | undefined,
    readonly segment: string,
  ) {}

  ownMax(): number {
    return this.own.at(-1)?.seq ?? -1;
  }
}

export interface Newest<T> {
  /** The newest item anchored at the path or one of its ancestors. */
  onPath: T | undefined;
  /** The newest seq of anything overlapping the path (on it, or below it); -1 when none. */
  seq: number;
}

export class PathTree<T extends Sequenced> {
  private readonly root = new PathNode<T>(undefined, "");

  /**
   * Hangs `item` at `path` (usually the newest; an older one takes its place in order).
   * The path's segments become the tree's own strings, so each is held once.
   */
  add(path: string[], item: T): void {
    let node = this.root;
    node.subtreeMax = Math.max(node.subtreeMax, item.seq);
    for (let depth = 0; depth < path.length; depth++) {
      const segment = path[depth] as string;
      node.children ??= new Map();
      let child = node.children.get(segment);
      if (child === undefined) {
        child = new PathNode(node, segment);
        node.children.set(segment, child);
      } else {
        path[depth] = child.segment;
      }
      node = child;
      node.subtreeMax = Math.max(node.subtreeMax, item.seq);
    }
    if (node.own.length === 0) {
      node.own = [item];
      return;
    }
    let index = node.own.length;
    while (index > 0 && (node.own[index - 1] as T).seq > item.seq) index--;
    node.own.splice(index, 0, item);
  }

  remove(path: readonly string[], item: T): void {
    const node = this.find(path);
    if (node === undefined) return;
    const index = node.own.lastIndexOf(item);
    if (index < 0) return;
    if (node.own.length === 1) node.own = NONE;
    else node.own.splice(index, 1);
    // Only when the item was its subtree's newest does anything above change; the fold
    // hangs the newer entry first, so this stops at once in the usual case.
    let current: PathNode<T> | undefined = node;
    while (current !== undefined && current.subtreeMax === item.seq) {
      let newest = current.ownMax();
      for (const child of current.children?.values() ?? []) newest = Math.max(newest, child.subtreeMax);
      current.subtreeMax = newest;
      current = current.parent;
    }
    this.prune(node);
  }

  /** What overlaps `path`, and whether the newest of it hangs on the path (at it or an ancestor). */
  newest(path: readonly string[]): Newest<T> {
    let onPath: T | undefined = this.root.own[this.root.own.length - 1];
    let node: PathNode<T> | undefined = this.root;
    for (const segment of path) {
      node = node.children?.get(segment);
      if (node === undefined) return { onPath, seq: onPath?.seq ?? -1 };
      const last = node.own[node.own.length - 1];
      if (last !== undefined && (onPath === undefined || last.seq > onPath.seq)) onPath = last;
    }
    return { onPath, seq: Math.max(onPath?.seq ?? -1, node.subtreeMax) };
  }

  /** The own items (oldest first) of each strict ancestor of `path` that exists, root first. */
  ancestors(path: readonly string[]): Array<readonly T[]> {
    const found: Array<readonly T[]> = [];
    let node: PathNode<T> | undefined = this.root;
    for (const segment of path) {
      if (node.own.length > 0) found.push(node.own);
      node = node.children?.get(segment);
      if (node === undefined) break;
    }
    return found;
  }

  /**
   * Items anchored at `path` or below with a seq above `floor`, newest first within each
   * node; subtrees holding nothing above the floor are skipped. The caller may stop early.
   */
  *subtreeAbove(path: readonly string[], floor: number): Generator<T> {
    const start = this.find(path);
    if (start === undefined || start.subtreeMax <= floor) return;
    // Children are walked lazily: a caller that stops early pays only for what it saw.
    const stack: Array<Iterator<PathNode<T>>> = [[start].values()];
    while (stack.length > 0) {
      const next = (stack.at(-1) as Iterator<PathNode<T>>).next();
      if (next.done === true) {
        stack.pop();
        continue;
      }
      const node = next.value;
      if (node.subtreeMax <= floor) continue;
      for (let index = node.own.length - 1; index >= 0 && (node.own[index] as T).seq > floor; index--) yield node.own[index] as T;
      if (node.children !== undefined) stack.push(node.children.values());
    }
  }

  private find(path: readonly string[]): PathNode<T> | undefined {
    let node: PathNode<T> | undefined = this.root;
    for (const segment of path) {
      node = node.children?.get(segment);
      if (node === undefined) return undefined;
    }
    return node;
  }

  /** Empty nodes go, so a subtree walk visits only paths something still hangs under. */
  private prune(node: PathNode<T>): void {
    let current: PathNode<T> | undefined = node;
    while (current?.parent !== undefined && current.own.length === 0 && (current.children?.size ?? 0) === 0) {
      current.parent.children?.delete(current.segment);
      current = current.parent;
    }
  }
}
