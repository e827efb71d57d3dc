/**
 * Appends events to the broadcaster in batches: the events published in one turn of the
 * event loop (e.g. the requests read from every connection in one poll) go together, and
 * while one Publish is in flight the events published meanwhile wait for the next one.
 * Under load this turns one broadcaster call (and, in the embedded mode, one in-process
 * Connect round trip) per update into one per batch; an idle server only waits for the
 * end of the current turn (setImmediate, microseconds). Positions come back in the order
 * of the batch, which is the order of the calls.
 */
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import type { BroadcasterService } from "../../gen/opal/mesh/v1/broadcaster_pb.js";
import type { Event } from "../../gen/opal/mesh/v1/event_pb.js";

/** Bounds a batch so it stays well under any gRPC message limit between trigger and broadcaster. */
const MAX_EVENTS = 512;
const MAX_BYTES = 1024 * 1024;

interface Waiting {
  event: Event;
  bytes: number;
  resolve: (position: bigint) => void;
  reject: (error: unknown) => void;
  /** Sent in a batch of its own (its batch was refused as a whole). */
  alone?: boolean;
}

export class EventBatcher {
  private waiting: Waiting[] = [];
  /** A Publish is in flight, or one is scheduled for the end of this turn. */
  private busy = false;

  constructor(private readonly broadcaster: Client<typeof BroadcasterService>) {}

  append(event: Event): Promise<bigint> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ event, bytes: estimatedSize(event), resolve, reject });
      if (this.busy) return;
      this.busy = true;
      setImmediate(() => this.sendNext());
    });
  }

  private sendNext(): void {
    const batch = this.take();
    if (batch.length === 0) {
      this.busy = false;
      return;
    }
    this.broadcaster.publish({ events: batch.map((waiting) => waiting.event) }).then(
      (response) => {
        batch.forEach((waiting, index) => {
          const position = response.positions[index];
          if (position === undefined) waiting.reject(new Error("the broadcaster returned no position"));
          else waiting.resolve(position);
        });
      },
      (error: unknown) => {
        // The log refused to hold what the batch adds (the snapshot's limit): the updates go
        // again one by one, so only those that do not fit fail, each with its own answer.
        if (batch.length > 1 && error instanceof ConnectError && error.code === Code.ResourceExhausted) {
          this.waiting.unshift(...batch.map((waiting) => ({ ...waiting, alone: true })));
          return;
        }
        for (const waiting of batch) waiting.reject(error);
      },
    ).finally(() => this.sendNext());
  }

  private take(): Waiting[] {
    let count = 0;
    let bytes = 0;
    // Always at least one: an event larger than the bound goes alone, as it would unbatched.
    if (this.waiting[0]?.alone === true) return this.waiting.splice(0, 1);
    while (count < this.waiting.length && count < MAX_EVENTS && (count === 0 || (this.waiting[count]?.alone !== true && bytes + (this.waiting[count] as Waiting).bytes <= MAX_BYTES))) {
      bytes += (this.waiting[count] as Waiting).bytes;
      count++;
    }
    return this.waiting.splice(0, count);
  }
}

/** About the event's serialized size: its inline data dominates. */
function estimatedSize(event: Event): number {
  if (event.payload.case !== "dataUpdate") return 1024;
  let bytes = 256;
  for (const entry of event.payload.value.entries) bytes += 256 + (entry.dataJson?.byteLength ?? 0) + entry.configJson.byteLength + entry.url.length;
  return bytes;
}
