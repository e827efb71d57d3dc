/**
 * Our signatures against the real `opa` (built once into the project cache by `npm run
 * opa`): OPA verifies bundles we sign, we verify bundles OPA signs, and both agree on
 * every file digest (JSON canonical form included).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import { opaBinary } from "../../../test/helpers/opa.js";
import { extractTarGz } from "../../policy-watcher/tar.js";
import { BundleSignatureError, type BundleVerifier, signBundle, verifyBundle } from "./bundle-signature.js";
import { hashBundleFile } from "./opa-file-hash.js";
import { type SigningAlgorithm, signingKey, verificationKey } from "./jws.js";

const run = promisify(execFile);
let opa = "";
let root = "";
let dirs = 0;

before(async () => {
  // Fails with how to get OPA when it is not there.
  opa = await opaBinary();
  root = mkdtempSync(join(tmpdir(), "opal-bundle-signing-spec-"));
});
after(() => rmSync(root, { recursive: true, force: true }));

const FILES: Record<string, string> = {
  "rbac/policy.rego": "package rbac\n\nallow if input.user == \"alice\"\n",
  "rbac/data.json": '{"z": {"y": true, "x": null}, "b": 1.50, "a": [1e3, -0.0, "x\\u2028y<>&\\u00e9\\ud83d\\ude00", "\\u0001\\b"], "\\u00e9": 1, "e": 2}\n',
  "data.json": '{ "roles": ["admin"] }',
  "other.json": '{"raw":  true}',
  ".manifest": '{"roots": ["rbac", "roles"], "revision": "r1"}',
};

function asMap(files: Record<string, string>): Map<string, Uint8Array> {
  return new Map(Object.entries(files).map(([name, text]) => [name, Buffer.from(text)]));
}

function writeDir(files: Record<string, string>): string {
  const dir = join(root, `bundle${++dirs}`);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

/** A tarball OPA reads: entries named without "./" (OPA does not strip it before matching the signature). */
async function tarball(dir: string, names: string[]): Promise<string> {
  const out = `${dir}.tar.gz`;
  await run("tar", ["-czf", out, "-C", dir, ...names]);
  return out;
}

function keyPair(alg: SigningAlgorithm): { privatePem: string; publicPem: string } {
  if (alg.startsWith("HS")) return { privatePem: "a-shared-hmac-secret-of-some-length", publicPem: "a-shared-hmac-secret-of-some-length" };
  const pair = alg.startsWith("ES")
    ? generateKeyPairSync("ec", { namedCurve: { ES256: "P-256", ES384: "P-384", ES512: "P-521" }[alg as "ES256"] })
    : generateKeyPairSync("rsa", { modulusLength: 2048 });
  return { privatePem: pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString(), publicPem: pair.publicKey.export({ type: "spki", format: "pem" }).toString() };
}

/** `opa build --verification-key` on the tarball: resolves when OPA accepts the signature, rejects with OPA's words otherwise. */
async function opaVerifies(bundlePath: string, alg: SigningAlgorithm, publicPem: string, keyId = "default"): Promise<void> {
  const keyArg = alg.startsWith("HS") ? publicPem : join(root, `pub-${++dirs}.pem`);
  if (!alg.startsWith("HS")) writeFileSync(keyArg, publicPem);
  await opaRun(["build", "--verification-key", keyArg, "--verification-key-id", keyId, "--signing-alg", alg, "-b", bundlePath, "-o", join(root, `out-${++dirs}.tar.gz`)]);
}

/** OPA prints its errors on stdout: they go into the rejection. */
async function opaRun(args: string[], cwd?: string): Promise<void> {
  try {
    await run(opa, args, { cwd });
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(`opa ${args[0] ?? ""} failed: ${stdout ?? ""}${stderr ?? ""}`, { cause: error });
  }
}

describe("file digests", () => {
  test("match `opa sign` for Rego, data.json (canonical: key order, numbers as written, Go's string escapes), .manifest and other files", async () => {
    const dir = writeDir(FILES);
    const { privatePem } = keyPair("RS256");
    writeFileSync(join(root, "sign.pem"), privatePem);
    mkdirSync(join(root, "signed"));
    await opaRun(["sign", "--signing-key", join(root, "sign.pem"), "--bundle", ".", "--output-file-path", join(root, "signed")], dir);
    const token = (JSON.parse(readFileSync(join(root, "signed", ".signatures.json"), "utf8")) as { signatures: string[] }).signatures[0] ?? "";
    const payload = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString()) as { files: Array<{ name: string; hash: string }> };
    assert.deepEqual(payload.files.map((file) => file.name).sort(), Object.keys(FILES).sort());
    for (const file of payload.files) assert.equal(hashBundleFile(file.name, Buffer.from(FILES[file.name] ?? "")), file.hash, file.name);
  });

  test("a data.json's digest ignores whitespace and key order, but not values", () => {
    assert.equal(hashBundleFile("a/data.json", Buffer.from('{"a":1,"b":[2]}')), hashBundleFile("a/data.json", Buffer.from(' { "b" : [ 2 ] ,\n "a": 1 }\n')));
    assert.notEqual(hashBundleFile("a/data.json", Buffer.from('{"a":1}')), hashBundleFile("a/data.json", Buffer.from('{"a":2}')));
    assert.notEqual(hashBundleFile("a/roles.json", Buffer.from('{"a":1}')), hashBundleFile("a/roles.json", Buffer.from('{ "a":1}')));
  });
});

