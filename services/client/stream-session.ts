/**
 * The client's side of the stream: discover where the distributor's stream listener is,
 * open the stream, say Hello (with the position to resume from), hand what arrives to
 * the agent, send ACKs; on failure, back off and try the next server URL.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  type AckSchema,
  type ClientReport,
  type ConnectRequest,
  ConnectRequestSchema,
  DistributorService,
  type Resync,
  type SnapshotPart,
  type Welcome,
} from "../../gen/opal/mesh/v1/distributor_pb.js";
import type { Event } from "../../gen/opal/mesh/v1/event_pb.js";
import { backoffDelay, sleep } from "../common/backoff.js";
import { redactUrl } from "../common/config/env-reader.js";
import type { Logger } from "../common/logger.js";
import type { ClientTls } from "../common/config/tls-config.js";
import { AckCoalescer } from "./ack-coalescer.js";
import { distributorStream } from "./grpc-stream.js";
import { Outbox } from "./outbox.js";
import { callTransport } from "./server-transports.js";
import { hopClock } from "../common/telemetry/hop-clock.js";

/**
 * The distributor keeps one stream per client id: a newer one replaces ours with ABORTED.
 * Two live clients sharing an id would replace each other at once, forever; waiting this
 * long before coming back makes that a slow, visible turn-taking instead.
 */
const REPLACED_RETRY_MS = 10_000;

export interface ResumePoint {
  logId: string;
  position: bigint;
}

export interface StreamHandlers {
  /** `resumed` is false when the client must load its baseline. */
  onWelcome(welcome: Welcome, resumed: boolean): void;
  onEvent(event: Event): void;
  onResync(resync: Resync): void;
  /** A part of the snapshot that a Welcome or Resync said follows. */
  onSnapshot(part: SnapshotPart): void;
  onConnectionChange(connected: boolean, error?: string): void;
}

export interface StreamSessionOptions {
  serverUrls: readonly string[];
  token: string | undefined;
  clientId: string;
  topics: readonly string[];
  scope: string;
  /** OPAL_MESH_CLIENT_LABELS, in every Hello (the distributor keeps them on the session). */
  labels?: Readonly<Record<string, string>>;
  logger: Logger;
  handlers: StreamHandlers;
  /** Where to resume from, or undefined to start fresh (baseline). */
  resumePoint: () => ResumePoint | undefined;
  policyHash: () => string;
  tls?: ClientTls;
}

export class StreamSession {
  readonly name = "stream-session";
  private outbox: Outbox<ConnectRequest> | undefined;
  /** The stream's ACKs once welcomed (cumulative where the server takes them); before that they go alone. */
  private acks: AckCoalescer | undefined;
  private connection: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private serverIndex = 0;

  constructor(private readonly options: StreamSessionOptions) {}

  /** The server URL in use (or about to be tried). */
  get serverUrl(): string {
    return this.options.serverUrls[this.serverIndex % this.options.serverUrls.length] as string;
  }

  start(signal: AbortSignal): Promise<void> {
    this.loop = this.run(signal);
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    this.connection?.abort();
    await this.loop;
  }

  sendAck(ack: MessageInitShape<typeof AckSchema>): void {
    if (this.acks !== undefined) this.acks.push(ack);
    else this.pushAck(this.outbox, ack);
  }

  private pushAck(outbox: Outbox<ConnectRequest> | undefined, ack: MessageInitShape<typeof AckSchema>): void {
    outbox?.push(create(ConnectRequestSchema, { message: { case: "ack", value: ack } }));
  }

  /** The client's health for the distributor's dashboard; dropped while disconnected. */
  sendReport(report: Omit<ClientReport, "$typeName">): void {
    this.outbox?.push(create(ConnectRequestSchema, { message: { case: "report", value: report } }));
  }

  /** Drops the current stream; the loop reconnects at once (e.g. to resync after OPA restarted). */
  reconnect(): void {
    this.connection?.abort(new Error("reconnecting"));
  }

  private headers(): Record<string, string> {
    return this.options.token === undefined ? {} : { authorization: `Bearer ${this.options.token}` };
  }

