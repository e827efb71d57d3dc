/**
 * Loading a large full bundle into an empty inline OPA by restarting it with the modules
 * as files. OPA parses and recompiles every module it holds on each `PUT /v1/policies`, so
 * loading N modules one by one costs O(N²): about 30 s for 500 modules on a 2-core machine,
 * against well under a second when OPA compiles them once at start-up.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Logger } from "../../common/logger.js";
import type { InlineOpa } from "../opa/inline-opa.js";

/** Below this, one restart of OPA costs more than the PUTs it saves. */
export const PRELOAD_MIN_MODULES = 50;

export interface PolicyFile {
  path: string;
  rego: string;
}

/** Restarts the store with these modules loaded; false when it could not (they are then PUT one by one). */
export type Preloader = (modules: readonly PolicyFile[], signal: AbortSignal) => Promise<boolean>;

/** A path OPA takes as a file argument and keeps, unchanged, as the policy's id. */
export function isPreloadablePath(path: string): boolean {
  return path.endsWith(".rego") && !path.startsWith("/") && !path.startsWith("-") && !path.includes("\0") && !path.split("/").some((part) => part === "" || part === "." || part === "..");
}

export function inlinePreloader(inlineOpa: () => InlineOpa | undefined, logger: Logger): Preloader {
  return async (modules, signal) => {
    const opa = inlineOpa();
    if (opa === undefined || opa.hasStartupFiles || !modules.every((module) => isPreloadablePath(module.path))) return false;
    const dir = await mkdtemp(join(tmpdir(), "opal-mesh-policy-"));
    try {
      for (const module of modules) {
        await mkdir(dirname(join(dir, module.path)), { recursive: true });
        await writeFile(join(dir, module.path), module.rego);
      }
      const started = performance.now();
      const loaded = await opa.reloadWith(
        dir,
        modules.map((module) => module.path),
        signal,
      );
      if (loaded) logger.info({ modules: modules.length, ms: Math.round(performance.now() - started) }, "inline OPA restarted with the full bundle's modules (one compile)");
      return loaded;
    } finally {
      // OPA read the files at start-up and does not watch them.
      await rm(dir, { recursive: true, force: true });
    }
  };
}
