/**
 * One unmodified OPAL client's websocket (its data updater and its policy updater each
 * open one), speaking fastapi_websocket_pubsub: it pings until we answer, subscribes to
 * its topics, and we call its `notify` once per subscribed topic an event is published
 * to. Once subscribed it is a session of fan-out like any other client — the same events,
 * in the same log order — and this class is the session's sink: it turns each frame into
 * OPAL's notifications.
 *
 * What OPAL's client cannot do, it is not asked to: it never resumes (a reconnect is a new
 * connection, and the client refetches its policy and data sources), so the session starts
 * at the head and gets no snapshot. What it applied is known only from its update
 * reports: every data update we send names this connection's report URL among its
 * callbacks, and a first probe update with no entries says whether reports come at all.
 */
import { randomUUID } from "node:crypto";
import { create, fromBinary } from "@bufbuild/protobuf";
import type { WebSocket } from "ws";
import { AckSchema, AckStatus, ConnectResponseSchema, HelloSchema } from "../../../gen/opal/mesh/v1/distributor_pb.js";
import type { Event } from "../../../gen/opal/mesh/v1/event_pb.js";
import type { Logger } from "../../common/logger.js";
import { DEFAULT_SCOPE, scopeOfTopic, unscopeTopic } from "../../common/scopes/scoped-topics.js";
import { subscriptionOf } from "../hello.js";
import type { FrameSink, ClientSession } from "../session.js";
import type { Sessions } from "../sessions.js";
import { parseRpcMessage, type RpcRequest, requestFrame, responseFrame, RpcFrameError } from "./json-rpc.js";
import { type OpalEvent, opalEventOf, reportCallback } from "./opal-notifications.js";

/** Shared by every connection: a frame (the same bytes for every session of a scope) is decoded once. */
const decoded = new WeakMap<Uint8Array, { event: OpalEvent | undefined; resync: boolean }>();

function decode(frame: Uint8Array, scope: string): { event: OpalEvent | undefined; resync: boolean } {
  let known = decoded.get(frame);
  if (known === undefined) {
    const message = fromBinary(ConnectResponseSchema, frame).message;
    const events: Event[] = message.case === "event" ? [message.value] : message.case === "events" ? message.value.events : [];
    known = { event: events[0] === undefined ? undefined : opalEventOf(events[0], scope), resync: message.case === "resync" };
    decoded.set(frame, known);
  }
  return known;
}

export interface OpalConnectionOptions {
  socket: WebSocket;
  peer: string;
  /** Where this connection's update reports go (its key appended). */
  reportUrl: string;
  sessions: Pick<Sessions, "open" | "close" | "ack">;
  /** Refuses (throws, with the reason) topics the client's token or the server's scope setting does not allow. */
  authorize: (scope: string, topics: readonly string[]) => Promise<void>;
  logger: Logger;
  /** Updates whose reports are remembered (the newest). */
  maxUnreported?: number;
}

/** What we tell the client when we end its connection (its library reconnects, except on a refused handshake). */
const CLOSE_CODES = { resource_exhausted: 1013, unavailable: 1012, data_loss: 1011, aborted: 1000 } as const;

export class OpalConnection implements FrameSink {
  readonly channelId = randomUUID().replaceAll("-", "");
  /** The capability in this connection's report URL: whoever holds it speaks for this client. */
  readonly reportKey = randomUUID().replaceAll("-", "");
  private session: ClientSession | undefined;
  private scope = DEFAULT_SCOPE;
  private readonly subscribed = new Set<string>();
  private readonly controller = new AbortController();
  /** Sent data updates awaiting a report: id → position (oldest first, bounded). */
  private readonly unreported = new Map<string, bigint>();
  private probeId: string | undefined;
  private inFlight = 0;
  private readonly drainWaiters = new Set<() => void>();
  private work: Promise<void> = Promise.resolve();

