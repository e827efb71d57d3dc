/**
 * Signed policy bundles (OPA's .signatures.json): the server's signing key for the
 * bundles it serves, and the verification key servers (for bundle-server sources) and
 * clients (before applying) check signatures with. A key is PEM text or the path of a
 * PEM file (HMAC algorithms: the secret itself, as OPA's --signing-key takes it). Keys
 * are parsed here once; problems name the variable, never the key.
 */
import { readFileSync } from "node:fs";
import { type BundleSigner, type BundleVerifier, DEFAULT_KEY_ID } from "../bundle-signing/bundle-signature.js";
import { DEFAULT_SIGNING_ALGORITHM, type JwsKey, SIGNING_ALGORITHMS, type SigningAlgorithm, signingKey, verificationKey } from "../bundle-signing/jws.js";
import type { EnvReader } from "./env-reader.js";

export interface PolicySigningConfig {
  /** OPAL_MESH_POLICY_SIGNING_KEY (server only): full bundles carry a signature. */
  signer: BundleSigner | undefined;
  /** OPAL_MESH_POLICY_VERIFICATION_KEY: bundles without a good signature are refused. */
  verifier: BundleVerifier | undefined;
}

function keyText(env: EnvReader, name: string, alg: SigningAlgorithm): string | undefined {
  const value = env.optionalString(name);
  if (value === undefined || alg.startsWith("HS") || value.includes("-----BEGIN")) return value;
  try {
    return readFileSync(value.trim(), "utf8");
  } catch (error) {
    // The value is not shown: it may be a mangled key rather than a path.
    env.problem(name, `${alg} needs PEM text or the path of a PEM file; this is neither (${(error as { code?: string }).code ?? "unreadable"})`);
    return undefined;
  }
}

function parseKey(env: EnvReader, name: string, alg: SigningAlgorithm, parse: (alg: SigningAlgorithm, text: string) => JwsKey): JwsKey | undefined {
  const text = keyText(env, name, alg);
  if (text === undefined) return undefined;
  try {
    return parse(alg, text);
  } catch (error) {
    env.problem(name, (error as Error).message);
    return undefined;
  }
}

export function readPolicySigningConfig(env: EnvReader, role: "server" | "client"): PolicySigningConfig {
  let signer: BundleSigner | undefined;
  if (role === "server") {
    const alg = env.oneOf("OPAL_MESH_POLICY_SIGNING_ALG", DEFAULT_SIGNING_ALGORITHM, SIGNING_ALGORITHMS);
    const keyId = env.string("OPAL_MESH_POLICY_SIGNING_KEY_ID", DEFAULT_KEY_ID);
    const key = parseKey(env, "OPAL_MESH_POLICY_SIGNING_KEY", alg, signingKey);
    signer = key === undefined ? undefined : { key, keyId };
  }
  const alg = env.oneOf("OPAL_MESH_POLICY_VERIFICATION_ALG", DEFAULT_SIGNING_ALGORITHM, SIGNING_ALGORITHMS);
  const keyId = env.string("OPAL_MESH_POLICY_VERIFICATION_KEY_ID", DEFAULT_KEY_ID);
  const key = parseKey(env, "OPAL_MESH_POLICY_VERIFICATION_KEY", alg, verificationKey);
  return { signer, verifier: key === undefined ? undefined : { key, keyId } };
}
