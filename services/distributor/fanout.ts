/**
 * The distributor's single subscription to the log and its fan-out to sessions. Each
 * event is serialized once; the same bytes go to every session it is addressed to. The
 * newest events stay in a window, so resuming clients replay from memory (catch-up.ts).
 * A little over 300 lines: the subscription's start (from the broadcaster's snapshot), the
 * fold before each dispatch and the replay window all move with one head position, and a
 * session must find them agreeing in any turn; they read best in one place.
 */
import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import type { BroadcasterService } from "../../gen/opal/mesh/v1/broadcaster_pb.js";
import { type Event, TraceContextSchema } from "../../gen/opal/mesh/v1/event_pb.js";
import { backoffDelay, sleep } from "../common/backoff.js";
import { EventWindow, type EventWindowLimits } from "../common/event-window.js";
import { Closing, type Closed, type Component } from "../common/lifecycle.js";
import type { Logger } from "../common/logger.js";
import { DEFAULT_SCOPE } from "../common/scopes/scoped-topics.js";
import { endSpan, type Span, SpanKind, type TraceCarrier, type Tracing } from "../common/telemetry/tracing.js";
import { LogSnapshot } from "../common/snapshot/log-snapshot.js";
import type { Snapshot } from "../common/snapshot/types.js";
import { encodeEventFor, encodeResync, type FramedEvent, framed } from "./frames.js";
import type { DistributorObserver } from "./observer.js";
import { SessionRegistry } from "./session-registry.js";
import type { ClientSession } from "./session.js";
import { type LoadedSnapshot, readSnapshot } from "./snapshot-loader.js";
import { sendSnapshot } from "./snapshot-sender.js";
import { hopClock } from "../common/telemetry/hop-clock.js";

export interface FanoutOptions {
  broadcaster: Client<typeof BroadcasterService>;
  logger: Logger;
  /** Told of every event, every dispatch, clients coming and going, and faults. */
  observer?: DistributorObserver;
  /**
   * How long a client that left is still listed among an update's clients (as
   * disconnected: nothing waits on it; it may resume and ACK).
   */
  leftClientTtlMs?: number;
  tracing?: Tracing;
  /** The log's name, for spans. */
  logName?: string;
  /** How many of the newest events are kept to replay resuming clients from memory. */
  recentEvents?: EventWindowLimits;
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

export class Fanout implements Component {
  readonly name = "fan-out";
  readonly sessions: SessionRegistry;
  private headPosition = 0n;
  private currentLogId = "";
  private subscribed = false;
  /** Why the subscription is down, while it is (health). */
  private lost: string | undefined;
  private readonly readyWaiters: Array<() => void> = [];
  private readonly controller = new AbortController();
  private readonly closing = new Closing();
  private readonly running = new Set<Promise<void>>();
  private stopping: Promise<void> | undefined;
  private readonly recent: EventWindow<FramedEvent>;
  /**
   * The log folded through the last dispatched event: loaded from the broadcaster when the
   * subscription starts (or the log is replaced), then folded here before each dispatch, so
   * a session starting at the head gets the state at exactly that head.
   */
  readonly snapshot: Snapshot = new LogSnapshot();
  private snapshotIncomplete: string | undefined;
  /** The next subscription starts from the broadcaster's snapshot (at first, and after the log was replaced or left us behind). */
  private needsSnapshot = true;
  private resyncReason: string | undefined;

  constructor(private readonly options: FanoutOptions) {
    this.sessions = new SessionRegistry({ ...(options.observer === undefined ? {} : { observer: options.observer }), ...(options.leftClientTtlMs === undefined ? {} : { leftClientTtlMs: options.leftClientTtlMs }) });
    const limits = options.recentEvents ?? { maxEvents: 10_000, maxBytes: 64 * 1024 * 1024 };
    this.recent = new EventWindow<FramedEvent>({ ...limits, positionOf: (entry) => entry.event.position, sizeOf: (entry) => entry.frame.byteLength });
  }

