/**
 * PostgreSQL as a data source, with the config of OPAL's PostgresFetchProvider
 * (permitio/opal-fetcher-postgres): the entry url is the connection string, and
 * config = {fetcher, connection_params, query, fetch_one, dict_mode}.
 */
import pg from "pg";
import { redactUrl } from "../../common/config/env-reader.js";
import { FetchGuard } from "./fetch-guard.js";
import { FetchError, type FetchProvider, type FetchProviderContext, type FetchProviderPlugin, type FetchRequest } from "./types.js";

// PostgreSQL error classes worth retrying: connection problems, resources, and operator intervention.
const RETRYABLE_SQLSTATE = /^(08|53|57)/;

interface ConnectionParams {
  host?: string;
  port?: number;
  user?: string;
  password?: string;
  database?: string;
}

function connectionParams(value: unknown): ConnectionParams {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) throw new FetchError("config.connection_params must be an object", false);
  const params = value as Record<string, unknown>;
  const config: ConnectionParams = {};
  for (const key of ["host", "user", "password", "database"] as const) {
    if (typeof params[key] === "string") config[key] = params[key];
  }
  if (params.port !== undefined && params.port !== null) {
    const port = Number(params.port);
    if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new FetchError(`config.connection_params.port must be a port number, got ${JSON.stringify(params.port)}`, false);
    config.port = port;
  }
  if (typeof params.dbname === "string") config.database = params.dbname;
  return config;
}

/**
 * The connection string with connection_params applied: as in asyncpg (which OPAL uses),
 * the params override what the string says. (node-postgres does the opposite: anything
 * parsed from `connectionString`, even an empty user, beats the explicit fields.)
 */
function connectionString(url: string, value: unknown): string {
  const params = connectionParams(value);
  if (Object.keys(params).length === 0) return url;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new FetchError(`the entry url must be a PostgreSQL connection string (postgresql://...), got ${JSON.stringify(redactUrl(url))}`, false);
  }
  // Query parameters win over the authority part in node-postgres's parser; the database is the path.
  if (params.host !== undefined) parsed.searchParams.set("host", params.host);
  if (params.port !== undefined) parsed.searchParams.set("port", String(params.port));
  if (params.user !== undefined) parsed.searchParams.set("user", params.user);
  if (params.password !== undefined) parsed.searchParams.set("password", params.password);
  if (params.database !== undefined) parsed.pathname = `/${params.database}`;
  return parsed.href;
}

/**
 * Where the connection goes (connection_params override the URL): checked by the guard,
 * so no entry points the client at its own OPA or API. (node-postgres resolves the host
 * itself; the wire protocol cannot carry an HTTP request, so a rebinding gains nothing.)
 */
async function checkTarget(guard: FetchGuard, url: string, value: unknown): Promise<void> {
  const params = connectionParams(value);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return; // not a URL: the fetch itself refuses it, naming the entry
  }
  const host = params.host ?? parsed.searchParams.get("host") ?? parsed.hostname;
  if (host === "" || host.startsWith("/")) return;
  const port = String(params.port ?? parsed.searchParams.get("port") ?? parsed.port);
  await guard.check(`postgresql://${host.includes(":") && !host.startsWith("[") ? `[${host}]` : host}${port === "" ? "" : `:${port}`}/`);
}

export function createPostgresFetchProvider(context: FetchProviderContext): FetchProvider {
  const guard = context.guard ?? FetchGuard.withoutEndpoints();
  return {
    name: "PostgresFetchProvider",
    async fetch({ url, config, signal }: FetchRequest): Promise<Uint8Array> {
      if (typeof config.query !== "string" || config.query.trim() === "") {
        throw new FetchError("config.query must be the SQL query to run", false);
      }
      await checkTarget(guard, url, config.connection_params);
      const dictMode = config.dict_mode !== false;
      const fetchOne = config.fetch_one === true;
      const client = new pg.Client({
        connectionString: connectionString(url, config.connection_params),
        connectionTimeoutMillis: context.timeoutMs,
        query_timeout: context.timeoutMs,
      });
      // Ending the connection is how the query is abandoned; the abort is what the caller sees.
      const onAbort = (): void => void client.end().catch(() => undefined);
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        await client.connect();
        const result = dictMode ? await client.query(config.query) : await client.query({ text: config.query, rowMode: "array" });
        const rows: unknown[] = result.rows;
        const data = fetchOne ? (rows[0] ?? null) : rows;
        return Buffer.from(JSON.stringify(data));
      } catch (error) {
        if (error instanceof FetchError || signal.aborted) throw error;
        const code = (error as { code?: unknown }).code;
        const retryable = typeof code !== "string" || RETRYABLE_SQLSTATE.test(code);
        throw new FetchError(`PostgreSQL ${redactUrl(url)}: ${(error as Error).message}`, retryable, { cause: error });
      } finally {
        signal.removeEventListener("abort", onAbort);
        // The query's outcome is reported; a connection that fails to end is gone either way.
        await client.end().catch(() => undefined);
      }
    },
  };
}

export const postgresFetchProviderPlugin: FetchProviderPlugin = { name: "PostgresFetchProvider", create: createPostgresFetchProvider };
