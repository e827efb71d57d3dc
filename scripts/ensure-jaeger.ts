// Builds the pinned Jaeger into the cache for the tracing tests (once; see deploy/jaeger).
import { ensureJaeger } from "../deploy/jaeger/jaeger.js";
import { cacheDirFrom } from "../services/common/config/client-config.js";

try {
  process.stdout.write(`${ensureJaeger(cacheDirFrom(process.env), (message) => process.stderr.write(`${message}\n`))}\n`);
} catch (error) {
  process.stderr.write(`could not build Jaeger: ${(error as Error).message}\n`);
  process.exit(1);
}
