/**
 * Compact JWS over node:crypto, for the algorithms both node and OPA (lestrrat-go/jwx)
 * support. Keys are parsed once (at start-up, by the config) into KeyObjects; neither
 * a key nor a secret ever appears in an error message.
 */
import { constants, createHmac, createPrivateKey, createPublicKey, createSecretKey, type KeyObject, sign, timingSafeEqual, verify } from "node:crypto";

export const SIGNING_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "HS256", "HS384", "HS512"] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

/** OPA's default for `opa build --signing-alg` and `--verification-key`. */
export const DEFAULT_SIGNING_ALGORITHM: SigningAlgorithm = "RS256";

export class JwsError extends Error {
  override readonly name = "JwsError";
}

const CURVES: Partial<Record<SigningAlgorithm, string>> = { ES256: "prime256v1", ES384: "secp384r1", ES512: "secp521r1" };

function digestOf(alg: SigningAlgorithm): string {
  return `sha${alg.slice(2)}`;
}

function isHmac(alg: SigningAlgorithm): boolean {
  return alg.startsWith("HS");
}

/** A key for `alg`, checked against it: the key material is never echoed. */
export interface JwsKey {
  readonly alg: SigningAlgorithm;
  readonly key: KeyObject;
}

function checkKeyType(alg: SigningAlgorithm, key: KeyObject, role: string): void {
  const type = key.asymmetricKeyType;
  if (alg.startsWith("RS") && type !== "rsa") throw new JwsError(`${alg} needs an RSA ${role}, got ${type ?? "another kind of"} key`);
  if (alg.startsWith("PS") && type !== "rsa" && type !== "rsa-pss") throw new JwsError(`${alg} needs an RSA ${role}, got ${type ?? "another kind of"} key`);
  const curve = CURVES[alg];
  if (curve !== undefined) {
    const actual = key.asymmetricKeyDetails?.namedCurve;
    if (type !== "ec" || actual !== curve) throw new JwsError(`${alg} needs an EC ${role} on ${curve}, got ${type === "ec" ? `one on ${actual ?? "an unknown curve"}` : `${type ?? "another kind of"} key`}`);
  }
}

function readKey(alg: SigningAlgorithm, text: string, role: "private key" | "public key", parse: (text: string) => KeyObject, wanted: string): JwsKey {
  if (isHmac(alg)) return { alg, key: createSecretKey(Buffer.from(text, "utf8")) };
  let key: KeyObject;
  try {
    key = parse(text);
  } catch (error) {
    throw new JwsError(`${alg} needs ${wanted}, and this one could not be read (${(error as { code?: string }).code ?? "unreadable"})`);
  }
  checkKeyType(alg, key, role);
  return { alg, key };
}

/** `text` is a PEM private key (RS/PS/ES) or the shared secret (HS). */
export function signingKey(alg: SigningAlgorithm, text: string): JwsKey {
  return readKey(alg, text, "private key", createPrivateKey, "a PEM private key");
}

/** `text` is a PEM public key, certificate or private key (RS/PS/ES), or the shared secret (HS). */
export function verificationKey(alg: SigningAlgorithm, text: string): JwsKey {
  return readKey(alg, text, "public key", createPublicKey, "a PEM public key (or certificate)");
}

function rsaPss(alg: SigningAlgorithm): { padding?: number; saltLength?: number; dsaEncoding?: "ieee-p1363" } {
  if (alg.startsWith("PS")) return { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(alg.slice(2)) / 8 };
  if (alg.startsWith("ES")) return { dsaEncoding: "ieee-p1363" };
  return {};
}

function base64url(data: string | Uint8Array): string {
  return Buffer.from(typeof data === "string" ? Buffer.from(data, "utf8") : data).toString("base64url");
}

export function signCompact(header: Record<string, unknown>, payload: string, { alg, key }: JwsKey): string {
  const input = `${base64url(JSON.stringify({ alg, ...header }))}.${base64url(payload)}`;
  const signature = isHmac(alg) ? createHmac(digestOf(alg), key).update(input).digest() : sign(digestOf(alg), Buffer.from(input), { key, ...rsaPss(alg) });
  return `${input}.${base64url(signature)}`;
}

export interface VerifiedJws {
  header: Record<string, unknown>;
  payload: string;
}

/** Checks the token's form, that its alg is the key's (no algorithm confusion), and its signature. */
export function verifyCompact(token: string, { alg, key }: JwsKey): VerifiedJws {
  const parts = token.split(".");
  if (parts.length !== 3) throw new JwsError(`not a compact JWS (${parts.length} parts, expected 3)`);
  const [headerPart = "", payloadPart = "", signaturePart = ""] = parts;
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(headerPart, "base64url").toString("utf8"));
  } catch {
    throw new JwsError("the JWS header is not base64url JSON");
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) throw new JwsError("the JWS header is not a JSON object");
  const headerObject = header as Record<string, unknown>;
  if (headerObject.alg !== alg) throw new JwsError(`the signature uses ${JSON.stringify(headerObject.alg)}, but the verification key is for ${alg}`);
  const input = Buffer.from(`${headerPart}.${payloadPart}`);
  const signature = Buffer.from(signaturePart, "base64url");
  let good: boolean;
  if (isHmac(alg)) {
    const expected = createHmac(digestOf(alg), key).update(input).digest();
    good = expected.length === signature.length && timingSafeEqual(expected, signature);
  } else {
    good = verify(digestOf(alg), input, { key, ...rsaPss(alg) }, signature);
  }
  if (!good) throw new JwsError(`the ${alg} signature does not verify with the configured verification key`);
  return { header: headerObject, payload: Buffer.from(payloadPart, "base64url").toString("utf8") };
}
