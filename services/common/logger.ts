/**
 * Structured JSON logs (pino) on servers; readable lines on a terminal. Anything that
 * might carry a secret is redacted by path before it is written.
 */
import { pino, type Logger as PinoLogger } from "pino";

export type Logger = PinoLogger;
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";

export interface LoggerOptions {
  level: LogLevel;
  /** "json" always; "pretty" for people; "auto" picks pretty on a TTY. */
  format: "json" | "pretty" | "auto";
  name?: string;
}

const REDACT = [
  "token",
  "*.token",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
  "*.headers.Authorization",
  "password",
  "*.password",
  "config.connection_params",
  "*.config.connection_params",
];

/** `destination` replaces stderr (tests read what would have been written). */
export function createLogger(options: LoggerOptions, destination?: pino.DestinationStream): Logger {
  const pretty = options.format === "pretty" || (options.format === "auto" && process.stderr.isTTY === true);
  return pino({
    name: options.name ?? "opal-mesh",
    level: options.level,
    redact: { paths: REDACT, censor: "[redacted]" },
    ...(pretty
      ? { transport: { target: "pino-pretty", options: { destination: 2, translateTime: "HH:MM:ss.l", ignore: "pid,hostname" } } }
      : {}),
  }, pretty ? undefined : (destination ?? pino.destination(2)));
}

/** A logger that writes nothing, for unit tests. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
