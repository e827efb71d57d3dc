/**
 * The client-stream listener: DistributorService.Connect on grpc-js, which measured
 * several times cheaper per connected client than connect-node (DESIGN.md §9).
 */
import { constants as http2 } from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import type { BroadcasterService } from "../../gen/opal/mesh/v1/broadcaster_pb.js";
import { type Ack, type ConnectRequest, ConnectResponseSchema, DistributorService, type Hello } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { AuthError } from "../common/auth/tokens.js";
import { DEFAULT_LISTENER_LIMITS, type ListenerLimits } from "../common/config/listener-config.js";
import { bindGuarded, type GuardedPort } from "../common/grpc/guarded-port.js";
import { grpcServiceDefinition } from "../common/grpc/service-definition.js";
import type { Logger } from "../common/logger.js";
import { DEFAULT_SCOPE, isDefaultScope, isScopedTopic, scopeIdProblem, scopeNoticeTopic, scopeTopic } from "../common/scopes/scoped-topics.js";
import { encodeEventFor, encodeResync, type Fanout } from "./fanout.js";
import { SendQueue } from "./send-queue.js";
import { ClientSession, type FrameSink } from "./session.js";

export interface StreamServerOptions {
  host: string;
  port: number;
  fanout: Fanout;
  broadcaster: Client<typeof BroadcasterService>;
  logger: Logger;
  /** A client's send buffer: past either bound it is dropped (it resumes by itself). */
  maxBufferedFrames: number;
  maxBufferedBytes: number;
  /** TLS, and mTLS when a client CA is given. */
  tls?: { cert: Buffer; key: Buffer; clientCa?: Buffer | undefined };
  /** Largest message a client may send. */
  maxMessageBytes?: number;
  /** First-byte and start deadlines, idle connections, the connection cap (OPAL_MESH_HTTP_*, OPAL_MESH_MAX_CONNECTIONS). */
  limits?: ListenerLimits;
  helloTimeoutMs: number;
  /** OPAL_SCOPES: whether clients may join a scope other than the default. */
  scopes: boolean;
  /** Told of every ACK, for fleet-wide delivery status. */
  onAck?: (clientId: string, ack: Ack) => void;
  /** Told when a session opens, closes or reports a new health (for the dashboard). */
  onSessionChange?: () => void;
  /**
   * Checks the caller's token (gRPC metadata `authorization`) against its Hello: a client
   * token, its topics within permitted_topics, its scope within allowed_scopes. Throws
   * AuthError; absent means no authentication (tests of this module alone).
   */
  authorize?: (authorization: string | undefined, hello: Hello) => Promise<void>;
}

type ConnectCall = grpc.ServerDuplexStream<ConnectRequest, Uint8Array>;

const STATUS = {
  resource_exhausted: grpc.status.RESOURCE_EXHAUSTED,
  unavailable: grpc.status.UNAVAILABLE,
  data_loss: grpc.status.DATA_LOSS,
  aborted: grpc.status.ABORTED,
} as const;

/**
 * How long an ended stream may take to deliver its status before it is reset. The status
 * travels behind the frames grpc-js already holds; a client that does not read never gets
 * it, and its HTTP/2 stream (and those frames) would live as long as its connection.
 */
const END_GRACE_MS = 2_000;

/**
 * The HTTP/2 stream under a grpc-js server call. grpc-js has no API to reset a stream, so
 * this walks its call objects (call → nextCall… → stream); undefined if they change shape.
 */
interface ResettableStream {
  close(code: number): void;
  closed: boolean;
  destroyed: boolean;
}

function http2StreamOf(call: ConnectCall): ResettableStream | undefined {
  let node: unknown = (call as unknown as { call?: unknown }).call;
  for (let depth = 0; depth < 8 && typeof node === "object" && node !== null; depth++) {
    const stream = (node as { stream?: unknown }).stream;
    if (typeof stream === "object" && stream !== null && typeof (stream as { close?: unknown }).close === "function" && "rstCode" in stream) {
      return stream as unknown as ResettableStream;
    }
    node = (node as { nextCall?: unknown }).nextCall;
  }
  return undefined;
}

export class StreamServer {
  private readonly server: grpc.Server;
  private readonly calls = new Set<ConnectCall>();
  private boundPort = 0;
  private listener: GuardedPort | undefined;

