// Installs the real OPAL client from PyPI into the cache for the compatibility tests (once;
// see deploy/opal). `--server` installs OPAL's server too (the bench compares against it).
import { ensureOpal } from "../deploy/opal/opal.js";
import { cacheDirFrom } from "../services/common/config/client-config.js";

try {
  const log = (message: string): void => void process.stderr.write(`${message}\n`);
  process.stdout.write(`${ensureOpal(cacheDirFrom(process.env), "opal-client", log)}\n`);
  if (process.argv.includes("--server")) process.stdout.write(`${ensureOpal(cacheDirFrom(process.env), "opal-server", log)}\n`);
} catch (error) {
  process.stderr.write(`could not install OPAL: ${(error as Error).message}\n`);
  process.exit(1);
}
