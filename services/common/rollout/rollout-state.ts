/**
 * One staged policy rollout's decisions, apart from how they are observed and published:
 * the candidate goes to the canaries first; once every canary applied it and stayed
 * healthy for the soak time it is promoted to everyone; a canary that refuses it (a NACK)
 * or is unhealthy after applying it rolls the canaries back to the stable version. Pause
 * holds promotion (a NACK still rolls back: that is the safety the rollout exists for);
 * promote and rollback by hand end it at once.
 *
 * The owner feeds `observe` what it sees of the canaries on each tick and publishes the
 * decision it returns (as an event on the log); the stage has moved by then, so a
 * decision is returned once.
 */
import { type CanarySelector, describeSelector } from "./canary-selector.js";

export type RolloutStage = "canary" | "soaking" | "paused" | "promoted" | "rolled_back";

export interface RolloutPlan {
  id: string;
  scope: string;
  /** The version the canaries get. */
  candidate: string;
  /** The version everyone else keeps, and the canaries go back to on a rollback. */
  stable: string;
  selector: CanarySelector;
  soakMs: number;
}

/** One canary as the owner sees it now: its delivery of the candidate and its last health report. */
export interface CanaryView {
  clientId: string;
  delivery: "pending" | "applied" | "failed";
  /** undefined: no report since it applied. */
  healthy: boolean | undefined;
  /** The failure or the health message, in the client's words. */
  message?: string;
}

export type RolloutDecision = { action: "none" } | { action: "promote"; reason: string } | { action: "rollback"; reason: string };

export interface RolloutStatus {
  plan: RolloutPlan;
  stage: RolloutStage;
  /** What it waits for, or why it ended. */
  message: string;
  canaries: CanaryView[];
  /** When the soak began (every canary had applied); undefined before. */
  soakingSinceMs: number | undefined;
}

const NONE: RolloutDecision = { action: "none" };

export class Rollout {
  private current: RolloutStage = "canary";
  private resumeTo: "canary" | "soaking" = "canary";
  private soakingSince: number | undefined;
  private canaries: CanaryView[] = [];
  private message: string;

  constructor(readonly plan: RolloutPlan) {
    this.message = `waiting for the canaries (${describeSelector(plan.selector)}) to apply ${plan.candidate}`;
  }

  get stage(): RolloutStage {
    return this.current;
  }

  get ended(): boolean {
    return this.current === "promoted" || this.current === "rolled_back";
  }

  observe(canaries: readonly CanaryView[], nowMs: number): RolloutDecision {
    if (this.ended) return NONE;
    this.canaries = [...canaries];
    const failed = canaries.find((canary) => canary.delivery === "failed");
    if (failed !== undefined) return this.end("rolled_back", `canary ${failed.clientId} refused ${this.plan.candidate}: ${failed.message ?? "failed"}`);
    const sick = canaries.find((canary) => canary.delivery === "applied" && canary.healthy === false);
    if (sick !== undefined) return this.end("rolled_back", `canary ${sick.clientId} is unhealthy after applying ${this.plan.candidate}: ${sick.message ?? "unhealthy"}`);
    if (this.current === "paused") return NONE;
    if (canaries.length === 0) {
      this.toCanary("no canary is connected: nothing to try the candidate on (promote by hand, or connect one)");
      return NONE;
    }
    const pending = canaries.filter((canary) => canary.delivery === "pending");
    if (pending.length > 0) {
      // A canary that joined during the soak must apply it too: the soak starts again after.
      this.toCanary(`waiting for ${pending.length} of ${canaries.length} canaries to apply ${this.plan.candidate}`);
      return NONE;
    }
    if (this.current === "canary" || this.soakingSince === undefined) {
      this.current = "soaking";
      this.soakingSince = nowMs;
    }
    const soaked = nowMs - this.soakingSince;
    if (soaked < this.plan.soakMs) {
      this.message = `every canary (${canaries.length}) applied ${this.plan.candidate}; soaking ${Math.ceil((this.plan.soakMs - soaked) / 1000)} s more`;
      return NONE;
    }
    return this.end("promoted", `every canary (${canaries.length}) applied ${this.plan.candidate} and stayed healthy for ${this.plan.soakMs / 1000} s`);
  }

  pause(): void {
    if (this.ended || this.current === "paused") return;
    this.resumeTo = this.current === "soaking" ? "soaking" : "canary";
    this.current = "paused";
    this.message = "paused by hand: not promoted until resumed (a canary's refusal still rolls back)";
  }

  resume(): void {
    if (this.current !== "paused") return;
    this.current = this.resumeTo;
    this.message = "resumed";
  }

  promote(by: string): RolloutDecision {
    return this.ended ? NONE : this.end("promoted", `promoted by hand (${by})`);
  }

  rollback(by: string): RolloutDecision {
    return this.ended ? NONE : this.end("rolled_back", `rolled back by hand (${by})`);
  }

  status(): RolloutStatus {
    return { plan: this.plan, stage: this.current, message: this.message, canaries: [...this.canaries], soakingSinceMs: this.soakingSince };
  }

  private toCanary(message: string): void {
    this.current = "canary";
    this.soakingSince = undefined;
    this.message = message;
  }

  private end(stage: "promoted" | "rolled_back", reason: string): RolloutDecision {
    this.current = stage;
    this.message = reason;
    return { action: stage === "promoted" ? "promote" : "rollback", reason };
  }
}
