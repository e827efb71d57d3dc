/**
 * Configuration made safe to print: secrets replaced by "[redacted]" wherever they sit.
 * A value is secret by its name (token, secret, password, private key, …), by being a
 * private key object, by being an HTTP header other than a few harmless ones (fetcher
 * configs carry Authorization, X-API-Key, cookies…), or by being the credentials in a URL.
 * Unset secrets stay null, so "not configured" remains visible.
 */
import { KeyObject } from "node:crypto";
import { redactUrl } from "../../common/config/env-reader.js";

export const REDACTED = "[redacted]";

const SECRET_NAME = /token|secret|passw|passphrase|credential|cookie|authorization|connection_params|private|key$|api_?key/i;
/** Names that look secret but describe one: a header's name, a key's type or file. */
const DESCRIBES_SECRET = /^public|(name|type|format|path|file|kind)$/i;
const HARMLESS_HEADERS = new Set(["accept", "accept-encoding", "accept-language", "cache-control", "content-type", "content-encoding", "user-agent", "if-none-match", "if-modified-since"]);
const SECRET_QUERY = /token|secret|passw|key|auth|signature|sig$/i;

export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name) && !DESCRIBES_SECRET.test(name);
}

/** A URL's user:password and secret-looking query parameters; other strings unchanged. */
export function redactUrlCredentials(value: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return value;
  try {
    const url = new URL(value);
    const secretQuery = [...url.searchParams.keys()].some((key) => SECRET_QUERY.test(key));
    return url.username !== "" || url.password !== "" || secretQuery ? redactUrl(value) : value;
  } catch {
    return value.replace(/\/\/[^@/]*@/, "//***@");
  }
}

function secretValue(value: unknown): unknown {
  if (value === undefined || value === null || value === "") return value ?? null;
  if (typeof value === "boolean") return value;
  return REDACTED;
}

function redactHeaders(headers: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, HARMLESS_HEADERS.has(name.toLowerCase()) ? value : secretValue(value)]));
}

/** A JSON-ready copy of `value` with every secret replaced (bigint → string, bytes → their size). */
export function redactSecrets(value: unknown, ancestors: Set<object> = new Set()): unknown {
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return redactUrlCredentials(value);
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "number" || typeof value === "boolean") return value;
  if (typeof value === "function" || typeof value === "symbol") return null;
  if (value instanceof KeyObject) return value.type === "public" ? `<${value.asymmetricKeyType ?? "unknown"} public key>` : REDACTED;
  if (value instanceof Uint8Array) return `<${value.byteLength} bytes>`;
  if (typeof value !== "object") return null;
  if (ancestors.has(value)) return "<cycle>";
  ancestors.add(value);
  try {
    if (value instanceof Map) return redactSecrets(Object.fromEntries(value), ancestors);
    if (value instanceof Set) return redactSecrets([...value], ancestors);
    if (Array.isArray(value)) return value.map((item) => redactSecrets(item, ancestors));
    const result: Record<string, unknown> = {};
    for (const [name, item] of Object.entries(value as Record<string, unknown>)) {
      if (isSecretName(name)) result[name] = secretValue(item);
      else if (/^headers$/i.test(name) && typeof item === "object" && item !== null && !Array.isArray(item)) result[name] = redactHeaders(item as Record<string, unknown>);
      else result[name] = redactSecrets(item, ancestors);
    }
    return result;
  } finally {
    ancestors.delete(value);
  }
}
