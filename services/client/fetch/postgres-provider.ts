/**
 * PostgreSQL as a data source, with the config of OPAL's PostgresFetchProvider
 * (permitio/opal-fetcher-postgres): the entry url is the connection string, and
 * config = {fetcher, connection_params, query, fetch_one, dict_mode}.
 */
import pg from "pg";
import { redactUrl } from "../../common/config/env-reader.js";
import { FetchError, type FetchProvider, type FetchProviderContext, type FetchProviderPlugin, type FetchRequest } from "./types.js";

// PostgreSQL error classes worth retrying: connection problems, resources, and operator intervention.
const RETRYABLE_SQLSTATE = /^(08|53|57)/;

function connectionParams(value: unknown): pg.ClientConfig {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) throw new FetchError("config.connection_params must be an object", false);
  const params = value as Record<string, unknown>;
  const config: pg.ClientConfig = {};
  for (const key of ["host", "user", "password", "database"] as const) {
    if (typeof params[key] === "string") config[key] = params[key];
  }
  if (typeof params.port === "number" || typeof params.port === "string") config.port = Number(params.port);
  if (typeof params.dbname === "string") config.database = params.dbname;
  return config;
}

export function createPostgresFetchProvider(context: FetchProviderContext): FetchProvider {
  return {
    name: "PostgresFetchProvider",
    async fetch({ url, config, signal }: FetchRequest): Promise<Uint8Array> {
      if (typeof config.query !== "string" || config.query.trim() === "") {
        throw new FetchError("config.query must be the SQL query to run", false);
      }
      const dictMode = config.dict_mode !== false;
      const fetchOne = config.fetch_one === true;
      const client = new pg.Client({
        connectionString: url,
        ...connectionParams(config.connection_params),
        connectionTimeoutMillis: context.timeoutMs,
        query_timeout: context.timeoutMs,
      });
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
        await client.end().catch(() => undefined);
      }
    },
  };
}

export const postgresFetchProviderPlugin: FetchProviderPlugin = { name: "PostgresFetchProvider", create: createPostgresFetchProvider };
