/**
 * OPAL's data JSON (DataSourceEntry, DataUpdate, ServerDataSourceConfig) in and out of
 * the mesh's protobuf messages. Every surface that accepts OPAL JSON validates here, so
 * the REST route, the Connect route and the env config agree on what is valid.
 */
import { create } from "@bufbuild/protobuf";
import {
  type CallbackTarget,
  CallbackTargetSchema,
  type DataSourceEntry,
  DataSourceEntrySchema,
  type DataSourcesConfig,
  DataSourcesConfigSchema,
  type DataUpdate,
  DataUpdateSchema,
  SaveMethod,
} from "../../gen/opal/mesh/v1/data_pb.js";
import { internalHostKind } from "./ip-addresses.js";
import { jsonPatchProblem } from "./json-patch.js";
import { ReservedPaths } from "./reserved-paths.js";
import { scopeOfTopic } from "./scopes/scoped-topics.js";
import type { UrlAllowlist } from "./url-allowlist.js";
import { ValidationError } from "./validation-error.js";

export const DEFAULT_DATA_TOPIC = "policy_data";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function jsonBytes(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

export function parseJsonBytes(bytes: Uint8Array): unknown {
  return JSON.parse(decoder.decode(bytes)) as unknown;
}

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** "users" → "/users", "/a/b/" → "/a/b", "" → "/" (the data root). */
export function normalizeDstPath(path: string, field: string): string {
  const trimmed = path.trim();
  if (trimmed === "" || trimmed === "/") return "/";
  const withSlash = trimmed.startsWith("/") ? trimmed : `/${trimmed}`;
  const withoutTrailing = withSlash.replace(/\/+$/, "");
  const segments = withoutTrailing.slice(1).split("/");
  if (segments.some((segment) => segment === "")) {
    throw new ValidationError(field, `has an empty path segment: ${JSON.stringify(path)}`);
  }
  // OPA's router cleans "." and ".." out of URLs, so they would write somewhere else.
  if (segments.some((segment) => segment === "." || segment === "..")) {
    throw new ValidationError(field, `must not contain "." or ".." segments: ${JSON.stringify(path)}`);
  }
  return withoutTrailing;
}

export function saveMethodName(method: SaveMethod): "PUT" | "PATCH" | "DELETE" {
  if (method === SaveMethod.PATCH) return "PATCH";
  if (method === SaveMethod.DELETE) return "DELETE";
  return "PUT";
}

function parseSaveMethod(value: unknown, field: string): SaveMethod {
  if (value === undefined || value === null || value === "") return SaveMethod.PUT;
  if (typeof value === "string") {
    switch (value.toUpperCase()) {
      case "PUT":
        return SaveMethod.PUT;
      case "PATCH":
        return SaveMethod.PATCH;
      case "DELETE":
        return SaveMethod.DELETE;
    }
  }
  throw new ValidationError(field, `must be "PUT", "PATCH" or "DELETE", got ${JSON.stringify(value)}`);
}

function parseTopics(value: unknown, field: string): string[] {
  if (value === undefined || value === null) return [DEFAULT_DATA_TOPIC];
  if (!Array.isArray(value)) throw new ValidationError(field, "must be a list of topic strings");
  if (value.length === 0) throw new ValidationError(field, "must name at least one topic (no client would apply this entry)");
  return value.map((topic, index) => {
    if (typeof topic !== "string" || topic.trim() === "") {
      throw new ValidationError(`${field}[${index}]`, "must be a non-empty string");
    }
    return topic.trim();
  });
}

function optionalString(value: unknown, field: string): string {
  if (value === undefined || value === null) return "";
  if (typeof value !== "string") throw new ValidationError(field, `must be a string, got ${JSON.stringify(value)}`);
  return value;
}

export interface EntryOptions {
  /** Data sources config entries may carry periodic_update_interval. */
  allowPeriodic?: boolean;
}

export function parseDataSourceEntry(json: unknown, field: string, options: EntryOptions = {}): DataSourceEntry {
  if (!isObject(json)) throw new ValidationError(field, "must be an object");
  const url = optionalString(json.url, `${field}.url`).trim();
  const saveMethod = parseSaveMethod(json.save_method, `${field}.save_method`);
  const hasData = json.data !== undefined && json.data !== null;
  if (url === "" && !hasData && saveMethod !== SaveMethod.DELETE) {
    throw new ValidationError(`${field}.url`, "is empty and the entry has no inline data: nothing to fetch");
  }
  if (url !== "" && !hasData) {
    try {
      new URL(url);
    } catch {
      throw new ValidationError(`${field}.url`, `is not a valid URL: ${JSON.stringify(url)}`);
    }
  }
  if (saveMethod === SaveMethod.PATCH && hasData) {
    const problem = jsonPatchProblem(json.data);
    if (problem !== undefined) throw new ValidationError(`${field}.data`, `with save_method PATCH, ${problem}`);
  }
  if (saveMethod === SaveMethod.DELETE && hasData) {
    throw new ValidationError(`${field}.data`, "must be empty with save_method DELETE");
  }
  const config = json.config;
  if (config !== undefined && config !== null && !isObject(config)) {
    throw new ValidationError(`${field}.config`, "must be an object");
  }
  const entry = create(DataSourceEntrySchema, {
    url,
    configJson: isObject(config) && Object.keys(config).length > 0 ? jsonBytes(config) : new Uint8Array(),
    topics: parseTopics(json.topics, `${field}.topics`),
    dstPath: normalizeDstPath(optionalString(json.dst_path, `${field}.dst_path`), `${field}.dst_path`),
    saveMethod,
  });
  if (hasData) entry.dataJson = jsonBytes(json.data);
  const interval = json.periodic_update_interval;
  if (interval !== undefined && interval !== null) {
    if (options.allowPeriodic !== true) {
      throw new ValidationError(`${field}.periodic_update_interval`, "is only allowed in a data sources config");
    }
    if (typeof interval !== "number" || !Number.isFinite(interval) || interval <= 0) {
      throw new ValidationError(`${field}.periodic_update_interval`, `must be a positive number of seconds, got ${JSON.stringify(interval)}`);
    }
    entry.periodicUpdateInterval = interval;
  }
  return entry;
}

function parseEntries(value: unknown, field: string, options: EntryOptions): DataSourceEntry[] {
  if (!Array.isArray(value)) throw new ValidationError(field, "must be a list of data source entries");
  return value.map((entry, index) => parseDataSourceEntry(entry, `${field}[${index}]`, options));
}

/** OPAL's UpdateCallback: {"callbacks": [url | [url, http_fetcher_config]]}. */
export function parseCallbacks(value: unknown): CallbackTarget[] {
  if (value === undefined || value === null) return [];
  if (!isObject(value)) throw new ValidationError("callback", 'must be an object like {"callbacks": [...]}');
  const list = value.callbacks ?? [];
  if (!Array.isArray(list)) throw new ValidationError("callback.callbacks", "must be a list");
  return list.map((item: unknown, index) => {
    const field = `callback.callbacks[${index}]`;
    const [url, config] = (Array.isArray(item) ? item : [item, undefined]) as unknown[];
    if (typeof url !== "string" || url === "") throw new ValidationError(field, "must be a URL or [URL, config]");
    if (config !== undefined && config !== null && !isObject(config)) {
      throw new ValidationError(`${field}[1]`, "must be an HTTP fetcher config object");
    }
    return create(CallbackTargetSchema, { url, configJson: isObject(config) ? jsonBytes(config) : new Uint8Array() });
  });
}

/** What a server checks of each entry it is given, beyond its syntax. */
export interface EntryChecks {
  /** Only sources this allows may be named (OPAL_FETCH_URL_ALLOWLIST); absent or empty: any. */
  allowlist?: UrlAllowlist;
  /** OPAL_MESH_WRITABLE_SYSTEM_PATHS; absent: nothing in data.system is writable. */
  reservedPaths?: ReservedPaths;
}

export interface UpdateLimits extends EntryChecks {
  maxEntries?: number;
}

const HTTP_METHODS = new Set(["GET", "POST", "PUT", "PATCH", "HEAD", "DELETE"]);
const HTTP_FETCHER = "HttpFetchProvider";

/**
 * What is certain about an entry without asking DNS, refused at publish as every client
 * would refuse it: a write into OPA's system namespace; a source whose literal host is a
 * cloud-metadata or link-local address the allow-list does not name (a client's
 * allow-list may name it; then so must the server's); an HTTP method that is none.
 */
export function checkEntry(entry: DataSourceEntry, field: string, checks: EntryChecks = {}): void {
  const reserved = checks.reservedPaths ?? ReservedPaths.NONE;
  const pathProblem = reserved.pathProblem(entry.dstPath, "");
  if (pathProblem !== undefined) throw new ValidationError(`${field}.dst_path`, pathProblem);
  if (entry.dataJson !== undefined) {
    const method = saveMethodName(entry.saveMethod);
    const dataProblem = reserved.writeProblem({ path: entry.dstPath, method, data: parseJsonBytes(entry.dataJson) });
    if (dataProblem !== undefined) throw new ValidationError(`${field}.data`, dataProblem);
    return;
  }
  if (entry.url === "") return;
  const allowlist = checks.allowlist;
  if (allowlist !== undefined && !allowlist.allows(entry.url)) throw new ValidationError(`${field}.url`, "is not allowed by OPAL_FETCH_URL_ALLOWLIST");
  const listed = allowlist !== undefined && !allowlist.isEmpty;
  const kind = internalHostKind(new URL(entry.url).hostname);
  if (kind !== undefined && !listed) {
    throw new ValidationError(`${field}.url`, `names ${kind} (${new URL(entry.url).hostname}); clients fetch it only when OPAL_FETCH_URL_ALLOWLIST allows the URL, on the server as on the client`);
  }
  const config = entry.configJson.length > 0 ? (parseJsonBytes(entry.configJson) as Record<string, unknown>) : {};
  const fetcher = typeof config.fetcher === "string" && config.fetcher !== "" ? config.fetcher : HTTP_FETCHER;
  if (fetcher === HTTP_FETCHER && config.method !== undefined && config.method !== null && (typeof config.method !== "string" || !HTTP_METHODS.has(config.method.toUpperCase()))) {
    throw new ValidationError(`${field}.config.method`, `must be one of ${[...HTTP_METHODS].join(", ")}, got ${JSON.stringify(config.method)}`);
  }
}

/** OPAL's DataUpdate JSON (the body of POST /data/config). The id stays empty when not given. */
export function parseDataUpdate(json: unknown, limits: UpdateLimits = {}): DataUpdate {
  if (!isObject(json)) throw new ValidationError("", "the body must be a JSON object (OPAL's DataUpdate)");
  if (limits.maxEntries !== undefined && Array.isArray(json.entries) && json.entries.length > limits.maxEntries) {
    throw new ValidationError("entries", `holds ${json.entries.length} entries; at most ${limits.maxEntries} are accepted (OPAL_MESH_MAX_ENTRIES_PER_UPDATE)`);
  }
  const entries = parseEntries(json.entries, "entries", {});
  if (entries.length === 0) throw new ValidationError("entries", "must hold at least one entry");
  let updateScope: string | undefined;
  entries.forEach((entry, index) => {
    checkEntry(entry, `entries[${index}]`, limits);
    // One update lives in one scope, so no client ever receives another tenant's entries beside its own.
    for (const topic of entry.topics) {
      const scope = scopeOfTopic(topic);
      updateScope ??= scope;
      if (scope !== updateScope) throw new ValidationError(`entries[${index}].topics`, `mixes scopes ${JSON.stringify(updateScope)} and ${JSON.stringify(scope)}: publish one update per scope`);
    }
  });
  return create(DataUpdateSchema, {
    id: optionalString(json.id, "id"),
    entries,
    reason: optionalString(json.reason, "reason"),
    callbacks: parseCallbacks(json.callback),
  });
}

/**
 * OPAL's ServerDataSourceConfig: {"config": {"entries": [...]}} or {"external_source_url": url}.
 * Its entries are checked as published ones are (`checks`: the server's configuration).
 */
export function parseDataSourcesConfig(json: unknown, checks: EntryChecks = {}): DataSourcesConfig {
  if (!isObject(json)) throw new ValidationError("", 'must be an object like {"config": {"entries": [...]}}');
  const hasConfig = json.config !== undefined && json.config !== null;
  const external = json.external_source_url;
  const hasExternal = external !== undefined && external !== null;
  if (hasConfig === hasExternal) {
    throw new ValidationError("", 'must have exactly one of "config" and "external_source_url"');
  }
  if (hasExternal) {
    if (typeof external !== "string") throw new ValidationError("external_source_url", "must be a URL string");
    try {
      const parsed = new URL(external);
      if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new Error("scheme");
    } catch {
      throw new ValidationError("external_source_url", "must be an http(s) URL");
    }
    return create(DataSourcesConfigSchema, { externalSourceUrl: external });
  }
  if (!isObject(json.config)) throw new ValidationError("config", 'must be an object like {"entries": [...]}');
  const entries = parseEntries(json.config.entries ?? [], "config.entries", { allowPeriodic: true });
  entries.forEach((entry, index) => checkEntry(entry, `config.entries[${index}]`, checks));
  return create(DataSourcesConfigSchema, { entries });
}

/** An entry as OPAL's JSON, for GET /data/config and logs (config is left out of logs by callers). */
export function dataSourceEntryToJson(entry: DataSourceEntry): JsonObject {
  const json: JsonObject = {
    url: entry.url,
    config: entry.configJson.length > 0 ? parseJsonBytes(entry.configJson) : null,
    topics: entry.topics,
    dst_path: entry.dstPath,
    save_method: saveMethodName(entry.saveMethod),
  };
  if (entry.dataJson !== undefined) json.data = parseJsonBytes(entry.dataJson);
  if (entry.periodicUpdateInterval !== undefined) json.periodic_update_interval = entry.periodicUpdateInterval;
  return json;
}

/** OPAL's DataSourceConfig as served to clients: {"entries": [...]}. */
export function dataSourcesConfigToJson(config: DataSourcesConfig): JsonObject {
  return { entries: config.entries.map(dataSourceEntryToJson) };
}