  private async run(signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      const serverUrl = this.serverUrl;
      const connection = new AbortController();
      this.connection = connection;
      const onAbort = (): void => connection.abort();
      signal.addEventListener("abort", onAbort, { once: true });
      let receivedWelcome = false;
      let replaced = false;
      try {
        const streamUrl = await this.discover(serverUrl, connection.signal);
        receivedWelcome = await this.stream(streamUrl, connection.signal);
        // The server ended the stream cleanly (e.g. shutting down): reconnect.
      } catch (error) {
        if (signal.aborted) break;
        const message = error instanceof ConnectError ? error.rawMessage : (error as Error).message;
        this.options.handlers.onConnectionChange(false, message);
        replaced = error instanceof ConnectError && error.code === Code.Aborted;
        if (replaced) {
          this.options.logger.error({ server: redactUrl(serverUrl), clientId: this.options.clientId, err: message }, `the server replaced this stream with a newer one with the same client id; is another client running with it? retrying in ${REPLACED_RETRY_MS / 1000} s`);
        } else if (!connection.signal.aborted) {
          // Dropped for being slow (RESOURCE_EXHAUSTED) or cut off: the next stream resumes from what was applied.
          this.options.logger.warn({ server: redactUrl(serverUrl), err: message }, "stream to the server failed");
        }
      } finally {
        signal.removeEventListener("abort", onAbort);
        this.acks?.close();
        this.acks = undefined;
        this.outbox?.close();
        this.outbox = undefined;
      }
      if (signal.aborted) break;
      // A session that got going resets the backoff; repeated failures move to the next server.
      failures = receivedWelcome ? 1 : failures + 1;
      if (!receivedWelcome) this.serverIndex++;
      const reconnectRequested = connection.signal.aborted;
      const delay = replaced ? REPLACED_RETRY_MS : backoffDelay(failures, { initialMs: 100, maxMs: 10_000, jitter: 0.5 });
      if (!reconnectRequested) await sleep(delay, signal).catch(() => undefined);
    }
    this.options.handlers.onConnectionChange(false, "stopped");
  }

  private async discover(serverUrl: string, signal: AbortSignal): Promise<string> {
    const transport = callTransport(serverUrl, this.options.tls);
    const response = await createClient(DistributorService, transport).discoverStream({}, { signal, headers: this.headers(), timeoutMs: 10_000 });
    if (response.url !== "") return response.url;
    const base = new URL(serverUrl);
    return `${response.tls ? "https" : "http"}://${base.hostname.includes(":") ? `[${base.hostname}]` : base.hostname}:${response.port}`;
  }

  private received(event: Event): void {
    if (hopClock.enabled && event.payload.case === "dataUpdate") hopClock.mark("client.received", event.payload.value.id, this.options.clientId);
    this.options.handlers.onEvent(event);
  }

  /** Returns whether the server welcomed us (a healthy session), once the stream ends. */
  private async stream(streamUrl: string, signal: AbortSignal): Promise<boolean> {
    const outbox = new Outbox<ConnectRequest>();
    this.outbox = outbox;
    const resume = this.options.resumePoint();
    outbox.push(
      create(ConnectRequestSchema, {
        message: {
          case: "hello",
          value: {
            clientId: this.options.clientId,
            topics: [...this.options.topics],
            scope: this.options.scope,
            resumeFromPosition: resume?.position,
            logId: resume?.logId ?? "",
            policyHash: this.options.policyHash(),
            // A fresh or resynced start gets the log's snapshot to write with the baseline.
            acceptsSnapshot: true,
            // Events that queue up for us come in one message (the stream protocol, docs/architecture.md).
            acceptsBatches: true,
            labels: { ...this.options.labels },
          },
        },
      }),
    );
    let welcomed = false;
    // On grpc-js, not connect-es: a connect-es stream keeps every message it received until it ends (see grpc-stream.ts).
    for await (const response of distributorStream(outbox.drain(), { url: streamUrl, tls: this.options.tls, headers: this.headers(), signal })) {
      switch (response.message.case) {
        case "welcome": {
          welcomed = true;
          const welcome = response.message.value;
          const resumed = resume !== undefined && resume.logId === welcome.logId;
          // The server counts cumulative ACKs from where this session starts: the resume point, or the head.
          this.acks?.close();
          this.acks = new AckCoalescer((ack) => this.pushAck(outbox, ack), resumed ? resume.position : welcome.headPosition, welcome.cumulativeAcks, this.options.clientId);
          this.options.logger.info({ stream: streamUrl, head: welcome.headPosition.toString(), resumed }, "connected to the distributor");
          this.options.handlers.onConnectionChange(true);
          this.options.handlers.onWelcome(welcome, resumed);
          break;
        }
        case "event":
          this.received(response.message.value);
          break;
        case "events":
          for (const event of response.message.value.events) this.received(event);
          break;
        case "resync":
          this.acks?.restartAt(response.message.value.headPosition);
          this.options.handlers.onResync(response.message.value);
          break;
        case "snapshot":
          this.options.handlers.onSnapshot(response.message.value);
          break;
        default:
          break;
      }
    }
    return welcomed;
  }
}
