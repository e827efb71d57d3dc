/**
 * Where a new session starts, and how it gets from there to live fan-out: the one owner
 * of a session's cursor from its Welcome until fan-out takes over.
 *
 * - A fresh client (no resume point, or one from another log) starts at the head: it
 *   loads its baseline — with the snapshot of the log at the head, when it accepts one —
 *   and the events after the head follow.
 * - A client ahead of the log is told to resync (with the snapshot), and starts at the head.
 * - A client whose missed events the fan-out still holds is replayed from memory and
 *   registered in the same turn, so no live event slips in between.
 * - Otherwise its missed events are read from the log, at the client's pace, while live
 *   ones are held back in its session and flushed after; a position the log no longer
 *   holds means a resync.
 */
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { BroadcasterService } from "../../gen/opal/mesh/v1/broadcaster_pb.js";
import type { Logger } from "../common/logger.js";
import { DEFAULT_SCOPE } from "../common/scopes/scoped-topics.js";
import type { Fanout } from "./fanout.js";
import { encodeEventFor, encodeResync, encodeWelcome } from "./frames.js";
import type { DistributorObserver } from "./observer.js";
import type { ClientSession, SendLimits } from "./session.js";
import { sendSnapshot } from "./snapshot-sender.js";

export interface CatchUpOptions {
  fanout: Pick<Fanout, "head" | "logId" | "replayFrom" | "sessions" | "snapshot" | "snapshotProblem">;
  broadcaster: Client<typeof BroadcasterService>;
  logger: Logger;
  /** A client's send buffer: a replay over half of it goes through the log, at the client's pace. */
  limits: SendLimits;
  observer?: DistributorObserver;
}

/** Where the client says it is: the position it applied last, in the log it names. */
export interface ResumePoint {
  position: bigint | undefined;
  logId: string;
}

export class CatchUp {
  constructor(private readonly options: CatchUpOptions) {}

  /**
   * Welcomes the session, starts its cursor and registers it with fan-out; a replay from
   * the log (or a snapshot) goes on in the background until `signal` (the stream's) aborts.
   */
  begin(session: ClientSession, resume: ResumePoint, signal: AbortSignal): void {
    const { fanout, logger } = this.options;
    const head = fanout.head;
    const fresh = resume.position === undefined || resume.logId !== fanout.logId;
    // Welcome's log_id tells the client its position (if any) belongs to another log.
    const welcome = encodeWelcome(session.sessionId, head, fanout.logId, fresh && session.acceptsSnapshot);
    if (fresh && session.acceptsSnapshot) {
      sendSnapshot(session, welcome, head, fanout, logger);
      fanout.sessions.register(session);
      return;
    }
    session.sendControl(welcome);
    if (fresh) {
      session.startAt(head);
      fanout.sessions.register(session);
    } else if ((resume.position as bigint) > head) {
      this.resync(session, "the client's position is ahead of the log", head);
      fanout.sessions.register(session);
    } else if (!this.replayFromMemory(session, resume.position as bigint)) {
      session.beginCatchUp(resume.position as bigint);
      fanout.sessions.register(session);
      // fromLog handles every error itself: it resyncs the client or drops it so it resumes.
      void this.fromLog(session, resume.position as bigint, signal);
    }
  }

  /**
   * Replays what the client missed from the fan-out's recent events, when it holds them
   * all, and registers it: synchronously, so no live event slips in between. A replay
   * too long for the client's send buffer goes through the log instead.
   */
  private replayFromMemory(session: ClientSession, resume: bigint): boolean {
    const { fanout, limits } = this.options;
    const missed = fanout.replayFrom(resume);
    if (missed === undefined || missed.length > limits.maxFrames / 2) return false;
    if (missed.reduce((bytes, { frame }) => bytes + frame.byteLength, 0) > limits.maxBytes / 2) return false;
    session.startAt(resume);
    for (const { event, frame } of missed) {
      const addressed = session.accepts(event);
      session.sendCatchUp(addressed ? (session.scope === DEFAULT_SCOPE ? frame : encodeEventFor(event, session.scope)) : undefined, event.position);
    }
    fanout.sessions.register(session, resume);
    return true;
  }

  /** Replays what the client missed from the log, then hands it to live fan-out. */
  private async fromLog(session: ClientSession, after: bigint, signal: AbortSignal): Promise<void> {
    const { fanout, broadcaster, logger } = this.options;
    const controller = new AbortController();
    const onAbort = (): void => controller.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      const iterator = broadcaster.subscribe({ afterPosition: after }, { signal: controller.signal })[Symbol.asyncIterator]();
      const first = await iterator.next();
      if (first.done === true || first.value.message.case !== "started") throw new Error("the log did not start the catch-up stream");
      if (first.value.message.value.truncated) {
        this.notRetained(session);
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
      if (signal.aborted) return; // the stream ended: nobody to catch up
      if (error instanceof ConnectError && error.code === Code.DataLoss) {
        // The log dropped what the client missed while we were reading it.
        this.notRetained(session);
        return;
      }
      logger.warn({ err: error, clientId: session.clientId, after: after.toString() }, "catch-up failed; dropping the client so it resumes");
      this.options.observer?.onFault?.("catch-up", error);
      fanout.sessions.unregister(session);
      session.terminate("unavailable", "could not replay the missed events; reconnect to resume");
    } finally {
      signal.removeEventListener("abort", onAbort);
      controller.abort();
    }
  }

  /** The client's position is older than the log holds: it resyncs and goes on live from the head. */
  private notRetained(session: ClientSession): void {
    this.resync(session, "the client's position is no longer retained", this.options.fanout.head);
    // With a snapshot, the sender ends the catch-up after its last part.
    if (!session.acceptsSnapshot) session.endCatchUp();
  }

  /** A Resync at `head`: with the snapshot at it for a client that writes one, else the baseline alone. */
  private resync(session: ClientSession, reason: string, head: bigint): void {
    if (session.acceptsSnapshot) sendSnapshot(session, encodeResync(reason, head, true), head, this.options.fanout, this.options.logger);
    else session.resync(encodeResync(reason, head), head);
  }
}
