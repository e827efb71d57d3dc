/**
 * A PolicyBundle (full, as opal-mesh serves it) as the files of an OPA bundle: each Rego
 * module at its path, each data module as `<path>/data.json`. The server signs these and
 * the client verifies them, so `signatures_json` is a real OPA `.signatures.json`: writing
 * the files out beside it gives a bundle `opa build --verification-key` accepts.
 */
import type { PolicyBundle } from "../../../gen/opal/mesh/v1/policy_pb.js";
import { type BundleSigner, BundleSignatureError, type BundleVerifier, signBundle, verifyBundle } from "./bundle-signature.js";

const encoder = new TextEncoder();

export function dataFileName(modulePath: string): string {
  return modulePath === "" ? "data.json" : `${modulePath}/data.json`;
}

export function policyBundleFiles(bundle: PolicyBundle): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  for (const module of bundle.policyModules) files.set(module.path, encoder.encode(module.rego));
  for (const module of bundle.dataModules) files.set(dataFileName(module.path), module.dataJson);
  return files;
}

/** The bundle's `.signatures.json`; only full bundles are signed (a delta's files are not the version's). */
export function signPolicyBundle(bundle: PolicyBundle, signer: BundleSigner): string {
  if (bundle.oldHash !== "") throw new BundleSignatureError(`policy ${bundle.hash} is a delta bundle; only full bundles are signed`);
  return signBundle(policyBundleFiles(bundle), signer);
}

/**
 * Throws BundleSignatureError unless the bundle is full, signed by the verifier's key and
 * every module it holds (and every path its manifest names) is covered by the signature.
 */
export function verifyPolicyBundle(bundle: PolicyBundle, verifier: BundleVerifier): void {
  if (bundle.oldHash !== "") throw new BundleSignatureError(`policy ${bundle.hash} came as a delta from ${bundle.oldHash}; deltas are not signed, a full bundle is needed`);
  if (bundle.signaturesJson === "") throw new BundleSignatureError(`policy ${bundle.hash} is not signed (the server has no OPAL_MESH_POLICY_SIGNING_KEY?)`);
  const covered = new Set(verifyBundle(policyBundleFiles(bundle), bundle.signaturesJson, verifier));
  // The manifest decides which modules a full bundle keeps: it may name nothing unsigned.
  const unsigned = bundle.manifest.filter((path) => !covered.has(path));
  if (unsigned.length > 0) throw new BundleSignatureError(`policy ${bundle.hash}'s manifest names ${unsigned.slice(0, 5).join(", ")}, which the signature does not cover`);
}
