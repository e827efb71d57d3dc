/**
 * The cost of signed policy bundles: verifying one bundle of 50 and 500 modules (the
 * client's check before apply, RS256/ES256/HS256, median and p99 over repeated runs), and
 * publish → applied for one changed module with and without verification (a verifying
 * client asks for full bundles, so this includes full-instead-of-delta). Real git, real
 * OPA, the embedded server and clients in this process (test/helpers/mesh.ts).
 *
 *   node --import tsx bench/policy-signing.ts [-- --runs 200 --commits 10]
 */
import { generateKeyPairSync } from "node:crypto";
import { performance } from "node:perf_hooks";
import { create } from "@bufbuild/protobuf";
import { PolicyBundleSchema } from "../gen/opal/mesh/v1/policy_pb.js";
import { signPolicyBundle, verifyPolicyBundle } from "../services/common/bundle-signing/policy-bundle-files.js";
import { type SigningAlgorithm, signingKey, verificationKey } from "../services/common/bundle-signing/jws.js";
import { GitRepo, tempDir } from "../test/helpers/git-repo.js";
import { startClient, startServer, waitReady } from "../test/helpers/mesh.js";
import { waitFor } from "../test/helpers/wait.js";
import { record, summary } from "./lib.js";

function option(name: string, fallback: number): number {
  const index = process.argv.indexOf(name);
  const value = index === -1 ? fallback : Number(process.argv[index + 1]);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} needs a positive integer`);
  return value;
}
const runs = option("--runs", 200);
const commits = option("--commits", 10);

const moduleText = (index: number, version: number): string => `package bench.m${index}\n\nallow if input.user == "user-${index}"\n\nversion := ${version}\n\n# ${"padding ".repeat(40)}\n`;

function keys(alg: SigningAlgorithm): { privatePem: string; publicPem: string } {
  if (alg === "HS256") return { privatePem: "bench-secret", publicPem: "bench-secret" };
  const pair = alg === "ES256" ? generateKeyPairSync("ec", { namedCurve: "P-256" }) : generateKeyPairSync("rsa", { modulusLength: 2048 });
  return { privatePem: pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString(), publicPem: pair.publicKey.export({ type: "spki", format: "pem" }).toString() };
}

function verifyTimes(modules: number, alg: SigningAlgorithm): Record<string, unknown> {
  const bundle = create(PolicyBundleSchema, {
    hash: "bench",
    manifest: Array.from({ length: modules }, (_, index) => `m${index}/policy.rego`),
    policyModules: Array.from({ length: modules }, (_, index) => ({ path: `m${index}/policy.rego`, packageName: `bench.m${index}`, rego: moduleText(index, 1) })),
    dataModules: [{ path: "bench", dataJson: Buffer.from(JSON.stringify({ users: Array.from({ length: modules }, (_, index) => `user-${index}`) })) }],
  });
  const { privatePem, publicPem } = keys(alg);
  const signer = { key: signingKey(alg, privatePem), keyId: "default" };
  const verifier = { key: verificationKey(alg, publicPem), keyId: "default" };
  const sign: number[] = [];
  const verify: number[] = [];
  for (let run = 0; run < runs; run++) {
    let started = performance.now();
    bundle.signaturesJson = signPolicyBundle(bundle, signer);
    sign.push(performance.now() - started);
    started = performance.now();
    verifyPolicyBundle(bundle, verifier);
    verify.push(performance.now() - started);
  }
  const bytes = bundle.policyModules.reduce((sum, module) => sum + module.rego.length, 0);
  return { modules, alg, bundleKiB: Math.round(bytes / 1024), signMs: summary(sign), verifyMs: summary(verify) };
}

async function publishToApplied(modules: number, verified: boolean): Promise<Record<string, unknown>> {
  const { privatePem, publicPem } = keys("ES256");
  const repo = new GitRepo();
  repo.commit(Object.fromEntries(Array.from({ length: modules }, (_, index) => [`m${index}/policy.rego`, moduleText(index, 0)])), "initial");
  const server = await startServer({
    OPAL_POLICY_REPO_URL: repo.dir,
    OPAL_POLICY_REPO_MAIN_BRANCH: repo.branch,
    OPAL_POLICY_REPO_CLONE_PATH: tempDir("opal-mesh-bench-clones-"),
    ...(verified ? { OPAL_MESH_POLICY_SIGNING_KEY: privatePem, OPAL_MESH_POLICY_SIGNING_ALG: "ES256" } : {}),
  });
  const client = await startClient(server.url, verified ? { OPAL_MESH_POLICY_VERIFICATION_KEY: publicPem, OPAL_MESH_POLICY_VERIFICATION_ALG: "ES256" } : {});
  try {
    await waitReady(client, 120_000);
    const samples: number[] = [];
    for (let commit = 1; commit <= commits; commit++) {
      const sha = repo.commit({ [`m${commit % modules}/policy.rego`]: moduleText(commit % modules, commit) }, `change ${commit}`);
      const started = performance.now();
      await server.policy.refresh({});
      await waitFor(() => client.agent.policyHash === sha, { timeoutMs: 60_000, message: `the client at ${sha}` });
      samples.push(performance.now() - started);
    }
    return { modules, verified, publishToAppliedMs: summary(samples) };
  } finally {
    await client.stop();
    await server.stop();
    repo.remove();
  }
}

const verification = [50, 500].flatMap((modules) => (["RS256", "ES256", "HS256"] as const).map((alg) => verifyTimes(modules, alg)));
const endToEnd: Array<Record<string, unknown>> = [];
for (const modules of [50, 500]) for (const verified of [false, true]) endToEnd.push(await publishToApplied(modules, verified));
await record("policy-signing", { runs, commits, verification, endToEnd });
