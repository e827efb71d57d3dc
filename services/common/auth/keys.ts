/**
 * Keys as OPAL takes them: the key itself in the variable (newlines real, escaped as "\n",
 * or — OPAL's trick for env files — written as "_"), or a path to a file; PEM (PKCS#8,
 * PKCS#1, SEC1, SPKI), OpenSSH ("-----BEGIN OPENSSH PRIVATE KEY-----", "ssh-rsa …",
 * "ecdsa-sha2-nistp256 …") or DER; private keys optionally encrypted with a passphrase.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import sshpk from "sshpk";

export type KeyFormat = "pem" | "ssh" | "der" | "auto";

/** The key text (or bytes) a variable stands for. */
function material(value: string): Buffer {
  const trimmed = value.trim();
  if (!trimmed.includes("-----") && !/^(ssh-|ecdsa-)/.test(trimmed) && existsSync(trimmed)) return readFileSync(trimmed);
  let text = trimmed.replaceAll("\\n", "\n");
  // OPAL allows "_" for newlines in PEM blocks passed through env files.
  if (text.startsWith("-----BEGIN") && !text.includes("\n") && text.includes("_")) text = text.replaceAll("_", "\n");
  return Buffer.from(text);
}

function looksLikeSsh(text: string): boolean {
  return text.includes("BEGIN OPENSSH PRIVATE KEY") || /^(ssh-rsa|ssh-ed25519|ecdsa-sha2-)/.test(text.trim());
}

export class KeyError extends Error {
  override readonly name = "KeyError";
}

export function loadPrivateKey(value: string, format: KeyFormat = "auto", passphrase?: string): KeyObject {
  const bytes = material(value);
  const text = bytes.toString("utf8");
  try {
    if (format === "ssh" || (format === "auto" && looksLikeSsh(text))) {
      const key = sshpk.parsePrivateKey(bytes, "auto", passphrase === undefined ? undefined : { passphrase });
      return createPrivateKey({ key: key.toString("pkcs8"), format: "pem" });
    }
    if (format === "der") return createPrivateKey({ key: bytes, format: "der", type: "pkcs8", passphrase });
    return createPrivateKey({ key: text, format: "pem", passphrase });
  } catch (error) {
    const reason = /passphrase|decrypt|bad decrypt/i.test((error as Error).message) ? "it is encrypted: check the passphrase" : (error as Error).message;
    throw new KeyError(`not a usable private key (${reason})`, { cause: error });
  }
}

export function loadPublicKey(value: string, format: KeyFormat = "auto"): KeyObject {
  const bytes = material(value);
  const text = bytes.toString("utf8");
  try {
    if (format === "ssh" || (format === "auto" && looksLikeSsh(text))) {
      const key = sshpk.parseKey(bytes, "auto");
      return createPublicKey({ key: key.toString("pkcs8"), format: "pem" });
    }
    if (format === "der") return createPublicKey({ key: bytes, format: "der", type: "spki" });
    return createPublicKey({ key: text, format: "pem" });
  } catch (error) {
    throw new KeyError(`not a usable public key (${(error as Error).message})`, { cause: error });
  }
}

/** The JWS algorithm a key signs with (RS256 for RSA, ES256 for P-256). */
export function algorithmFor(key: KeyObject): "RS256" | "ES256" {
  if (key.asymmetricKeyType === "rsa") return "RS256";
  if (key.asymmetricKeyType === "ec" && key.asymmetricKeyDetails?.namedCurve === "prime256v1") return "ES256";
  throw new KeyError(`keys of type ${key.asymmetricKeyType ?? "unknown"}${key.asymmetricKeyDetails?.namedCurve ? ` (${key.asymmetricKeyDetails.namedCurve})` : ""} are not supported: use RSA (RS256) or P-256 (ES256)`);
}
