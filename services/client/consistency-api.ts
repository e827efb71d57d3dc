/**
 * Read-your-writes on the client's API: a publish answers with its log position P, and
 *
 * - `GET /wait?position=P&timeout=5s` answers 200 once this client's OPA holds P, or 503
 *   at the timeout saying where it is;
 * - `POST|GET /v1/data/{path}?min_position=P&timeout=…` is OPA's data API (the request
 *   passed to this client's OPA as it came, the other query parameters included) answered
 *   only once OPA holds P, else 503 with the position it holds — "decide, but only with
 *   that revocation in". Without `min_position` it is a plain pass-through.
 *
 * The caller's Authorization header goes to OPA as it came and the client's own store
 * token never does, so the proxy opens nothing that OPA's own API keeps closed.
 */
import { pipeline } from "node:stream/promises";
import { Pool } from "undici";
import type { ClientTls } from "../common/config/tls-config.js";
import { HttpError, type HttpRequest, type HttpResponse, sendJson } from "../common/http/json-io.js";
import type { RestContext, RestRoute } from "../common/http/rest-router.js";
import type { Freshness, PositionWait } from "./freshness.js";

export interface ConsistencyApiOptions {
  freshness: Freshness;
  /** The client's OPA. */
  storeUrl: string;
  storeTls?: ClientTls;
  /** OPAL_MESH_MAX_CONSISTENCY_WAIT_SECONDS: the longest a caller may ask to wait. */
  maxWaitMs: number;
  /** When the caller names no timeout. */
  defaultWaitMs?: number;
}

/** The headers that say where this client's OPA is, on every answer. */
function positionHeaders(wait: Pick<PositionWait, "position" | "logId">): Record<string, string> {
  return { "x-opal-mesh-position": wait.position.toString(), ...(wait.logId === "" ? {} : { "x-opal-mesh-log-id": wait.logId }) };
}

function parsePosition(value: string | null, name: string): bigint | undefined {
  if (value === null) return undefined;
  if (!/^\d{1,20}$/.test(value)) throw new HttpError(400, `${name} must be a log position (a whole number ≥ 0), not ${JSON.stringify(value.slice(0, 40))}`);
  return BigInt(value);
}

/** `timeout`: seconds (`2.5`), or with a unit (`250ms`, `5s`); at most the configured bound. */
function parseTimeout(value: string | null, options: ConsistencyApiOptions): number {
  if (value === null) return Math.min(options.defaultWaitMs ?? 10_000, options.maxWaitMs);
  const match = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(value);
  if (match === null) throw new HttpError(400, `timeout must be seconds (2.5) or a duration (250ms, 5s), not ${JSON.stringify(value.slice(0, 40))}`);
  const ms = Number(match[1]) * (match[2] === "ms" ? 1 : 1000);
  if (ms > options.maxWaitMs) throw new HttpError(400, `timeout ${value} is longer than the client allows (OPAL_MESH_MAX_CONSISTENCY_WAIT_SECONDS=${options.maxWaitMs / 1000})`);
  return ms;
}

function notYet(response: HttpResponse, wait: PositionWait, wanted: bigint): void {
  response.setHeader("retry-after", "1");
  for (const [name, value] of Object.entries(positionHeaders(wait))) response.setHeader(name, value);
  sendJson(response, 503, {
    code: "not_at_position",
    detail: `this client's OPA holds position ${wait.position}${wait.logId === "" ? "" : ` of log ${wait.logId}`}, not yet ${wanted}`,
    position: wait.position.toString(),
    min_position: wanted.toString(),
    log_id: wait.logId,
  });
}

export function consistencyRoutes(options: ConsistencyApiOptions): { routes: RestRoute[]; close: () => Promise<void> } {
  const pool = new Pool(options.storeUrl, { connections: 8, keepAliveTimeout: 30_000, ...(options.storeTls === undefined ? {} : { connect: { ca: options.storeTls.ca, cert: options.storeTls.cert, key: options.storeTls.key } }) });
  const wait = async (url: URL, name: string, signal: AbortSignal): Promise<{ wanted: bigint; wait: PositionWait } | undefined> => {
    const wanted = parsePosition(url.searchParams.get(name), name);
    const timeoutMs = parseTimeout(url.searchParams.get("timeout"), options);
    if (wanted === undefined) return undefined;
    const logId = url.searchParams.get("log_id") ?? undefined;
    return { wanted, wait: await options.freshness.waitFor(wanted, logId === "" ? undefined : logId, timeoutMs, signal) };
  };

  const decide = async (request: HttpRequest, response: HttpResponse, context: RestContext): Promise<void> => {
    const waited = await wait(context.url, "min_position", context.signal);
    if (waited !== undefined && !waited.wait.reached) {
      request.resume();
      return notYet(response, waited.wait, waited.wanted);
    }
    const query = new URLSearchParams(context.url.searchParams);
    for (const ours of ["min_position", "timeout", "log_id"]) query.delete(ours);
    const path = `/v1/data${context.params.path === undefined || context.params.path === "" ? "" : `/${context.params.path.split("/").map(encodeURIComponent).join("/")}`}`;
    const headers: Record<string, string> = {};
    for (const name of ["authorization", "content-type", "accept", "accept-encoding"]) {
      const value = request.headers[name];
      if (typeof value === "string") headers[name] = value;
    }
    const answer = await pool
      .request({ method: request.method === "GET" ? "GET" : "POST", path: `${path}${query.size === 0 ? "" : `?${query.toString()}`}`, headers, body: request.method === "GET" ? undefined : request, signal: context.signal, headersTimeout: 30_000, bodyTimeout: 30_000 })
      .catch((error: unknown) => {
        throw new HttpError(502, `this client's OPA at ${options.storeUrl} did not answer: ${error instanceof Error ? error.message : String(error)}`);
      });
    // Where OPA is as it answers (it may be past the position waited for).
    const at = positionHeaders({ position: options.freshness.position, logId: options.freshness.logId });
    const passed: Record<string, string> = {};
    for (const name of ["content-type", "content-encoding"]) {
      const value = answer.headers[name];
      if (typeof value === "string") passed[name] = value;
    }
    response.statusCode = answer.statusCode;
    for (const [name, value] of Object.entries({ ...passed, ...at })) response.setHeader(name, value);
    await pipeline(answer.body, response as unknown as NodeJS.WritableStream);
  };

  const routes: RestRoute[] = [
    {
      method: "GET",
      auth: "open",
      path: "/wait",
      handle: async (_request, response, context) => {
        const waited = await wait(context.url, "position", context.signal);
        if (waited === undefined) throw new HttpError(400, "position is required: /wait?position=<the position a publish answered with>&timeout=5s");
        if (!waited.wait.reached) return notYet(response, waited.wait, waited.wanted);
        for (const [name, value] of Object.entries(positionHeaders(waited.wait))) response.setHeader(name, value);
        sendJson(response, 200, { reached: true, position: waited.wait.position.toString(), log_id: waited.wait.logId });
      },
    },
    // OPA's own data API is open unless OPA says otherwise: the caller's token decides there.
    ...(["GET", "POST"] as const).flatMap((method): RestRoute[] => [
      { method, auth: "open", path: "/v1/data", handle: (request, response, context) => decide(request, response, context) },
      { method, auth: "open", path: "/v1/data/{path...}", handle: (request, response, context) => decide(request, response, context) },
    ]),
  ];
  return { routes, close: () => pool.close() };
}
