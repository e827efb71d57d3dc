/**
 * Staged rollout between the policy-watcher and the log: with OPAL_MESH_ROLLOUT_* set, a
 * new version is not announced to everyone but published as a rollout's canary stage
 * (PolicyChanged.rollout: the candidate for the canaries, the stable version for the
 * rest); promotion and rollback are events on the log too, so resuming clients replay
 * them and the snapshot carries the canary stage to late joiners. While the canary stage
 * lasts (or after a rollback, until the source moves on), a bundle asked for without a
 * version is the stable one: a client that does not know it is a canary gets the safe one.
 *
 * The rollout's decisions are `Rollout`'s (common/rollout/rollout-state.ts); this owns
 * which one is under way and publishes its steps.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type PolicyRolloutSchema, RolloutStage } from "../../../gen/opal/mesh/v1/event_pb.js";
import type { RolloutConfig } from "../../common/config/rollout-config.js";
import type { Logger } from "../../common/logger.js";
import { describeSelector } from "../../common/rollout/canary-selector.js";
import { Rollout, type RolloutDecision, type RolloutStatus } from "../../common/rollout/rollout-state.js";
import type { PolicyChange } from "../watcher.js";

export type RolloutStep = MessageInitShape<typeof PolicyRolloutSchema>;

/** Appends a PolicyChanged (with its rollout step) to the log: its position; undefined when this watcher does not publish. */
export type PublishChange = (change: PolicyChange, rollout?: RolloutStep) => Promise<bigint | undefined>;

export interface GateStatus {
  /** The version everyone but the canaries holds. */
  stable: string;
  /** The rollout under way, or the last one that ended. */
  rollout: RolloutStatus | undefined;
  /** A candidate rolled back: not offered again until the source has a newer version. */
  rejected: string | undefined;
}

export class RolloutGate {
  private stable = "";
  private rollout: Rollout | undefined;
  private dirs: string[] = [];
  private rejected: string | undefined;
  private unpublished: { rollout: Rollout; decision: RolloutDecision } | undefined;
  /** Where the canary step of the rollout under way is on the log (its ACKs are the canaries' verdicts). */
  canaryPosition: bigint | undefined;

  constructor(
    private readonly config: RolloutConfig,
    private readonly publishChange: PublishChange,
    private readonly logger: Logger,
  ) {}

  /** The watcher's publish: a first version goes to everyone; each later one starts a rollout. */
  async publish(change: PolicyChange): Promise<boolean> {
    if (this.stable === "" || change.hash === this.stable) {
      const published = (await this.publishChange(change)) !== undefined;
      if (published) this.stable = change.hash;
      return published;
    }
    if (change.hash === this.rejected) {
      this.logger.warn({ hash: change.hash, stable: this.stable }, "this policy version was rolled back: not offered again until the source has a newer one");
      return true;
    }
    const current = this.rollout;
    if (current !== undefined && !current.ended && current.plan.candidate === change.hash) {
      // Announced again (a newly elected publisher): the same canary stage, now at this position.
      const position = await this.publishChange({ ...change, oldHash: this.stable, dirs: this.dirs }, this.step(RolloutStage.CANARY, "announced again", this.stable, current.plan.id));
      if (position !== undefined) this.canaryPosition = position;
      return position !== undefined;
    }
    const plan = { id: change.hash, scope: "default", candidate: change.hash, stable: this.stable, selector: this.config.selector, soakMs: this.config.soakMs };
    // Against the stable version: a candidate replaced or rolled back since changed directories too.
    const dirs = [...new Set([...(change.oldHash !== this.stable ? this.dirs : []), ...change.dirs])];
    const position = await this.publishChange({ hash: change.hash, oldHash: this.stable, dirs }, this.step(RolloutStage.CANARY, `canaries first: ${describeSelector(this.config.selector)}`, plan.stable, plan.id));
    if (position === undefined) return false;
    this.canaryPosition = position;
    this.rollout = new Rollout(plan);
    this.dirs = dirs;
    this.rejected = undefined;
    this.logger.info({ candidate: change.hash, stable: this.stable, canaries: describeSelector(this.config.selector) }, "staged rollout: the new policy version goes to the canaries first");
    return true;
  }

  /** The version a bundle asked for without one is: the stable one while canaries try another. */
  defaultVersion(): string {
    const under = (this.rollout !== undefined && !this.rollout.ended) || this.unpublished !== undefined;
    return under || this.rejected !== undefined ? this.stable : "";
  }

  get underWay(): Rollout | undefined {
    return this.rollout !== undefined && !this.rollout.ended ? this.rollout : undefined;
  }

  status(): GateStatus {
    return { stable: this.stable, rollout: this.rollout?.status(), rejected: this.rejected };
  }

  pause(): void {
    this.underWay?.pause();
  }

  resume(): void {
    this.underWay?.resume();
  }

  async promote(by: string): Promise<RolloutDecision> {
    const rollout = this.underWay;
    if (rollout === undefined) return { action: "none" };
    return this.settle(rollout, rollout.promote(by));
  }

  async rollback(by: string): Promise<RolloutDecision> {
    const rollout = this.underWay;
    if (rollout === undefined) return { action: "none" };
    return this.settle(rollout, rollout.rollback(by));
  }

  /** Publishes what a rollout decided (by hand, or its controller from what the canaries did). */
  async settle(rollout: Rollout, decision: RolloutDecision): Promise<RolloutDecision> {
    if (decision.action === "none") return decision;
    // The rollout has ended in its own state already: until its step is on the log it is
    // kept here, and retried (`retryUnpublished`), so the fleet never stays half-way.
    this.unpublished = { rollout, decision };
    const { candidate, stable } = rollout.plan;
    const promote = decision.action === "promote";
    const position = promote
      ? await this.publishChange({ hash: candidate, oldHash: stable, dirs: this.dirs }, this.step(RolloutStage.PROMOTED, decision.reason, candidate, rollout.plan.id))
      : await this.publishChange({ hash: stable, oldHash: candidate, dirs: this.dirs }, this.step(RolloutStage.ROLLED_BACK, decision.reason, stable, rollout.plan.id));
    if (position === undefined) throw new Error("this policy-watcher is no longer the elected publisher: the rollout's step waits for it to be again");
    this.unpublished = undefined;
    if (promote) {
      this.stable = candidate;
      this.logger.info({ candidate, reason: decision.reason }, "staged rollout: promoted to every client");
    } else {
      this.rejected = candidate;
      this.logger.warn({ candidate, stable, reason: decision.reason }, "staged rollout: rolled back; the canaries go back to the stable version");
    }
    return decision;
  }

  /** A decided step that could not be published yet (the log was away): published now, if it is still there. */
  async retryUnpublished(): Promise<void> {
    const pending = this.unpublished;
    if (pending !== undefined) await this.settle(pending.rollout, pending.decision);
  }

  private step(stage: RolloutStage, reason: string, stableHash: string, id: string): RolloutStep {
    return { id, stage, stableHash, canaryLabels: { ...this.config.selector.labels }, canaryPercent: this.config.selector.percent, reason };
  }
}
