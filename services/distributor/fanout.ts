/**
 * The distributor's single subscription to the log and its fan-out to sessions. Each
 * event is serialized once; the same bytes go to every session it is addressed to.
 */
import { clone, create, toBinary } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import type { BroadcasterService } from "../../gen/opal/mesh/v1/broadcaster_pb.js";
import { ConnectResponseSchema } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { type Event, EventSchema, TraceContextSchema } from "../../gen/opal/mesh/v1/event_pb.js";
import { backoffDelay, sleep } from "../common/backoff.js";
import type { Logger } from "../common/logger.js";
import { DEFAULT_SCOPE, scopeOfTopic, unscopeTopic } from "../common/scopes/scoped-topics.js";
import { anyTopicCovered } from "../common/topics.js";
import type { ClientSession } from "./session.js";
import { type RecentEvent, RecentEvents, type RecentEventsLimits } from "./recent-events.js";
import { endSpan, type Span, SpanKind, type TraceCarrier, type Tracing } from "../common/telemetry/tracing.js";

export function encodeEvent(event: Event): Uint8Array {
  return toBinary(ConnectResponseSchema, create(ConnectResponseSchema, { message: { case: "event", value: event } }));
}

/**
 * An event as a client of `scope` receives it: only that scope's topics and entries, with
 * plain topic names. An event built (e.g. straight into Kafka) with several scopes' topics
 * never carries one tenant's entries to another's client.
 */
export function eventForScope(event: Event, scope: string): Event {
  const inScope = (topic: string): boolean => scopeOfTopic(topic) === scope;
  if (scope === DEFAULT_SCOPE && event.topics.every(inScope)) return event;
  const copy = clone(EventSchema, event);
  copy.topics = event.topics.filter(inScope).map(unscopeTopic);
  if (copy.payload.case === "dataUpdate") {
    const update = copy.payload.value;
    update.entries = update.entries.filter((entry) => entry.topics.some(inScope));
    for (const entry of update.entries) entry.topics = entry.topics.filter(inScope).map(unscopeTopic);
  }
  return copy;
}

export function encodeEventFor(event: Event, scope: string): Uint8Array {
  return encodeEvent(eventForScope(event, scope));
}

export function encodeResync(reason: string, headPosition: bigint): Uint8Array {
  return toBinary(ConnectResponseSchema, create(ConnectResponseSchema, { message: { case: "resync", value: { reason, headPosition } } }));
}

export interface FanoutOptions {
  /** Sees every dispatched event with the clients it was addressed to. */
  onDispatch?: (event: Event, addressed: string[]) => void;
  /**
   * How long a client that left is still listed among an update's clients (as
   * disconnected: nothing waits on it; it may resume and ACK).
   */
  leftClientTtlMs?: number;
  /** A client's stream opened; it delivers the events after `deliversAfter`. */
  onClientConnected?: (clientId: string, deliversAfter: bigint) => void;
  /** A client's last open stream ended. */
  onClientDisconnected?: (clientId: string) => void;
  tracing?: Tracing;
  /** The log's name, for spans. */
  logName?: string;
  /** How many of the newest events are kept to replay resuming clients from memory. */
  recentEvents?: RecentEventsLimits;
}

/**
 * A subscription is renewed (from the head, so nothing is missed) after this many bytes of
 * events. @connectrpc/connect 2.3's run-call races every read of a stream against one
 * promise that settles only when the call ends, and each race keeps its result: a
 * subscription holds every event it ever received (2,500 updates of 150 KB: 375 MB) until
 * it ends (connect-es #1524). Ending it lets go of them.
 */
const RESUBSCRIBE_AFTER_BYTES = 16 * 1024 * 1024;

function withTraceContext(event: Event, carrier: TraceCarrier | undefined): Event {
  return carrier === undefined ? event : { ...event, traceContext: create(TraceContextSchema, carrier) };
}

export class Fanout {
  private readonly sessions = new Set<ClientSession>();
  /** Open sessions per client id, so a disconnect needs no scan of every session (10,000 leaving at once was O(N²)). */
  private readonly openByClient = new Map<string, Set<ClientSession>>();
  /** Clients that disconnected recently: their topics, and when they left. */
  private readonly recentlyLeft = new Map<string, { topics: readonly string[]; leftAt: number }>();
  private headPosition = 0n;
  private currentLogId = "";
  private subscribed = false;
  private readonly readyWaiters: Array<() => void> = [];
  private running: Promise<void> | undefined;
  private readonly listeners: Array<(event: Event) => void> = [];
  private readonly recent: RecentEvents;

