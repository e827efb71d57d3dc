/** Runs components until SIGINT/SIGTERM, then stops them in reverse order. */
import { ConfigError } from "../common/config/env-reader.js";
import { type Component, Supervisor } from "../common/lifecycle.js";
import type { Logger } from "../common/logger.js";

export async function runUntilSignal(components: Component[], logger: Logger): Promise<void> {
  const supervisor = new Supervisor(components, logger);
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) {
      logger.warn("second %s: exiting now", signal);
      process.exit(130);
    }
    stopping = true;
    logger.info("%s: shutting down", signal);
    void supervisor.stop().then(() => process.exit(0));
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  // A part that ended by itself has taken the others down: the process ends, failing if it failed.
  void supervisor.closed.then((closed) => {
    if (!stopping) process.exit(closed.reason === "failed" ? 1 : 0);
  });
  await supervisor.start();
}

/** Configuration problems are the user's to fix: say what, without a stack trace. */
export function exitOnConfigError(error: unknown): never {
  if (error instanceof ConfigError) {
    process.stderr.write(`opal-mesh: ${error.message}\n`);
    process.exit(2);
  }
  throw error;
}
