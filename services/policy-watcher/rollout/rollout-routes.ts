/**
 * The staged rollout by hand: `GET /policy/rollout` (where it is, canary by canary) and
 * `POST /policy/rollout/{promote|pause|resume|rollback}`, for datasource tokens (the
 * ones that may publish). Only the elected publisher can publish a step: elsewhere the
 * answer says so.
 */
import { HttpError, sendJson } from "../../common/http/json-io.js";
import type { RestRoute } from "../../common/http/rest-router.js";
import { describeSelector } from "../../common/rollout/canary-selector.js";
import type { RolloutGate } from "./rollout-gate.js";

const ACTIONS = ["promote", "pause", "resume", "rollback"] as const;

export function rolloutStatusJson(gate: RolloutGate): Record<string, unknown> {
  const { stable, rollout, rejected } = gate.status();
  return {
    stable,
    rejected: rejected ?? null,
    rollout:
      rollout === undefined
        ? null
        : {
            id: rollout.plan.id,
            candidate: rollout.plan.candidate,
            stable: rollout.plan.stable,
            stage: rollout.stage,
            message: rollout.message,
            canaries: describeSelector(rollout.plan.selector),
            soak_seconds: rollout.plan.soakMs / 1000,
            soaking_since: rollout.soakingSinceMs === undefined ? null : new Date(rollout.soakingSinceMs).toISOString(),
            clients: rollout.canaries.map((canary) => ({ client_id: canary.clientId, delivery: canary.delivery, healthy: canary.healthy ?? null, message: canary.message ?? "" })),
          },
  };
}

export function rolloutRoutes(gate: RolloutGate, mayPublish: () => boolean): RestRoute[] {
  return [
    { method: "GET", auth: ["datasource"], path: "/policy/rollout", handle: (_request, response) => sendJson(response, 200, rolloutStatusJson(gate)) },
    {
      method: "POST",
      auth: ["datasource"],
      path: "/policy/rollout/{action}",
      handle: async (_request, response, context) => {
        const action = context.params.action ?? "";
        if (!(ACTIONS as readonly string[]).includes(action)) throw new HttpError(404, `no rollout action ${JSON.stringify(action)}; one of ${ACTIONS.join(", ")}`);
        if (gate.underWay === undefined) throw new HttpError(409, "no staged rollout is under way");
        if (!mayPublish()) throw new HttpError(503, "this policy-watcher is not the elected publisher: ask the one that is");
        const subject = context.principal?.subject ?? "";
        const by = subject === "" ? "the API" : `${subject} via the API`;
        if (action === "pause") gate.pause();
        else if (action === "resume") gate.resume();
        else {
          try {
            await (action === "promote" ? gate.promote(by) : gate.rollback(by));
          } catch (error) {
            // Decided, not yet on the log: the controller publishes it as soon as it can.
            throw new HttpError(503, `${action} decided, but its step could not be published yet: ${(error as Error).message}; it is retried`);
          }
        }
        sendJson(response, 200, rolloutStatusJson(gate));
      },
    },
  ];
}