  constructor(private readonly options: StreamServerOptions) {
    this.server = new grpc.Server({
      "grpc.keepalive_time_ms": 30_000,
      "grpc.keepalive_timeout_ms": 10_000,
      "grpc.keepalive_permit_without_calls": 1,
      "grpc.http2.min_ping_interval_without_data_ms": 5_000,
      "grpc.max_receive_message_length": options.maxMessageBytes ?? 1024 * 1024,
      // A connection with no call open (never opened one, or its stream ended) is closed.
      "grpc.max_connection_idle_ms": (options.limits ?? DEFAULT_LISTENER_LIMITS).idleTimeoutMs,
    });
    this.server.addService(grpcServiceDefinition(DistributorService), {
      connect: (call: ConnectCall) => this.handle(call),
    });
  }

  get port(): number {
    return this.boundPort;
  }

  async start(): Promise<void> {
    const tls = this.options.tls;
    const credentials =
      tls === undefined ? grpc.ServerCredentials.createInsecure() : grpc.ServerCredentials.createSsl(tls.clientCa ?? null, [{ cert_chain: tls.cert, private_key: tls.key }], tls.clientCa !== undefined);
    this.listener = await bindGuarded(this.server, this.options.host, this.options.port, credentials, this.options.limits ?? DEFAULT_LISTENER_LIMITS);
    this.boundPort = this.listener.port;
  }

  async stop(): Promise<void> {
    for (const call of this.calls) call.emit("error", { code: grpc.status.UNAVAILABLE, details: "server shutting down" });
    this.listener?.close();
    this.server.forceShutdown();
    return Promise.resolve();
  }

  private handle(call: ConnectCall): void {
    this.calls.add(call);
    const { fanout, logger } = this.options;
    const abort = new AbortController();
    let session: ClientSession | undefined;
    let helloSeen = false;
    let ended = false;
    // Every frame (events, Welcome, pongs) goes through one queue, in order, counted in bytes.
    const queue = new SendQueue(call);
    let resetTimer: NodeJS.Timeout | undefined;
    const fail = (code: grpc.status, details: string): void => {
      if (ended) return;
      ended = true;
      // What was not handed to grpc-js yet is let go at once; the status follows the rest.
      queue.clear();
      call.emit("error", { code, details });
      resetTimer = setTimeout(() => {
        const stream = http2StreamOf(call);
        if (stream !== undefined && !stream.closed && !stream.destroyed) stream.close(http2.NGHTTP2_ENHANCE_YOUR_CALM);
        // grpc-js's own buffer of frames for this call goes with it.
        call.destroy();
      }, END_GRACE_MS);
      resetTimer.unref();
    };
    const sink: FrameSink = {
      write: (frame) => queue.write(frame),
      buffered: () => queue.frames,
      bufferedBytes: () => queue.bytes,
      whenBelow: (frames, bytes) => queue.whenBelow(frames, bytes),
      fail: (code, message) => fail(STATUS[code], message),
    };
    let cleanedUp = false;
    const helloTimer = setTimeout(() => fail(grpc.status.DEADLINE_EXCEEDED, `no Hello within ${this.options.helloTimeoutMs} ms`), this.options.helloTimeoutMs);

    const cleanup = (): void => {
      if (cleanedUp) return;
      cleanedUp = true;
      clearTimeout(helloTimer);
      clearTimeout(resetTimer);
      queue.clear();
      abort.abort();
      this.calls.delete(call);
      if (session !== undefined) {
        session.close();
        fanout.unregister(session);
        this.options.onSessionChange?.();
        logger.info({ clientId: session.clientId, sessionId: session.sessionId }, "client disconnected");
      }
    };
    call.on("data", (message: ConnectRequest) => {
      switch (message.message.case) {
        case "hello": {
          if (session !== undefined || helloSeen) {
            fail(grpc.status.INVALID_ARGUMENT, "Hello must be sent once, first");
            return;
          }
          helloSeen = true;
          clearTimeout(helloTimer);
          const hello = message.message.value;
          const problem = this.helloProblem(hello);
          if (problem !== undefined) {
            logger.warn({ clientId: hello.clientId, reason: problem }, "client stream refused");
            fail(grpc.status.INVALID_ARGUMENT, problem);
            return;
          }
          const authorization = call.metadata.get("authorization")[0];
          void (this.options.authorize?.(typeof authorization === "string" ? authorization : undefined, hello) ?? Promise.resolve()).then(
            () => {
              if (!cleanedUp) session = this.open(call, hello, sink, abort.signal);
            },
            (error: unknown) => {
              if (error instanceof AuthError) {
                logger.warn({ clientId: hello.clientId, reason: error.message }, "client stream refused");
                fail(error.status === 401 ? grpc.status.UNAUTHENTICATED : grpc.status.PERMISSION_DENIED, error.message);
              } else {
                fail(grpc.status.INTERNAL, "could not check the client's credentials");
              }
            },
          );
          return;
        }
        case "ack":
          if (session === undefined) fail(grpc.status.INVALID_ARGUMENT, "the first message must be Hello");
          else {
            session.recordAck(message.message.value);
            this.options.onAck?.(session.clientId, message.message.value);
          }
          return;
        case "report":
          // Clients report only after Welcome; one racing our check of its Hello is dropped.
          if (session === undefined && !helloSeen) fail(grpc.status.INVALID_ARGUMENT, "the first message must be Hello");
          else if (session?.recordReport(message.message.value) === true) this.options.onSessionChange?.();
          return;
        case "ping":
          queue.write(toBinary(ConnectResponseSchema, create(ConnectResponseSchema, { message: { case: "pong", value: { nonce: message.message.value.nonce } } })));
          return;
        default:
          return; // unknown message kinds from newer clients are ignored
      }
    });
    call.on("end", () => {
      cleanup();
      if (!ended) {
        ended = true;
        call.end();
      }
    });
    call.on("cancelled", cleanup);
    call.on("error", cleanup);
    call.on("close", cleanup);
  }