  constructor(private readonly options: OpalConnectionOptions) {
    const { socket } = options;
    socket.on("message", (data, isBinary) => {
      // Requests are handled one at a time, in order, as OPAL's own server reads them.
      const text = isBinary ? "" : Buffer.isBuffer(data) ? data.toString("utf8") : Buffer.concat(Array.isArray(data) ? data : [Buffer.from(data)]).toString("utf8");
      this.work = this.work.then(() => this.onMessage(text));
    });
    socket.on("close", () => this.closed());
  }

  get clientId(): string {
    return `opal:${this.options.peer}`;
  }

  get sessionOf(): ClientSession | undefined {
    return this.session;
  }

  private async onMessage(text: string): Promise<void> {
    try {
      const message = parseRpcMessage(text);
      if (message.kind === "request") await this.onRequest(message.request);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      if (!(error instanceof RpcFrameError)) this.options.logger.warn({ clientId: this.clientId, reason }, "OPAL client refused");
      this.end(1008, reason);
    }
  }

  private async onRequest(request: RpcRequest): Promise<void> {
    const answer = (result: unknown, type: string): void => this.send(responseFrame(request.callId, result, type));
    switch (request.method) {
      case "_ping_":
      case "ping":
        return answer("pong", "str");
      case "_get_channel_id_":
        return answer(this.channelId, "str");
      case "subscribe": {
        const probe = await this.subscribe(topicsArgument(request));
        answer(true, "bool");
        if (probe !== undefined) this.sendProbe(probe);
        return;
      }
      case "unsubscribe":
        for (const topic of topicsArgument(request)) this.subscribed.delete(topic);
        this.session?.setTopics(this.sessionTopics());
        return answer(true, "bool");
      case "publish": {
        // OPAL's clients publish only their statistics (__opal_stats_add); updates come in through the trigger API.
        const topics = topicsArgument(request);
        const statistics = topics.every((topic) => topic.startsWith("__opal_stats"));
        if (!statistics) this.options.logger.warn({ clientId: this.clientId, topics }, "an OPAL client tried to publish over /ws: publish with POST /data/config");
        return answer(statistics, "bool");
      }
      default:
        throw new Error(`unknown RPC method ${JSON.stringify(request.method)}`);
    }
  }

  /** Returns the topic to probe on, when this subscribe opened a session for data topics. */
  private async subscribe(topics: readonly string[]): Promise<string | undefined> {
    const scopes = new Set([...this.subscribed, ...topics].map(scopeOfTopic));
    if (scopes.size > 1) throw new Error(`topics of more than one scope (${[...scopes].join(", ")}): an OPAL client subscribes within its OPAL_SCOPE_ID`);
    const scope = [...scopes][0] ?? DEFAULT_SCOPE;
    await this.options.authorize(scope, topics.map(unscopeTopic));
    for (const topic of topics) this.subscribed.add(topic);
    this.scope = scope;
    if (this.session !== undefined) {
      this.session.setTopics(this.sessionTopics());
      return undefined;
    }
    const hello = create(HelloSchema, { clientId: this.clientId, topics: [...this.subscribed].map(unscopeTopic), scope });
    this.session = this.options.sessions.open(hello, this.options.peer, this, this.controller.signal, "opal-ws");
    return topics.find((topic) => !unscopeTopic(topic).startsWith("policy:"));
  }

  private sessionTopics(): string[] {
    return subscriptionOf(create(HelloSchema, { topics: [...this.subscribed].map(unscopeTopic), scope: this.scope })).topics;
  }

  /** An update with no entries, whose only effect is a report from a client that sends them. */
  private sendProbe(topic: string): void {
    this.probeId = `opal-mesh-probe-${randomUUID()}`;
    const body = `{"id":${JSON.stringify(this.probeId)},"entries":[],"reason":"opal-mesh: does this client report on updates?","callback":{"callbacks":[${reportCallback(this.reportUrl())}]}}`;
    this.notify(topic, body);
  }

  private reportUrl(): string {
    return `${this.options.reportUrl}/${this.reportKey}`;
  }

