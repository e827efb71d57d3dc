/**
 * Staged policy rollout (the policy-watcher): a new policy version goes first to the
 * canaries — clients whose OPAL_MESH_CLIENT_LABELS hold every label of
 * OPAL_MESH_ROLLOUT_CANARY_LABELS, or the OPAL_MESH_ROLLOUT_CANARY_PERCENT share of client
 * ids — and to everyone once promoted. Off unless one of the two is set.
 */
import type { CanarySelector } from "../rollout/canary-selector.js";
import { parseLabels } from "./client-labels-config.js";
import type { EnvReader } from "./env-reader.js";

export interface RolloutConfig {
  selector: CanarySelector;
  /** OPAL_MESH_ROLLOUT_SOAK_SECONDS: how long every canary must stay healthy before promotion. */
  soakMs: number;
}

export function readRolloutConfig(env: EnvReader): RolloutConfig | undefined {
  const text = env.optionalString("OPAL_MESH_ROLLOUT_CANARY_LABELS");
  let labels: Record<string, string> = {};
  if (text !== undefined) {
    try {
      labels = parseLabels(text);
    } catch (error) {
      env.problem("OPAL_MESH_ROLLOUT_CANARY_LABELS", (error as Error).message);
    }
  }
  const percent = env.int("OPAL_MESH_ROLLOUT_CANARY_PERCENT", 0, { min: 0, max: 100 });
  const soakMs = env.number("OPAL_MESH_ROLLOUT_SOAK_SECONDS", 60, { min: 0 }) * 1000;
  if (Object.keys(labels).length === 0 && percent === 0) return undefined;
  return { selector: { labels, percent }, soakMs };
}
