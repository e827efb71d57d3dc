/** OPAL's HttpFetchProvider: method, headers, request body, is_json and process_data. */
import { request } from "undici";
import { redactUrl } from "../../common/config/env-reader.js";
import { FetchError, type FetchProvider, type FetchProviderContext, type FetchProviderPlugin, type FetchRequest } from "./types.js";

const METHODS = new Set(["GET", "POST", "PUT", "PATCH", "HEAD", "DELETE"]);

function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

export function createHttpFetchProvider(context: FetchProviderContext): FetchProvider {
  return {
    name: "HttpFetchProvider",
    async fetch({ url, config, signal }: FetchRequest): Promise<Uint8Array> {
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
      let response;
      try {
        response = await request(url, {
          method: method as "GET",
          headers,
          body,
          signal,
          headersTimeout: context.timeoutMs,
          bodyTimeout: context.timeoutMs,
        });
      } catch (error) {
        if (signal.aborted) throw error;
        throw new FetchError(`could not fetch ${redactUrl(url)}: ${(error as Error).message}`, true, { cause: error });
      }
      const bytes = new Uint8Array(await response.body.arrayBuffer());
      if (response.statusCode >= 400) {
        const excerpt = Buffer.from(bytes.subarray(0, 200)).toString("utf8");
        throw new FetchError(`${redactUrl(url)} answered ${response.statusCode}: ${excerpt}`, isRetryableStatus(response.statusCode));
      }
      if (config.is_json === false) return Buffer.from(JSON.stringify(Buffer.from(bytes).toString("utf8")));
      if (bytes.byteLength === 0) throw new FetchError(`${redactUrl(url)} returned an empty body`, true);
      return bytes;
    },
  };
}

export const httpFetchProviderPlugin: FetchProviderPlugin = { name: "HttpFetchProvider", create: createHttpFetchProvider };
