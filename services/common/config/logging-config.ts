import type { LoggerOptions, LogLevel } from "../logger.js";
import type { EnvReader } from "./env-reader.js";

const LEVELS = ["TRACE", "DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL", "FATAL", "SILENT"] as const;

/** OPAL_LOG_LEVEL (OPAL's names, WARNING and CRITICAL included) and OPAL_LOG_SERIALIZE. */
export function readLoggingConfig(env: EnvReader, name: string): LoggerOptions {
  const level = env.oneOf("OPAL_LOG_LEVEL", "INFO", LEVELS);
  const mapped: Record<(typeof LEVELS)[number], LogLevel> = {
    TRACE: "trace",
    DEBUG: "debug",
    INFO: "info",
    WARNING: "warn",
    WARN: "warn",
    ERROR: "error",
    CRITICAL: "fatal",
    FATAL: "fatal",
    SILENT: "silent",
  };
  const serialize = env.has("OPAL_LOG_SERIALIZE") ? env.bool("OPAL_LOG_SERIALIZE", false) : undefined;
  return { level: mapped[level], format: serialize === undefined ? "auto" : serialize ? "json" : "pretty", name };
}
