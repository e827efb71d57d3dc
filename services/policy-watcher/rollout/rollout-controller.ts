/**
 * Runs a staged rollout by itself: every tick while one is under way (and this watcher is
 * the elected publisher) it asks the distributors which clients are canaries (their
 * labels, their ids), what each did with the canary step (its ACK of that log position)
 * and how healthy each says it is, and lets the rollout decide: promote after the soak,
 * roll back on a NACK or an unhealthy canary (rollout-state.ts). A canary that joined
 * after the step counts as applied once its report says it holds the candidate.
 */
import type { Client } from "@connectrpc/connect";
import { DeliveryState } from "../../../gen/opal/mesh/v1/delivery_pb.js";
import { type ClientSession, ClientProtocol, type DistributorService } from "../../../gen/opal/mesh/v1/distributor_pb.js";
import { Closing, type Component } from "../../common/lifecycle.js";
import type { Logger } from "../../common/logger.js";
import { isCanary } from "../../common/rollout/canary-selector.js";
import type { CanaryView, Rollout } from "../../common/rollout/rollout-state.js";
import type { RolloutGate } from "./rollout-gate.js";

export interface RolloutControllerOptions {
  gate: RolloutGate;
  /** Every distributor, to list clients and read deliveries (as the trigger-api's delivery status does). */
  distributors: () => ReadonlyArray<Client<typeof DistributorService>>;
  mayPublish: () => boolean;
  logger: Logger;
  intervalMs?: number;
}

export class RolloutController implements Component {
  readonly name = "rollout-controller";
  private readonly closing = new Closing();
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;

  constructor(private readonly options: RolloutControllerOptions) {}

  get closed() {
    return this.closing.closed;
  }

  start(): Promise<void> {
    this.timer = setInterval(() => void this.tick(), this.options.intervalMs ?? 100);
    this.timer.unref();
    return Promise.resolve();
  }

  stop(): Promise<void> {
    clearInterval(this.timer);
    this.closing.end({ reason: "stopped" });
    return Promise.resolve();
  }

  /** One look at the canaries; exported for the specs. */
  async tick(now = Date.now()): Promise<void> {
    const { gate } = this.options;
    if (this.ticking || !this.options.mayPublish()) return;
    this.ticking = true;
    try {
      await gate.retryUnpublished();
      const rollout = gate.underWay;
      if (rollout === undefined) return;
      const views = await this.canaries(rollout);
      // Decided on what was seen; published once (the rollout has moved on by then).
      await gate.settle(rollout, rollout.observe(views, now));
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message }, "could not look at the rollout's canaries; trying again");
    } finally {
      this.ticking = false;
    }
  }

  private async canaries(rollout: Rollout): Promise<CanaryView[]> {
    const { candidate, selector } = rollout.plan;
    const position = this.options.gate.canaryPosition;
    const distributors = this.options.distributors();
    const [lists, statuses] = await Promise.all([
      Promise.all(distributors.map((distributor) => distributor.listClients({}, { timeoutMs: 5_000 }))),
      position === undefined ? Promise.resolve([]) : Promise.all(distributors.map((distributor) => distributor.getDeliveryStatus({ updateId: "", position }, { timeoutMs: 5_000 }))),
    ]);
    const deliveries = new Map<string, { state: DeliveryState; error: string }>();
    for (const { status } of statuses) for (const client of status?.clients ?? []) deliveries.set(client.clientId, { state: client.state, error: client.error });
    const sessions = new Map<string, ClientSession>();
    // OPAL's own clients cannot pick a version: they are never canaries.
    for (const { clients } of lists) for (const session of clients) if (session.protocol !== ClientProtocol.OPAL_WEBSOCKET) sessions.set(session.clientId, session);
    return [...sessions.values()]
      .filter((session) => isCanary(selector, session.clientId, session.labels))
      .map((session): CanaryView => {
        const delivery = deliveries.get(session.clientId);
        const report = session.report;
        const holds = report?.policyHash === candidate;
        const state = delivery?.state === DeliveryState.FAILED ? "failed" : delivery?.state === DeliveryState.APPLIED || holds ? "applied" : "pending";
        const message = state === "failed" ? delivery?.error : report?.message;
        return { clientId: session.clientId, delivery: state, healthy: holds ? report?.healthy : undefined, ...(message === undefined || message === "" ? {} : { message }) };
      });
  }
}
