/**
 * File digests exactly as OPA computes them for `.signatures.json` (bundle/hash.go):
 * structured files (data.json, .manifest) are parsed and hashed in a canonical form, so
 * whitespace and key order do not change the digest; every other file is hashed as bytes.
 *
 * The canonical form is Go's: object keys sorted by their UTF-8 bytes, `{k:v,...}` and
 * `[v,...]` without spaces, strings as Go's encoding/json writes them (no HTML escaping,
 * U+2028/U+2029 escaped, lone surrogates become U+FFFD), numbers as their source text
 * (OPA decodes with UseNumber, so `1.50` and `1e3` are hashed as written).
 */
import { createHash } from "node:crypto";
import { posix } from "node:path";

/** OPA's hashing algorithms (HashingAlgorithm) and node:crypto's names for them. */
const ALGORITHMS: Readonly<Record<string, string>> = {
  MD5: "md5",
  "SHA-1": "sha1",
  "SHA-224": "sha224",
  "SHA-256": "sha256",
  "SHA-384": "sha384",
  "SHA-512": "sha512",
  "SHA-512-224": "sha512-224",
  "SHA-512-256": "sha512-256",
};

/** What `opa build --signing-key` and `opa sign` write. */
export const DEFAULT_HASH_ALGORITHM = "SHA-256";

export class BundleHashError extends Error {
  override readonly name = "BundleHashError";
}

/** OPA's IsStructuredDoc: these names are parsed before hashing. */
export function isStructuredFile(name: string): boolean {
  const base = posix.basename(name);
  return base === "data.json" || base === "data.yaml" || base === ".manifest" || base === ".signatures.json";
}

export function isHashAlgorithm(algorithm: string): boolean {
  return Object.hasOwn(ALGORITHMS, algorithm);
}

/** The hex digest OPA lists for a file of the bundle. */
export function hashBundleFile(name: string, content: Uint8Array, algorithm: string = DEFAULT_HASH_ALGORITHM): string {
  const nodeName = ALGORITHMS[algorithm];
  if (nodeName === undefined) throw new BundleHashError(`${name}: unsupported hashing algorithm ${JSON.stringify(algorithm)}`);
  const hash = createHash(nodeName);
  if (!isStructuredFile(name)) return hash.update(content).digest("hex");
  // YAML would need a parser whose canonical form matches Go's yaml-to-JSON exactly; refused rather than guessed.
  if (posix.basename(name) === "data.yaml") throw new BundleHashError(`${name}: data.yaml files are not supported in signed bundles (use data.json)`);
  let value: unknown;
  try {
    value = parseKeepingNumbers(Buffer.from(content.buffer, content.byteOffset, content.byteLength).toString("utf8"));
  } catch (error) {
    throw new BundleHashError(`${name}: not valid JSON (${(error as Error).message})`, { cause: error });
  }
  const parts: string[] = [];
  canonical(value, parts);
  return hash.update(parts.join(""), "utf8").digest("hex");
}

/** A number as written in the source. */
class JsonNumber {
  constructor(readonly text: string) {}
}

function parseKeepingNumbers(text: string): unknown {
  // The reviver's third argument (JSON.parse source text access, Node 21+) keeps the literal.
  return JSON.parse(text, (_key, value: unknown, context?: { source?: string }) =>
    typeof value === "number" && context?.source !== undefined ? new JsonNumber(context.source) : value,
  ) as unknown;
}

function goString(value: string): string {
  return JSON.stringify(value.toWellFormed()).replaceAll("\u2028", "\\u2028").replaceAll("\u2029", "\\u2029");
}

function byUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

function canonical(value: unknown, out: string[]): void {
  if (value instanceof JsonNumber) {
    out.push(value.text);
  } else if (Array.isArray(value)) {
    out.push("[");
    value.forEach((item, index) => {
      if (index > 0) out.push(",");
      canonical(item, out);
    });
    out.push("]");
  } else if (value !== null && typeof value === "object") {
    const object = value as Record<string, unknown>;
    // Keys are compared after Go's decoding, which turns lone surrogates into U+FFFD.
    const keys = Object.keys(object).sort((a, b) => byUtf8(a.toWellFormed(), b.toWellFormed()));
    out.push("{");
    keys.forEach((key, index) => {
      if (index > 0) out.push(",");
      out.push(goString(key), ":");
      canonical(object[key], out);
    });
    out.push("}");
  } else {
    out.push(typeof value === "string" ? goString(value) : JSON.stringify(value));
  }
}
