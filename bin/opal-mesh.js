#!/usr/bin/env node
// The opal-mesh command. It runs the TypeScript sources through tsx, on Node 24: when
// started by an older Node (the machine's), it re-runs itself with the Node that
// `npm install` put in node_modules (the `node` package).
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const major = Number(process.versions.node.split(".")[0]);
if (major < 24) {
  const bundled = fileURLToPath(new URL("../node_modules/node/bin/node", import.meta.url));
  if (!existsSync(bundled)) {
    process.stderr.write(`opal-mesh needs Node 24 (this is ${process.version}); run \`npm install\` in the project, which provides it\n`);
    process.exit(1);
  }
  // The child gets the terminal's signals too and shuts down cleanly; we wait for it.
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => undefined);
  const result = spawnSync(bundled, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: "inherit" });
  process.exit(result.status ?? 1);
}
const { register } = await import("tsx/esm/api");
register();
await import("../services/mesh/cli.ts");
