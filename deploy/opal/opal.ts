/**
 * The real OPAL client (and server), from PyPI, for the compatibility tests and the bench:
 * each in its own virtualenv under the cache, built once. (One venv for both makes pip's
 * resolver spin for many minutes.) A venv's scripts name its own path, so it is built in
 * place rather than renamed into place; a marker written last, naming the pinned
 * requirements, says it is whole and current: a half-built venv, or one built from other
 * pins, is removed and built again rather than taken for a good one. A lock directory
 * keeps concurrent runs (parallel test files, `npm test` beside the bench) from building
 * the same venv at once.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const OPAL_VERSION = "0.9.9";
export type OpalPackage = "opal-client" | "opal-server";

/** Every pin, in one place. */
const REQUIREMENTS: Record<OpalPackage, string[]> = {
  "opal-client": [`opal-client==${OPAL_VERSION}`],
  // opal_server.git_fetcher imports aiofiles, which opal-server 0.9.9 does not declare
  // (opal-client does): without it `opal-server run` dies importing its app.
  "opal-server": [`opal-server==${OPAL_VERSION}`, "aiofiles==0.8.0"],
};

/** What a whole venv must import (a missing undeclared dependency shows here, not at run). */
const SMOKE_IMPORT: Record<OpalPackage, string> = {
  "opal-client": "import opal_client.client",
  "opal-server": "import opal_server.server",
};

const LOCK_STALE_MS = 20 * 60_000;

export function opalVenvDir(cacheDir: string, pkg: OpalPackage): string {
  return join(cacheDir, "opal", OPAL_VERSION, pkg === "opal-client" ? "client" : "server");
}

function marker(pkg: OpalPackage): string {
  return `${REQUIREMENTS[pkg].join(" ")}\n`;
}

/** The package's command in its cached venv, or undefined when it is not built (whole, from these pins). */
export function opalCommand(cacheDir: string, pkg: OpalPackage): string | undefined {
  const dir = opalVenvDir(cacheDir, pkg);
  try {
    return readFileSync(join(dir, ".complete"), "utf8") === marker(pkg) ? join(dir, "bin", pkg) : undefined;
  } catch {
    return undefined;
  }
}

export function howToGetOpal(cacheDir: string, pkg: OpalPackage): string {
  return `the real OPAL ${pkg === "opal-client" ? "client" : "server"} (${REQUIREMENTS[pkg].join(", ")}) is not installed at ${opalVenvDir(cacheDir, pkg)}: run \`npm run opal${pkg === "opal-server" ? " -- --server" : ""}\` (needs python3.11 and PyPI; npm test installs the client before the integration tests)`;
}

function python(): string {
  // OPAL 0.9.9 wants Python >=3.9,<3.13; 3.11 is what it is built and tested on.
  for (const candidate of ["python3.11", "python3.12", "python3.10", "python3"]) {
    const probe = spawnSync(candidate, ["-c", "import sys, venv; assert (3, 9) <= sys.version_info[:2] < (3, 13)"]);
    if (probe.status === 0) return candidate;
  }
  throw new Error(
    "Python 3.9–3.12 with venv is needed to install OPAL from PyPI (python3.11 preferred): on Debian/Ubuntu `apt-get install python3.11 python3.11-venv`, or `pyenv install 3.11`",
  );
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Takes the build lock (a directory: mkdir is atomic), waiting for another builder; returns false if it finished meanwhile. */
function lock(lockDir: string, done: () => boolean, log: (message: string) => void): boolean {
  let said = false;
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(join(lockDir, "pid"), String(process.pid));
      return true;
    } catch {
      // Held: another process builds this venv.
    }
    if (done()) return false;
    let owner = Number.NaN;
    try {
      owner = Number(readFileSync(join(lockDir, "pid"), "utf8"));
    } catch {
      // Just made, its pid not yet written.
    }
    const age = Date.now() - (existsSync(lockDir) ? statSync(lockDir).mtimeMs : Date.now());
    if ((Number.isInteger(owner) && !pidAlive(owner)) || age > LOCK_STALE_MS) {
      rmSync(lockDir, { recursive: true, force: true }); // abandoned by a killed build
      continue;
    }
    if (!said) log(`waiting for another process installing OPAL (lock ${lockDir})…`);
    said = true;
    sleepSync(1_000);
  }
}

/** Builds the venv once; returns the package's command. */
export function ensureOpal(cacheDir: string, pkg: OpalPackage, log: (message: string) => void = () => undefined): string {
  const existing = opalCommand(cacheDir, pkg);
  if (existing !== undefined) return existing;
  const dir = opalVenvDir(cacheDir, pkg);
  mkdirSync(join(dir, ".."), { recursive: true });
  const lockDir = `${dir}.lock`;
  if (!lock(lockDir, () => opalCommand(cacheDir, pkg) !== undefined, log)) return opalCommand(cacheDir, pkg) as string;
  try {
    const again = opalCommand(cacheDir, pkg);
    if (again !== undefined) return again;
    rmSync(dir, { recursive: true, force: true });
    log(`installing ${REQUIREMENTS[pkg].join(" ")} from PyPI into ${dir} (once; a few minutes)`);
    try {
      execFileSync(python(), ["-m", "venv", dir], { stdio: ["ignore", "ignore", "pipe"] });
      const pip = spawnSync(join(dir, "bin", "python"), ["-m", "pip", "install", "--disable-pip-version-check", "--no-input", ...REQUIREMENTS[pkg]], {
        encoding: "utf8",
        maxBuffer: 64 * 1024 * 1024,
      });
      if (pip.status !== 0) throw new Error(`pip install ${REQUIREMENTS[pkg].join(" ")} failed (exit ${String(pip.status ?? pip.signal)}):\n${lastLines(`${pip.stdout}\n${pip.stderr}`)}`);
      const smoke = spawnSync(join(dir, "bin", "python"), ["-c", SMOKE_IMPORT[pkg]], { encoding: "utf8", env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp" } });
      if (smoke.status !== 0) throw new Error(`${pkg} installed but \`python -c "${SMOKE_IMPORT[pkg]}"\` fails:\n${lastLines(smoke.stderr)}`);
      writeFileSync(join(dir, ".complete"), marker(pkg));
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
    log(`${pkg} ${OPAL_VERSION} is ready at ${dir}`);
    return join(dir, "bin", pkg);
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

function lastLines(text: string, count = 12): string {
  return text
    .trim()
    .split("\n")
    .filter((line) => line.trim() !== "")
    .slice(-count)
    .join("\n");
}
