/**
 * TriggerService.PublishStream: many updates over one stream, each validated, authorized,
 * traced, logged and appended exactly as the unary PublishDataUpdate does it (the same
 * parseDataUpdate, authorizeTopics and publishDataUpdate, so a stream's updates share the
 * process's EventBatcher, and so its broadcaster Publishes, with everyone else's).
 *
 * Order: updates are handled one at a time up to the append, which publishDataUpdate
 * hands to the batcher in the same turn; the batcher keeps the order of its calls, so a
 * stream's positions increase with its indexes. First results are written in index
 * order (a chain of promises); a refused update is an error result and the stream goes on.
 *
 * Flow control: an update counts from the moment it is read until its last result is
 * written (its bytes until its first). While a stream has `maxUnansweredUpdates` or
 * `maxUnansweredBytes` of them, the reader does not ask for the next update, so
 * connect-node stops reading the HTTP/2 stream and flow control holds the caller back.
 * connect-node awaits "drain" on every response write, so a caller that does not read its
 * results stops the writer, its updates stay unanswered, and the reader stops too.
 *
 * connect-node on the server side keeps nothing of a stream once read or written
 * (checked with 264 MB through one stream, test/publish-stream.test.ts): unlike the
 * connect-es *client* (connect-es #1524), so no stream lifetime bound is needed here; a
 * long-lived caller should use grpc-js (services/mesh/cli/publish-stream-client.ts).
 *
 * Tracing: the stream has no server span (a span hours long helps nobody, and the
 * tracing interceptor leaves streams alone); each update's publish span hangs under the
 * caller's `traceparent` of the stream when it sent one, else starts a trace of its own.
 */
import { create, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  type PublishDataUpdateRequest,
  PublishDataUpdateRequestSchema,
  type PublishStreamRequest,
  type PublishStreamResponse,
  PublishStreamResponseSchema,
  type PublishStreamResult,
  PublishStreamResultSchema,
} from "../../gen/opal/mesh/v1/trigger_pb.js";
import type { DataUpdate } from "../../gen/opal/mesh/v1/data_pb.js";
import { PRINCIPAL } from "../common/auth/security.js";
import { AuthError, type Principal } from "../common/auth/tokens.js";
import { parseDataUpdate } from "../common/data-entries.js";
import { connectErrorOf } from "../common/edge/error-mapping.js";
import { ValidationError } from "../common/validation-error.js";
import { logPublished } from "./interceptors.js";
import { publishDataUpdate, type Published, type PublishTrace } from "./publish.js";
import type { TriggerServiceOptions } from "./service.js";

export interface PublishStreamLimits {
  /** Updates read and not yet fully answered (a waiting update counts until its delivery result). */
  maxUnansweredUpdates: number;
  /** About the bytes of updates read and not yet appended (or refused). */
  maxUnansweredBytes: number;
  /** Results coalesced into one response message. */
  maxResultsPerMessage: number;
}

export const DEFAULT_PUBLISH_STREAM_LIMITS: PublishStreamLimits = { maxUnansweredUpdates: 1024, maxUnansweredBytes: 16 * 1024 * 1024, maxResultsPerMessage: 512 };

/** What the unary call has (the same sink, checks and tracing), and this stream's bounds. */
export type PublishStreamOptions = Omit<TriggerServiceOptions, "streamLimits"> & { limits?: Partial<PublishStreamLimits> };

