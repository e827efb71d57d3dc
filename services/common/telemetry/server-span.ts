/**
 * The server span of one request, whichever surface it came in on: a Connect interceptor
 * and a REST route wrapper both run the handler inside `inServerSpan`, so a request's span
 * starts (continuing the caller's `traceparent`), fails and ends in one place. Handlers
 * find the span in their context to hang children (the publish) under it.
 */
import { type Attributes, type Context, endSpan, type Span, SpanKind, type Tracing } from "./tracing.js";

export interface ServerSpanOptions {
  name: string;
  parent: Context;
  attributes: Attributes;
  /** Attributes for the outcome (e.g. the HTTP status), set just before the span ends. */
  outcome?: (error: unknown) => Attributes;
}

/** Runs `handle` in a server span; off (or without tracing), it runs with no span at all. */
export async function inServerSpan<T>(tracing: Tracing | undefined, options: ServerSpanOptions, handle: (span: Span | undefined) => Promise<T>): Promise<T> {
  if (tracing === undefined || !tracing.enabled) return handle(undefined);
  const span = tracing.start(options.name, { kind: SpanKind.SERVER, parent: options.parent, attributes: options.attributes });
  try {
    const result = await handle(span);
    span.setAttributes(options.outcome?.(undefined) ?? {});
    endSpan(span);
    return result;
  } catch (error) {
    span.setAttributes(options.outcome?.(error) ?? {});
    endSpan(span, error);
    throw error;
  }
}
