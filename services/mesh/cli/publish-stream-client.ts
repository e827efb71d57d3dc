/**
 * The caller's side of TriggerService.PublishStream, for the CLI's bulk mode, examples and
 * the bench: `publish()` queues an update and resolves with its outcome; updates published
 * in one turn (up to `maxUpdatesPerMessage` or `maxMessageBytes`) go in one request
 * message; at most `maxUnanswered` updates wait for their answers (`room()` says when there
 * is room again), so a fast producer holds a bounded amount of memory, and the server's own
 * bound holds back the rest through HTTP/2 flow control.
 *
 * grpc-js, not connect-es: connect-es 2.3 keeps every message a client stream read until
 * the call ends (connect-es #1524, see services/client/grpc-stream.ts), and a producer's
 * stream may stay open for days. Each update is encoded once, on `publish()`; a request
 * message is the concatenation of its updates' encodings (field 1, length-delimited), so
 * nothing is encoded twice and each message's size is known exactly.
 */
import { once } from "node:events";
import { createSecureContext } from "node:tls";
import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import type { UpdateStatus } from "../../../gen/opal/mesh/v1/delivery_pb.js";
import { PublishDataUpdateRequestSchema, type PublishStreamResponse, PublishStreamResponseSchema, TriggerService } from "../../../gen/opal/mesh/v1/trigger_pb.js";

export interface StreamPublisherOptions {
  /** The server: http(s)://host:port, optionally with a path prefix (behind a proxy). */
  url: string;
  /** A datasource token, sent as `authorization: Bearer …`. */
  token?: string;
  /** For https: the CA (replaces the system's), and a client certificate when the server asks for one. */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  /** More headers for the stream (e.g. `traceparent`: every update's span joins that trace). */
  headers?: Record<string, string>;
  /** Updates sent and not yet finally answered (default 1024). */
  maxUnanswered?: number;
  /** Updates per request message (default 64). */
  maxUpdatesPerMessage?: number;
  /** Bytes per request message, under the server's OPAL_MESH_MAX_BODY_BYTES (default 1 MiB; a larger update goes alone). */
  maxMessageBytes?: number;
  /** Ends the stream; unanswered updates then resolve with a CANCELLED error. */
  signal?: AbortSignal;
}

export interface PublishOutcomeError {
  /** gRPC's status name, as the server gives it ("INVALID_ARGUMENT", …) */
  code: string;
  message: string;
  /** The field at fault ("entries[2].dst_path"), or "". */
  field: string;
}

/** What became of one update: final once it resolves. */
export interface PublishOutcome {
  /** Its number in the stream (the order of `publish()` calls, from 0). */
  index: number;
  /** Its id and position; "" and 0n when it was refused or its fate is unknown. */
  id: string;
  position: bigint;
  /** Refused (or, with wait, its wait failed; or the stream ended before its answer). */
  error?: PublishOutcomeError;
  /** With wait: its delivery when the server answered. */
  delivery?: UpdateStatus;
}

interface Unanswered {
  wait: boolean;
  id: string;
  position: bigint;
  resolve: (outcome: PublishOutcome) => void;
}

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  "grpc.keepalive_time_ms": 15_000,
  "grpc.keepalive_timeout_ms": 10_000,
  "grpc.keepalive_permit_without_calls": 1,
  "grpc.max_send_message_length": -1,
  "grpc.enable_retries": 0,
  "grpc.use_local_subchannel_pool": 1,
};

const METHOD_PATH = `/${TriggerService.typeName}/${TriggerService.method.publishStream.name}`;
const GRPC_STATUS_NAMES: Readonly<Record<number, string>> = Object.fromEntries(Object.entries(grpc.status).filter(([, value]) => typeof value === "number").map(([name, value]) => [value, name]));

