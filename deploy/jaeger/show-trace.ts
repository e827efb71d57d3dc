/**
 * Prints one trace from Jaeger's query API as an indented tree, with each span's service,
 * duration and offset from the trace's start — the README's example trace comes from it.
 *
 *   npm run trace -- <trace id> [--jaeger http://localhost:16686]
 */
import { request } from "undici";

interface Span {
  spanID: string;
  operationName: string;
  references: Array<{ refType: string; spanID: string }>;
  processID: string;
  startTime: number;
  duration: number;
  tags: Array<{ key: string; value: unknown }>;
}

const SHOWN_TAGS = ["opal_mesh.client_id", "messaging.system", "http.response.status_code", "opal_mesh.clients", "opal_mesh.ack.status"];

export function renderTrace(spans: readonly Span[], services: Record<string, string>): string {
  const start = Math.min(...spans.map((span) => span.startTime));
  const children = new Map<string, Span[]>();
  const roots: Span[] = [];
  for (const span of spans) {
    const parent = span.references.find((ref) => ref.refType === "CHILD_OF" && spans.some((other) => other.spanID === ref.spanID));
    if (parent === undefined) roots.push(span);
    else children.set(parent.spanID, [...(children.get(parent.spanID) ?? []), span]);
  }
  const lines: string[] = [];
  const walk = (span: Span, depth: number): void => {
    const tags = span.tags.filter((tag) => SHOWN_TAGS.includes(tag.key)).map((tag) => `${tag.key.replace(/^opal_mesh\./, "")}=${String(tag.value)}`);
    const offset = ((span.startTime - start) / 1000).toFixed(1).padStart(7);
    const duration = (span.duration / 1000).toFixed(1).padStart(6);
    lines.push(`${offset} ms ${duration} ms  ${"  ".repeat(depth)}${span.operationName}  [${services[span.processID] ?? "?"}]${tags.length > 0 ? `  ${tags.join(" ")}` : ""}`);
    for (const child of (children.get(span.spanID) ?? []).sort((a, b) => a.startTime - b.startTime)) walk(child, depth + 1);
  };
  for (const root of roots.sort((a, b) => a.startTime - b.startTime)) walk(root, 0);
  return ["  start   duration  span  [service]", ...lines].join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const traceId = process.argv[2];
  const flag = process.argv.indexOf("--jaeger");
  const jaeger = flag === -1 ? "http://localhost:16686" : (process.argv[flag + 1] as string);
  if (traceId === undefined || !/^[0-9a-f]{16,32}$/.test(traceId)) {
    process.stderr.write("usage: npm run trace -- <trace id (hex)> [--jaeger http://localhost:16686]\n");
    process.exit(64);
  }
  const response = await request(`${jaeger}/api/traces/${traceId}`);
  const json = (await response.body.json()) as { data?: Array<{ spans: Span[]; processes: Record<string, { serviceName: string }> }> };
  const trace = json.data?.[0];
  if (response.statusCode !== 200 || trace === undefined) {
    process.stderr.write(`Jaeger at ${jaeger} does not know trace ${traceId} (${response.statusCode})\n`);
    process.exit(1);
  }
  const services = Object.fromEntries(Object.entries(trace.processes).map(([id, process]) => [id, process.serviceName]));
  process.stdout.write(`${renderTrace(trace.spans, services)}\n`);
}
