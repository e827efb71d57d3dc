/**
 * kafkajs 2.2.4 schedules its pending-request check with `throttledUntil - Date.now()`;
 * `throttledUntil` starts at -1 (not throttled), so with nothing pending the delay is about
 * minus the current Unix time, and Node 24 prints a TimeoutNegativeWarning for it (kafkajs
 * #1751, unfixed upstream). Node already runs such a timer after 1 ms: the same method with
 * the delay clamped to 1 behaves exactly as before, without the warning. Loaded once,
 * before any Kafka client is made.
 */
import { createRequire } from "node:module";

interface RequestQueueLike {
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  pending: unknown[];
  checkPendingRequests(): void;
  scheduleCheckPendingRequests(): void;
}

/** kafkajs's own CHECK_PENDING_REQUESTS_INTERVAL. */
const CHECK_PENDING_REQUESTS_INTERVAL_MS = 10;

const require = createRequire(import.meta.url);
const RequestQueue = require("kafkajs/src/network/requestQueue/index.js") as { prototype: RequestQueueLike };

RequestQueue.prototype.scheduleCheckPendingRequests = function scheduleCheckPendingRequests(this: RequestQueueLike): void {
  if (this.throttleCheckTimeoutId) return;
  let scheduleAt = this.throttledUntil - Date.now();
  if (this.pending.length > 0) scheduleAt = scheduleAt > 0 ? scheduleAt : CHECK_PENDING_REQUESTS_INTERVAL_MS;
  this.throttleCheckTimeoutId = setTimeout(() => {
    this.throttleCheckTimeoutId = null;
    this.checkPendingRequests();
  }, Math.max(1, scheduleAt));
};
