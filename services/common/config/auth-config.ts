/**
 * JWT settings with OPAL's names. A server has both keys (signs and verifies) or none (dev
 * mode); a client needs only the public key (to check tokens on its own API). Previous
 * public keys stay valid during a key rollover.
 */
import { createPublicKey, type KeyObject } from "node:crypto";
import { type KeyFormat, loadPrivateKey, loadPublicKey } from "../auth/keys.js";
import type { EnvReader } from "./env-reader.js";

export interface AuthConfig {
  privateKey: KeyObject | undefined;
  /** The current public key first, then previous ones still accepted. */
  publicKeys: KeyObject[];
  audience: string;
  issuer: string;
  masterToken: string | undefined;
}

const FORMATS = ["pem", "ssh", "der", "auto"] as const;

function format(env: EnvReader, name: string): KeyFormat {
  return env.oneOf(name, "auto", FORMATS);
}

export function readAuthConfig(env: EnvReader, side: "server" | "client"): AuthConfig {
  let privateKey: KeyObject | undefined;
  const publicKeys: KeyObject[] = [];
  const rawPrivate = env.optionalString("OPAL_AUTH_PRIVATE_KEY");
  const rawPublic = env.optionalString("OPAL_AUTH_PUBLIC_KEY");
  if (side === "server" && rawPrivate !== undefined) {
    try {
      privateKey = loadPrivateKey(rawPrivate, format(env, "OPAL_AUTH_PRIVATE_KEY_FORMAT"), env.optionalString("OPAL_AUTH_PRIVATE_KEY_PASSPHRASE"));
    } catch (error) {
      env.problem("OPAL_AUTH_PRIVATE_KEY", (error as Error).message);
    }
  }
  if (rawPublic !== undefined) {
    try {
      publicKeys.push(loadPublicKey(rawPublic, format(env, "OPAL_AUTH_PUBLIC_KEY_FORMAT")));
    } catch (error) {
      env.problem("OPAL_AUTH_PUBLIC_KEY", (error as Error).message);
    }
  }
  for (const [index, previous] of env.json<string[]>("OPAL_MESH_AUTH_PREVIOUS_PUBLIC_KEYS", [], (value) => {
    if (!Array.isArray(value) || !value.every((item) => typeof item === "string")) throw new Error("expected a JSON list of public keys (or paths to them)");
    return value;
  }).entries()) {
    try {
      publicKeys.push(loadPublicKey(previous, "auto"));
    } catch (error) {
      env.problem("OPAL_MESH_AUTH_PREVIOUS_PUBLIC_KEYS", `key ${index}: ${(error as Error).message}`);
    }
  }
  if (side === "server") {
    if ((rawPrivate === undefined) !== (rawPublic === undefined)) {
      env.problem(rawPrivate === undefined ? "OPAL_AUTH_PRIVATE_KEY" : "OPAL_AUTH_PUBLIC_KEY", "the server needs both OPAL_AUTH_PRIVATE_KEY and OPAL_AUTH_PUBLIC_KEY (or neither, for dev mode)");
    }
    const current = publicKeys[0];
    if (privateKey !== undefined && current !== undefined) {
      const derived = createPublicKey(privateKey).export({ format: "der", type: "spki" });
      if (!derived.equals(current.export({ format: "der", type: "spki" }))) env.problem("OPAL_AUTH_PUBLIC_KEY", "does not match OPAL_AUTH_PRIVATE_KEY");
    }
  }
  // The algorithm follows the key; a stated one must agree with it.
  const algorithm = env.oneOf("OPAL_AUTH_JWT_ALGORITHM", "RS256", ["RS256", "ES256"] as const);
  const keyType = publicKeys[0]?.asymmetricKeyType;
  if (env.has("OPAL_AUTH_JWT_ALGORITHM") && keyType !== undefined && ((algorithm === "RS256") !== (keyType === "rsa"))) {
    env.problem("OPAL_AUTH_JWT_ALGORITHM", `${algorithm} does not fit a ${keyType} key (RS256 for RSA, ES256 for EC P-256)`);
  }
  return {
    privateKey,
    publicKeys,
    audience: env.string("OPAL_AUTH_JWT_AUDIENCE", "https://api.opal.ac/v1/"),
    issuer: env.string("OPAL_AUTH_JWT_ISSUER", "https://opal.ac/"),
    masterToken: env.optionalString("OPAL_AUTH_MASTER_TOKEN"),
  };
}
