/**
 * What every publish goes through on either surface, written once: its server span, its
 * errors in the surface's terms, and the "data update published" line. On Connect these
 * are interceptors (registered by the process beside authentication); OPAL's REST routes
 * run the same span and log line through `tracedPublish`.
 */
import { createContextKey, type Interceptor } from "@connectrpc/connect";
import { TriggerService } from "../../gen/opal/mesh/v1/trigger_pb.js";
import { errorMappingInterceptor, httpStatusOf } from "../common/edge/error-mapping.js";
import type { HttpRequest } from "../common/http/json-io.js";
import type { RestContext } from "../common/http/rest-router.js";
import type { Logger } from "../common/logger.js";
import { inServerSpan } from "../common/telemetry/server-span.js";
import type { Span, Tracing } from "../common/telemetry/tracing.js";
import type { Published, PublishTrace } from "./publish.js";

/** The request's server span, for the handler to hang the publish under; undefined when tracing is off. */
export const SERVER_SPAN = createContextKey<Span | undefined>(undefined, { description: "the request's server span" });

const TRACED_METHODS = new Set(["PublishDataUpdate"]);

export interface TriggerInterceptorOptions {
  tracing?: Tracing;
  logger: Logger;
}

/** The log line of a published update, the same from both surfaces. */
export function logPublished(logger: Logger, published: Published, entries: number, scope?: string): void {
  logger.info({ updateId: published.id, position: published.position.toString(), entries, ...(scope === undefined ? {} : { scope }) }, "data update published");
}

/** Tracing, error mapping and the log line of TriggerService, outermost first. */
export function triggerInterceptors(options: TriggerInterceptorOptions): Interceptor[] {
  return [tracingInterceptor(options.tracing), errorMappingInterceptor([TriggerService.typeName]), publishLogInterceptor(options.logger)];
}

function tracingInterceptor(tracing: Tracing | undefined): Interceptor {
  return (next) => async (request) => {
    if (request.service.typeName !== TriggerService.typeName || !TRACED_METHODS.has(request.method.name) || tracing?.enabled !== true) return next(request);
    const path = `${TriggerService.typeName}/${request.method.name}`;
    const parent = tracing.extract({ traceparent: request.header.get("traceparent") ?? undefined, tracestate: request.header.get("tracestate") ?? undefined });
    return inServerSpan(tracing, { name: path, parent, attributes: { "rpc.system": "connect_rpc", "rpc.service": TriggerService.typeName, "rpc.method": request.method.name } }, async (span) => {
      request.contextValues.set(SERVER_SPAN, span);
      return next(request);
    });
  };
}

function publishLogInterceptor(logger: Logger): Interceptor {
  return (next) => async (request) => {
    const response = await next(request);
    if (request.service.typeName === TriggerService.typeName && request.method.name === "PublishDataUpdate" && !response.stream && !request.stream) {
      const message = response.message as { id?: string; position?: bigint };
      const entries = (request.message as { entries?: unknown[] }).entries?.length ?? 0;
      logPublished(logger, { id: message.id ?? "", position: message.position ?? 0n }, entries);
    }
    return response;
  };
}

/** The publish span of a traced request, under its server span (none when tracing is off). */
export function publishTraceUnder(tracing: Tracing | undefined, span: Span | undefined, destination: string): PublishTrace | undefined {
  return tracing === undefined || span === undefined ? undefined : { tracing, parent: tracing.under(span), destination };
}

/** A REST publish in its server span (`POST <route>`), continuing the caller's `traceparent`. */
export function tracedPublish(tracing: Tracing | undefined, route: string, request: HttpRequest, context: RestContext, publish: (span: Span | undefined) => Promise<void>): Promise<void> {
  const parent = tracing?.enabled === true ? tracing.extract(request.headers) : undefined;
  if (tracing === undefined || parent === undefined) return publish(undefined);
  return inServerSpan(
    tracing,
    {
      name: `POST ${route}`,
      parent,
      attributes: { "http.request.method": "POST", "http.route": route, "url.path": context.url.pathname, "url.scheme": "http" },
      outcome: (error) => ({ "http.response.status_code": error === undefined ? 200 : httpStatusOf(error) }),
    },
    publish,
  );
}
