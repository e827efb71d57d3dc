/**
 * Reads typed values out of an environment map and collects every problem, so start-up
 * fails once with the full list of bad variables instead of one at a time.
 * This module (and the config loaders beside it) are the only readers of the environment.
 */
export type Env = Readonly<Record<string, string | undefined>>;

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
  }
}

const TRUE = new Set(["1", "true", "yes", "on", "y", "t"]);
const FALSE = new Set(["0", "false", "no", "off", "n", "f", ""]);

export class EnvReader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  /** The raw value, or undefined when unset or empty. */
  raw(name: string): string | undefined {
    const value = this.env[name];
    return value === undefined || value.trim() === "" ? undefined : value;
  }

  has(name: string): boolean {
    return this.raw(name) !== undefined;
  }

  problem(name: string, message: string): void {
    this.problems.push(`${name}: ${message}`);
  }

  string(name: string, fallback: string): string {
    return this.raw(name) ?? fallback;
  }

  optionalString(name: string): string | undefined {
    return this.raw(name);
  }

  bool(name: string, fallback: boolean): boolean {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const lower = value.trim().toLowerCase();
    if (TRUE.has(lower)) return true;
    if (FALSE.has(lower)) return false;
    this.problem(name, `expected true or false, got ${JSON.stringify(value)}`);
    return fallback;
  }

  int(name: string, fallback: number, range: { min?: number; max?: number } = {}): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!/^-?\d+$/.test(value.trim())) {
      this.problem(name, `expected an integer, got ${JSON.stringify(value)}`);
      return fallback;
    }
    return this.checkRange(name, Number(value.trim()), range, fallback);
  }

  number(name: string, fallback: number, range: { min?: number; max?: number } = {}): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const parsed = Number(value.trim());
    if (!Number.isFinite(parsed)) {
      this.problem(name, `expected a number, got ${JSON.stringify(value)}`);
      return fallback;
    }
    return this.checkRange(name, parsed, range, fallback);
  }

  port(name: string, fallback: number): number {
    // 0 asks the OS for a free port, which tests rely on.
    return this.int(name, fallback, { min: 0, max: 65535 });
  }

  /**
   * A list given as a JSON array (OPAL's confi accepts that) or as a separated string.
   */
  list(name: string, fallback: readonly string[], separator = ","): string[] {
    const value = this.raw(name);
    if (value === undefined) return [...fallback];
    const trimmed = value.trim();
    if (trimmed.startsWith("[")) {
      const parsed = this.parseJson(name, trimmed);
      if (Array.isArray(parsed) && parsed.every((item) => typeof item === "string")) {
        return parsed;
      }
      this.problem(name, "expected a JSON array of strings");
      return [...fallback];
    }
    return trimmed
      .split(separator)
      .map((item) => item.trim())
      .filter((item) => item !== "");
  }

  /** A JSON value, handed to `parse` which throws an Error naming what is wrong. */
  json<T>(name: string, fallback: T, parse: (value: unknown) => T): T {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const parsed = this.parseJson(name, value);
    if (parsed === undefined) return fallback;
    try {
      return parse(parsed);
    } catch (error) {
      this.problem(name, error instanceof Error ? error.message : String(error));
      return fallback;
    }
  }

  url(name: string, fallback: string, protocols = ["http:", "https:"]): string {
    const value = this.raw(name) ?? fallback;
    try {
      const parsed = new URL(value);
      if (!protocols.includes(parsed.protocol)) {
        this.problem(name, `expected a ${protocols.join(" or ")} URL, got ${JSON.stringify(redactUrl(value))}`);
      }
    } catch {
      this.problem(name, `not a valid URL: ${JSON.stringify(redactUrl(value))}`);
    }
    return value.replace(/\/+$/, "");
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const match = allowed.find((option) => option.toLowerCase() === value.trim().toLowerCase());
    if (match === undefined) {
      this.problem(name, `expected one of ${allowed.join(", ")}, got ${JSON.stringify(value)}`);
      return fallback;
    }
    return match;
  }

  /** Throws a ConfigError listing every problem found so far. */
  done(): void {
    if (this.problems.length > 0) throw new ConfigError(this.problems);
  }

  private parseJson(name: string, value: string): unknown {
    try {
      return JSON.parse(value) as unknown;
    } catch (error) {
      this.problem(name, `not valid JSON (${(error as Error).message})`);
      return undefined;
    }
  }

  private checkRange(name: string, value: number, range: { min?: number; max?: number }, fallback: number): number {
    if (range.min !== undefined && value < range.min) {
      this.problem(name, `must be at least ${range.min}, got ${value}`);
      return fallback;
    }
    if (range.max !== undefined && value > range.max) {
      this.problem(name, `must be at most ${range.max}, got ${value}`);
      return fallback;
    }
    return value;
  }
}

/** Drops credentials from a URL so it can be shown in errors and logs. */
export function redactUrl(value: string): string {
  try {
    const parsed = new URL(value);
    if (parsed.username !== "" || parsed.password !== "") {
      parsed.username = "***";
      parsed.password = "";
    }
    for (const key of [...parsed.searchParams.keys()]) {
      if (/token|secret|password|key|auth/i.test(key)) parsed.searchParams.set(key, "***");
    }
    return parsed.toString();
  } catch {
    return value.replace(/\/\/[^@/]*@/, "//***@");
  }
}
