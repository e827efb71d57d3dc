/**
 * For the distributor's specs only: BroadcasterService.Subscribe (and ReadSnapshot, the real fold of what it holds) over an in-memory list of
 * events, served through connect-es's router transport (the real protocol stack, no
 * sockets). It answers as the broadcaster does (Started, then events, then live ones), and
 * lets a spec replace the log, break its streams, or see what was asked.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { BroadcasterService, type ReadSnapshotResponse, ReadSnapshotResponseSchema, type SubscribeRequest, type SubscribeResponse, SubscribeResponseSchema } from "../../../gen/opal/mesh/v1/broadcaster_pb.js";
import { LogSnapshot } from "../../common/snapshot/log-snapshot.js";
import { type Event, EventSchema } from "../../../gen/opal/mesh/v1/event_pb.js";

export function dataEvent(position: bigint, topics: string[] = ["policy_data"], bytes = 0): Event {
  return create(EventSchema, { position, topics, payload: { case: "dataUpdate", value: { id: `u${position}`, reason: "x".repeat(bytes) } } });
}

export class FakeLog {
  logId = "log-1";
  events: Event[] = [];
  /** The oldest position still held (a subscription after an older one is truncated). */
  firstRetained = 1n;
  readonly requests: SubscribeRequest[] = [];
  /** Subscriptions their reader cancelled (a suspended generator is not finished by connect-es's router transport, so this, not a count of open ones). */
  cancelled = 0;
  /** Thrown by subscriptions reading past Started, once each, when set. */
  failWith: Error | undefined;
  private wakers: Array<() => void> = [];
  private breakers: Array<(error: Error) => void> = [];
  readonly client: Client<typeof BroadcasterService>;

  constructor() {
    this.client = createClient(
      BroadcasterService,
      createRouterTransport((router) =>
        router.service(BroadcasterService, {
          subscribe: (request, context) => this.subscribe(request, context.signal),
          readSnapshot: () => this.readSnapshot(),
        }),
      ),
    );
  }

  get head(): bigint {
    return this.events.at(-1)?.position ?? 0n;
  }

  append(...events: Event[]): void {
    this.events.push(...events);
    for (const wake of this.wakers.splice(0)) wake();
  }

  /** A new log behind the same address: positions restart. */
  replace(logId: string, events: Event[] = []): void {
    this.logId = logId;
    this.events = events;
    this.breakStreams(new ConnectError("the log went away", Code.Unavailable));
  }

  /** Every open subscription fails with `error`. */
  breakStreams(error: Error): void {
    for (const fail of this.breakers.splice(0)) fail(error);
  }

  /** The broadcaster's snapshot: the events held, folded (set `withoutSnapshot` for a broadcaster that predates it). */
  withoutSnapshot = false;

  private async *readSnapshot(): AsyncGenerator<ReadSnapshotResponse> {
    if (this.withoutSnapshot) throw new ConnectError("no snapshots here", Code.Unimplemented);
    const snapshot = new LogSnapshot();
    for (const event of this.events) snapshot.fold(event);
    const exported = snapshot.export();
    yield create(ReadSnapshotResponseSchema, { message: { case: "header", value: { position: this.head, logId: this.logId, scopes: exported.scopes } } });
    yield create(ReadSnapshotResponseSchema, { message: { case: "items", value: { items: exported.items } } });
  }

  private async *subscribe(request: SubscribeRequest, signal: AbortSignal): AsyncGenerator<SubscribeResponse> {
    this.requests.push(request);
    signal.addEventListener("abort", () => this.cancelled++, { once: true });
    const head = this.head;
    const after = request.fromHead ? head : request.afterPosition;
    const truncated = after > head || after + 1n < this.firstRetained;
    yield create(SubscribeResponseSchema, { message: { case: "started", value: { headPosition: head, truncated, firstRetainedPosition: this.firstRetained, logId: this.logId } } });
    let broken: Error | undefined;
    const onBreak = (error: Error): void => {
      broken = error;
      for (const wake of this.wakers.splice(0)) wake();
    };
    this.breakers.push(onBreak);
    let cursor = truncated ? head : after;
    while (!signal.aborted) {
      if (this.failWith !== undefined) {
        const error = this.failWith;
        this.failWith = undefined;
        throw error;
      }
      if (broken !== undefined) throw broken;
      const next = this.events.find((event) => event.position > cursor);
      if (next === undefined) {
        await new Promise<void>((resolve) => {
          this.wakers.push(resolve);
          signal.addEventListener("abort", () => resolve(), { once: true });
        });
        continue;
      }
      cursor = next.position;
      yield create(SubscribeResponseSchema, { message: { case: "event", value: next } });
    }
  }
}