describe("signing, checked by opa", () => {
  for (const alg of ["RS256", "PS384", "ES256", "ES512", "HS256"] as const) {
    test(`opa verifies a bundle we sign with ${alg}, and refuses it tampered`, async () => {
      const { privatePem, publicPem } = keyPair(alg);
      const signatures = signBundle(asMap(FILES), { key: signingKey(alg, privatePem), keyId: "default" });
      const dir = writeDir({ ...FILES, ".signatures.json": signatures });
      await opaVerifies(await tarball(dir, [...Object.keys(FILES), ".signatures.json"]), alg, publicPem);

      writeFileSync(join(dir, "rbac/policy.rego"), `${FILES["rbac/policy.rego"]}allow if true\n`);
      await assert.rejects(opaVerifies(await tarball(dir, [...Object.keys(FILES), ".signatures.json"]), alg, publicPem), /digest mismatch/);
    });
  }

  test("opa refuses our signature checked with another key", async () => {
    const signer = keyPair("RS256");
    const signatures = signBundle(asMap(FILES), { key: signingKey("RS256", signer.privatePem), keyId: "default" });
    const dir = writeDir({ ...FILES, ".signatures.json": signatures });
    await assert.rejects(opaVerifies(await tarball(dir, [...Object.keys(FILES), ".signatures.json"]), "RS256", keyPair("RS256").publicPem), /verif/i);
  });
});

describe("verifying, against opa's signatures", () => {
  const signedByOpa = async (alg: SigningAlgorithm): Promise<{ files: Map<string, Uint8Array>; publicPem: string }> => {
    const { privatePem, publicPem } = keyPair(alg);
    const keyArg = alg.startsWith("HS") ? privatePem : join(root, `priv-${++dirs}.pem`);
    if (!alg.startsWith("HS")) writeFileSync(keyArg, privatePem);
    const dir = writeDir(FILES);
    const out = join(root, `opa-built-${++dirs}.tar.gz`);
    await opaRun(["build", "--signing-key", keyArg, "--signing-alg", alg, "-b", ".", "-o", out], dir);
    return { files: extractTarGz(readFileSync(out), { maxBytes: 1 << 20, maxFiles: 100 }), publicPem };
  };
  const verifier = (alg: SigningAlgorithm, publicPem: string, keyId = "default"): BundleVerifier => ({ key: verificationKey(alg, publicPem), keyId });

  for (const alg of ["RS256", "PS256", "ES384", "HS512"] as const) {
    test(`a bundle made by \`opa build --signing-key --signing-alg ${alg}\` verifies`, async () => {
      const { files, publicPem } = await signedByOpa(alg);
      const covered = verifyBundle(files, Buffer.from(files.get(".signatures.json") ?? "").toString(), verifier(alg, publicPem));
      assert.ok(covered.includes(".manifest") && covered.includes("data.json"), covered.join(","));
    });
  }

  test("tampered, unlisted, missing files, another key, another key id, another algorithm: each refused, saying which", async () => {
    const { files, publicPem } = await signedByOpa("RS256");
    const signatures = Buffer.from(files.get(".signatures.json") ?? "").toString();
    const good = verifier("RS256", publicPem);
    verifyBundle(files, signatures, good);
    const moduleName = [...files.keys()].find((name) => name.endsWith(".rego")) ?? "";

    const tampered = new Map(files).set(moduleName, Buffer.from("package rbac\nallow if true\n"));
    assert.throws(() => verifyBundle(tampered, signatures, good), (error: Error) => error instanceof BundleSignatureError && error.message.includes(`${moduleName}: digest mismatch`));
    assert.throws(() => verifyBundle(new Map(files).set("extra.rego", Buffer.from("package x\n")), signatures, good), /extra\.rego is not included in the bundle signature/);
    const missing = new Map(files);
    missing.delete(moduleName);
    assert.throws(() => verifyBundle(missing, signatures, good), new RegExp(`${moduleName.replace(/[.]/g, "\\.")} listed in the bundle signature but not in the bundle`));
    assert.throws(() => verifyBundle(files, signatures, verifier("RS256", keyPair("RS256").publicPem)), /does not verify with the configured verification key/);
    assert.throws(() => verifyBundle(files, signatures, verifier("RS256", publicPem, "release")), /signed with key id "default", not the configured "release"/);
    assert.throws(() => verifyBundle(files, signatures, verifier("PS256", publicPem)), /uses "RS256", but the verification key is for PS256/);
    assert.throws(() => verifyBundle(files, JSON.stringify({ signatures: [] }), good), /missing JWT/);
    assert.throws(() => verifyBundle(files, "{not json", good), /is not JSON/);
  });

  test("errors never carry the key or the secret", () => {
    const secret = "hmac-secret-that-must-stay-hidden";
    const signatures = signBundle(asMap(FILES), { key: signingKey("HS256", secret), keyId: "default" });
    const other = { key: verificationKey("HS256", `${secret}-other`), keyId: "default" };
    assert.throws(() => verifyBundle(asMap(FILES), signatures, other), (error: Error) => !error.message.includes(secret));
    assert.throws(() => signingKey("RS256", "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"), (error: Error) => !error.message.includes("bm90IGEga2V5") && /PEM private key/.test(error.message));
    assert.throws(() => verificationKey("ES256", keyPair("RS256").publicPem), /ES256 needs an EC public key on prime256v1, got rsa key/);
  });
});
