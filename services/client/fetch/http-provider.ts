/**
 * OPAL's HttpFetchProvider: method, headers, request body, is_json and process_data.
 * Every request (and every redirect hop) goes through the FetchGuard first.
 */
import { request } from "undici";
import { redactUrl } from "../../common/config/env-reader.js";
import { closeWhenDone, FetchGuard } from "./fetch-guard.js";
import { checkContentType, checkJsonStart, firstNonBlank } from "./json-check.js";
import { FetchError, type FetchProvider, type FetchProviderContext, type FetchProviderPlugin, type FetchRequest, type OpenedBody } from "./types.js";

const METHODS = new Set(["GET", "POST", "PUT", "PATCH", "HEAD", "DELETE"]);

type Response = Awaited<ReturnType<typeof request>>;

/**
 * Drops a response body we will not read. undici's body emits an abort error when
 * destroyed before its end: it is expected here, so it is not left unhandled.
 */
function discard(response: Response): void {
  response.body.on("error", () => undefined).destroy();
}

function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

/** An error while the body was still arriving (the source went away, or stalled past the timeout). */
function readFailure(url: string, error: unknown): FetchError {
  if (error instanceof FetchError) return error;
  return new FetchError(`reading ${redactUrl(url)} failed: ${(error as Error).message}`, true, { cause: error });
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;
/** Headers that carry the source's credentials: not sent on to another origin a redirect names. */
const CREDENTIAL_HEADERS = ["authorization", "cookie", "proxy-authorization"];

/** One request, to the addresses the guard checked (and only those). */
async function sendOnce(guard: FetchGuard, url: string, method: string, headers: Record<string, string>, body: string | undefined, signal: AbortSignal, timeoutMs: number): Promise<Response> {
  const target = await guard.check(url, method);
  const dispatcher = guard.dispatcherFor(target);
  try {
    // Timeouts bound the wait for headers and each pause between body chunks, not the whole transfer.
    const response = await request(url, { method: method as "GET", headers, body, signal, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, dispatcher });
    closeWhenDone(dispatcher);
    return response;
  } catch (error) {
    // The fetch's own error is the one to report; a dispatcher failing to close adds nothing.
    void dispatcher.destroy().catch(() => undefined);
    if (signal.aborted) throw error;
    throw new FetchError(`could not fetch ${redactUrl(url)}: ${(error as Error).message}`, true, { cause: error });
  }
}

async function send({ url, config, signal }: FetchRequest, timeoutMs: number, guard: FetchGuard): Promise<Response> {
  const method = typeof config.method === "string" ? config.method.toUpperCase() : "GET";
  if (!METHODS.has(method)) throw new FetchError(`config.method ${JSON.stringify(config.method)} is not an HTTP method`, false);
  const headers: Record<string, string> = {};
  if (config.headers !== undefined && config.headers !== null) {
    if (typeof config.headers !== "object" || Array.isArray(config.headers)) throw new FetchError("config.headers must be an object", false);
    for (const [name, value] of Object.entries(config.headers as Record<string, unknown>)) headers[name.toLowerCase()] = String(value);
  }
  let body: string | undefined;
  if (config.data !== undefined && config.data !== null) {
    body = typeof config.data === "string" ? config.data : JSON.stringify(config.data);
    headers["content-type"] ??= "application/json";
  }
  let current = url;
  let response = await sendOnce(guard, current, method, headers, body, signal, timeoutMs);
  // Redirects of a GET are followed (as OPAL's aiohttp does), each hop checked by the guard
  // as if published; a redirected write is not: its body would go where the source says.
  for (let hop = 0; REDIRECTS.has(response.statusCode) && typeof response.headers.location === "string"; hop++) {
    discard(response);
    if (method !== "GET") throw new FetchError(`${redactUrl(current)} answered ${response.statusCode} (a redirect); redirects are followed for GET only`, false);
    if (hop >= MAX_REDIRECTS) throw new FetchError(`${redactUrl(url)} redirected more than ${MAX_REDIRECTS} times`, false);
    let next: URL;
    try {
      next = new URL(response.headers.location, current);
    } catch {
      throw new FetchError(`${redactUrl(current)} redirected to an invalid URL`, false);
    }
    if (next.origin !== new URL(current).origin) for (const name of CREDENTIAL_HEADERS) delete headers[name];
    current = next.toString();
    response = await sendOnce(guard, current, method, headers, undefined, signal, timeoutMs);
  }
  if (response.statusCode >= 400) {
    // Only the start of an error page: it may be as big as the document we wanted.
    let excerpt = "";
    try {
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        excerpt += chunk.toString("utf8");
        if (excerpt.length >= 200) break;
      }
    } catch {
      // the excerpt is a courtesy
    } finally {
      discard(response);
    }
    throw new FetchError(`${redactUrl(current)} answered ${response.statusCode}: ${excerpt.slice(0, 200)}`, isRetryableStatus(response.statusCode));
  }
  return response;
}

function declaredLength(response: Response): number | undefined {
  const value = Number(response.headers["content-length"]);
  return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}

export function createHttpFetchProvider(context: FetchProviderContext): FetchProvider {
  const guard = context.guard ?? FetchGuard.withoutEndpoints();
  return {
    name: "HttpFetchProvider",
    async fetch(fetchRequest: FetchRequest): Promise<Uint8Array> {
      const { url, config } = fetchRequest;
      const response = await send(fetchRequest, context.timeoutMs, guard);
      let bytes: Uint8Array;
      try {
        bytes = new Uint8Array(await response.body.arrayBuffer());
      } catch (error) {
        if (fetchRequest.signal.aborted) throw error;
        throw readFailure(url, error);
      }
      if (config.is_json === false) return Buffer.from(JSON.stringify(Buffer.from(bytes).toString("utf8")));
      checkContentType(response.headers["content-type"], url);
      checkJsonStart(bytes, url);
      return bytes;
    },

    async open(fetchRequest: FetchRequest, bufferBelow: number): Promise<Uint8Array | OpenedBody | undefined> {
      const { url, config, signal } = fetchRequest;
      // is_json=false wraps the text as a JSON string: a transformation, done in fetch().
      if (config.is_json === false) return undefined;
      const response = await send(fetchRequest, context.timeoutMs, guard);
      const length = declaredLength(response);
      const iterator = (response.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
      const head: Buffer[] = [];
      let size = 0;
      let started = false;
      try {
        checkContentType(response.headers["content-type"], url);
        // Read until the body proves to be JSON and is known to be big (or has ended).
        while (!started || size < bufferBelow) {
          if (started && length !== undefined && length >= bufferBelow) break;
          const next = await iterator.next();
          if (next.done === true) {
            const bytes = Buffer.concat(head, size);
            checkJsonStart(bytes, url);
            return bytes;
          }
          head.push(next.value);
          size += next.value.byteLength;
          if (!started && firstNonBlank(next.value) !== undefined) {
            checkJsonStart(Buffer.concat(head, size), url);
            started = true;
          }
        }
      } catch (error) {
        discard(response);
        if (signal.aborted) throw error;
        throw readFailure(url, error);
      }
      async function* chunks(): AsyncGenerator<Uint8Array> {
        yield* head.splice(0);
        try {
          for (let next = await iterator.next(); next.done !== true; next = await iterator.next()) yield next.value;
        } catch (error) {
          throw readFailure(url, error);
        }
      }
      return { chunks: chunks(), ...(length === undefined ? {} : { length }), discard: () => discard(response) };
    },
  };
}

export const httpFetchProviderPlugin: FetchProviderPlugin = { name: "HttpFetchProvider", create: createHttpFetchProvider };
