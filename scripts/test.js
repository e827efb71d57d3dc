// `npm test`: contracts, types and lint, then the unit tests, then the integration tests
// against the real components (OPA, PostgreSQL, Chromium, Kafka, Jaeger, OPAL's client and server), which this script provisions first.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const only = process.argv[2]; // e.g. `npm test -- unit`

const steps = [
  ["contracts", "buf", ["lint"]],
  ["contracts", "buf", ["format", "--diff", "--exit-code"]],
  ["contracts", "node", ["scripts/gen.js", "--check"]],
  ["types", "tsc", ["--noEmit", "-p", "tsconfig.json"]],
  ["types", "tsc", ["-p", "tsconfig.dashboard.json"]],
  ["lint", "eslint", ["--max-warnings", "0", "."]],
  ["unit", "node", ["--import", "tsx", "--test", "--test-reporter=spec", "services/**/*.spec.ts"]],
  ["integration", "node", ["--import", "tsx", "scripts/ensure-opa.ts"]],
  ["integration", "node", ["scripts/ensure-postgres.js"]],
  ["integration", "node", ["scripts/ensure-chromium.js"]],
  ["integration", "node", ["--import", "tsx", "scripts/ensure-kafka.ts"]],
  ["integration", "node", ["--import", "tsx", "scripts/ensure-jaeger.ts"]],
  ["integration", "node", ["--import", "tsx", "scripts/ensure-opal.ts", "--server"]],
  ["integration", "node", ["--import", "tsx", "--test", "--test-reporter=spec", "--test-timeout=300000", "test/**/*.test.ts"]],
];

const started = Date.now();
for (const [group, command, args] of steps) {
  if (only !== undefined && only !== group) continue;
  process.stderr.write(`\n▶ ${group}: ${command} ${args.join(" ")}\n`);
  const result = spawnSync(command, args, { cwd: root, stdio: "inherit" });
  if (result.status !== 0) {
    process.stderr.write(`\n✖ ${group} failed (${command} ${args.join(" ")})\n`);
    process.exit(result.status ?? 1);
  }
}
process.stderr.write(`\n✔ all checks passed in ${Math.round((Date.now() - started) / 1000)} s\n`);
