/**
 * Prometheus metrics. Every process object (a server process, a client agent) owns one
 * registry, made at its composition root and handed to what records metrics: tests run
 * several servers and clients in one Node process, so prom-client's global registry is
 * never used.
 */
import type { ServerResponse } from "node:http";
import { collectDefaultMetrics, Registry } from "prom-client";
import type { RestRoute } from "../http/rest-router.js";

export { Counter, Gauge, Histogram, Registry } from "prom-client";

/** Latency buckets from 1 ms to 60 s (publish→ACK, fetches, store writes). */
export const LATENCY_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** A registry with Node's process metrics (CPU, memory, event loop, GC) registered once. */
export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** `GET /metrics` in Prometheus' text format. Open, as scrapers expect; it carries no secrets. */
export function metricsRoute(registry: Registry): RestRoute {
  return {
    method: "GET",
    path: "/metrics",
    auth: "open",
    async handle(_request, response) {
      const body = await registry.metrics();
      // The two response types share this shape but not one overload set.
      const target = response as ServerResponse;
      target.writeHead(200, { "content-type": registry.contentType, "content-length": Buffer.byteLength(body) });
      target.end(body);
    },
  };
}

/** Seconds elapsed since `started` (a `performance.now()` reading). */
export function secondsSince(started: number): number {
  return (performance.now() - started) / 1000;
}
