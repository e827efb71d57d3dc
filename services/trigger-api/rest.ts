/** OPAL's REST route for publishing: POST /data/config with a DataUpdate body, unchanged. */
import { toJson } from "@bufbuild/protobuf";
import { type UpdateStatus, UpdateStatusSchema } from "../../gen/opal/mesh/v1/delivery_pb.js";
import type { Limits } from "../common/config/limits-config.js";
import { parseDataUpdate, type UpdateLimits } from "../common/data-entries.js";
import type { DataUpdate } from "../../gen/opal/mesh/v1/data_pb.js";
import { HttpError, type HttpRequest, type HttpResponse, readJson, sendJson } from "../common/http/json-io.js";
import type { RestContext, RestRoute } from "../common/http/rest-router.js";
import { isScopedTopic, scopeTopic } from "../common/scopes/scoped-topics.js";
import type { Principal } from "../common/auth/tokens.js";
import type { Logger } from "../common/logger.js";
import { ValidationError } from "../common/validation-error.js";
import type { DeliveryStatusReader } from "./delivery-status.js";
import type { Tracing } from "../common/telemetry/tracing.js";
import { logPublished, publishTraceUnder, tracedPublish } from "./interceptors.js";
import { type EventSink, publishDataUpdate, type PublishTrace } from "./publish.js";
import { hopClock } from "../common/telemetry/hop-clock.js";

export interface TriggerRestOptions {
  /** Where published events go (shared with the Connect service). */
  sink: EventSink;
  delivery: DeliveryStatusReader;
  logger: Logger;
  dataConfigRoute: string;
  limits: Limits;
  updateLimits: UpdateLimits;
  /** Throws (AuthError) when the caller may not publish to these topics (and their scope). */
  authorizeTopics: (principal: Principal | undefined, topics: string[]) => Promise<void>;
  /** Throws HttpError when a scope cannot be published to (unknown, or scopes are off). */
  checkScope: (scope: string) => void;
  tracing?: Tracing;
  /** The log's name, for spans (OPAL_BROADCAST_CHANNEL_NAME). */
  logName: string;
}

/** `?wait=true&timeout=<seconds>`: answer once every addressed client applied the update. */
function parseWait(url: URL): { wait: boolean; timeoutMs: number | undefined } {
  const wait = url.searchParams.get("wait");
  const timeout = url.searchParams.get("timeout");
  if (wait !== null && !["true", "false", "1", "0", ""].includes(wait)) throw new HttpError(422, `wait must be true or false, got ${JSON.stringify(wait)}`);
  if (timeout !== null && !(Number(timeout) > 0)) throw new HttpError(422, `timeout must be a positive number of seconds, got ${JSON.stringify(timeout)}`);
  return { wait: wait === "true" || wait === "1" || wait === "", timeoutMs: timeout === null ? undefined : Math.round(Number(timeout) * 1000) };
}

function statusJson(status: UpdateStatus): unknown {
  return toJson(UpdateStatusSchema, status, { useProtoFieldName: true, alwaysEmitImplicit: true });
}


/** The trigger's server span (interceptors.ts): the update's trace starts here, or continues the caller's `traceparent`. */
function publishFromRest(options: TriggerRestOptions, request: HttpRequest, response: HttpResponse, context: RestContext, scope: string | undefined): Promise<void> {
  const route = scope === undefined ? options.dataConfigRoute : "/scopes/{id}/data/update";
  return tracedPublish(options.tracing, route, request, context, (span) => publish(options, request, response, context, scope, publishTraceUnder(options.tracing, span, options.logName)));
}

/** Validation errors reach the router as they are: it answers 422 with the field errors (error-mapping.ts). */
async function publish(options: TriggerRestOptions, request: HttpRequest, response: HttpResponse, context: RestContext, scope: string | undefined, trace: PublishTrace | undefined): Promise<void> {
  const received = hopClock.now();
  if (scope !== undefined) options.checkScope(scope);
  const body = await readJson(request, options.limits.maxBodyBytes, options.limits.maxJsonDepth);
  const update = parseDataUpdate(body, options.updateLimits);
  if (scope !== undefined) scopeEntries(update, scope);
  const wait = parseWait(context.url);
  await options.authorizeTopics(context.principal, update.entries.flatMap((entry) => entry.topics));
  const parsed = hopClock.now();
  // Not cancelled with the caller: once accepted, an update is logged whether or not its caller stays.
  const published = await publishDataUpdate(options.sink, update, undefined, trace);
  hopClock.mark("rest.received", published.id, "", received);
  hopClock.mark("rest.parsed", published.id, "", parsed);
  logPublished(options.logger, published, update.entries.length, scope);
  const answer: Record<string, unknown> = { status: "ok", id: published.id, position: Number(published.position) };
  // A caller that leaves stops the wait (context.signal): nobody is left to answer.
  if (wait.wait) answer.delivery = statusJson(await options.delivery.status(published.id, { position: published.position, wait: true, timeoutMs: wait.timeoutMs }, context.signal));
  hopClock.mark("trigger.answered", published.id);
  sendJson(response, 200, answer);
}

/** Moves an update's entries into a scope (plain topics in, `{scope}:data:{t}` out). */
function scopeEntries(update: DataUpdate, scope: string): void {
  update.entries.forEach((entry, index) => {
    const scoped = entry.topics.filter(isScopedTopic);
    if (scoped.length > 0) throw new ValidationError(`entries[${index}].topics`, `name plain topics here; ${scoped.join(", ")} already name a scope`);
    entry.topics = entry.topics.map((topic) => scopeTopic(scope, topic));
  });
}

export function triggerRestRoutes(options: TriggerRestOptions): RestRoute[] {
  return [
    {
      method: "POST",
      auth: ["datasource", "service"],
      path: options.dataConfigRoute,
      handle: (request, response, context) => publishFromRest(options, request, response, context, undefined),
    },
    {
      // OPAL's scoped publishing: the entries' topics become `{id}:data:{topic}`.
      method: "POST",
      auth: ["datasource", "service"],
      path: "/scopes/{id}/data/update",
      handle: (request, response, context) => publishFromRest(options, request, response, context, context.params.id ?? ""),
    },
    {
      // OPAL's default sink for client update reports: it logs them.
      method: "POST",
      auth: ["client"],
      path: "/data/callback_report",
      async handle(request, response) {
        const report = (await readJson(request, options.limits.maxBodyBytes, options.limits.maxJsonDepth)) as { update_id?: unknown; reports?: Array<{ saved?: unknown }> };
        const saved = Array.isArray(report.reports) ? report.reports.filter((entry) => entry.saved === true).length : 0;
        options.logger.info({ updateId: report.update_id, entries: Array.isArray(report.reports) ? report.reports.length : 0, saved }, "client update report");
        sendJson(response, 200, { status: "ok" });
      },
    },
    {
      method: "GET",
      auth: ["datasource", "service"],
      path: "/updates/{id}",
      async handle(_request, response, context) {
        const wait = parseWait(context.url);
        const status = await options.delivery.status(context.params.id ?? "", { wait: wait.wait, timeoutMs: wait.timeoutMs }, context.signal);
        if (!status.known) throw new HttpError(404, `no distributor knows update ${JSON.stringify(context.params.id)} (unknown, or too old to be remembered)`);
        sendJson(response, 200, statusJson(status));
      },
    },
  ];
}
