/** The real OPA for tests: found like the client finds it, never built here (npm test builds it first). */
import { howToGetOpa, locateOpa, cachedOpaPath } from "../../services/client/opa/opa-binary.js";
import { cacheDirFrom } from "../../services/common/config/client-config.js";

let located: Promise<string> | undefined;

export function opaBinary(): Promise<string> {
  located ??= locateOpa({
    execPath: process.env.OPAL_INLINE_OPA_EXEC_PATH || undefined,
    cacheDir: cacheDirFrom(process.env),
    searchPath: process.env.PATH ?? "",
    allowBuild: false,
    environment: process.env,
  }).catch(() => {
    throw new Error(`${howToGetOpa(cachedOpaPath(cacheDirFrom(process.env)))}\n(\`npm test\` builds it before the integration tests; \`npm run opa\` does it alone.)`);
  });
  return located;
}