  constructor(
    private readonly broadcaster: Client<typeof BroadcasterService>,
    private readonly logger: Logger,
    private readonly options: FanoutOptions = {},
  ) {
    this.recent = new RecentEvents(options.recentEvents ?? { maxEvents: 10_000, maxBytes: 64 * 1024 * 1024 });
  }

  /** The last position dispatched to sessions. */
  get head(): bigint {
    return this.headPosition;
  }

  get logId(): string {
    return this.currentLogId;
  }

  get isSubscribed(): boolean {
    return this.subscribed;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  listSessions(): ClientSession[] {
    return [...this.sessions];
  }

  /**
   * Every event after `position` up to the head, from memory; undefined when they are no
   * longer (or not yet) held, and the log must replay them.
   */
  replayFrom(position: bigint): RecentEvent[] | undefined {
    return this.recent.end === this.headPosition ? this.recent.after(position) : undefined;
  }

  /** Sees every event before sessions do (e.g. to drop cached bundles on PolicyChanged). */
  onEvent(listener: (event: Event) => void): void {
    this.listeners.push(listener);
  }

  /** The client's open sessions (one, but for the moment a new stream replaces an old one). */
  sessionsOf(clientId: string): ClientSession[] {
    return [...(this.openByClient.get(clientId) ?? [])];
  }

  /** `deliversAfter`: the position after which this session sends events (its resume point, or the head). */
  register(session: ClientSession, deliversAfter: bigint = session.sentPosition): void {
    if (this.sessions.has(session)) return;
    this.sessions.add(session);
    const open = this.openByClient.get(session.clientId) ?? new Set<ClientSession>();
    open.add(session);
    this.openByClient.set(session.clientId, open);
    this.recentlyLeft.delete(session.clientId);
    this.options.onClientConnected?.(session.clientId, deliversAfter);
  }

  unregister(session: ClientSession): void {
    if (!this.sessions.delete(session)) return;
    const open = this.openByClient.get(session.clientId);
    open?.delete(session);
    if (open !== undefined && open.size > 0) return;
    this.openByClient.delete(session.clientId);
    this.recentlyLeft.set(session.clientId, { topics: session.topics, leftAt: Date.now() });
    this.options.onClientDisconnected?.(session.clientId);
  }

  /** Resolves once the first subscription is live, so sessions get a meaningful head. */
  async start(signal: AbortSignal): Promise<void> {
    this.running = this.run(signal);
    if (this.subscribed) return;
    await new Promise<void>((resolve) => {
      this.readyWaiters.push(resolve);
      signal.addEventListener("abort", () => resolve(), { once: true });
    });
  }

  async stopped(): Promise<void> {
    await this.running;
  }

  private async run(signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      const subscription = new AbortController();
      const onAbort = (): void => subscription.abort();
      signal.addEventListener("abort", onAbort, { once: true });
      let received = 0;
      try {
        const request = this.subscribed ? { afterPosition: this.headPosition } : { fromHead: true };
        for await (const message of this.broadcaster.subscribe(request, { signal: subscription.signal })) {
          failures = 0;
          if (message.message.case === "started") {
            const started = message.message.value;
            if (!this.subscribed) {
              this.headPosition = started.headPosition;
              this.currentLogId = started.logId;
              this.recent.reset(started.headPosition);
              this.subscribed = true;
              for (const wake of this.readyWaiters.splice(0)) wake();
              void this.fillRecent(started.headPosition, started.logId, signal);
            } else if (started.logId !== this.currentLogId) {
              // The log behind us was replaced (e.g. an in-memory broadcaster restarted):
              // positions restart, so every client loads its baseline again.
              this.currentLogId = started.logId;
              this.resyncAll(started.headPosition, "the log was replaced");
              break; // resubscribe from the new log's head
            } else if (started.truncated) {
              this.resyncAll(started.headPosition, "the distributor fell behind the log's retention");
            }
          } else if (message.message.case === "event") {
            received += this.dispatch(message.message.value);
            if (received > RESUBSCRIBE_AFTER_BYTES) break;
          }
        }
      } catch (error) {
        if (signal.aborted) break;
        failures++;
        const delay = backoffDelay(failures, { initialMs: 100, maxMs: 5_000 });
        this.logger.warn({ err: error, retryInMs: delay }, "log subscription lost; resubscribing");
        await sleep(delay, signal).catch(() => undefined);
      } finally {
        signal.removeEventListener("abort", onAbort);
        subscription.abort();
      }
    }
  }

