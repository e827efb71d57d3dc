/**
 * Every environment variable opal-mesh's configuration reads, found by running the real
 * loaders (for every role and the client, in the profiles that open every branch) over an
 * environment that records what is asked of it. Deployment descriptions are checked
 * against this, so a misspelt or invented variable fails a test instead of being ignored.
 */
import { loadClientConfig } from "./client-config.js";
import type { Env } from "./env-reader.js";
import { loadServerConfig, type ServerRole } from "./server-config.js";

function recording(base: Record<string, string>, seen: Set<string>): Env {
  return new Proxy(base, {
    get(target, name) {
      if (typeof name === "string") seen.add(name);
      return target[name as string];
    },
  });
}

const SERVER_PROFILES: Array<Record<string, string>> = [
  {},
  { OPAL_BROADCAST_URI: "kafka://kafka:9092", KAFKA_SECURITY_PROTOCOL: "SASL_SSL", OPAL_SERVER_BIND_PORT: "1", OPAL_POLICY_REPO_WEBHOOK_PARAMS: "{}" },
  { OPAL_POLICY_SOURCE_TYPE: "API", OPAL_POLICY_BUNDLE_URL: "http://bundles" },
];
const CLIENT_PROFILES: Array<Record<string, string>> = [{}, { OPAL_INLINE_OPA_ENABLED: "false", OPAL_POLICY_STORE_AUTH_TYPE: "token", OPAL_DEFAULT_DATA_SOURCES_CONFIG_URL: "http://x" }];
const ROLES: ServerRole[] = ["server", "trigger-api", "broadcaster", "policy-watcher", "distributor"];

export function knownVariables(): Set<string> {
  const seen = new Set<string>();
  const attempt = (load: () => unknown): void => {
    try {
      load();
    } catch {
      // a profile may be incomplete on purpose: what was read is what counts
    }
  };
  for (const profile of SERVER_PROFILES) for (const role of ROLES) attempt(() => loadServerConfig(recording(profile, seen), role));
  for (const profile of CLIENT_PROFILES) attempt(() => loadClientConfig(recording(profile, seen)));
  return seen;
}