  /** What makes a Hello unusable, before any credentials are looked at. */
  private helloProblem(hello: Hello): string | undefined {
    if (isDefaultScope(hello.scope)) {
      const scoped = hello.topics.filter(isScopedTopic);
      if (scoped.length > 0) return `topic(s) ${scoped.join(", ")} belong to a scope: join the scope with Hello.scope (OPAL_SCOPE_ID) and plain topics`;
      return undefined;
    }
    if (!this.options.scopes) return `scope ${JSON.stringify(hello.scope)} asked for, but this server does not serve scopes (OPAL_SCOPES=false)`;
    const problem = scopeIdProblem(hello.scope);
    if (problem !== undefined) return `scope ${JSON.stringify(hello.scope)}: ${problem}`;
    const scoped = hello.topics.filter(isScopedTopic);
    if (scoped.length > 0) return `topic(s) ${scoped.join(", ")} name a scope: a scoped client names plain topics`;
    return undefined;
  }

  /**
   * Registers the session synchronously so no live event can slip between Welcome and fan-out.
   *
   * One stream per client id: a new stream with the id of an open one replaces it, and the
   * old one ends with ABORTED saying so. This suits a client that restarts (or reconnects)
   * while its old TCP connection is half-dead and not yet noticed: refusing the newcomer
   * would lock it out until keepalive gives up on the old one; two at once would double its
   * deliveries and ACKs. (Two live processes sharing an id thus take turns; each logs why.)
   */
  private open(call: ConnectCall, hello: Hello, sink: FrameSink, signal: AbortSignal): ClientSession {
    const { fanout, logger } = this.options;
    const scope = isDefaultScope(hello.scope) ? DEFAULT_SCOPE : hello.scope;
    // A scoped client's topics live inside its scope (OPAL's `{scope}:data:{t}`), plus its scope's notices.
    const plain = hello.topics.filter((topic) => topic !== "");
    const topics = scope === DEFAULT_SCOPE ? plain : [...plain.map((topic) => scopeTopic(scope, topic)), scopeNoticeTopic(scope)];
    const clientId = hello.clientId || `anonymous-${call.getPeer()}`;
    const replaced = fanout.sessionsOf(clientId);
    const limits = { maxFrames: this.options.maxBufferedFrames, maxBytes: this.options.maxBufferedBytes };
    const session = new ClientSession(clientId, topics, call.getPeer(), sink, limits, scope);
    const head = fanout.head;
    session.sendControl(
      toBinary(ConnectResponseSchema, create(ConnectResponseSchema, { message: { case: "welcome", value: { sessionId: session.sessionId, headPosition: head, logId: fanout.logId } } })),
    );
    const resume = hello.resumeFromPosition;
    logger.info({ clientId: session.clientId, sessionId: session.sessionId, topics, resume: resume?.toString(), head: head.toString() }, "client connected");
    if (resume === undefined || hello.logId !== fanout.logId) {
      // A fresh client, or one whose position belongs to another log: Welcome's log_id
      // tells it so, and it loads its baseline; events after the head follow.
      session.sentPosition = head;
      fanout.register(session);
    } else if (resume > head) {
      session.sentPosition = head;
      session.sendControl(encodeResync("the client's position is ahead of the log", head));
      fanout.register(session);
    } else if (!this.replayFromMemory(session, resume)) {
      session.beginCatchUp(resume);
      fanout.register(session);
      void this.catchUp(session, resume, signal);
    }
    // Ended after the new one is registered, so the client never counts as gone meanwhile.
    for (const old of replaced) {
      logger.warn({ clientId, sessionId: old.sessionId, peer: old.peer, newSessionId: session.sessionId, newPeer: session.peer }, "a new stream with this client id replaces the open one");
      fanout.unregister(old);
      old.terminate("aborted", `replaced by a newer stream with the same client id ${JSON.stringify(clientId)} (from ${session.peer})`);
    }
    this.options.onSessionChange?.();
    return session;
  }

