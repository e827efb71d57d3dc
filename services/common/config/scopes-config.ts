/** OPAL_SCOPES: tenants with their own policy repo and data sources (off by default, as in OPAL). */
import { homedir } from "node:os";
import { join } from "node:path";
import type { Env, EnvReader } from "./env-reader.js";

export interface ScopesConfig {
  enabled: boolean;
  /** Embedded server without Kafka: where scope records are kept (`<OPAL_BASE_DIR>/scopes.json`). */
  stateFile: string;
  /** Where scopes' repositories are cloned (`<OPAL_BASE_DIR>/scopes/<id>`). */
  clonePath: string;
  /** OPAL_POLICY_REFRESH_INTERVAL: polling of scopes with poll_updates; 0 = never. */
  refreshIntervalMs: number;
}

export function readScopesConfig(env: EnvReader, environment: Env): ScopesConfig {
  const home = environment.HOME !== undefined && environment.HOME !== "" ? environment.HOME : homedir();
  const baseDir = env.string("OPAL_BASE_DIR", join(home, ".local", "state", "opal"));
  return {
    enabled: env.bool("OPAL_SCOPES", false),
    stateFile: join(baseDir, "scopes.json"),
    clonePath: join(baseDir, "scopes"),
    refreshIntervalMs: env.number("OPAL_POLICY_REFRESH_INTERVAL", 0, { min: 0 }) * 1000,
  };
}
