/**
 * Bundles for a repo of 500 Rego files: full bundle build (cold from git objects, and
 * warm), full apply into a fresh real OPA, then the delta after one changed file (build
 * and apply).
 *
 *   npm run bench:policy-bundle [-- --files 500]
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OpaStore } from "../services/client/opa/opa-store.js";
import { applyPolicyBundle } from "../services/client/policy/policy-applier.js";
import { GlobSet } from "../services/common/globs.js";
import { BundleBuilder, DEFAULT_FILTERS } from "../services/policy-watcher/bundle/bundle-builder.js";
import { GitSource } from "../services/policy-watcher/git-source.js";
import { locateOpa } from "../services/client/opa/opa-binary.js";
import { cacheDirFrom } from "../services/common/config/client-config.js";
import { freePort, record, summary, until } from "./lib.js";

const flag = process.argv.indexOf("--files");
const files = flag === -1 ? 500 : Number(process.argv[flag + 1]);
const repo = mkdtempSync(join(tmpdir(), "opal-mesh-bench-500-"));
const git = (...args: string[]): void => void execFileSync("git", ["-c", "user.email=b@b", "-c", "user.name=bench", ...args], { cwd: repo });
const module = (index: number, threshold: number): string =>
  `package app.m${index}\n\nimport data.app.common\n\ndefault allow := false\n\nallow if {\n\tinput.level > ${threshold}\n\tcommon.enabled\n}\n\nreasons contains "level" if input.level <= ${threshold}\n`;
git("init", "-q", "-b", "main");
mkdirSync(join(repo, "common"), { recursive: true });
writeFileSync(join(repo, "common", "common.rego"), "package app.common\n\nenabled := true\n");
for (let index = 0; index < files - 1; index++) {
  const dir = join(repo, `team${index % 20}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `m${index}.rego`), module(index, index % 10));
}
git("add", "-A");
git("commit", "-q", "-m", "500 modules");

const signal = new AbortController().signal;
const source = new GitSource({ url: repo, branch: "main", sshKey: undefined, clonePath: mkdtempSync(join(tmpdir(), "opal-mesh-bench-clone-")), cloneTimeoutMs: 0, environment: process.env });
const builder = new BundleBuilder(DEFAULT_FILTERS);
await source.start(signal);
const head = await source.check(signal);

let started = performance.now();
const full = builder.full(await source.tree(head, signal), head, []);
const coldBuildMs = performance.now() - started;
const warm: number[] = [];
for (let run = 0; run < 20; run++) {
  started = performance.now();
  builder.full(await source.tree(head, signal), head, []);
  warm.push(performance.now() - started);
}

const opaPort = await freePort();
const opa = spawn(await locateOpa({ execPath: undefined, cacheDir: cacheDirFrom(process.env), searchPath: process.env.PATH ?? "", allowBuild: true, environment: process.env }), ["run", "--server", `--addr=127.0.0.1:${opaPort}`, "--log-level=error"], { stdio: "ignore" });
const store = new OpaStore({ url: `http://127.0.0.1:${opaPort}`, authToken: undefined });
try {
  await until(() => store.isHealthy(), "OPA");
  started = performance.now();
  await applyPolicyBundle(store, full, new GlobSet([]), signal);
  const fullApplyMs = performance.now() - started;

  const deltaBuild: number[] = [];
  const deltaApply: number[] = [];
  let base = head;
  for (let change = 1; change <= 10; change++) {
    writeFileSync(join(repo, "team3", "m3.rego"), module(3, 100 + change));
    git("commit", "-q", "-am", `change ${change}`);
    const next = await source.check(signal);
    started = performance.now();
    const changes = await source.changes(base, next, signal);
    const delta = builder.delta(await source.tree(next, signal), next, base, changes ?? { changed: [], deleted: [] }, []);
    deltaBuild.push(performance.now() - started);
    started = performance.now();
    await applyPolicyBundle(store, delta, new GlobSet([]), signal);
    deltaApply.push(performance.now() - started);
    if (delta.policyModules.length !== 1) throw new Error(`expected a one-module delta, got ${delta.policyModules.length}`);
    base = next;
  }
  await record("policy-bundle", {
    description: `a git repo of ${files} Rego files: full bundle build (cold = reading git objects; warm = tree cached), full apply into an empty OPA, delta after one changed file`,
    files,
    ms: {
      fullBuildCold: Math.round(coldBuildMs * 100) / 100,
      fullBuildWarm: summary(warm),
      fullApplyIntoOpa: Math.round(fullApplyMs),
      deltaBuild: summary(deltaBuild),
      deltaApply: summary(deltaApply),
    },
  });
} finally {
  opa.kill();
  await store.close();
  await source.stop();
  rmSync(repo, { recursive: true, force: true });
}
