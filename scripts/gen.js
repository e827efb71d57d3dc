// Regenerates gen/ from proto/ (`npm run gen`), or checks that gen/ is current
// (`npm run gen:check`, part of `npm test`): generation is offline, with the local plugin.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const check = process.argv.includes("--check");

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

if (!check) {
  execFileSync("buf", ["generate"], { cwd: root, stdio: "inherit" });
  process.exit(0);
}

const out = mkdtempSync(join(tmpdir(), "opal-mesh-gen-"));
try {
  execFileSync("buf", ["generate", "-o", out], { cwd: root, stdio: "inherit" });
  const fresh = new Map(files(join(out, "gen")).map((path) => [relative(join(out, "gen"), path), readFileSync(path, "utf8")]));
  const committed = new Map(files(join(root, "gen")).map((path) => [relative(join(root, "gen"), path), readFileSync(path, "utf8")]));
  const stale = [...new Set([...fresh.keys(), ...committed.keys()])].filter((path) => fresh.get(path) !== committed.get(path));
  if (stale.length > 0) {
    console.error(`gen/ is stale (run \`npm run gen\` and commit): ${stale.join(", ")}`);
    process.exit(1);
  }
  console.log(`gen/ is up to date (${fresh.size} files)`);
} finally {
  rmSync(out, { recursive: true, force: true });
}