  /** Returns the size of the event's frame. */
  private dispatch(event: Event): number {
    for (const listener of this.listeners) listener(event);
    const span = this.startProcessSpan(event);
    // Clients continue the trace from this span: the frames carry its context.
    const outgoing = span === undefined ? event : withTraceContext(event, this.options.tracing?.inject(span));
    // One serialization per scope among the sessions addressed (usually one).
    const frames = new Map<string, Uint8Array>();
    const addressed: string[] = [];
    for (const session of this.sessions) {
      if (session.accepts(event)) {
        let frame = frames.get(session.scope);
        if (frame === undefined) {
          frame = encodeEventFor(outgoing, session.scope);
          frames.set(session.scope, frame);
        }
        session.deliver(frame, event);
        addressed.push(session.clientId);
      } else {
        session.skip(event.position);
      }
    }
    if (this.options.onDispatch !== undefined) {
      const ttl = this.options.leftClientTtlMs ?? 300_000;
      const now = Date.now();
      for (const [clientId, left] of this.recentlyLeft) {
        if (now - left.leftAt > ttl) this.recentlyLeft.delete(clientId);
        else if (anyTopicCovered(left.topics, event.topics)) addressed.push(clientId);
      }
      this.options.onDispatch(event, addressed);
    }
    this.headPosition = event.position;
    // The default-scope frame is the one replays need, unless it carries this span's context.
    const frame = (span === undefined ? frames.get(DEFAULT_SCOPE) : undefined) ?? encodeEventFor(event, DEFAULT_SCOPE);
    this.recent.append(event, frame);
    if (span !== undefined) {
      span.setAttribute("opal_mesh.clients", addressed.length);
      endSpan(span);
    }
    return frame.byteLength;
  }

  /** The distributor's span of a traced event: a consumer of the log, parent of each client's. */
  private startProcessSpan(event: Event): Span | undefined {
    const tracing = this.options.tracing;
    if (tracing === undefined || !tracing.enabled || event.traceContext === undefined || event.traceContext.traceparent === "") return undefined;
    const log = this.options.logName ?? "opal-mesh-events";
    return tracing.start(`process ${log}`, {
      kind: SpanKind.CONSUMER,
      parent: tracing.extract(event.traceContext),
      attributes: {
        "messaging.system": "opal_mesh",
        "messaging.operation.type": "process",
        "messaging.destination.name": log,
        "messaging.message.id": event.payload.case === "dataUpdate" ? event.payload.value.id : event.payload.case === "policyChanged" ? event.payload.value.hash : "",
        "opal_mesh.position": Number(event.position),
      },
    });
  }

  /**
   * After (re)starting at `head`, reads the events before it once from the log, so the
   * clients that come back resume from memory (one log stream instead of one each).
   */
  private async fillRecent(head: bigint, logId: string, signal: AbortSignal): Promise<void> {
    const from = head > BigInt(this.recent.limits.maxEvents) ? head - BigInt(this.recent.limits.maxEvents) : 0n;
    if (from >= head) return;
    const controller = new AbortController();
    const onAbort = (): void => controller.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    const events: Event[] = [];
    // The event at the head normally ends the read; should it never come, give up.
    const timer = setTimeout(() => controller.abort(), 30_000);
    try {
      for await (const message of this.broadcaster.subscribe({ afterPosition: from }, { signal: controller.signal })) {
        if (message.message.case === "started") {
          // Not retained that far back (or another log by now): resumes use the log as before.
          if (message.message.value.truncated || message.message.value.logId !== logId) return;
        } else if (message.message.case === "event") {
          const event = message.message.value;
          if (event.position <= head) events.push(event);
          if (event.position >= head) break;
        }
      }
      if (this.currentLogId === logId) this.recent.prepend(from, head, events);
    } catch (error) {
      if (!signal.aborted) this.logger.warn({ err: error }, "could not read the recent events before the head; resuming clients replay from the log");
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      controller.abort();
    }
  }

  private resyncAll(newHead: bigint, reason: string): void {
    this.headPosition = newHead;
    this.recent.reset(newHead);
    const frame = encodeResync(reason, newHead);
    for (const session of this.sessions) {
      session.sentPosition = newHead;
      session.sendControl(frame);
    }
  }
}
