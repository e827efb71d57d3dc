/**
 * DistributorService.Connect on grpc-js, for the client's long-lived stream. connect-es
 * 2.3 races every read of a stream against one promise that settles only when the call
 * ends, and each race keeps its message reachable from it (connect-es #1524): a client
 * connected for days would hold every event it ever received. grpc-js holds none once
 * read. Calls (bundles, data-source configs) stay on Connect; only a long stream leaks.
 *
 * What the connect-node gRPC transport did is kept: TLS with the configured CA (or the
 * system's) and client certificate, the bearer token, HTTP/2 pings every 15 s, no limit
 * on what the server may send, the call ended by the signal, and a failure surfaced as
 * a ConnectError with the gRPC status as its Code (ABORTED: replaced, RESOURCE_EXHAUSTED:
 * too slow, UNAUTHENTICATED…), which the session's retry logic reads.
 */
import { once } from "node:events";
import { createSecureContext } from "node:tls";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { type ConnectRequest, ConnectRequestSchema, type ConnectResponse, ConnectResponseSchema, DistributorService } from "../../gen/opal/mesh/v1/distributor_pb.js";
import type { ClientTls } from "../common/config/tls-config.js";

export interface DistributorStreamOptions {
  /** Where the stream listener is: http(s)://host:port, optionally with a path prefix (behind a proxy). */
  url: string;
  tls: ClientTls | undefined;
  /** Sent as gRPC metadata (e.g. authorization). */
  headers: Record<string, string>;
  /** Ends the call; the stream then throws a Canceled ConnectError with the signal's reason. */
  signal: AbortSignal;
}

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  // The distributor permits pings every 5 s; a dead connection is noticed within 25 s.
  "grpc.keepalive_time_ms": 15_000,
  "grpc.keepalive_timeout_ms": 10_000,
  "grpc.keepalive_permit_without_calls": 1,
  // Events are as large as the server lets a publisher make them (OPAL_MESH_MAX_BODY_BYTES there).
  "grpc.max_receive_message_length": -1,
  // One stream per channel, opened afresh by each attempt: grpc-js must not retry it by itself,
  // nor share a connection between channels (its global pool would put every client in a process, and
  // the next attempt after a failure, on the same connection).
  "grpc.enable_retries": 0,
  "grpc.use_local_subchannel_pool": 1,
};

const toBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
const serialize = (request: ConnectRequest): Buffer => toBuffer(toBinary(ConnectRequestSchema, request));
const deserialize = (bytes: Buffer): ConnectResponse => fromBinary(ConnectResponseSchema, bytes);

function credentials(secure: boolean, tls: ClientTls | undefined): grpc.ChannelCredentials {
  if (!secure) return grpc.credentials.createInsecure();
  // Node's own context, as connect-node had: the CA given replaces the system's, NODE_EXTRA_CA_CERTS applies.
  return grpc.credentials.createFromSecureContext(createSecureContext({ ca: tls?.ca, cert: tls?.cert, key: tls?.key }));
}

function isServiceError(error: unknown): error is grpc.ServiceError {
  return error instanceof Error && typeof (error as Partial<grpc.ServiceError>).code === "number" && "details" in error;
}

/** grpc-js's status codes are gRPC's, as Connect's Code is. */
export function toConnectError(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  if (isServiceError(error)) return new ConnectError(error.details, error.code as number, undefined, undefined, error);
  return ConnectError.from(error, Code.Unavailable);
}

/** Writes what `requests` yields as the server takes it, then half-closes; stops quietly once the call is over. */
async function send(call: grpc.ClientDuplexStream<ConnectRequest, ConnectResponse>, requests: AsyncIterable<ConnectRequest>, over: () => boolean): Promise<void> {
  try {
    for await (const request of requests) {
      if (over()) return;
      if (!call.write(request)) await once(call, "drain");
    }
    if (!over()) call.end();
  } catch {
    // The call ended (its outcome is the reader's to report), or the requests failed: end the call.
    call.cancel();
  }
}

/**
 * Opens the stream: sends what `requests` yields, yields what the server sends, returns
 * when the server ends it with OK and throws a ConnectError otherwise.
 */
export async function* distributorStream(requests: AsyncIterable<ConnectRequest>, options: DistributorStreamOptions): AsyncGenerator<ConnectResponse> {
  const { signal } = options;
  if (signal.aborted) throw ConnectError.from(signal.reason, Code.Canceled);
  const url = new URL(options.url);
  const secure = url.protocol === "https:";
  const authority = `${url.hostname}:${url.port === "" ? (secure ? 443 : 80) : url.port}`;
  const path = `${url.pathname.replace(/\/+$/, "")}/${DistributorService.typeName}/${DistributorService.method.connect.name}`;
  const client = new grpc.Client(authority, credentials(secure, options.tls), CHANNEL_OPTIONS);
  const metadata = new grpc.Metadata();
  for (const [name, value] of Object.entries(options.headers)) metadata.set(name, value);
  const call = client.makeBidiStreamRequest(path, serialize, deserialize, metadata, {});
  let over = false;
  // Errors also reach the reader below; this keeps one arriving after it stopped listening from being unhandled.
  call.on("error", () => undefined);
  const cancel = (): void => call.cancel();
  signal.addEventListener("abort", cancel, { once: true });
  const sending = send(call, requests, () => over);
  try {
    for await (const response of call as AsyncIterable<ConnectResponse>) {
      // Cancelling leaves what already arrived in the stream's buffer: none of it is for us now.
      if (signal.aborted) break;
      yield response;
    }
    if (signal.aborted) throw ConnectError.from(signal.reason, Code.Canceled);
  } catch (error) {
    if (signal.aborted) throw ConnectError.from(signal.reason, Code.Canceled);
    throw toConnectError(error);
  } finally {
    over = true;
    signal.removeEventListener("abort", cancel);
    call.cancel();
    client.close();
    void sending;
  }
}
