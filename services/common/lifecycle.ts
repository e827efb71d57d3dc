/**
 * One lifecycle shape for every long-lived part (OPA's plugin manager, nats.js):
 * `start(signal)`, an idempotent `stop()`, and `closed`, a promise that never rejects and
 * says why the part ended. A supervisor starts parts in dependency order, stops them in
 * reverse under one shutdown deadline, and stops everything when one part ends by itself.
 */
import type { Logger } from "./logger.js";

/** Why a part ended: stopped on purpose, or failed by itself (with the error). */
export type Closed = { reason: "stopped" } | { reason: "failed"; error: Error };

export interface Component {
  readonly name: string;
  /** Resolves once the part serves; `signal` aborts when its owner shuts down. */
  start(signal: AbortSignal): Promise<void>;
  /** Idempotent; resolves once the part has let go of everything it held. */
  stop(): Promise<void>;
  /** Settles once, when the part has ended; never rejects. */
  readonly closed: Promise<Closed>;
}

/**
 * The `closed` half of a part, for composition: the part calls `end` when it stops or
 * fails (the first call wins), and hands out `closed`.
 */
export class Closing {
  readonly closed: Promise<Closed>;
  private settle!: (closed: Closed) => void;
  private ended: Closed | undefined;

  constructor() {
    this.closed = new Promise((resolve) => {
      this.settle = resolve;
    });
  }

  get isClosed(): boolean {
    return this.ended !== undefined;
  }

  end(closed: Closed): void {
    if (this.ended !== undefined) return;
    this.ended = closed;
    this.settle(closed);
  }

  stopped(): void {
    this.end({ reason: "stopped" });
  }

  failed(error: unknown): void {
    this.end({ reason: "failed", error: error instanceof Error ? error : new Error(String(error)) });
  }
}

/**
 * A part made of its start and stop functions: `stop` runs once (every later call gets the
 * same promise), and `closed` settles after it. Parts whose work can fail on its own call
 * `fail` (the supervisor then shuts the process down).
 */
export function component(name: string, parts: { start?: (signal: AbortSignal) => Promise<void> | void; stop?: () => Promise<void> | void }): Component & { fail(error: unknown): void } {
  const closing = new Closing();
  let stopping: Promise<void> | undefined;
  return {
    name,
    closed: closing.closed,
    async start(signal) {
      await parts.start?.(signal);
    },
    stop() {
      stopping ??= (async () => {
        try {
          await parts.stop?.();
        } finally {
          closing.stopped();
        }
      })();
      return stopping;
    },
    fail(error) {
      closing.failed(error);
    },
  };
}

/**
 * A part that is its supervisor's parts (the client agent, a server process): start, stop
 * and closed are the supervisor's.
 */
export abstract class SupervisedComponent implements Component {
  abstract readonly name: string;
  protected abstract readonly supervisor: Supervisor;

  start(signal: AbortSignal): Promise<void> {
    return this.supervisor.start(signal);
  }

  stop(): Promise<void> {
    return this.supervisor.stop();
  }

  get closed(): Promise<Closed> {
    return this.supervisor.closed;
  }
}

/** A supervisor is a part too: what it supervises is a composite that others can supervise. */
export class Supervisor implements Component {
  private readonly started: Component[] = [];
  private readonly controller = new AbortController();
  private stopping: Promise<void> | undefined;
  private readonly closing = new Closing();
  /** The part that ended by itself first, if one did. */
  private failure: Closed | undefined;

  constructor(
    private readonly components: readonly Component[],
    private readonly logger: Logger,
    private readonly shutdownTimeoutMs = 10_000,
    readonly name = "supervisor",
  ) {}

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Settles when every part has stopped: "failed" when one ended by itself first. */
  get closed(): Promise<Closed> {
    return this.closing.closed;
  }

  /**
   * Starts the parts in the order given (dependencies first); on a failure stops what
   * started. `signal` (its owner shutting down) stops them all.
   */
  async start(signal?: AbortSignal): Promise<void> {
    signal?.addEventListener("abort", () => void this.stop(), { once: true });
    for (const part of this.components) {
      if (this.stopping !== undefined) return;
      try {
        await part.start(this.controller.signal);
        this.started.push(part);
        this.watch(part);
      } catch (error) {
        this.logger.error({ err: error, component: part.name }, "start-up failed");
        await this.stop();
        throw error;
      }
    }
  }

  stop(): Promise<void> {
    this.stopping ??= this.stopAll().then(() => this.closing.end(this.failure ?? { reason: "stopped" }));
    return this.stopping;
  }

  /** A part that ends while the others run takes the process down with it, in order. */
  private watch(part: Component): void {
    void part.closed.then((closed) => {
      if (this.stopping !== undefined) return;
      if (closed.reason === "failed") {
        this.logger.error({ err: closed.error, component: part.name }, "a part failed: shutting down");
        this.failure = closed;
      } else {
        this.logger.warn({ component: part.name }, "a part stopped by itself: shutting down");
      }
      void this.stop();
    });
  }

  private async stopAll(): Promise<void> {
    this.controller.abort(new Error("shutting down"));
    const deadline = Date.now() + this.shutdownTimeoutMs;
    for (const part of [...this.started].reverse()) {
      const remaining = Math.max(1, deadline - Date.now());
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), remaining);
      });
      try {
        const outcome = await Promise.race([part.stop().then(() => "stopped" as const), timeout]);
        if (outcome === "timeout") this.logger.warn({ component: part.name }, "did not stop before the shutdown deadline");
      } catch (error) {
        this.logger.warn({ err: error, component: part.name }, "stop failed");
      } finally {
        clearTimeout(timer);
      }
    }
  }
}
