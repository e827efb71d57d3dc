/**
 * Tells open dashboards that something changed, as Server-Sent Events: a `changed` event
 * (at most one per `minIntervalMs`, however busy the log is) on which the page fetches the
 * state with its own credentials, and a heartbeat comment that keeps proxies from closing
 * an idle stream. Each page filters nothing itself: the state route decides what the
 * caller may see, so one tick serves every viewer.
 */
import type { ServerResponse } from "node:http";
import type { HttpRequest, HttpResponse } from "../../common/http/json-io.js";
import { Closing, type Closed, type Component } from "../../common/lifecycle.js";
import type { DistributorObserver } from "../observer.js";

export interface ChangeFeedOptions {
  minIntervalMs?: number;
  heartbeatMs?: number;
}

interface Viewer {
  response: HttpResponse;
  close: () => void;
}

/** Every dispatch, ACK, session and new report changes what the dashboard shows. */
export class ChangeFeed implements Component, DistributorObserver {
  readonly name = "dashboard change feed";
  private readonly closing = new Closing();
  private readonly viewers = new Set<Viewer>();
  private revision = 0;
  private lastSentAt = 0;
  private tick: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private ended = false;
  private readonly minIntervalMs: number;
  private readonly heartbeatMs: number;

  constructor(options: ChangeFeedOptions = {}) {
    this.minIntervalMs = options.minIntervalMs ?? 250;
    this.heartbeatMs = options.heartbeatMs ?? 15_000;
  }

  get closed(): Promise<Closed> {
    return this.closing.closed;
  }

  /** Nothing to start: viewers open streams as they come. */
  async start(): Promise<void> {}

  stop(): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  onDispatched(): void {
    this.changed();
  }

  onAck(): void {
    this.changed();
  }

  onSessionOpened(): void {
    this.changed();
  }

  onSessionClosed(): void {
    this.changed();
  }

  onReport(): void {
    this.changed();
  }

  get viewerCount(): number {
    return this.viewers.size;
  }

  /** Something the dashboard shows changed; cheap enough for every dispatch and ACK. */
  changed(): void {
    this.revision++;
    if (this.viewers.size === 0 || this.tick !== undefined) return;
    // Bursts coalesce into one event at the end of the interval.
    this.tick = setTimeout(() => {
      this.tick = undefined;
      this.lastSentAt = Date.now();
      this.broadcast(`event: changed\ndata: {"revision":${this.revision}}\n\n`);
    }, Math.max(0, this.lastSentAt + this.minIntervalMs - Date.now()));
    this.tick.unref();
  }

  /** Holds the response open as an event stream until the viewer goes or the feed closes. */
  open(request: HttpRequest, response: HttpResponse): void {
    if (this.ended) {
      response.destroy();
      return;
    }
    // The two response types share this shape but not one overload set.
    const target = response as ServerResponse;
    target.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", "x-accel-buffering": "no" });
    // The first event makes the page load the state at once.
    target.write(`retry: 2000\nevent: changed\ndata: {"revision":${this.revision}}\n\n`);
    const close = (): void => {
      if (!this.viewers.delete(viewer)) return;
      if (this.viewers.size === 0) {
        clearInterval(this.heartbeat);
        this.heartbeat = undefined;
      }
      if (!response.writableEnded) response.end();
    };
    const viewer: Viewer = { response, close };
    this.viewers.add(viewer);
    request.once("close", close);
    response.once("close", close);
    response.once("error", close);
    if (this.heartbeat === undefined) {
      this.heartbeat = setInterval(() => this.broadcast(": heartbeat\n\n"), this.heartbeatMs);
      this.heartbeat.unref();
    }
  }

  /** Ends every stream (the process is stopping). */
  close(): void {
    this.ended = true;
    this.closing.stopped();
    clearTimeout(this.tick);
    this.tick = undefined;
    for (const viewer of [...this.viewers]) viewer.close();
  }

  private broadcast(chunk: string): void {
    for (const viewer of this.viewers) {
      // A viewer that stopped reading gets no more than what is already buffered.
      if (viewer.response.writableLength > 64 * 1024) viewer.close();
      else (viewer.response as ServerResponse).write(chunk);
    }
  }
}
