/**
 * Jaeger (v2, `cmd/jaeger` of github.com/jaegertracing/jaeger v1.76.0) for seeing traces
 * locally and in the tracing tests: built once from the Go module proxy into the cache
 * (its go.mod has replace directives, so `go install pkg@version` refuses it: the module is
 * downloaded and built in place), then run with in-memory storage on chosen ports.
 * `npm run jaeger` starts one on the default ports (UI http://localhost:16686).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cacheDirFrom } from "../../services/common/config/client-config.js";

export const JAEGER_VERSION = "v1.76.0";
const MODULE = "github.com/jaegertracing/jaeger";

export function jaegerPath(cacheDir: string): string {
  return join(cacheDir, "jaeger", JAEGER_VERSION, "jaeger");
}

export function howToGetJaeger(path: string): string {
  return `Jaeger ${JAEGER_VERSION} is not built at ${path}: run \`npm run jaeger -- --build-only\` (needs Go and the Go module proxy; \`npm test\` does it before the integration tests).`;
}

/** Builds Jaeger into the cache unless it is there; returns its path. */
export function ensureJaeger(cacheDir: string, progress: (message: string) => void = () => undefined): string {
  const target = jaegerPath(cacheDir);
  if (existsSync(target)) return target;
  progress(`building Jaeger ${JAEGER_VERSION} from the Go module proxy (once; a few minutes)…`);
  const downloaded = JSON.parse(execFileSync("go", ["mod", "download", "-json", `${MODULE}@${JAEGER_VERSION}`], { encoding: "utf8" })) as { Dir?: string; Error?: string };
  if (downloaded.Dir === undefined) throw new Error(`go mod download ${MODULE}@${JAEGER_VERSION}: ${downloaded.Error ?? "no directory"}`);
  // The module cache is read-only: build from a writable copy.
  const work = mkdtempSync(join(tmpdir(), "opal-mesh-jaeger-"));
  try {
    cpSync(downloaded.Dir, work, { recursive: true });
    execFileSync("chmod", ["-R", "u+w", work]);
    mkdirSync(join(cacheDir, "jaeger", JAEGER_VERSION), { recursive: true });
    execFileSync("go", ["build", "-o", target, "./cmd/jaeger"], { cwd: work, stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, GOFLAGS: "-mod=mod" } });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return target;
}

export interface JaegerPorts {
  otlpGrpc: number;
  otlpHttp: number;
  query: number;
  health: number;
}

/** Jaeger v2's all-in-one, reduced: OTLP in, memory storage, the query API and UI out. */
export function jaegerConfig(ports: JaegerPorts, host = "127.0.0.1"): string {
  return `service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: "${host}:${ports.query}"
    grpc:
      endpoint: "${host}:0"
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  healthcheckv2:
    use_v2: true
    http:
      endpoint: "${host}:${ports.health}"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: "${host}:${ports.otlpGrpc}"
      http:
        endpoint: "${host}:${ports.otlpHttp}"
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`;
}

export function startJaeger(binary: string, ports: JaegerPorts, host = "127.0.0.1"): ChildProcess {
  const dir = mkdtempSync(join(tmpdir(), "opal-mesh-jaeger-config-"));
  const config = join(dir, "jaeger.yaml");
  writeFileSync(config, jaegerConfig(ports, host));
  return spawn(binary, ["--config", `file:${config}`], { stdio: ["ignore", "pipe", "pipe"] });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const binary = ensureJaeger(cacheDirFrom(process.env), (message) => process.stderr.write(`${message}\n`));
  if (process.argv.includes("--build-only")) {
    process.stdout.write(`${binary}\n`);
  } else {
    const host = process.env.JAEGER_LISTEN_HOST ?? "127.0.0.1";
    const child = startJaeger(binary, { otlpGrpc: 4317, otlpHttp: 4318, query: 16686, health: 13133 }, host);
    child.stdout?.pipe(process.stdout);
    child.stderr?.pipe(process.stderr);
    process.stderr.write(`Jaeger: OTLP on ${host}:4317 (gRPC) and ${host}:4318 (HTTP), UI on http://${host}:16686\n`);
    for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => child.kill("SIGTERM"));
    child.on("exit", (code) => process.exit(code ?? 0));
  }
}
