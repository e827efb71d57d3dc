/**
 * The trigger-api's Prometheus metrics: every publish request, by route (OPAL's REST
 * route or Connect) and outcome, and how long it took. They wrap the service and the
 * routes from outside, so the publishing code stays as it is.
 */
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { PublishDataUpdateRequest, TriggerService } from "../../gen/opal/mesh/v1/trigger_pb.js";
import { AuthError } from "../common/auth/tokens.js";
import { HttpError } from "../common/http/json-io.js";
import { ValidationError } from "../common/validation-error.js";
import type { RestRoute } from "../common/http/rest-router.js";
import { Counter, Histogram, LATENCY_BUCKETS, type Registry, secondsSince } from "../common/telemetry/metrics.js";

export type PublishRoute = "rest" | "connect";
/** ok: logged; refused: the caller's request was turned down (invalid, forbidden, unknown scope); error: the mesh failed. */
export type PublishOutcome = "ok" | "refused" | "error";

const REFUSED_CODES = new Set([Code.InvalidArgument, Code.PermissionDenied, Code.Unauthenticated, Code.NotFound, Code.FailedPrecondition, Code.ResourceExhausted, Code.AlreadyExists, Code.OutOfRange]);

/** What a failed publish says about who was at fault. */
export function publishOutcome(error: unknown): Exclude<PublishOutcome, "ok"> {
  if (error instanceof AuthError || error instanceof ValidationError) return "refused";
  if (error instanceof HttpError) return error.status < 500 ? "refused" : "error";
  if (error instanceof ConnectError) return REFUSED_CODES.has(error.code) ? "refused" : "error";
  return "error";
}

export class TriggerMetrics {
  private readonly published: Counter<"route" | "outcome">;
  private readonly duration: Histogram<"route" | "outcome">;

  constructor(registry: Registry) {
    const registers = [registry];
    this.published = new Counter({ name: "opal_mesh_trigger_updates_published_total", help: "Publish requests that reached the trigger-api, by route (rest, connect) and outcome (ok, refused, error).", labelNames: ["route", "outcome"], registers });
    this.duration = new Histogram({ name: "opal_mesh_trigger_publish_duration_seconds", help: "How long publish requests took (with wait=true, the wait included), by route and outcome.", labelNames: ["route", "outcome"], buckets: [...LATENCY_BUCKETS], registers });
    for (const route of ["rest", "connect"] as const) for (const outcome of ["ok", "refused", "error"] as const) this.published.inc({ route, outcome }, 0);
  }

  async measure<T>(route: PublishRoute, publish: () => Promise<T>): Promise<T> {
    const started = performance.now();
    let outcome: PublishOutcome = "ok";
    try {
      return await publish();
    } catch (error) {
      outcome = publishOutcome(error);
      throw error;
    } finally {
      this.published.inc({ route, outcome });
      this.duration.observe({ route, outcome }, secondsSince(started));
    }
  }

  /** The same service, its PublishDataUpdate measured. */
  service(impl: ServiceImpl<typeof TriggerService>): ServiceImpl<typeof TriggerService> {
    return { ...impl, publishDataUpdate: (request: PublishDataUpdateRequest, context: HandlerContext) => this.measure("connect", async () => impl.publishDataUpdate(request, context)) };
  }

  /** The same routes, the publishing ones (POST to one of `paths`) measured. */
  routes(routes: readonly RestRoute[], paths: readonly string[]): RestRoute[] {
    return routes.map((route) =>
      route.method === "POST" && paths.includes(route.path) ? { ...route, handle: (request, response, context) => this.measure("rest", async () => route.handle(request, response, context)) } : route,
    );
  }
}
