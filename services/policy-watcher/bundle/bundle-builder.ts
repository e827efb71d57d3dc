/**
 * Builds OPAL's PolicyBundle from the files at a version: a full bundle, or a delta from
 * a base version (changed modules and deleted files), filtered by directories, file
 * extensions and ignore globs, ordered by `.manifest`.
 */
import { posix } from "node:path";
import { create } from "@bufbuild/protobuf";
import { type PolicyBundle, PolicyBundleSchema } from "../../../gen/opal/mesh/v1/policy_pb.js";
import type { PolicyTree, TreeChanges } from "../types.js";
import { GlobSet } from "../../common/globs.js";
import { regoPackage } from "../../common/rego.js";
import { manifestOrder } from "./manifest.js";

export interface BundleFilters {
  /** OPAL_FILTER_FILE_EXTENSIONS: files with other extensions are not in bundles. */
  extensions: readonly string[];
  /** POLICY_REPO_POLICY_EXTENSIONS: which files are Rego modules. */
  policyExtensions: readonly string[];
  /** OPAL_BUNDLE_IGNORE globs. */
  ignore: readonly string[];
  /** OPAL_POLICY_REPO_MANIFEST_PATH. */
  manifestPath: string;
}

export const DEFAULT_FILTERS: BundleFilters = { extensions: [".rego", ".json"], policyExtensions: [".rego"], ignore: [], manifestPath: ".manifest" };

const decoder = new TextDecoder("utf-8", { fatal: false });

/** "." (or "") means the whole repo. */
export function inDirectories(path: string, dirs: readonly string[]): boolean {
  if (dirs.length === 0) return true;
  return dirs.some((dir) => {
    const clean = dir === "." ? "" : dir.replace(/^\.\//, "").replace(/\/+$/, "");
    return clean === "" || path === clean || path.startsWith(`${clean}/`);
  });
}

/** Every parent directory of the given files, "." included: the topics a change is published to. */
export function changedDirectories(paths: readonly string[]): string[] {
  const dirs = new Set<string>(["."]);
  for (const path of paths) {
    for (let dir = posix.dirname(path); dir !== "."; dir = posix.dirname(dir)) dirs.add(dir);
  }
  return [...dirs].sort();
}

export class BundleBuilder {
  private readonly ignore: GlobSet;

  constructor(private readonly filters: BundleFilters) {
    this.ignore = new GlobSet(filters.ignore);
  }

  isPolicyModule(path: string): boolean {
    return this.filters.policyExtensions.some((extension) => path.endsWith(extension));
  }

  isDataModule(path: string): boolean {
    return posix.basename(path) === "data.json";
  }

  /** Files that belong in bundles at all: right extension, a module kind, not ignored. */
  isBundled(path: string): boolean {
    if (!this.filters.extensions.some((extension) => path.endsWith(extension))) return false;
    if (!this.isPolicyModule(path) && !this.isDataModule(path)) return false;
    return !this.ignore.matches(path);
  }

  full(tree: PolicyTree, hash: string, dirs: readonly string[]): PolicyBundle {
    const files = [...tree.keys()].filter((path) => this.isBundled(path) && inDirectories(path, dirs));
    return this.assemble(tree, hash, "", manifestOrder(tree, files, this.filters.manifestPath), { changed: files, deleted: [] });
  }

  delta(tree: PolicyTree, hash: string, baseHash: string, changes: TreeChanges, dirs: readonly string[]): PolicyBundle {
    const all = [...tree.keys()].filter((path) => this.isBundled(path) && inDirectories(path, dirs));
    const relevant = (path: string): boolean => this.isBundled(path) && inDirectories(path, dirs);
    return this.assemble(tree, hash, baseHash, manifestOrder(tree, all, this.filters.manifestPath), {
      changed: changes.changed.filter(relevant),
      deleted: changes.deleted.filter(relevant),
    });
  }

  private assemble(tree: PolicyTree, hash: string, oldHash: string, manifest: string[], changes: TreeChanges): PolicyBundle {
    const changed = new Set(changes.changed);
    const policyModules: Array<{ path: string; packageName: string; rego: string }> = [];
    const dataModules: Array<{ path: string; dataJson: Uint8Array }> = [];
    for (const path of manifest) {
      if (!changed.has(path)) continue;
      const content = tree.get(path);
      if (content === undefined) continue;
      if (this.isPolicyModule(path)) {
        const rego = decoder.decode(content);
        policyModules.push({ path, packageName: regoPackage(rego), rego });
      } else if (this.isDataModule(path)) {
        dataModules.push({ path: dataModulePath(path), dataJson: content });
      }
    }
    // Deleted modules go in reverse path order, so nested ones leave before their parents
    // (data modules by their directory, which is where they live in the data tree).
    const deleted = [...changes.deleted].sort().reverse();
    const deletedData = deleted.filter((path) => this.isDataModule(path)).map(dataModulePath).sort().reverse();
    return create(PolicyBundleSchema, {
      hash,
      oldHash,
      manifest,
      policyModules,
      dataModules,
      deletedFiles:
        deleted.length === 0
          ? undefined
          : { policyModules: deleted.filter((path) => this.isPolicyModule(path)), dataModules: deletedData },
    });
  }
}

/** A data.json's directory is its place in the data tree ("" for the repo root). */
export function dataModulePath(path: string): string {
  const dir = posix.dirname(path);
  return dir === "." ? "" : dir;
}
