/**
 * The client-stream listener: DistributorService.Connect on grpc-js, which measured
 * several times cheaper per connected client than connect-node (the stream protocol in
 * docs/architecture.md). Transport only: it accepts a stream, waits for its Hello, checks it and the caller's credentials,
 * hands the stream to the distributor (`StreamHandoff`), and ends it with a gRPC status.
 */
import * as grpc from "@grpc/grpc-js";
import { type Ack, type ClientReport, type ConnectRequest, DistributorService, type Hello } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { AuthError } from "../common/auth/tokens.js";
import { DEFAULT_LISTENER_LIMITS, type ListenerLimits } from "../common/config/listener-config.js";
import { bindGuarded, type GuardedPort } from "../common/grpc/guarded-port.js";
import { grpcServiceDefinition } from "../common/grpc/service-definition.js";
import { Closing, type Closed, type Component } from "../common/lifecycle.js";
import type { Logger } from "../common/logger.js";
import { encodePong } from "./frames.js";
import { helloProblem } from "./hello.js";
import { SendQueue } from "./send-queue.js";
import type { ClientSession, FrameSink } from "./session.js";
import { endCall, STATUS, type ConnectCall } from "./stream-end.js";

/** What the distributor does with a stream once its Hello is accepted (sessions.ts). */
export interface StreamHandoff {
  /** Makes, welcomes and registers the session; `signal` aborts when the stream ends. */
  open(hello: Hello, peer: string, sink: FrameSink, signal: AbortSignal): ClientSession;
  ack(session: ClientSession, ack: Ack): void;
  report(session: ClientSession, report: ClientReport): void;
  close(session: ClientSession): void;
}

export interface StreamServerOptions {
  host: string;
  port: number;
  handoff: StreamHandoff;
  logger: Logger;
  /** TLS, and mTLS when a client CA is given. */
  tls?: { cert: Buffer; key: Buffer; clientCa?: Buffer | undefined } | undefined;
  /** Largest message a client may send. */
  maxMessageBytes?: number;
  /** First-byte and start deadlines, idle connections, the connection cap (OPAL_MESH_HTTP_*, OPAL_MESH_MAX_CONNECTIONS). */
  limits?: ListenerLimits;
  helloTimeoutMs: number;
  /** OPAL_SCOPES: whether clients may join a scope other than the default. */
  scopes: boolean;
  /**
   * Checks the caller's token (gRPC metadata `authorization`) against its Hello: a client
   * token, its topics within permitted_topics, its scope within allowed_scopes. Throws
   * AuthError; absent means no authentication (tests of this module alone).
   */
  authorize?: (authorization: string | undefined, hello: Hello) => Promise<void>;
}

export class StreamServer implements Component {
  readonly name = "stream server";
  private readonly server: grpc.Server;
  private readonly calls = new Set<ConnectCall>();
  private boundPort = 0;
  private listener: GuardedPort | undefined;
  private readonly closing = new Closing();
  private stopping: Promise<void> | undefined;

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
    this.server.addService(grpcServiceDefinition(DistributorService), { connect: (call: ConnectCall) => this.accept(call) });
  }

  get port(): number {
    return this.boundPort;
  }

  get closed(): Promise<Closed> {
    return this.closing.closed;
  }

  async start(): Promise<void> {
    const tls = this.options.tls;
    const credentials =
      tls === undefined ? grpc.ServerCredentials.createInsecure() : grpc.ServerCredentials.createSsl(tls.clientCa ?? null, [{ cert_chain: tls.cert, private_key: tls.key }], tls.clientCa !== undefined);
    this.listener = await bindGuarded(this.server, this.options.host, this.options.port, credentials, this.options.limits ?? DEFAULT_LISTENER_LIMITS);
    this.boundPort = this.listener.port;
  }

  /** Ends every stream (UNAVAILABLE: clients go elsewhere or come back) and closes the port. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const call of this.calls) call.emit("error", { code: grpc.status.UNAVAILABLE, details: "server shutting down" });
      this.listener?.close();
      this.server.forceShutdown();
      await Promise.resolve();
      this.closing.stopped();
    })();
    return this.stopping;
  }

  private accept(call: ConnectCall): void {
    this.calls.add(call);
    const { handoff, logger } = this.options;
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
      resetTimer = endCall(call, code, details);
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
      if (session !== undefined) handoff.close(session);
    };
    const hello = (message: Hello): void => {
      if (session !== undefined || helloSeen) {
        fail(grpc.status.INVALID_ARGUMENT, "Hello must be sent once, first");
        return;
      }
      helloSeen = true;
      clearTimeout(helloTimer);
      const problem = helloProblem(message, this.options.scopes);
      if (problem !== undefined) {
        logger.warn({ clientId: message.clientId, reason: problem }, "client stream refused");
        fail(grpc.status.INVALID_ARGUMENT, problem);
        return;
      }
      const authorization = call.metadata.get("authorization")[0];
      void (this.options.authorize?.(typeof authorization === "string" ? authorization : undefined, message) ?? Promise.resolve()).then(
        () => {
          if (cleanedUp) return;
          try {
            // Before the session opens: what its catch-up queues in this turn may already go together.
            if (message.acceptsBatches) queue.enableBatches();
            session = handoff.open(message, call.getPeer(), sink, abort.signal);
          } catch (error) {
            logger.error({ err: error, clientId: message.clientId }, "could not open a client's session");
            fail(grpc.status.INTERNAL, "could not open the session");
          }
        },
        (error: unknown) => {
          if (error instanceof AuthError) {
            logger.warn({ clientId: message.clientId, reason: error.message }, "client stream refused");
            fail(error.status === 401 ? grpc.status.UNAUTHENTICATED : grpc.status.PERMISSION_DENIED, error.message);
          } else {
            logger.error({ err: error, clientId: message.clientId }, "could not check a client's credentials");
            fail(grpc.status.INTERNAL, "could not check the client's credentials");
          }
        },
      );
    };
    call.on("data", (message: ConnectRequest) => {
      switch (message.message.case) {
        case "hello":
          hello(message.message.value);
          return;
        case "ack":
          if (session === undefined) fail(grpc.status.INVALID_ARGUMENT, "the first message must be Hello");
          else handoff.ack(session, message.message.value);
          return;
        case "report":
          // Clients report only after Welcome; one racing our check of its Hello is dropped.
          if (session === undefined && !helloSeen) fail(grpc.status.INVALID_ARGUMENT, "the first message must be Hello");
          else if (session !== undefined) handoff.report(session, message.message.value);
          return;
        case "ping":
          queue.write(encodePong(message.message.value.nonce));
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
}