  /** OPAL's DataUpdateReport for an update we sent: the client's ACK. */
  report(updateId: string, failedEntries: readonly string[]): void {
    const session = this.session;
    if (session === undefined) return;
    if (!session.confirms) {
      session.markConfirming();
      this.options.logger.info({ clientId: this.clientId }, "OPAL client reports on updates: its deliveries are confirmed from now on");
    }
    const position = this.unreported.get(updateId);
    if (position === undefined) return; // the probe, a repeated notification's second report, or forgotten
    this.unreported.delete(updateId);
    const failed = failedEntries.length > 0;
    const error = failed ? `OPAL client could not apply ${failedEntries.join("; ")}` : "";
    this.options.sessions.ack(session, create(AckSchema, { position, updateId, status: failed ? AckStatus.FAILED : AckStatus.APPLIED, error }));
  }

  // FrameSink: fan-out (and catch-up) hand us the frames of the session.
  write(frame: Uint8Array): boolean {
    const { event, resync } = decode(frame, this.scope);
    if (resync) {
      // The log was replaced: OPAL's own answer is to close every client (1012), which refetches everything.
      this.end(1012, "the server's log was replaced: reconnect and refetch");
      return false;
    }
    if (event === undefined) return true;
    const matched = event.topics.filter((topic) => this.subscribed.has(topic));
    if (matched.length === 0) return true;
    if (event.refusal !== undefined && this.session !== undefined) {
      // Sent, OPAL's client would drop it whole (pydantic refuses it) and never report: say so now.
      if (this.session.confirms) this.options.sessions.ack(this.session, create(AckSchema, { position: this.session.sentPosition, updateId: event.updateId, status: AckStatus.FAILED, error: event.refusal }));
      return true;
    }
    if (event.kind === "data" && this.session !== undefined) this.remember(event.updateId, this.session.sentPosition);
    const body = event.body(event.kind === "data" ? this.reportUrl() : undefined);
    for (const topic of matched) this.notify(topic, body);
    return this.options.socket.bufferedAmount === 0;
  }

  buffered(): number {
    return this.inFlight;
  }

  bufferedBytes(): number {
    return this.options.socket.bufferedAmount;
  }

  whenBelow(frames: number, bytes: number): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.options.socket.readyState > 1 || (this.inFlight <= frames && this.options.socket.bufferedAmount <= bytes)) {
          this.drainWaiters.delete(check);
          resolve();
        }
      };
      this.drainWaiters.add(check);
      check();
    });
  }

  fail(code: keyof typeof CLOSE_CODES, message: string): void {
    this.end(CLOSE_CODES[code], message);
  }

  private notify(topic: string, body: string): void {
    const subscription = JSON.stringify({ id: randomUUID().replaceAll("-", ""), subscriber_id: this.channelId, topic, notifier_id: "opal-mesh" });
    this.send(requestFrame("notify", `{"subscription":${subscription},"data":${body}}`));
  }

  private send(text: string): void {
    const socket = this.options.socket;
    if (socket.readyState !== 1) return;
    this.inFlight++;
    socket.send(text, () => {
      this.inFlight--;
      for (const check of [...this.drainWaiters]) check();
    });
  }

  private remember(updateId: string, position: bigint): void {
    this.unreported.set(updateId, position);
    const max = this.options.maxUnreported ?? 10_000;
    if (this.unreported.size > max) this.unreported.delete(this.unreported.keys().next().value as string);
  }

  /** Closes with a reason the client logs (a websocket reason is at most 123 bytes). */
  private end(code: number, reason: string): void {
    const socket = this.options.socket;
    if (socket.readyState <= 1) socket.close(code, Buffer.from(reason).subarray(0, 123).toString());
  }

  private closed(): void {
    this.controller.abort();
    for (const check of [...this.drainWaiters]) check();
    if (this.session !== undefined) this.options.sessions.close(this.session);
  }
}

function topicsArgument(request: RpcRequest): string[] {
  const topics = request.arguments.topics ?? [];
  if (!Array.isArray(topics) || !topics.every((topic) => typeof topic === "string")) throw new Error(`${request.method}: topics must be a list of strings`);
  return topics;
}
