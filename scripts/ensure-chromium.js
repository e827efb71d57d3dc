// Makes sure a Chromium exists for the dashboard's browser test (driven by playwright-core,
// which downloads no browser): /usr/bin/chromium or `chromium` on PATH, else installed
// from Debian's packages when running as root.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

export const CHROMIUM_MISSING =
  "Chromium is not installed: the dashboard test drives Debian's chromium with playwright-core. " +
  "Install it with `sudo apt-get install -y chromium` (Debian/Ubuntu), or run `node scripts/ensure-chromium.js` as root.";

/** The Chromium binary to drive, or undefined. */
export function findChromium() {
  if (existsSync("/usr/bin/chromium")) return "/usr/bin/chromium";
  for (const dir of (process.env.PATH ?? "").split(":")) {
    if (dir && existsSync(`${dir}/chromium`)) return `${dir}/chromium`;
  }
  return undefined;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  if (findChromium() !== undefined) process.exit(0);
  const root = typeof process.getuid === "function" && process.getuid() === 0;
  if (!root || !existsSync("/usr/bin/apt-get")) {
    console.error(CHROMIUM_MISSING);
    process.exit(1);
  }
  console.error("installing Chromium from Debian's packages (for the dashboard's browser test)…");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  execFileSync("apt-get", ["update", "-qq"], { stdio: "inherit", env });
  execFileSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", "chromium"], { stdio: "inherit", env });
  if (findChromium() === undefined) {
    console.error("the chromium package was installed but no chromium binary was found");
    process.exit(1);
  }
}
