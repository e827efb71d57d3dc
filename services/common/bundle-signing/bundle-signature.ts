/**
 * OPA's bundle signatures: `.signatures.json` is `{"signatures":["<compact JWS>"]}`, the
 * JWS payload `{"files":[{name, hash, algorithm}], "keyid", "scope"?}`. Verification is
 * OPA's: exactly one token, a good signature by the configured key, the same scope, and
 * every file of the bundle listed with a matching digest and no listed file missing.
 * Names are compared without a leading "/" (OPA writes tar entries with one and lists
 * them without).
 */
import { DEFAULT_HASH_ALGORITHM, hashBundleFile, isHashAlgorithm } from "./opa-file-hash.js";
import { type JwsKey, signCompact, verifyCompact } from "./jws.js";

export const SIGNATURES_FILE = ".signatures.json";
/** OPA's default key id (`--signing-key-id`, `--verification-key-id`). */
export const DEFAULT_KEY_ID = "default";

export interface BundleSigner {
  key: JwsKey;
  keyId: string;
  /** Written into the payload; a verifier must expect the same. */
  scope?: string;
}

export interface BundleVerifier {
  key: JwsKey;
  keyId: string;
  scope?: string;
}

/** A bundle whose signature is missing, malformed, by another key, or does not cover its files. */
export class BundleSignatureError extends Error {
  override readonly name = "BundleSignatureError";
}

export interface SignedFile {
  name: string;
  hash: string;
  algorithm: string;
}

/** "/a/b.rego" and "./a/b.rego" are "a/b.rego". */
export function bundleFileName(path: string): string {
  return path.replace(/^(\.?\/)+/, "");
}

/** OPA skips any file whose path ends in .signatures.json when it checks the files (bundle.go). */
export function isSignaturesFile(name: string): boolean {
  return name.endsWith(SIGNATURES_FILE);
}

/** The `.signatures.json` text for these files, as `opa build --signing-key` writes it. */
export function signBundle(files: ReadonlyMap<string, Uint8Array>, signer: BundleSigner): string {
  const listed: SignedFile[] = [];
  for (const [path, content] of files) {
    const name = bundleFileName(path);
    if (isSignaturesFile(name)) continue;
    listed.push({ name, hash: hashBundleFile(name, content), algorithm: DEFAULT_HASH_ALGORITHM });
  }
  listed.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const payload = JSON.stringify({ files: listed, keyid: signer.keyId, ...(signer.scope === undefined || signer.scope === "" ? {} : { scope: signer.scope }) });
  const token = signCompact({ kid: signer.keyId, typ: "JWT" }, payload, signer.key);
  return JSON.stringify({ signatures: [token], plugin: "_default" });
}

interface Payload {
  files: SignedFile[];
  keyid?: string;
  scope?: string;
}

function parsePayload(text: string): Payload {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new BundleSignatureError("the signature's payload is not JSON");
  }
  const payload = value as Partial<Payload> | null;
  if (payload === null || typeof payload !== "object" || !Array.isArray(payload.files)) throw new BundleSignatureError("the signature's payload has no files list");
  for (const file of payload.files as unknown[]) {
    const entry = file as Partial<SignedFile> | null;
    if (entry === null || typeof entry !== "object" || typeof entry.name !== "string" || typeof entry.hash !== "string" || typeof entry.algorithm !== "string") {
      throw new BundleSignatureError("the signature's files list has an entry without a name, hash and algorithm");
    }
  }
  return payload as Payload;
}

/** The token of a `.signatures.json`; OPA accepts exactly one. */
function singleToken(signaturesJson: string): string {
  let value: unknown;
  try {
    value = JSON.parse(signaturesJson);
  } catch {
    throw new BundleSignatureError(`${SIGNATURES_FILE} is not JSON`);
  }
  const signatures = (value as { signatures?: unknown } | null)?.signatures;
  if (!Array.isArray(signatures) || signatures.length === 0) throw new BundleSignatureError(`${SIGNATURES_FILE}: missing JWT (expected exactly one)`);
  if (signatures.length > 1) throw new BundleSignatureError(`${SIGNATURES_FILE}: multiple JWTs not supported (expected exactly one)`);
  const plugin = (value as { plugin?: unknown }).plugin;
  if (plugin !== undefined && plugin !== "" && plugin !== "_default") throw new BundleSignatureError(`${SIGNATURES_FILE} names verification plugin ${JSON.stringify(plugin)}; only OPA's default is supported`);
  const [token] = signatures as unknown[];
  if (typeof token !== "string") throw new BundleSignatureError(`${SIGNATURES_FILE}: the JWT is not a string`);
  return token;
}

/**
 * Checks `signaturesJson` against the bundle's files (its `.signatures.json` among them or
 * not); throws BundleSignatureError saying what is wrong. Returns the names it covered.
 */
export function verifyBundle(files: ReadonlyMap<string, Uint8Array>, signaturesJson: string, verifier: BundleVerifier): string[] {
  const token = singleToken(signaturesJson);
  let verified;
  try {
    verified = verifyCompact(token, verifier.key);
  } catch (error) {
    throw new BundleSignatureError((error as Error).message);
  }
  const payload = parsePayload(verified.payload);
  // OPA takes the key id from the header's kid, else the payload's (deprecated) keyid; a token naming none is by the configured key.
  const kid = typeof verified.header.kid === "string" && verified.header.kid !== "" ? verified.header.kid : payload.keyid;
  if (kid !== undefined && kid !== "" && kid !== verifier.keyId) throw new BundleSignatureError(`the bundle is signed with key id ${JSON.stringify(kid)}, not the configured ${JSON.stringify(verifier.keyId)}`);
  if ((payload.scope ?? "") !== (verifier.scope ?? "")) throw new BundleSignatureError(`the signature's scope ${JSON.stringify(payload.scope ?? "")} is not the expected ${JSON.stringify(verifier.scope ?? "")}`);

  const listed = new Map<string, SignedFile>();
  for (const file of payload.files) listed.set(bundleFileName(file.name), file);
  const covered: string[] = [];
  for (const [path, content] of files) {
    const name = bundleFileName(path);
    if (isSignaturesFile(name)) continue;
    const file = listed.get(name);
    if (file === undefined) throw new BundleSignatureError(`file ${name} is not included in the bundle signature`);
    if (!isHashAlgorithm(file.algorithm)) throw new BundleSignatureError(`file ${name}: unsupported hashing algorithm ${JSON.stringify(file.algorithm)}`);
    let actual: string;
    try {
      actual = hashBundleFile(name, content, file.algorithm);
    } catch (error) {
      throw new BundleSignatureError((error as Error).message);
    }
    if (actual !== file.hash.toLowerCase()) throw new BundleSignatureError(`${name}: digest mismatch (the signature lists ${file.hash}, the file hashes to ${actual})`);
    listed.delete(name);
    covered.push(name);
  }
  if (listed.size > 0) throw new BundleSignatureError(`file(s) ${[...listed.keys()].slice(0, 5).join(", ")}${listed.size > 5 ? ` and ${listed.size - 5} more` : ""} listed in the bundle signature but not in the bundle`);
  return covered;
}
