// Makes sure PostgreSQL server binaries exist for the PostgreSQL fetch provider's tests:
// found on PATH or under /usr/lib/postgresql, else installed from Debian's packages.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";

export function findPostgresBin() {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    if (dir && existsSync(`${dir}/initdb`) && existsSync(`${dir}/postgres`)) return dir;
  }
  const base = "/usr/lib/postgresql";
  if (existsSync(base)) {
    for (const version of readdirSync(base).sort().reverse()) {
      if (existsSync(`${base}/${version}/bin/initdb`)) return `${base}/${version}/bin`;
    }
  }
  return undefined;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  if (findPostgresBin() !== undefined) process.exit(0);
  const root = typeof process.getuid === "function" && process.getuid() === 0;
  if (!root || !existsSync("/usr/bin/apt-get")) {
    console.error("PostgreSQL is not installed and cannot be installed here: run `sudo apt-get install -y postgresql` (Debian/Ubuntu).");
    process.exit(1);
  }
  console.error("installing PostgreSQL from Debian's packages (for the PostgreSQL fetch provider tests)…");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  execFileSync("apt-get", ["update", "-qq"], { stdio: "inherit", env });
  execFileSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", "postgresql"], { stdio: "inherit", env });
  if (findPostgresBin() === undefined) {
    console.error("PostgreSQL was installed but initdb was not found");
    process.exit(1);
  }
}
