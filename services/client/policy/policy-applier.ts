/**
 * Applies a policy bundle to the store without ever leaving it half-applied: modules go
 * in manifest order, a module refused only because what it imports is not loaded yet is
 * retried after the others, and when a module stays refused every module this apply
 * touched is put back as it was. OPA keeps answering with the last good policy.
 */
import type { PolicyBundle } from "../../../gen/opal/mesh/v1/policy_pb.js";
import type { GlobSet } from "../../common/globs.js";
import { regoPackage } from "../../common/rego.js";
import { type PolicyStore, PolicyStoreError } from "../policy-store.js";

export class PolicyApplyError extends Error {
  override readonly name = "PolicyApplyError";
}

export interface ApplyOutcome {
  upserted: number;
  deleted: number;
  /** Top-level keys written from the repo's root data.json (to remove them when it goes). */
  rootDataKeys: string[];
}

/** Module ids opal-mesh never removes: OPA's own `system.*` packages and ignored paths. */
function isProtected(id: string, raw: string, ignore: GlobSet): boolean {
  const pkg = regoPackage(raw);
  return pkg === "system" || pkg.startsWith("system.") || ignore.matches(id);
}

export async function applyPolicyBundle(store: PolicyStore, bundle: PolicyBundle, ignore: GlobSet, signal: AbortSignal, previousRootDataKeys: readonly string[] = []): Promise<ApplyOutcome> {
  const full = bundle.oldHash === "";
  const existing = new Map((await store.listPolicies(signal)).map((policy) => [policy.id, policy.raw]));
  const bundled = new Set(bundle.policyModules.map((module) => module.path));
  const manifest = new Set(bundle.manifest);

  const toDelete = new Set(bundle.deletedFiles?.policyModules ?? []);
  if (full) {
    // A full bundle is the whole truth: modules it does not hold go, except protected ones.
    for (const [id, raw] of existing) if (!manifest.has(id) && !bundled.has(id) && !isProtected(id, raw, ignore)) toDelete.add(id);
  }
  for (const id of toDelete) if (!existing.has(id) || isProtected(id, existing.get(id) ?? "", ignore)) toDelete.delete(id);
  const upserts = bundle.policyModules.filter((module) => existing.get(module.path) !== module.rego && !ignore.matches(module.path));

  // What to restore if this apply fails: the previous source, or undefined for "did not exist".
  const touched = new Map<string, string | undefined>();
  const errors = new Map<string, string>();
  const attempt = async (id: string, operation: () => Promise<void>): Promise<boolean> => {
    try {
      if (!touched.has(id)) touched.set(id, existing.get(id));
      await operation();
      errors.delete(id);
      return true;
    } catch (error) {
      if (!(error instanceof PolicyStoreError) || !error.isRejection) throw error;
      errors.set(id, error.message);
      return false;
    }
  };

  try {
    // Deletions first (a renamed module must leave before its successor arrives), then
    // upserts; anything refused is retried while the passes make progress.
    let pendingDeletes = [...toDelete];
    let pendingUpserts = upserts;
    for (let progress = true; progress && pendingDeletes.length + pendingUpserts.length > 0; ) {
      progress = false;
      const nextDeletes: string[] = [];
      for (const id of pendingDeletes) {
        if (await attempt(id, () => store.deletePolicy(id, signal))) progress = true;
        else nextDeletes.push(id);
      }
      const nextUpserts: typeof upserts = [];
      for (const module of pendingUpserts) {
        if (await attempt(module.path, () => store.putPolicy(module.path, module.rego, signal))) progress = true;
        else nextUpserts.push(module);
      }
      pendingDeletes = nextDeletes;
      pendingUpserts = nextUpserts;
    }
    if (pendingDeletes.length + pendingUpserts.length > 0) {
      throw new PolicyApplyError(`OPA refused policy ${bundle.hash}: ${[...errors.values()].join("; ")}`);
    }
  } catch (error) {
    const unrestored = await restore(store, touched, signal);
    // Said in the failure (health, logs, the ACK): OPA then holds neither version whole.
    if (unrestored.length > 0) throw new PolicyApplyError(`${(error as Error).message}; and OPA refused to put back ${unrestored.length} module(s) as they were (${unrestored.slice(0, 5).join(", ")})`, { cause: error });
    throw error;
  }

  let rootDataKeys = [...previousRootDataKeys];
  for (const path of bundle.deletedFiles?.dataModules ?? []) {
    if (path === "") {
      rootDataKeys = await writeRootData(store, undefined, rootDataKeys, signal);
    } else {
      await store.writeData({ method: "DELETE", path: `/${path}` }, signal);
    }
  }
  for (const module of bundle.dataModules) {
    if (module.path === "") rootDataKeys = await writeRootData(store, module.dataJson, rootDataKeys, signal);
    else await store.writeData({ method: "PUT", path: `/${module.path}`, body: module.dataJson }, signal);
  }
  return { upserted: upserts.length, deleted: toDelete.size, rootDataKeys };
}

/**
 * A data.json at the repo root would replace OPA's whole data tree (data sources'
 * documents included) if written at "/": it is written key by key instead, and when it
 * changes or goes, only the keys it wrote before are removed.
 */
async function writeRootData(store: PolicyStore, json: Uint8Array | undefined, previousKeys: readonly string[], signal: AbortSignal): Promise<string[]> {
  const document = json === undefined ? {} : (JSON.parse(Buffer.from(json).toString("utf8")) as unknown);
  if (typeof document !== "object" || document === null || Array.isArray(document)) {
    throw new PolicyApplyError("the repo's root data.json must hold a JSON object");
  }
  const keys = Object.keys(document);
  for (const key of previousKeys) {
    if (!keys.includes(key)) await store.writeData({ method: "DELETE", path: `/${key}` }, signal);
  }
  for (const [key, value] of Object.entries(document)) {
    await store.writeData({ method: "PUT", path: `/${key}`, body: Buffer.from(JSON.stringify(value)) }, signal);
  }
  return keys;
}

/** Puts back every touched module (several passes, since modules may depend on each other); returns the ids it could not. */
async function restore(store: PolicyStore, touched: Map<string, string | undefined>, signal: AbortSignal): Promise<string[]> {
  let pending = [...touched.entries()].reverse();
  for (let pass = 0; pass < 3 && pending.length > 0; pass++) {
    const failed: typeof pending = [];
    for (const [id, previous] of pending) {
      try {
        if (previous === undefined) await store.deletePolicy(id, signal);
        else await store.putPolicy(id, previous, signal);
      } catch {
        // Tried again in the next pass (it may depend on a module put back later); reported if it never goes in.
        failed.push([id, previous]);
      }
    }
    pending = failed;
  }
  return pending.map(([id]) => id);
}
