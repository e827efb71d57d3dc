/**
 * Finds the `opa` binary: OPAL_INLINE_OPA_EXEC_PATH, then PATH, then the project's cache;
 * otherwise builds the pinned version once with `go install` into that cache (outside the
 * repo, so CI and later runs reuse it).
 */
import { execFile, spawn } from "node:child_process";
import { access, constants, mkdir, open, rm, stat } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";
import { sleep } from "../../common/backoff.js";

const run = promisify(execFile);

/** The pinned OPA release (v1.x: Rego v1 syntax, localhost-only by default). */
export const OPA_VERSION = "1.22.3";
export const OPA_MODULE = "github.com/open-policy-agent/opa";

export class OpaNotFoundError extends Error {
  override readonly name = "OpaNotFoundError";
}

export interface LocateOpaOptions {
  /** OPAL_INLINE_OPA_EXEC_PATH, when set. */
  execPath: string | undefined;
  /** Where a built OPA is cached: <cacheDir>/opa/v<version>/opa. */
  cacheDir: string;
  /** The PATH to search. */
  searchPath: string;
  /** May we run `go install` when nothing is found? */
  allowBuild: boolean;
  /** The environment `go install` runs in (proxy settings, GOPATH). */
  environment: Readonly<Record<string, string | undefined>>;
  onProgress?: (message: string) => void;
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return (await stat(path)).isFile();
  } catch {
    // Missing or not executable: another candidate is tried.
    return false;
  }
}

async function opaVersion(path: string): Promise<string | undefined> {
  try {
    const { stdout } = await run(path, ["version"], { timeout: 10_000 });
    return /^Version:\s*v?(\S+)/m.exec(stdout)?.[1];
  } catch {
    // Does not run: not a usable OPA (the caller says which it tried).
    return undefined;
  }
}

export function cachedOpaPath(cacheDir: string): string {
  return join(cacheDir, "opa", `v${OPA_VERSION}`, "opa");
}

async function findAllOnPath(searchPath: string, name: string): Promise<string[]> {
  const found: string[] = [];
  for (const dir of searchPath.split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, name);
    if (await isExecutable(candidate)) found.push(candidate);
  }
  return found;
}

async function findOnPath(searchPath: string, name: string): Promise<string | undefined> {
  return (await findAllOnPath(searchPath, name))[0];
}

export async function locateOpa(options: LocateOpaOptions): Promise<string> {
  if (options.execPath !== undefined) {
    if (!(await isExecutable(options.execPath))) {
      throw new OpaNotFoundError(`OPAL_INLINE_OPA_EXEC_PATH=${options.execPath} is not an executable file`);
    }
    return options.execPath;
  }
  for (const onPath of await findAllOnPath(options.searchPath, "opa")) {
    const version = await opaVersion(onPath);
    if (version?.startsWith("1.") === true) return onPath;
    options.onProgress?.(`ignoring ${onPath} (version ${version ?? "unknown"}); opal-mesh needs OPA 1.x`);
  }
  const cached = cachedOpaPath(options.cacheDir);
  if (await isExecutable(cached)) return cached;
  if (!options.allowBuild) throw new OpaNotFoundError(howToGetOpa(cached));
  const go = await findOnPath(options.searchPath, "go");
  if (go === undefined) throw new OpaNotFoundError(howToGetOpa(cached));
  await buildOpa(go, cached, options.environment, options.onProgress);
  return cached;
}

export function howToGetOpa(cached: string): string {
  return [
    `OPA ${OPA_VERSION} was not found: not at OPAL_INLINE_OPA_EXEC_PATH, not on PATH, not at ${cached}.`,
    "Get it one of these ways:",
    `  - install Go (https://go.dev/dl/) and run \`npm run opa\`, which builds it with \`go install ${OPA_MODULE}@v${OPA_VERSION}\``,
    `  - download the OPA ${OPA_VERSION} binary (https://github.com/open-policy-agent/opa/releases) and put it on PATH`,
    "  - or set OPAL_INLINE_OPA_EXEC_PATH to an OPA 1.x binary",
  ].join("\n");
}

/** Builds under a lock file so parallel test processes build once. */
async function buildOpa(go: string, target: string, environment: LocateOpaOptions["environment"], onProgress?: (message: string) => void): Promise<void> {
  const dir = join(target, "..");
  await mkdir(dir, { recursive: true });
  const lockPath = join(dir, ".building");
  const deadline = Date.now() + 20 * 60_000;
  for (;;) {
    try {
      const lock = await open(lockPath, "wx");
      await lock.close();
      break;
    } catch {
      // The lock is held: another process builds OPA.
      if (await isExecutable(target)) return; // another process finished the build
      const lockAge = Date.now() - (await stat(lockPath).then((s) => s.mtimeMs).catch(() => Date.now()));
      if (lockAge > 15 * 60_000) await rm(lockPath, { force: true }); // abandoned by a killed build
      if (Date.now() > deadline) throw new OpaNotFoundError(`timed out waiting for another build of OPA (lock ${lockPath})`);
      await sleep(1_000);
    }
  }
  try {
    if (await isExecutable(target)) return;
    onProgress?.(`building OPA ${OPA_VERSION} with \`go install ${OPA_MODULE}@v${OPA_VERSION}\` (once; about 1–3 minutes) into ${dir}`);
    await new Promise<void>((resolve, reject) => {
      const child = spawn(go, ["install", `${OPA_MODULE}@v${OPA_VERSION}`], {
        env: { ...environment, GOBIN: dir, GOFLAGS: "-mod=mod", CGO_ENABLED: "0" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let output = "";
      const collect = (chunk: Buffer): void => {
        output = (output + chunk.toString()).slice(-8_000);
      };
      child.stdout.on("data", collect);
      child.stderr.on("data", collect);
      child.once("error", reject);
      child.once("exit", (code) => {
        if (code === 0) resolve();
        else reject(new OpaNotFoundError(`go install ${OPA_MODULE}@v${OPA_VERSION} failed (exit ${code}):\n${output}`));
      });
    });
    if (!(await isExecutable(target))) throw new OpaNotFoundError(`go install finished but ${target} is missing`);
    onProgress?.(`OPA ${OPA_VERSION} is ready at ${target}`);
  } finally {
    await rm(lockPath, { force: true });
  }
}