  get closed(): Promise<Closed> {
    return this.closing.closed;
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

  /** Why the log subscription is down and being renewed; undefined while it flows. */
  get subscriptionProblem(): string | undefined {
    return this.lost;
  }

  /** Why the snapshot misses events the log no longer holds, if it does. */
  get snapshotProblem(): string | undefined {
    return this.snapshotIncomplete;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  listSessions(): ClientSession[] {
    return this.sessions.list();
  }

  /**
   * Every event after `position` up to the head, from memory; undefined when they are no
   * longer (or not yet) held, and the log must replay them.
   */
  replayFrom(position: bigint): FramedEvent[] | undefined {
    return this.recent.end === this.headPosition ? this.recent.after(position) : undefined;
  }

  /** Resolves once the first subscription is live, so sessions get a meaningful head. */
  async start(signal: AbortSignal): Promise<void> {
    if (this.running.size > 0 || this.stopping !== undefined) return;
    signal.addEventListener("abort", () => this.controller.abort(), { once: true });
    if (signal.aborted) this.controller.abort();
    this.track(
      this.run(this.controller.signal).catch((error: unknown) => {
        // The loop handles every failure of the log itself; one escaping it is a bug: end, and say so.
        this.options.logger.error({ err: error }, "fan-out stopped: its log subscription loop failed");
        this.closing.failed(error);
      }),
    );
    if (this.subscribed || this.controller.signal.aborted) return;
    await new Promise<void>((resolve) => {
      this.readyWaiters.push(resolve);
      this.controller.signal.addEventListener("abort", () => resolve(), { once: true });
    });
  }

  /** Ends the subscription and the read of recent events; resolves once both have. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.controller.abort();
      await Promise.all(this.running);
      this.closing.stopped();
    })();
    return this.stopping;
  }

  private track(work: Promise<void>): void {
    this.running.add(work);
    void work.finally(() => this.running.delete(work));
  }

  private async run(signal: AbortSignal): Promise<void> {
    const { broadcaster, logger, observer } = this.options;
    let failures = 0;
    while (!signal.aborted) {
      const subscription = new AbortController();
      const onAbort = (): void => subscription.abort();
      signal.addEventListener("abort", onAbort, { once: true });
      let received = 0;
      try {
        const loaded = this.needsSnapshot ? await readSnapshot(broadcaster, subscription.signal) : undefined;
        // A broadcaster that predates snapshots: the first subscription starts at its head, as before.
        const request = loaded !== undefined ? { afterPosition: loaded.position } : this.subscribed ? { afterPosition: this.headPosition } : { fromHead: true };
        for await (const message of broadcaster.subscribe(request, { signal: subscription.signal })) {
          failures = 0;
          this.lost = undefined;
          if (message.message.case === "started") {
            if (this.started(message.message.value, loaded, signal) === "resubscribe") break;
          } else if (message.message.case === "event") {
            received += this.dispatch(message.message.value);
            if (received > RESUBSCRIBE_AFTER_BYTES) break;
          }
        }
      } catch (error) {
        if (signal.aborted) break;
        failures++;
        const delay = backoffDelay(failures, { initialMs: 100, maxMs: 5_000 });
        this.lost = error instanceof Error ? error.message : String(error);
        logger.warn({ err: error, retryInMs: delay }, "log subscription lost; resubscribing");
        observer?.onFault?.("log subscription", error);
        // sleep rejects only when the signal aborts: the loop then ends.
        await sleep(delay, signal).catch(() => undefined);
      } finally {
        signal.removeEventListener("abort", onAbort);
        subscription.abort();
      }
    }
  }

  /** A subscription (re)started: "resubscribe" when it must start again from the new log's snapshot. */
  private started(started: { headPosition: bigint; logId: string; truncated: boolean }, loaded: LoadedSnapshot | undefined, signal: AbortSignal): "resubscribe" | undefined {
    if (loaded !== undefined) {
      // The log moved on between the snapshot and the subscription (replaced, or retention
      // dropped what follows the snapshot): read it again.
      if (started.logId !== loaded.logId || started.truncated) return "resubscribe";
      const position = loaded.position;
      this.snapshot.restore(loaded);
      this.snapshotIncomplete = loaded.incomplete;
      this.needsSnapshot = false;
      const first = !this.subscribed;
      this.headPosition = position;
      this.currentLogId = started.logId;
      this.recent.reset(position);
      if (first) {
        this.subscribed = true;
        for (const wake of this.readyWaiters.splice(0)) wake();
      } else {
        this.resyncAll(position, this.resyncReason ?? "the log was replaced");
      }
      // fillRecent handles its own failures (logged, counted); resumes then replay from the log.
      this.track(this.fillRecent(position, started.logId, signal));
      return undefined;
    }
    if (!this.subscribed) {
      // A broadcaster without snapshots: start at its head, as before.
      this.headPosition = started.headPosition;
      this.currentLogId = started.logId;
      this.recent.reset(started.headPosition);
      this.snapshot.reset(started.headPosition);
      this.needsSnapshot = false;
      this.subscribed = true;
      for (const wake of this.readyWaiters.splice(0)) wake();
      this.track(this.fillRecent(started.headPosition, started.logId, signal));
    } else if (started.logId !== this.currentLogId || started.truncated) {
      // The log behind us was replaced (e.g. an in-memory broadcaster restarted: positions
      // restart), or we fell behind its retention: every client loads again, from the
      // log's snapshot.
      this.resyncReason = started.logId !== this.currentLogId ? "the log was replaced" : "the distributor fell behind the log's retention";
      this.needsSnapshot = true;
      return "resubscribe";
    }
    return undefined;
  }

  /** Returns the size of the event's frame. */
  private dispatch(event: Event): number {
    const observer = this.options.observer;
    if (hopClock.enabled && event.payload.case === "dataUpdate") hopClock.mark("fanout.dispatched", event.payload.value.id);
    observer?.onEvent?.(event);
    // Folded before anyone sees it: a session that starts at this position gets it in its snapshot.
    this.snapshot.fold(event);
    const span = this.startProcessSpan(event);
    // Clients continue the trace from this span: the frames carry its context.
    const outgoing = span === undefined ? event : withTraceContext(event, this.options.tracing?.inject(span));
    // One serialization per scope among the sessions addressed (usually one).
    const frames = new Map<string, Uint8Array>();
    const addressed: string[] = [];
    // Clients that cannot confirm what they apply (OPAL clients without update reports): few, so made lazily.
    let unconfirmed: Set<string> | undefined;
    for (const session of this.sessions) {
      if (session.accepts(event)) {
        let frame = frames.get(session.scope);
        if (frame === undefined) {
          frame = encodeEventFor(outgoing, session.scope);
          frames.set(session.scope, frame);
        }
        session.deliver(frame, event);
        addressed.push(session.clientId);
        if (!session.confirms) (unconfirmed ??= new Set()).add(session.clientId);
      } else {
        session.skip(event.position);
      }
    }
    if (observer?.onDispatched !== undefined) {
      this.sessions.addLeftClients(event, addressed);
      observer.onDispatched(event, addressed, unconfirmed);
    }
    this.headPosition = event.position;
    // The default-scope frame is the one replays need, unless it carries this span's context.
    const frame = (span === undefined ? frames.get(DEFAULT_SCOPE) : undefined) ?? encodeEventFor(event, DEFAULT_SCOPE);
    this.recent.append(framed(event, frame));
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
    const events: FramedEvent[] = [];
    // The event at the head normally ends the read; should it never come, give up.
    const timer = setTimeout(() => controller.abort(), 30_000);
    try {
      for await (const message of this.options.broadcaster.subscribe({ afterPosition: from }, { signal: controller.signal })) {
        if (message.message.case === "started") {
          // Not retained that far back (or another log by now): resumes use the log as before.
          if (message.message.value.truncated || message.message.value.logId !== logId) return;
        } else if (message.message.case === "event") {
          const event = message.message.value;
          if (event.position <= head) events.push(framed(event));
          if (event.position >= head) break;
        }
      }
      if (this.currentLogId === logId) this.recent.prepend(from, head, events);
    } catch (error) {
      if (signal.aborted) return; // stopping: the read was cut short on purpose
      this.options.logger.warn({ err: error, from: from.toString(), head: head.toString() }, "could not read the recent events before the head; resuming clients replay from the log");
      this.options.observer?.onFault?.("recent events", error);
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
    const withSnapshot = encodeResync(reason, newHead, true);
    for (const session of this.sessions) {
      if (session.acceptsSnapshot) sendSnapshot(session, withSnapshot, newHead, this, this.options.logger);
      else session.resync(frame, newHead);
    }
  }
}
