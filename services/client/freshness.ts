/**
 * How fresh the data in this client's OPA is, for the two things a decision may ask:
 *
 * - read-your-writes: a publish answers with its log position; `waitFor(P)` resolves once
 *   a transaction that got OPA to P (or past it) committed, or says where OPA is at the
 *   deadline. Positions come from one log: a client on another log (its id differs) never
 *   claims to hold P.
 * - fail-closed staleness: `stale` is true while the stream has been down longer than
 *   OPAL_MESH_MAX_STALENESS_SECONDS, while the client knows it is more than
 *   OPAL_MESH_MAX_LAG_POSITIONS behind the log's head, or while its last update failed.
 *   It goes into OPA's status document (data.system.opal.stale), so Rego can deny.
 *
 * It decides nothing about writes: `onChange` asks for the status document to be
 * rewritten in the update pipeline's order (never beside a data write).
 */
import { component, type Component } from "../common/lifecycle.js";

export interface FreshnessLimits {
  /** Stream down longer than this: stale. 0: never stale for that. */
  maxStalenessMs: number;
  /** Known to be more than this many positions behind the head: stale. 0: never stale for that. */
  maxLagPositions: number;
}

export interface Staleness {
  stale: boolean;
  /** Since when it is stale (ISO time); undefined while fresh. */
  since: string | undefined;
  /** Why, one line per cause; empty while fresh. */
  reasons: string[];
}

export interface PositionWait {
  /** OPA holds `position` (or a later one of the same log). */
  reached: boolean;
  /** The position OPA holds now (0 before anything was committed). */
  position: bigint;
  logId: string;
}

interface Waiter {
  position: bigint;
  logId: string | undefined;
  resolve: (wait: PositionWait) => void;
}

export class Freshness {
  private held = 0n;
  private heldLog = "";
  private head = 0n;
  private connected = false;
  private downSinceMs: number | undefined;
  private failure: string | undefined;
  private staleSinceMs: number | undefined;
  private lastKey = "";
  private downTimer: NodeJS.Timeout | undefined;
  private readonly waiters = new Set<Waiter>();
  private readonly maxLag: bigint;

  constructor(
    private readonly limits: FreshnessLimits,
    /** The staleness changed: rewrite the status document, report it. */
    private readonly onChange: (staleness: Staleness) => void = () => undefined,
    private readonly now: () => number = Date.now,
  ) {
    this.maxLag = BigInt(limits.maxLagPositions);
    // Not connected yet counts as down: a client that never reaches its server goes stale too.
    this.wentDown();
  }

  /** A stopping part: its timer ends, and every waiter is answered with what OPA holds. */
  component(): Component {
    return component("freshness", {
      stop: () => {
        clearTimeout(this.downTimer);
        for (const waiter of [...this.waiters]) this.answer(waiter, false);
      },
    });
  }

  get position(): bigint {
    return this.held;
  }

  get logId(): string {
    return this.heldLog;
  }

  /** A transaction that got OPA to `position` committed (the status document moved with it). */
  committed(logId: string, position: bigint): void {
    this.held = position;
    this.heldLog = logId;
    for (const waiter of [...this.waiters]) if (this.holds(waiter)) this.answer(waiter, true);
    this.evaluate();
  }

  /** OPA lost its state: it holds nothing until it is written again. */
  forgotten(): void {
    this.held = 0n;
    this.evaluate();
  }

  /** The head of the log as far as this client knows it (a Welcome, a Resync, an event received). */
  headSeen(position: bigint): void {
    if (position > this.head) this.head = position;
    this.evaluate();
  }

  connection(connected: boolean): void {
    if (connected === this.connected) return;
    this.connected = connected;
    clearTimeout(this.downTimer);
    this.downTimer = undefined;
    if (connected) this.downSinceMs = undefined;
    else this.wentDown();
    this.evaluate();
  }

  private wentDown(): void {
    this.downSinceMs = this.now();
    if (this.limits.maxStalenessMs <= 0) return;
    this.downTimer = setTimeout(() => this.evaluate(), this.limits.maxStalenessMs + 1);
    this.downTimer.unref();
  }

  /** The last update's outcome: a failure makes the client stale until one succeeds. */
  updateSettled(error: string | undefined): void {
    this.failure = error;
    this.evaluate();
  }

  /** Resolves once OPA holds `position` of `logId` (any log when undefined), or at `timeoutMs` with where it is. */
  waitFor(position: bigint, logId: string | undefined, timeoutMs: number, signal?: AbortSignal): Promise<PositionWait> {
    return new Promise((resolve) => {
      const waiter: Waiter = { position, logId, resolve };
      if (this.holds(waiter)) return resolve(this.result(true));
      const timer = setTimeout(() => this.answer(waiter, false), timeoutMs);
      const onAbort = (): void => this.answer(waiter, false);
      signal?.addEventListener("abort", onAbort, { once: true });
      waiter.resolve = (wait) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        resolve(wait);
      };
      this.waiters.add(waiter);
    });
  }

  staleness(): Staleness {
    const reasons = this.reasons();
    return { stale: reasons.length > 0, since: this.staleSinceMs === undefined ? undefined : new Date(this.staleSinceMs).toISOString(), reasons };
  }

  private isDown(now: number): boolean {
    return !this.connected && this.downSinceMs !== undefined && this.limits.maxStalenessMs > 0 && now - this.downSinceMs > this.limits.maxStalenessMs;
  }

  private isLagging(): boolean {
    return this.maxLag > 0n && this.head - this.held > this.maxLag;
  }

  private reasons(): string[] {
    const reasons: string[] = [];
    const now = this.now();
    if (this.isDown(now) && this.downSinceMs !== undefined) {
      reasons.push(`the stream to the server has been down for ${Math.round((now - this.downSinceMs) / 1000)} s (OPAL_MESH_MAX_STALENESS_SECONDS=${this.limits.maxStalenessMs / 1000})`);
    }
    if (this.isLagging()) reasons.push(`${this.head - this.held} positions behind the log's head ${this.head} (OPAL_MESH_MAX_LAG_POSITIONS=${this.limits.maxLagPositions})`);
    if (this.failure !== undefined) reasons.push(`the last update failed: ${this.failure}`);
    return reasons;
  }

  // Runs for every event received and every commit: compares the causes only, and words
  // them (reasons) only when they changed — not when a lag count merely moves.
  private evaluate(): void {
    const key = `${this.isDown(this.now()) ? "down;" : ""}${this.isLagging() ? "lagging;" : ""}${this.failure === undefined ? "" : `failed:${this.failure}`}`;
    const stale = key !== "";
    if (stale && this.staleSinceMs === undefined) this.staleSinceMs = this.now();
    if (!stale) this.staleSinceMs = undefined;
    if (key === this.lastKey) return;
    this.lastKey = key;
    this.onChange(this.staleness());
  }

  private holds(waiter: Waiter): boolean {
    return (waiter.logId === undefined || waiter.logId === this.heldLog) && this.held >= waiter.position;
  }

  private answer(waiter: Waiter, reached: boolean): void {
    this.waiters.delete(waiter);
    waiter.resolve(this.result(reached));
  }

  private result(reached: boolean): PositionWait {
    return { reached, position: this.held, logId: this.heldLog };
  }
}