/** Length-delimited field 1 (PublishStreamRequest.updates): the tag and the varint length. */
function fieldHeader(length: number): Buffer {
  const bytes = [0x0a];
  let rest = length;
  while (rest >= 0x80) {
    bytes.push((rest & 0x7f) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

function credentials(url: URL, tls: StreamPublisherOptions["tls"]): grpc.ChannelCredentials {
  if (url.protocol !== "https:") return grpc.credentials.createInsecure();
  return grpc.credentials.createFromSecureContext(createSecureContext({ ca: tls?.ca, cert: tls?.cert, key: tls?.key }));
}

export class StreamPublisher {
  private readonly client: grpc.Client;
  private readonly call: grpc.ClientDuplexStream<Buffer, PublishStreamResponse>;
  private readonly unanswered = new Map<number, Unanswered>();
  private sent = 0;
  private batch: Buffer[] = [];
  private batchBytes = 0;
  private batchUpdates = 0;
  private flushScheduled = false;
  private draining: Promise<void> | undefined;
  private roomWaiters: Array<() => void> = [];
  private readonly maxUnanswered: number;
  private readonly maxUpdatesPerMessage: number;
  private readonly maxMessageBytes: number;
  /** Settles with the stream's status once it ended (OK: the caller half-closed and every update was answered). */
  readonly ended: Promise<grpc.StatusObject>;

  constructor(options: StreamPublisherOptions) {
    this.maxUnanswered = options.maxUnanswered ?? 1024;
    this.maxUpdatesPerMessage = options.maxUpdatesPerMessage ?? 64;
    this.maxMessageBytes = options.maxMessageBytes ?? 1024 * 1024;
    const url = new URL(options.url);
    const secure = url.protocol === "https:";
    const authority = `${url.hostname}:${url.port === "" ? (secure ? 443 : 80) : url.port}`;
    this.client = new grpc.Client(authority, credentials(url, options.tls), CHANNEL_OPTIONS);
    const metadata = new grpc.Metadata();
    for (const [name, value] of Object.entries(options.headers ?? {})) metadata.set(name, value);
    if (options.token !== undefined) metadata.set("authorization", `Bearer ${options.token}`);
    const path = `${url.pathname.replace(/\/+$/, "")}${METHOD_PATH}`;
    this.call = this.client.makeBidiStreamRequest(path, (bytes: Buffer) => bytes, (bytes: Buffer) => fromBinary(PublishStreamResponseSchema, bytes), metadata, {});
    this.call.on("data", (response: PublishStreamResponse) => this.onResponse(response));
    // The outcome arrives as "status" too; this keeps an error event from being unhandled.
    this.call.on("error", () => undefined);
    this.ended = new Promise((resolve) => this.call.once("status", (status: grpc.StatusObject) => resolve(status)));
    void this.ended.then((status) => this.onEnd(status));
    options.signal?.addEventListener("abort", () => this.call.cancel(), { once: true });
  }

  /** How many updates are sent (or queued) and not finally answered. */
  get pending(): number {
    return this.unanswered.size;
  }

  /** Resolves once fewer than `maxUnanswered` updates wait for their answers. */
  async room(): Promise<void> {
    while (this.unanswered.size >= this.maxUnanswered) await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
  }

  /** Queues one update; resolves with its final outcome (never rejects). */
  publish(update: MessageInitShape<typeof PublishDataUpdateRequestSchema>): Promise<PublishOutcome> {
    // create() hands back a message it is given as it is.
    const message = create(PublishDataUpdateRequestSchema, update);
    const encoded = toBinary(PublishDataUpdateRequestSchema, message);
    const index = this.sent++;
    const outcome = new Promise<PublishOutcome>((resolve) => this.unanswered.set(index, { wait: message.wait, id: "", position: 0n, resolve }));
    const header = fieldHeader(encoded.byteLength);
    const bytes = header.byteLength + encoded.byteLength;
    if (this.batchUpdates > 0 && this.batchBytes + bytes > this.maxMessageBytes) this.flush();
    this.batch.push(header, Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength));
    this.batchBytes += bytes;
    this.batchUpdates++;
    if (this.batchUpdates >= this.maxUpdatesPerMessage) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return outcome;
  }

  /** Half-closes the stream once everything queued is sent; resolves when the server ended it (every update answered). */
  async end(): Promise<grpc.StatusObject> {
    this.flush();
    await this.draining;
    this.call.end();
    return this.ended;
  }

  /** Ends the stream at once (updates not yet answered resolve with CANCELLED). */
  cancel(): void {
    this.call.cancel();
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.batch.length === 0) return;
    const message = Buffer.concat(this.batch, this.batchBytes);
    this.batch = [];
    this.batchBytes = 0;
    this.batchUpdates = 0;
    // grpc-js queues what it cannot write yet; the unanswered bound keeps that queue bounded.
    if (!this.call.write(message)) this.draining ??= once(this.call, "drain").then(() => (this.draining = undefined), () => (this.draining = undefined));
  }

  private onResponse(response: PublishStreamResponse): void {
    for (const result of response.results) {
      const index = Number(result.index);
      const waiting = this.unanswered.get(index);
      if (waiting === undefined) continue;
      const error = result.error === undefined ? undefined : { code: result.error.code, message: result.error.message, field: result.error.field };
      // A waiting update's first result carries its position; its second, the delivery (or the wait's error).
      if (waiting.wait && error === undefined && result.delivery === undefined) {
        waiting.id = result.id;
        waiting.position = result.position;
        continue;
      }
      this.settle(index, { index, id: result.id || waiting.id, position: result.position || waiting.position, error, delivery: result.delivery });
    }
  }

  private onEnd(status: grpc.StatusObject): void {
    const code = GRPC_STATUS_NAMES[status.code] ?? "UNKNOWN";
    for (const [index, waiting] of [...this.unanswered]) {
      const message =
        waiting.position > 0n
          ? `the stream ended (${code}: ${status.details}) before its delivery was known`
          : `the stream ended (${code}: ${status.details}) before its answer: it may or may not have been published`;
      this.settle(index, { index, id: waiting.id, position: waiting.position, error: { code: status.code === grpc.status.OK ? "UNKNOWN" : code, message, field: "" } });
    }
    this.client.close();
  }

  private settle(index: number, outcome: PublishOutcome): void {
    const waiting = this.unanswered.get(index);
    if (waiting === undefined) return;
    this.unanswered.delete(index);
    waiting.resolve(outcome);
    if (this.unanswered.size < this.maxUnanswered) for (const wake of this.roomWaiters.splice(0)) wake();
  }
}

/** gRPC's name of a status code ("RESOURCE_EXHAUSTED"). */
export function statusName(code: number): string {
  return GRPC_STATUS_NAMES[code] ?? "UNKNOWN";
}
