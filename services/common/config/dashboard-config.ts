/** The distributor's web dashboard: where its trace links point. */
import type { EnvReader } from "./env-reader.js";

export interface DashboardConfig {
  /**
   * OPAL_MESH_TRACE_UI_URL: a trace viewer's URL with `{trace_id}` where the trace id goes
   * (e.g. Jaeger's `http://localhost:16686/trace/{trace_id}`); undefined shows no links.
   */
  traceUiUrl: string | undefined;
}

export const TRACE_ID_PLACEHOLDER = "{trace_id}";

export function readDashboardConfig(env: EnvReader): DashboardConfig {
  const name = "OPAL_MESH_TRACE_UI_URL";
  const value = env.optionalString(name)?.trim();
  if (value === undefined) return { traceUiUrl: undefined };
  let protocol: string;
  try {
    // The placeholder's braces are not URL syntax everywhere (a host); parse with a stand-in.
    protocol = new URL(value.replaceAll(TRACE_ID_PLACEHOLDER, "0")).protocol;
  } catch {
    env.problem(name, `not a valid URL: ${JSON.stringify(value)} (expected e.g. http://localhost:16686/trace/${TRACE_ID_PLACEHOLDER})`);
    return { traceUiUrl: undefined };
  }
  if (protocol !== "http:" && protocol !== "https:") env.problem(name, `expected an http or https URL, got ${JSON.stringify(value)}`);
  else if (!value.includes(TRACE_ID_PLACEHOLDER)) env.problem(name, `must contain ${TRACE_ID_PLACEHOLDER} where the trace id goes, got ${JSON.stringify(value)}`);
  else return { traceUiUrl: value };
  return { traceUiUrl: undefined };
}

/** The trace viewer's link for a trace, or "" without a template or a trace id. */
export function traceUrl(template: string | undefined, traceId: string): string {
  if (template === undefined || traceId === "") return "";
  return template.replaceAll(TRACE_ID_PLACEHOLDER, encodeURIComponent(traceId));
}
