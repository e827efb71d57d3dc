/**
 * One gRPC transport over several replicas of a service (OPAL_MESH_*_URLS): calls go to
 * the replica that answered last; when it is unreachable, a unary call moves on to the
 * next at once, and a stream fails so its caller (which resumes from a position) opens
 * it again on the next replica.
 */
import { Code, ConnectError, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import type { ClientTls } from "../common/config/tls-config.js";

export interface FailoverOptions {
  urls: readonly string[];
  /** E.g. the service token every call carries. */
  interceptors?: Interceptor[];
  /** For https:// replicas: a private CA, and this process's certificate for mTLS. */
  tls?: ClientTls;
}

/** Errors that say "this replica is not there", as opposed to "your request is wrong". */
function isUnreachable(error: unknown): boolean {
  const connectError = ConnectError.from(error);
  return connectError.code === Code.Unavailable || connectError.code === Code.Unknown || connectError.code === Code.Internal || connectError.code === Code.Aborted;
}

export interface FailoverTransport extends Transport {
  close(): void;
}

export function createFailoverTransport(options: FailoverOptions): FailoverTransport {
  if (options.urls.length === 0) throw new Error("no replica URLs to connect to");
  const tls = options.tls === undefined ? undefined : { ca: options.tls.ca, cert: options.tls.cert, key: options.tls.key };
  const managers = options.urls.map((url) => new Http2SessionManager(url, { pingIntervalMs: 10_000, pingTimeoutMs: 5_000 }, url.startsWith("https:") ? tls : undefined));
  const transports = options.urls.map((url, index) => createGrpcTransport({ baseUrl: url, sessionManager: managers[index], interceptors: options.interceptors }));
  let current = 0;
  const failed = (index: number): void => {
    if (current === index) current = (index + 1) % transports.length;
  };

  return {
    async unary(method, signal, timeoutMs, header, input, contextValues) {
      let lastError: unknown;
      const first = current;
      for (let attempt = 0; attempt < transports.length; attempt++) {
        const index = (first + attempt) % transports.length;
        try {
          const response = await (transports[index] as Transport).unary(method, signal, timeoutMs, header, input, contextValues);
          current = index;
          return response;
        } catch (error) {
          lastError = error;
          if (signal?.aborted === true || !isUnreachable(error)) throw error;
          failed(index);
        }
      }
      throw lastError;
    },
    async stream(method, signal, timeoutMs, header, input, contextValues) {
      const index = current;
      try {
        const response = await (transports[index] as Transport).stream(method, signal, timeoutMs, header, input, contextValues);
        const messages = response.message;
        return {
          ...response,
          message: (async function* () {
            try {
              yield* messages;
            } catch (error) {
              if (isUnreachable(error)) failed(index);
              throw error;
            }
          })(),
        };
      } catch (error) {
        if (isUnreachable(error)) failed(index);
        throw error;
      }
    },
    close() {
      for (const manager of managers) manager.abort();
    },
  };
}
