/**
 * A bundle server's tarballs under OPAL_MESH_POLICY_VERIFICATION_KEY: a signed one becomes
 * a version; an unsigned or tampered one is refused (the error names the bundle's URL,
 * never the key) and the last good version stays current.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { pino } from "pino";
import { signBundle } from "../common/bundle-signing/bundle-signature.js";
import { signingKey, verificationKey } from "../common/bundle-signing/jws.js";
import { BundleServerSource } from "./bundle-server-source.js";

const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
const privatePem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const publicPem = publicKey.export({ type: "spki", format: "pem" }).toString();
const signer = { key: signingKey("ES256", privatePem), keyId: "default" };

let root = "";
let count = 0;
let served: Buffer = Buffer.alloc(0);
let server: http.Server;
let url = "";
before(async () => {
  root = mkdtempSync(join(tmpdir(), "opal-bundle-signatures-spec-"));
  server = http.createServer((_request, response) => response.end(served));
  server.listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/bundles`;
});
after(() => {
  server.close();
  rmSync(root, { recursive: true, force: true });
});

/** A tarball as `opa build` writes it: entries from the root ("/x"), `.signatures.json` among them when signed. */
function tarball(files: Record<string, string>, signatures?: string): Buffer {
  const dir = join(root, `b${++count}`);
  const all = signatures === undefined ? files : { ...files, ".signatures.json": signatures };
  for (const [path, content] of Object.entries(all)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return execFileSync("tar", ["-czPf", "-", "-C", dir, "--transform=s,^,/,", ...Object.keys(all)]);
}

function signed(files: Record<string, string>): string {
  return signBundle(new Map(Object.entries(files).map(([name, text]) => [name, Buffer.from(text)])), signer);
}

const V1 = { "rbac/policy.rego": "package rbac\n\nversion := 1\n", "rbac/data.json": '{"v": 1}', ".manifest": '{"roots": ["rbac"]}' };
const V2 = { ...V1, "rbac/policy.rego": "package rbac\n\nversion := 2\n" };

test("only bundles signed by the verification key become versions; the last good stays", async () => {
  const errors: string[] = [];
  const logger = pino({ level: "warn" }, { write: (line: string) => void errors.push(line) });
  const source = new BundleServerSource({ url, logger, verifier: { key: verificationKey("ES256", publicPem), keyId: "default" } });
  const signal = new AbortController().signal;
  try {
    served = tarball(V1, signed(V1));
    const good = await source.check(signal);
    assert.equal(Buffer.from((await source.tree(good, signal)).get("rbac/policy.rego") ?? "").toString(), V1["rbac/policy.rego"]);

    served = tarball(V2);
    await assert.rejects(source.check(signal), (error: Error) => error.name === "BundleSignatureError" && error.message.includes(`bundle ${url}/bundle.tar.gz is not signed`));
    served = tarball(V2, signed(V1));
    await assert.rejects(source.check(signal), /has a bad signature: rbac\/policy\.rego: digest mismatch/);
    served = tarball({ ...V1, "extra.rego": "package extra\n" }, signed(V1));
    await assert.rejects(source.check(signal), /extra\.rego is not included in the bundle signature/);
    const other = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    served = tarball(V2, signBundle(new Map(Object.entries(V2).map(([name, text]) => [name, Buffer.from(text)])), { key: signingKey("ES256", other), keyId: "default" }));
    await assert.rejects(source.check(signal), /does not verify with the configured verification key/);
    // The refused tarballs never became versions: the good one is still served.
    assert.ok((await source.tree(good, signal)).has("rbac/policy.rego"));
    assert.ok(errors.some((line) => line.includes("policy bundle refused")), "the refusal is logged");
    assert.ok(errors.every((line) => !line.includes("PRIVATE") && !line.includes("PUBLIC KEY")));

    served = tarball(V2, signed(V2));
    assert.notEqual(await source.check(signal), good);
  } finally {
    await source.stop();
  }
});

test("without a verification key, unsigned bundles are served and a signed one is refused (as opa build does), the last good kept", async () => {
  const lines: string[] = [];
  const source = new BundleServerSource({ url, logger: pino({ level: "warn" }, { write: (line: string) => void lines.push(line) }) });
  const signal = new AbortController().signal;
  try {
    const unsigned = tarball(V1);
    served = unsigned;
    const good = await source.check(signal);
    served = tarball(V2, signed(V2));
    await assert.rejects(source.check(signal), /is signed \(\.signatures\.json\) but OPAL_MESH_POLICY_VERIFICATION_KEY is not set/);
    assert.ok(lines.some((line) => line.includes("policy bundle refused")));
    // The same bytes again (a tarball built anew differs in its timestamps): the same version, still served.
    served = unsigned;
    assert.equal(await source.check(signal), good);
  } finally {
    await source.stop();
  }
});
