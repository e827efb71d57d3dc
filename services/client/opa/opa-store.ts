/** The policy store over OPA's REST API, on one keep-alive connection pool. */
import { Readable } from "node:stream";
import { Pool } from "undici";
import type { ClientTls } from "../../common/config/tls-config.js";
import { type DataWrite, type PatchOperation, type PolicyStore, PolicyStoreError, type ValueStream } from "../policy-store.js";

export interface OpaStoreOptions {
  url: string;
  /** Bearer token for OPA's token authentication. */
  authToken: string | undefined;
  timeoutMs?: number;
  /**
   * For writes streamed from a source: OPA answers only once it has decoded and applied
   * the whole document (seconds per 100 MB), so the wait for its answer is longer.
   */
  streamTimeoutMs?: number;
  /** TLS to OPA: its CA, and a client certificate when OPA requires one. */
  tls?: ClientTls;
}

const OPEN_BRACKET = 0x5b;
const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);

function firstByte(bytes: Uint8Array): number | undefined {
  for (const byte of bytes) if (!WHITESPACE.has(byte)) return byte;
  return undefined;
}

/** OPA's data path in a URL: every segment escaped, root as the bare prefix. */
export function dataUrlPath(path: string): string {
  const segments = path.split("/").filter((segment) => segment !== "");
  return segments.length === 0 ? "/v1/data" : `/v1/data/${segments.map(encodeURIComponent).join("/")}`;
}

/**
 * A JSON Patch request body around the raw values: big documents are never parsed here,
 * and a streamed value stays a stream (the caller reads it in its place).
 */
function* patchBody(operations: readonly PatchOperation[]): Generator<Uint8Array | ValueStream> {
  yield Buffer.from("[");
  for (const [index, operation] of operations.entries()) {
    const head = `${index === 0 ? "" : ","}{"op":${JSON.stringify(operation.op)},"path":${JSON.stringify(operation.path)}`;
    if (operation.value === undefined) {
      yield Buffer.from(`${head}}`);
    } else {
      yield Buffer.from(`${head},"value":`);
      yield operation.value;
      yield Buffer.from("}");
    }
  }
  yield Buffer.from("]");
}

export class OpaStore implements PolicyStore {
  readonly name = "opa";
  private readonly pool: Pool;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;
  private readonly streamTimeoutMs: number;

  constructor(private readonly options: OpaStoreOptions) {
    const tls = options.tls;
    this.pool = new Pool(options.url, { connections: 4, pipelining: 1, keepAliveTimeout: 30_000, ...(tls === undefined ? {} : { connect: { ca: tls.ca, cert: tls.cert, key: tls.key } }) });
    this.headers = options.authToken === undefined ? {} : { authorization: `Bearer ${options.authToken}` };
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.streamTimeoutMs = Math.max(this.timeoutMs, options.streamTimeoutMs ?? 300_000);
  }

  async isHealthy(signal?: AbortSignal): Promise<boolean> {
    try {
      const { statusCode } = await this.call("GET", "/health", undefined, undefined, signal);
      return statusCode === 200;
    } catch {
      // `call` fails only when OPA cannot be reached: that is the answer.
      return false;
    }
  }

  async writeData(write: DataWrite, signal?: AbortSignal): Promise<void> {
    const url = dataUrlPath(write.path);
    if (write.method === "DELETE") {
      const { statusCode, body } = await this.call("DELETE", url, undefined, undefined, signal);
      // Deleting what is not there leaves the store as asked.
      if (statusCode !== 204 && statusCode !== 404) throw this.failure("DELETE", write.path, statusCode, body);
      return;
    }
    let body = write.body ?? new Uint8Array();
    if (write.method === "PUT" && url === "/v1/data" && firstByte(body) === OPEN_BRACKET) {
      // OPA's root must be an object; OPAL wraps a list written there as {"items": [...]}.
      body = Buffer.concat([Buffer.from('{"items":'), body, Buffer.from("}")]);
    }
    const contentType = write.method === "PATCH" ? "application/json-patch+json" : "application/json";
    const { statusCode, body: responseBody } = await this.call(write.method, url, body, contentType, signal);
    if (statusCode !== 204 && statusCode !== 200) throw this.failure(write.method, write.path, statusCode, responseBody);
  }

  async readData(path: string, signal?: AbortSignal): Promise<unknown> {
    const { statusCode, body } = await this.call("GET", dataUrlPath(path), undefined, undefined, signal);
    if (statusCode !== 200) throw this.failure("GET", path, statusCode, body);
    return (JSON.parse(body) as { result?: unknown }).result;
  }