  /**
   * Replays what the client missed from the fan-out's recent events, when it holds them
   * all, and registers it: synchronously, so no live event slips in between. A replay
   * too long for the client's send buffer goes through the log instead.
   */
  private replayFromMemory(session: ClientSession, resume: bigint): boolean {
    const { fanout } = this.options;
    const missed = fanout.replayFrom(resume);
    if (missed === undefined || missed.length > this.options.maxBufferedFrames / 2) return false;
    if (missed.reduce((bytes, { frame }) => bytes + frame.byteLength, 0) > this.options.maxBufferedBytes / 2) return false;
    session.sentPosition = resume;
    for (const { event, frame } of missed) {
      const addressed = session.accepts(event);
      session.sendCatchUp(addressed ? (session.scope === DEFAULT_SCOPE ? frame : encodeEventFor(event, session.scope)) : undefined, event.position);
    }
    fanout.register(session, resume);
    return true;
  }

  /** Replays what the client missed from the log, then hands it to live fan-out. */
  private async catchUp(session: ClientSession, after: bigint, signal: AbortSignal): Promise<void> {
    const { fanout, broadcaster, logger } = this.options;
    const controller = new AbortController();
    const onAbort = (): void => controller.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      const iterator = broadcaster.subscribe({ afterPosition: after }, { signal: controller.signal })[Symbol.asyncIterator]();
      const first = await iterator.next();
      if (first.done === true || first.value.message.case !== "started") throw new Error("the log did not start the catch-up stream");
      const started = first.value.message.value;
      if (started.truncated) {
        session.sentPosition = fanout.head;
        session.sendControl(encodeResync("the client's position is no longer retained", fanout.head));
        session.endCatchUp();
        return;
      }
      while (session.sentPosition < fanout.head && !session.isClosed) {
        const next = await iterator.next();
        if (next.done === true) throw new Error("the catch-up stream ended early");
        if (next.value.message.case !== "event") continue;
        const event = next.value.message.value;
        await session.roomForCatchUp();
        session.sendCatchUp(session.accepts(event) ? encodeEventFor(event, session.scope) : undefined, event.position);
      }
      session.endCatchUp();
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ConnectError && error.code === Code.DataLoss) {
        // The log dropped what the client missed while we were reading it: resync.
        session.sentPosition = fanout.head;
        session.sendControl(encodeResync("the client's position is no longer retained", fanout.head));
        session.endCatchUp();
        return;
      }
      logger.warn({ err: error, clientId: session.clientId }, "catch-up failed; dropping the client so it resumes");
      fanout.unregister(session);
      session.terminate("unavailable", "could not replay the missed events; reconnect to resume");
    } finally {
      signal.removeEventListener("abort", onAbort);
      controller.abort();
    }
  }
}
