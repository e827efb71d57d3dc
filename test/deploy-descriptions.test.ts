/**
 * The deployment descriptions (compose file, Helm chart) cannot run here (no Docker, no
 * Kubernetes); this keeps them honest: every opal-mesh variable they set is one the
 * configuration reads, and every command they run is one the CLI has.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { knownVariables } from "../services/common/config/known-variables.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const COMPOSE = readFileSync(join(ROOT, "deploy/compose/docker-compose.yml"), "utf8");
const HELM_DIR = join(ROOT, "deploy/helm/opal-mesh/templates");
const HELM = readdirSync(HELM_DIR).map((name) => readFileSync(join(HELM_DIR, name), "utf8")).join("\n");
const DOCKERFILE = readFileSync(join(ROOT, "deploy/Dockerfile"), "utf8");

function names(text: string, pattern: RegExp): string[] {
  return [...new Set([...text.matchAll(pattern)].map((match) => match[1] as string))].sort();
}

test("every OPAL_* / KAFKA_* / OTEL_* variable in the descriptions is read by the configuration", () => {
  const known = knownVariables();
  assert.ok(known.has("OPAL_SERVER_BIND_PORT") && known.has("KAFKA_PLAIN_PASSWORD"), "the recorded schema is not empty");
  // The compose file's kafka service configures the broker image, not opal-mesh.
  const composeMesh = COMPOSE.replace(/\n {2}kafka:\n(?: {4}.*\n| {6}.*\n)+/, "\n");
  const used = [...names(composeMesh, /\b((?:OPAL|KAFKA|OTEL)_[A-Z0-9_]+)\b/g), ...names(HELM, /\b((?:OPAL|KAFKA|OTEL)_[A-Z0-9_]+)\b/g), ...names(DOCKERFILE, /\b(OPAL_[A-Z0-9_]+)\b/g)];
  assert.ok(used.length > 15, "the descriptions were read");
  const unknown = used.filter((name) => !known.has(name));
  assert.deepEqual(unknown, [], `variables opal-mesh does not read: ${unknown.join(", ")}`);
});

test("every command the descriptions run is an opal-mesh command", () => {
  const help = execFileSync(process.execPath, [join(ROOT, "bin/opal-mesh.js"), "--help"], { encoding: "utf8" });
  const commands = new Set(names(help.slice(help.indexOf("Commands:")), /^\s{2}([a-z-]+)\b/gm));
  const used = [...names(COMPOSE, /command: \["([a-z-]+)"\]/g), ...names(HELM, /"role" "([a-z-]+)"/g)];
  assert.deepEqual([...new Set(used)].sort(), ["broadcaster", "client", "distributor", "policy-watcher", "trigger-api"]);
  for (const command of used) assert.ok(commands.has(command), `opal-mesh has no command ${command}`);
});