  async patch(operations: readonly PatchOperation[], signal?: AbortSignal): Promise<void> {
    if (operations.length === 0) return;
    const streams = operations.flatMap((operation) => (operation.value === undefined || operation.value instanceof Uint8Array ? [] : [operation.value]));
    if (streams.length === 0) {
      const { statusCode, body } = await this.call("PATCH", "/v1/data", Buffer.concat([...patchBody(operations)] as Uint8Array[]), "application/json-patch+json", signal);
      if (statusCode !== 204 && statusCode !== 200) throw this.failure("PATCH", "/", statusCode, body);
      return;
    }
    // A streamed value goes to OPA as it arrives from its source (chunked: OPA decodes the
    // request as it reads it, and applies all of the patch or none of it).
    let sourceError: Error | undefined;
    const body = async function* (): AsyncGenerator<Uint8Array> {
      try {
        for (const part of patchBody(operations)) {
          if (part instanceof Uint8Array) yield part;
          else yield* part.chunks(signal);
        }
      } catch (error) {
        sourceError = error instanceof Error ? error : new Error(String(error));
        throw error;
      }
    };
    let response: { statusCode: number; body: string };
    try {
      response = await this.call("PATCH", "/v1/data", Readable.from(body(), { objectMode: false }), "application/json-patch+json", signal, this.streamTimeoutMs);
    } catch (error) {
      // The source failed mid-way: OPA got a truncated request and applied nothing.
      if (sourceError !== undefined) throw sourceError;
      throw error;
    }
    if (response.statusCode !== 204 && response.statusCode !== 200) {
      const failure = this.failure("PATCH", "/", response.statusCode, response.body);
      throw new PolicyStoreError(`${failure.message} (the patch carried the data streamed from ${streams.map((stream) => stream.source).join(", ")})`, failure.status);
    }
  }

  async exists(path: string, signal?: AbortSignal): Promise<boolean> {
    const segments = path.split("/").filter((segment) => segment !== "");
    if (segments.length === 0) return true;
    // A query binding nothing: OPA checks the path without sending the document back.
    const query = `_ = data${segments.map((segment) => `[${JSON.stringify(segment)}]`).join("")}`;
    const { statusCode, body } = await this.call("POST", "/v1/query", Buffer.from(JSON.stringify({ query })), "application/json", signal);
    if (statusCode !== 200) throw this.failure("query", path, statusCode, body);
    const result = (JSON.parse(body) as { result?: unknown[] }).result;
    return Array.isArray(result) && result.length > 0;
  }

  async putPolicy(id: string, rego: string, signal?: AbortSignal): Promise<void> {
    const { statusCode, body } = await this.call("PUT", `/v1/policies/${encodeURIComponent(id)}`, Buffer.from(rego), "text/plain", signal);
    if (statusCode !== 200) throw this.failure("PUT policy", id, statusCode, body);
  }

  async deletePolicy(id: string, signal?: AbortSignal): Promise<void> {
    const { statusCode, body } = await this.call("DELETE", `/v1/policies/${encodeURIComponent(id)}`, undefined, undefined, signal);
    if (statusCode !== 200 && statusCode !== 404) throw this.failure("DELETE policy", id, statusCode, body);
  }

  async listPolicies(signal?: AbortSignal): Promise<Array<{ id: string; raw: string }>> {
    const { statusCode, body } = await this.call("GET", "/v1/policies", undefined, undefined, signal);
    if (statusCode !== 200) throw this.failure("GET policies", "", statusCode, body);
    return ((JSON.parse(body) as { result?: Array<{ id: string; raw: string }> }).result ?? []).map(({ id, raw }) => ({ id, raw }));
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  private async call(method: string, path: string, body: Uint8Array | Readable | undefined, contentType: string | undefined, signal?: AbortSignal, timeoutMs = this.timeoutMs): Promise<{ statusCode: number; body: string }> {
    try {
      const response = await this.pool.request({
        method: method,
        path,
        body,
        headers: contentType === undefined ? this.headers : { ...this.headers, "content-type": contentType },
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal,
      });
      return { statusCode: response.statusCode, body: await response.body.text() };
    } catch (error) {
      throw new PolicyStoreError(`OPA at ${this.options.url} is unreachable: ${(error as Error).message}`, undefined, { cause: error });
    }
  }

  private failure(operation: string, target: string, status: number, body: string): PolicyStoreError {
    let detail = body;
    try {
      const parsed = JSON.parse(body) as { message?: string; errors?: Array<{ code?: string; message?: string; location?: { file?: string; row?: number } }> };
      const errors = parsed.errors?.map((error) =>
        [error.code, `${error.location?.file ?? ""}${error.location?.row !== undefined ? `:${error.location.row}` : ""}`, error.message].filter((part) => part !== undefined && part !== "").join(" "),
      );
      detail = [parsed.message, ...(errors ?? [])].filter(Boolean).join("; ");
    } catch {
      // not JSON: keep OPA's text
    }
    if (/request body too large/i.test(detail)) {
      // OPA refuses a request whose content-length exceeds server.decoding.max_length (256 MiB by default).
      detail += "; raise server.decoding.max_length in OPA's config file (OPAL_INLINE_OPA_CONFIG's config_file for the inline OPA)";
    }
    return new PolicyStoreError(`OPA refused ${operation} ${target}: ${status} ${detail}`.trim(), status);
  }
}
