// `npm run opa`: finds OPA or builds the pinned version into the cache, and prints its path.
import { locateOpa, OpaNotFoundError } from "../services/client/opa/opa-binary.js";
import { cacheDirFrom } from "../services/common/config/client-config.js";

try {
  const path = await locateOpa({
    execPath: process.env.OPAL_INLINE_OPA_EXEC_PATH || undefined,
    cacheDir: cacheDirFrom(process.env),
    searchPath: process.env.PATH ?? "",
    allowBuild: true,
    environment: process.env,
    onProgress: (message) => process.stderr.write(`${message}\n`),
  });
  process.stdout.write(`${path}\n`);
} catch (error) {
  process.stderr.write(`${error instanceof OpaNotFoundError ? error.message : String(error)}\n`);
  process.exit(1);
}
