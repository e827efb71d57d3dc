/** Input limits: no request, message or client may take the server down. */
import { UrlAllowlist } from "../url-allowlist.js";
import type { EnvReader } from "./env-reader.js";

export interface Limits {
  /** Largest request body (REST and Connect) accepted. */
  maxBodyBytes: number;
  /** Deepest JSON nesting accepted in a request. */
  maxJsonDepth: number;
  maxEntriesPerUpdate: number;
  /** Events waiting for a client that does not read: past this, it is dropped (and resumes later). */
  streamMaxBufferedEvents: number;
  /** The same bound in bytes (encoded frames queued for the client, ours and grpc-js's): large updates reach it first. */
  streamMaxBufferedBytes: number;
  /** Largest message a client may send on its stream. */
  streamMaxMessageBytes: number;
}

export function readLimits(env: EnvReader): Limits {
  return {
    maxBodyBytes: env.int("OPAL_MESH_MAX_BODY_BYTES", 16 * 1024 * 1024, { min: 1024 }),
    maxJsonDepth: env.int("OPAL_MESH_MAX_JSON_DEPTH", 64, { min: 4, max: 10_000 }),
    maxEntriesPerUpdate: env.int("OPAL_MESH_MAX_ENTRIES_PER_UPDATE", 1_000, { min: 1 }),
    streamMaxBufferedEvents: env.int("OPAL_MESH_STREAM_MAX_BUFFERED_EVENTS", 10_000, { min: 10 }),
    streamMaxBufferedBytes: env.int("OPAL_MESH_STREAM_MAX_BUFFERED_BYTES", 64 * 1024 * 1024, { min: 64 * 1024 }),
    streamMaxMessageBytes: env.int("OPAL_MESH_STREAM_MAX_MESSAGE_BYTES", 1024 * 1024, { min: 1024 }),
  };
}

/** OPAL_FETCH_URL_ALLOWLIST, on servers (checked at publish) and clients (checked before fetching). */
export function readFetchAllowlist(env: EnvReader): string[] {
  const rules = env.list("OPAL_FETCH_URL_ALLOWLIST", []);
  for (const rule of rules) {
    const problem = UrlAllowlist.problem(rule);
    if (problem !== undefined) env.problem("OPAL_FETCH_URL_ALLOWLIST", problem);
  }
  return rules;
}
