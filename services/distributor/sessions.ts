/**
 * What happens to a client stream the transport has accepted and authorized: its session
 * is made, welcomed and handed to catch-up (which brings it to live fan-out); ACKs and
 * reports are recorded and told to the observer; a stream's end unregisters it.
 *
 * One stream per client id: a new stream with the id of an open one replaces it, and the
 * old one ends with ABORTED saying so. This suits a client that restarts (or reconnects)
 * while its old TCP connection is half-dead and not yet noticed: refusing the newcomer
 * would lock it out until keepalive gives up on the old one; two at once would double its
 * deliveries and ACKs. (Two live processes sharing an id thus take turns; each logs why.)
 */
import type { Ack, ClientReport, Hello } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { formatLabels } from "../common/client-labels.js";
import type { Logger } from "../common/logger.js";
import type { CatchUp } from "./catch-up.js";
import type { Fanout } from "./fanout.js";
import { subscriptionOf } from "./hello.js";
import type { DistributorObserver } from "./observer.js";
import { type ClientProtocol, ClientSession, type FrameSink, type SendLimits } from "./session.js";
import type { StreamHandoff } from "./stream-server.js";

export interface SessionsOptions {
  fanout: Pick<Fanout, "head" | "logId" | "sessions">;
  catchUp: CatchUp;
  logger: Logger;
  limits: SendLimits;
  observer?: DistributorObserver;
}

export class Sessions implements StreamHandoff {
  constructor(private readonly options: SessionsOptions) {}

  /** Registers the session synchronously (welcome, snapshot view or replay from memory, fan-out) so no live event slips in between. */
  open(hello: Hello, peer: string, sink: FrameSink, signal: AbortSignal, protocol: ClientProtocol = "opal-mesh"): ClientSession {
    const { fanout, logger } = this.options;
    const { scope, topics } = subscriptionOf(hello);
    const clientId = hello.clientId || `anonymous-${peer}`;
    const replaced = fanout.sessions.sessionsOf(clientId);
    const session = new ClientSession(clientId, topics, peer, sink, this.options.limits, scope, hello.acceptsSnapshot, protocol, { ...hello.labels });
    const head = fanout.head;
    const resume = hello.resumeFromPosition;
    logger.info({ clientId, sessionId: session.sessionId, topics, resume: resume?.toString(), head: head.toString(), ...(Object.keys(session.labels).length === 0 ? {} : { labels: formatLabels(session.labels) }), ...(protocol === "opal-mesh" ? {} : { protocol }) }, "client connected");
    this.options.catchUp.begin(session, { position: resume, logId: hello.logId }, signal);
    // Ended after the new one is registered, so the client never counts as gone meanwhile.
    for (const old of replaced) {
      logger.warn({ clientId, sessionId: old.sessionId, peer: old.peer, newSessionId: session.sessionId, newPeer: session.peer }, "a new stream with this client id replaces the open one");
      fanout.sessions.unregister(old);
      old.terminate("aborted", `replaced by a newer stream with the same client id ${JSON.stringify(clientId)} (from ${session.peer})`);
    }
    this.options.observer?.onSessionOpened?.(session);
    return session;
  }

  ack(session: ClientSession, ack: Ack): void {
    const range = session.recordAck(ack);
    if (range !== undefined) this.options.observer?.onAcksThrough?.(session, range.after, range.through);
    else if (!ack.cumulative) this.options.observer?.onAck?.(session.clientId, ack);
  }

  report(session: ClientSession, report: ClientReport): void {
    if (session.recordReport(report)) this.options.observer?.onReport?.(session);
  }

  /** The stream ended (any way): delivery stops and its frames are let go. */
  close(session: ClientSession): void {
    session.close();
    this.options.fanout.sessions.unregister(session);
    this.options.observer?.onSessionClosed?.(session);
    this.options.logger.info({ clientId: session.clientId, sessionId: session.sessionId }, "client disconnected");
  }
}