/** gRPC's status name of a code ("INVALID_ARGUMENT"): what the unary call would have ended with. */
export function grpcCodeName(code: Code): string {
  if (code === Code.Canceled) return "CANCELLED";
  return (Code[code] ?? "UNKNOWN").replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** The error result's fields for what refusing (or failing) an update threw. */
export function publishErrorOf(error: unknown): { code: string; message: string; field: string } {
  const field = error instanceof ValidationError ? error.field : "";
  const mapped = connectErrorOf(error);
  const connect = mapped instanceof ConnectError ? mapped : ConnectError.from(mapped, Code.Internal);
  return { code: grpcCodeName(connect.code), message: connect.rawMessage, field };
}

/** About what an update holds in memory while it waits for its append: its inline data, twice (request and event). */
function estimatedBytes(update: DataUpdate): number {
  let bytes = 512;
  for (const entry of update.entries) bytes += 256 + 2 * ((entry.dataJson?.byteLength ?? 0) + entry.configJson.byteLength + entry.url.length);
  return bytes;
}

type Outcome = { result: Published } | { error: unknown };

/** One stream's state: its next index, what is unanswered, and the results ready to write. */
class PublishStream {
  private nextIndex = 0n;
  private unanswered = 0;
  private unansweredBytes = 0;
  private readonly ready: PublishStreamResult[] = [];
  /** Updates whose results, once written, each release one unanswered update. */
  private readonly releases: boolean[] = [];
  /** First results are written in index order: each waits for the one before. */
  private order: Promise<void> = Promise.resolve();
  private wake: (() => void) | undefined;
  private roomWaiter: (() => void) | undefined;
  private reading = true;
  /** The writer is done (the stream ended, or its caller left). */
  private closed = false;
  private readError: unknown;
  private readonly limits: PublishStreamLimits;
  private readonly principal: Principal | undefined;
  private readonly trace: PublishTrace | undefined;
  private published = 0;
  private refused = 0;

  constructor(
    private readonly options: PublishStreamOptions,
    private readonly context: HandlerContext,
  ) {
    this.limits = { ...DEFAULT_PUBLISH_STREAM_LIMITS, ...options.limits };
    this.principal = context.values.get(PRINCIPAL);
    const { tracing } = options;
    if (tracing?.enabled === true) {
      const parent = tracing.extract({ traceparent: context.requestHeader.get("traceparent") ?? undefined, tracestate: context.requestHeader.get("tracestate") ?? undefined });
      this.trace = { tracing, parent, destination: options.logName };
    }
  }

  async *run(requests: AsyncIterable<PublishStreamRequest>): AsyncGenerator<PublishStreamResponse> {
    const reader = this.read(requests);
    try {
      for (;;) {
        if (this.ready.length > 0) {
          const results = this.ready.splice(0, this.limits.maxResultsPerMessage);
          const released = this.releases.splice(0, results.length).filter(Boolean).length;
          yield create(PublishStreamResponseSchema, { results });
          this.release(released, 0);
          continue;
        }
        if (!this.reading && this.readError !== undefined) throw connectErrorOf(this.readError);
        if (!this.reading && this.unanswered === 0) break;
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      // The caller may be gone with updates unanswered: the reader must not wait for room that never comes.
      this.closed = true;
      this.release(0, 0);
      void reader;
      this.options.logger.debug({ published: this.published, refused: this.refused, updates: Number(this.nextIndex) }, "publish stream ended");
    }
  }

  /** Reads updates while there is room; never rejects (a failed read ends the stream through `readError`). */
  private async read(requests: AsyncIterable<PublishStreamRequest>): Promise<void> {
    try {
      for await (const request of requests) {
        for (const update of request.updates) {
          if (this.closed) return;
          await this.accept(update);
        }
      }
    } catch (error) {
      this.readError = error;
    } finally {
      this.reading = false;
      this.notify();
    }
  }

  private async accept(request: PublishDataUpdateRequest): Promise<void> {
    let outcome: Promise<Outcome>;
    let bytes = 0;
    try {
      // Convert once at the edge, as the unary call does: inside the mesh data travels as JSON bytes.
      const update = parseDataUpdate(toJson(PublishDataUpdateRequestSchema, request, { useProtoFieldName: true }), this.options.updateLimits);
      bytes = estimatedBytes(update);
      await this.room(bytes);
      this.take(bytes);
      this.checkNotExpired();
      await this.options.authorizeTopics(this.principal, update.entries.flatMap((entry) => entry.topics));
      // Hands the event to the batcher in this turn: appends keep the stream's order. Settled
      // at once, so that no rejection is unhandled while it waits for its turn in `order`.
      outcome = publishDataUpdate(this.options.sink, update, this.context.signal, this.trace).then(
        (result) => {
          logPublished(this.options.logger, result, update.entries.length);
          return { result };
        },
        (error: unknown) => ({ error }),
      );
    } catch (error) {
      if (bytes === 0) {
        await this.room(0);
        this.take(0);
      }
      outcome = Promise.resolve({ error });
    }
    const index = this.nextIndex++;
    this.order = this.order.then(async () => this.answerFirst(index, request, bytes, await outcome));
  }

  /**
   * The token was checked when the stream opened; a stream outlives it. Each update after
   * its `exp` is refused, as a unary call with that token would be: the caller opens a new
   * stream with a fresh token.
   */
  private checkNotExpired(): void {
    const exp = this.principal?.claims.exp;
    if (typeof exp === "number" && Date.now() >= exp * 1000) throw new AuthError(`the stream's token expired at ${new Date(exp * 1000).toISOString()}: open a new stream with a fresh token`, 401);
  }

  private answerFirst(index: bigint, request: PublishDataUpdateRequest, bytes: number, outcome: Outcome): void {
    this.release(0, bytes);
    if ("error" in outcome) {
      this.refused++;
      this.push(create(PublishStreamResultSchema, { index, error: publishErrorOf(outcome.error) }), true);
      return;
    }
    this.published++;
    const { id, position } = outcome.result;
    this.push(create(PublishStreamResultSchema, { index, id, position }), !request.wait);
    if (request.wait) {
      this.options.delivery.status(id, { position, wait: true, timeoutMs: request.waitTimeoutMs }, this.context.signal).then(
        (delivery) => this.push(create(PublishStreamResultSchema, { index, id, position, delivery }), true),
        (error: unknown) => this.push(create(PublishStreamResultSchema, { index, id, position, error: publishErrorOf(error) }), true),
      );
    }
  }

  private push(result: PublishStreamResult, last: boolean): void {
    this.ready.push(result);
    this.releases.push(last);
    this.notify();
  }

  private take(bytes: number): void {
    this.unanswered++;
    this.unansweredBytes += bytes;
  }

  private release(updates: number, bytes: number): void {
    this.unanswered -= updates;
    this.unansweredBytes -= bytes;
    if (!this.full(0) || this.closed) {
      const waiter = this.roomWaiter;
      this.roomWaiter = undefined;
      waiter?.();
    }
  }

  /** An update always fits an empty stream, however large (the message limit bounds it). */
  private full(bytes: number): boolean {
    if (this.unanswered === 0 || this.closed) return false;
    return this.unanswered >= this.limits.maxUnansweredUpdates || this.unansweredBytes + bytes > this.limits.maxUnansweredBytes;
  }

  private async room(bytes: number): Promise<void> {
    while (this.full(bytes)) await new Promise<void>((resolve) => (this.roomWaiter = resolve));
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

/** The handler of PublishStream. */
export function publishStream(options: PublishStreamOptions, requests: AsyncIterable<PublishStreamRequest>, context: HandlerContext): AsyncGenerator<PublishStreamResponse> {
  return new PublishStream(options, context).run(requests);
}
