/**
 * Which clients are a staged rollout's canaries: those whose labels (OPAL_MESH_CLIENT_LABELS)
 * hold every label of the selector, or — by percentage — those whose client id falls in
 * the first `percent` of 100 buckets. The bucket is a hash of the id, so a client is a
 * canary or not the same way on every server and after every restart, and a larger
 * percentage keeps every canary of a smaller one.
 */
import { createHash } from "node:crypto";

export interface CanarySelector {
  /** Every one of these must be among the client's labels (none: labels do not choose). */
  labels: Readonly<Record<string, string>>;
  /** 0–100: the share of client ids chosen by bucket (0: buckets do not choose). */
  percent: number;
}

/** 0–99, stable for a client id. */
export function canaryBucket(clientId: string): number {
  return createHash("sha256").update(clientId).digest().readUInt32BE(0) % 100;
}

export function isCanary(selector: CanarySelector, clientId: string, labels: Readonly<Record<string, string>>): boolean {
  const wanted = Object.entries(selector.labels);
  if (wanted.length > 0 && wanted.every(([key, value]) => labels[key] === value)) return true;
  return selector.percent > 0 && canaryBucket(clientId) < selector.percent;
}

/** For logs and the dashboard: `canary=true`, `10% of clients`, or both. */
export function describeSelector(selector: CanarySelector): string {
  const parts = [Object.entries(selector.labels).map(([key, value]) => `${key}=${value}`).join(","), selector.percent > 0 ? `${selector.percent}% of clients` : ""].filter((part) => part !== "");
  return parts.length === 0 ? "no clients" : parts.join(" or ");
}
