import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { loadClientConfig } from "./client-config.js";
import { loadServerConfig } from "./server-config.js";

const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const PRIVATE = rsa.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const PUBLIC = rsa.publicKey.export({ type: "spki", format: "pem" }).toString();

test("unset: nothing is signed or verified", () => {
  assert.deepEqual(loadServerConfig({}).policySigning, { signer: undefined, verifier: undefined });
  assert.equal(loadClientConfig({}).policyVerifier, undefined);
});

test("keys as PEM text or a PEM file's path, RS256 and key id \"default\" by default, HMAC secrets as given", () => {
  const dir = mkdtempSync(join(tmpdir(), "opal-signing-config-"));
  try {
    writeFileSync(join(dir, "public.pem"), PUBLIC);
    const server = loadServerConfig({ OPAL_MESH_POLICY_SIGNING_KEY: PRIVATE, OPAL_MESH_POLICY_VERIFICATION_KEY: join(dir, "public.pem") }).policySigning;
    assert.equal(server.signer?.key.alg, "RS256");
    assert.equal(server.signer?.keyId, "default");
    assert.equal(server.verifier?.key.key.asymmetricKeyType, "rsa");
    const client = loadClientConfig({ OPAL_MESH_POLICY_VERIFICATION_KEY: "shared", OPAL_MESH_POLICY_VERIFICATION_ALG: "hs512", OPAL_MESH_POLICY_VERIFICATION_KEY_ID: "fleet" });
    assert.equal(client.policyVerifier?.key.alg, "HS512");
    assert.equal(client.policyVerifier?.keyId, "fleet");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("bad values fail start-up naming the variable, never showing the key", () => {
  const mangled = PRIVATE.replace(/\n[A-Za-z0-9+/]{20}/, "\n!!!!");
  assert.throws(() => loadServerConfig({ OPAL_MESH_POLICY_SIGNING_KEY: mangled }), (error: Error) => /OPAL_MESH_POLICY_SIGNING_KEY: RS256 needs a PEM private key/.test(error.message) && !error.message.includes(PRIVATE.slice(40, 80)));
  assert.throws(() => loadServerConfig({ OPAL_MESH_POLICY_SIGNING_KEY: PRIVATE, OPAL_MESH_POLICY_SIGNING_ALG: "ES256" }), /OPAL_MESH_POLICY_SIGNING_KEY: ES256 needs an EC private key on prime256v1, got rsa key/);
  assert.throws(() => loadServerConfig({ OPAL_MESH_POLICY_SIGNING_ALG: "none" }), /OPAL_MESH_POLICY_SIGNING_ALG: expected one of RS256/);
  assert.throws(() => loadClientConfig({ OPAL_MESH_POLICY_VERIFICATION_KEY: "/no/such/key.pem" }), (error: Error) => /OPAL_MESH_POLICY_VERIFICATION_KEY: RS256 needs PEM text or the path of a PEM file; this is neither \(ENOENT\)/.test(error.message) && !error.message.includes("/no/such"));
  assert.throws(() => loadClientConfig({ OPAL_MESH_POLICY_VERIFICATION_KEY: PRIVATE.replace("PRIVATE", "PUBLIC").replace("PRIVATE", "PUBLIC") }), /OPAL_MESH_POLICY_VERIFICATION_KEY: RS256 needs a PEM public key/);
});
