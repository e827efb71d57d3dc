/**
 * What every listening port enforces before a request reaches a route: how long a
 * connection may take to send its first byte and its headers, how long it may sit idle,
 * how many may be open at once — and which browser origins may call (CORS).
 */
import type { EnvReader } from "./env-reader.js";

export interface ListenerLimits {
  /** A connection that sends nothing for this long after connecting is closed. */
  firstByteTimeoutMs: number;
  /** Request headers (HTTP/1.1), the HTTP/2 preface or a TLS handshake must arrive within this. */
  headersTimeoutMs: number;
  /** A connection with no request or stream in flight is closed after this long. */
  idleTimeoutMs: number;
  /** Open connections per listener; further ones are closed as they arrive. */
  maxConnections: number;
  /**
   * How long a connection answered with `Connection: close` while still uploading is read
   * (and dropped) before it is closed, so the answer is not lost to a reset. Not an
   * environment variable: 2 s unless a test on a crowded machine needs longer.
   */
  lingerMs?: number;
}

export const DEFAULT_LISTENER_LIMITS: ListenerLimits = {
  firstByteTimeoutMs: 5_000,
  headersTimeoutMs: 10_000,
  idleTimeoutMs: 5_000,
  maxConnections: 10_000,
};

export function readListenerLimits(env: EnvReader): ListenerLimits {
  const defaults = DEFAULT_LISTENER_LIMITS;
  return {
    firstByteTimeoutMs: env.int("OPAL_MESH_HTTP_FIRST_BYTE_TIMEOUT_MS", defaults.firstByteTimeoutMs, { min: 50, max: 300_000 }),
    // Node's own request timeout (300 s) must not be shorter than the headers timeout.
    headersTimeoutMs: env.int("OPAL_MESH_HTTP_HEADERS_TIMEOUT_MS", defaults.headersTimeoutMs, { min: 100, max: 300_000 }),
    idleTimeoutMs: env.int("OPAL_MESH_HTTP_IDLE_TIMEOUT_MS", defaults.idleTimeoutMs, { min: 100, max: 3_600_000 }),
    maxConnections: env.int("OPAL_MESH_MAX_CONNECTIONS", defaults.maxConnections, { min: 1, max: 1_000_000 }),
  };
}

/**
 * OPAL_ALLOWED_ORIGINS: the browser origins CORS lets call. OPAL's default is `["*"]`;
 * here it is empty (no CORS headers at all) until configured, so a web page an operator
 * opens cannot read this server's answers.
 */
export function readAllowedOrigins(env: EnvReader): string[] {
  const origins = env.list("OPAL_ALLOWED_ORIGINS", []);
  for (const origin of origins) {
    if (origin === "*") continue;
    let canonical: string | undefined;
    try {
      canonical = new URL(origin).origin;
    } catch {
      canonical = undefined;
    }
    if (canonical !== origin.replace(/\/$/, "") || canonical === "null") {
      env.problem("OPAL_ALLOWED_ORIGINS", `${JSON.stringify(origin)} is not an origin (scheme://host[:port], or "*")`);
    }
  }
  return origins.map((origin) => origin.replace(/\/$/, ""));
}
