/**
 * The real OPAL client (and server), from PyPI, for the compatibility tests and the bench:
 * each in its own virtualenv under the cache, built once. (One venv for both makes pip's
 * resolver spin for many minutes.) A venv's scripts name its own path, so it is built in
 * place; a marker written last says it is whole, and a half-built one is removed and built
 * again rather than taken for a good one.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const OPAL_VERSION = "0.9.9";
export type OpalPackage = "opal-client" | "opal-server";

export function opalVenvDir(cacheDir: string, pkg: OpalPackage): string {
  return join(cacheDir, "opal", OPAL_VERSION, pkg === "opal-client" ? "client" : "server");
}

/** The package's command in its cached venv, or undefined when it is not built (whole). */
export function opalCommand(cacheDir: string, pkg: OpalPackage): string | undefined {
  const dir = opalVenvDir(cacheDir, pkg);
  return existsSync(join(dir, ".complete")) ? join(dir, "bin", pkg) : undefined;
}

function python(): string {
  for (const candidate of ["python3.11", "python3"]) {
    if (spawnSync(candidate, ["--version"]).status === 0) return candidate;
  }
  throw new Error("Python 3 is needed to install OPAL from PyPI (on Debian: apt-get install python3 python3-venv)");
}

/** Builds the venv once; returns the package's command. */
export function ensureOpal(cacheDir: string, pkg: OpalPackage, log: (message: string) => void = () => undefined): string {
  const existing = opalCommand(cacheDir, pkg);
  if (existing !== undefined) return existing;
  const dir = opalVenvDir(cacheDir, pkg);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, ".."), { recursive: true });
  log(`installing ${pkg}==${OPAL_VERSION} from PyPI into ${dir} (once; a few minutes)`);
  try {
    execFileSync(python(), ["-m", "venv", dir], { stdio: ["ignore", "ignore", "pipe"] });
    const pip = spawnSync(join(dir, "bin", "pip"), ["install", "--disable-pip-version-check", "-q", `${pkg}==${OPAL_VERSION}`], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
    if (pip.status !== 0) throw new Error(`pip install ${pkg}==${OPAL_VERSION} failed: ${(pip.stderr || pip.stdout).trim().split("\n").slice(-8).join("\n")}`);
    writeFileSync(join(dir, ".complete"), `${pkg}==${OPAL_VERSION}\n`);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return join(dir, "bin", pkg);
}
