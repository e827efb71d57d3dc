/**
 * Scenario 6, policy: a git repo of 500 Rego files. The policy-watcher's bundle builds are
 * timed on their own (full from git objects, full again with the tree cached, delta after
 * one change); then end to end with the server and a client (real inline OPA) in their own
 * processes: a client starting on the repo until OPA holds all 500 modules, and a commit +
 * signed GitHub webhook until the changed rule answers in OPA.
 */
import { execFileSync, type ChildProcess } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "undici";
import { BundleBuilder, DEFAULT_FILTERS } from "../../services/policy-watcher/bundle/bundle-builder.js";
import { GitSource } from "../../services/policy-watcher/git-source.js";
import { freePort, metricOf, runMesh, stopProcess, until } from "../lib.js";
import type { Scenario, ScenarioOptions, ScenarioResult } from "../scenario.js";

const SECRET = "bench-webhook-secret";

/** Modules like a real repo's: each imports a shared package; one carries a version to change. */
function moduleSource(index: number, version: number): string {
  return `package app.m${index}\n\nimport data.app.common\n\nversion := ${version}\n\ndefault allow := false\n\nallow if {\n\tinput.level > ${index % 10}\n\tcommon.enabled\n}\n\nreasons contains "level" if input.level <= ${index % 10}\n`;
}

class PolicyRepo {
  readonly dir = mkdtempSync(join(tmpdir(), "opal-mesh-bench-policy-"));

  constructor(readonly files: number) {
    this.git("init", "-q", "-b", "main");
    mkdirSync(join(this.dir, "common"), { recursive: true });
    writeFileSync(join(this.dir, "common", "common.rego"), "package app.common\n\nenabled := true\n");
    for (let index = 0; index < files - 1; index++) this.write(index, 0);
    this.git("add", "-A");
    this.git("commit", "-q", "-m", `${files} modules`);
  }

  git(...args: string[]): string {
    return execFileSync("git", ["-c", "user.email=bench@example.com", "-c", "user.name=bench", ...args], { cwd: this.dir, encoding: "utf8" });
  }

  write(index: number, version: number): void {
    const dir = join(this.dir, `team${index % 20}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `m${index}.rego`), moduleSource(index, version));
  }

  /** Changes one module's version and commits; returns the new head. */
  change(index: number, version: number): string {
    this.write(index, version);
    this.git("commit", "-q", "-am", `m${index} v${version}`);
    return this.git("rev-parse", "HEAD").trim();
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function buildTimings(repo: PolicyRepo, rounds: number): Promise<{ cold: number[]; warm: number[]; delta: number[] }> {
  const signal = new AbortController().signal;
  const clonePath = mkdtempSync(join(tmpdir(), "opal-mesh-bench-clone-"));
  const builder = new BundleBuilder(DEFAULT_FILTERS);
  const cold: number[] = [];
  const warm: number[] = [];
  const delta: number[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      // A fresh source each round: the first build reads every blob from git.
      const source = new GitSource({ url: repo.dir, branch: "main", sshKey: undefined, clonePath: join(clonePath, String(round)), cloneTimeoutMs: 0, environment: process.env });
      await source.start(signal);
      try {
        const head = await source.check(signal);
        let started = performance.now();
        const full = builder.full(await source.tree(head, signal), head, []);
        cold.push(performance.now() - started);
        if (full.policyModules.length !== repo.files) throw new Error(`the full bundle holds ${full.policyModules.length} modules, not ${repo.files}`);
        started = performance.now();
        builder.full(await source.tree(head, signal), head, []);
        warm.push(performance.now() - started);
        const next = repo.change(3, 1000 + round);
        if ((await source.check(signal)) !== next) throw new Error("the source did not see the new commit");
        started = performance.now();
        const changes = await source.changes(head, next, signal);
        const bundle = builder.delta(await source.tree(next, signal), next, head, changes ?? { changed: [], deleted: [] }, []);
        delta.push(performance.now() - started);
        if (bundle.policyModules.length !== 1) throw new Error(`a one-file change gave a delta of ${bundle.policyModules.length} modules`);
      } finally {
        await source.stop();
      }
    }
  } finally {
    rmSync(clonePath, { recursive: true, force: true });
  }
  return { cold, warm, delta };
}

async function opaGet(port: number, path: string): Promise<unknown> {
  const response = await request(`http://127.0.0.1:${port}${path}`);
  return ((await response.body.json()) as { result?: unknown }).result;
}

async function endToEnd(repo: PolicyRepo, options: ScenarioOptions, fullRuns: number, deltas: number): Promise<{ full: number[]; delta: number[] }> {
  const [serverPort, streamPort] = await Promise.all([freePort(), freePort()]);
  const clones = mkdtempSync(join(tmpdir(), "opal-mesh-bench-clones-"));
  const server = runMesh("server", {
    OPAL_SERVER_BIND_PORT: String(serverPort),
    OPAL_MESH_STREAM_PORT: String(streamPort),
    OPAL_POLICY_REPO_URL: repo.dir,
    OPAL_POLICY_REPO_MAIN_BRANCH: "main",
    OPAL_POLICY_REPO_WEBHOOK_SECRET: SECRET,
    OPAL_POLICY_REPO_CLONE_PATH: clones,
    // Changes arrive by webhook; polling would blur when the change was noticed.
    OPAL_POLICY_REPO_POLLING_INTERVAL: "0",
  });
  const full: number[] = [];
  const delta: number[] = [];
  const last = repo.files - 2;
  let client: ChildProcess | undefined;
  try {
    await until(async () => (await request(`http://127.0.0.1:${serverPort}/healthcheck`)).statusCode === 200, "the server");
    let version = 0;
    for (let run = 0; run < fullRuns; run++) {
      const [apiPort, opaPort] = await Promise.all([freePort(), freePort()]);
      const started = performance.now();
      client = runMesh("client", {
        OPAL_SERVER_URL: `http://127.0.0.1:${serverPort}`,
        OPAL_CLIENT_API_SERVER_PORT: String(apiPort),
        OPAL_INLINE_OPA_CONFIG: JSON.stringify({ addr: `127.0.0.1:${opaPort}` }),
        OPAL_DATA_UPDATER_ENABLED: "false",
      });
      await until(async () => (await request(`http://127.0.0.1:${apiPort}/ready`)).statusCode === 200, "the client to load the policy", 300_000);
      full.push(performance.now() - started);
      const modules = (await opaGet(opaPort, "/v1/policies")) as unknown[];
      if (modules.length !== repo.files) throw new Error(`OPA holds ${modules.length} modules after the full apply, not ${repo.files}`);
      if ((await opaGet(opaPort, `/v1/data/app/m${last}/allow`)) !== false) throw new Error(`app.m${last}.allow does not answer in OPA`);
      options.log(`full apply ${run + 1}/${fullRuns}: ${Math.round(full.at(-1) ?? 0)} ms`);
      if (run < fullRuns - 1) {
        await stopProcess(client);
        continue;
      }
      for (let change = 0; change < deltas; change++) {
        version++;
        const begun = performance.now();
        repo.change(7, version);
        const body = JSON.stringify({ ref: "refs/heads/main", repository: { clone_url: repo.dir } });
        const response = await request(`http://127.0.0.1:${serverPort}/webhook`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-github-event": "push", "x-hub-signature-256": `sha256=${createHmac("sha256", SECRET).update(body).digest("hex")}` },
          body,
        });
        await response.body.dump();
        if (response.statusCode !== 200) throw new Error(`the webhook answered ${response.statusCode}`);
        const expected = version;
        await until(async () => (await opaGet(opaPort, "/v1/data/app/m7/version")) === expected, `version ${expected} of app.m7 in OPA`, 60_000);
        delta.push(performance.now() - begun);
      }
    }
  } finally {
    if (client !== undefined) await stopProcess(client);
    await stopProcess(server);
    rmSync(clones, { recursive: true, force: true });
  }
  return { full, delta };
}

export const scenario: Scenario = {
  name: "policy",
  about: "a 500-file Rego repo: bundle builds (full, delta), full apply into a real OPA, commit + webhook → new rule in OPA",
  async run(options): Promise<ScenarioResult> {
    const files = options.smoke ? 20 : 500;
    const repo = new PolicyRepo(files);
    try {
      options.log(`a repo of ${files} Rego files; timing bundle builds`);
      const builds = await buildTimings(repo, options.smoke ? 2 : 10);
      options.log("end to end: server and client processes");
      const e2e = await endToEnd(repo, options, options.smoke ? 1 : 5, options.smoke ? 3 : 20);
      return {
        scenario: "policy",
        description: `A git repo of ${files} Rego files (each importing a shared package). Bundle builds are the policy-watcher's builder timed in the bench process; the end-to-end runs use \`opal-mesh server\` and \`opal-mesh client\` (inline OPA) as their own processes.`,
        metrics: [
          metricOf(`full bundle build, ${files} files, blobs read from git`, "ms", builds.cold),
          metricOf(`full bundle build, ${files} files, tree cached`, "ms", builds.warm),
          metricOf("delta bundle build after one changed file", "ms", builds.delta),
          metricOf(`client start → all ${files} modules applied in a fresh OPA`, "ms", e2e.full),
          metricOf("commit + GitHub webhook → changed rule answers in OPA (delta bundle)", "ms", e2e.delta),
        ],
        notes: [
          "Found with this benchmark: OPA parses and recompiles every module it holds on each `PUT /v1/policies` (its `?metrics=true` shows the compile time growing with the module count: 9 ms per PUT at 100 modules, 134 ms at 500), so loading 500 modules one by one took 28.8 s on a quiet machine and 137 s (median of 3) with other benchmarks running. Fixed: a full bundle of ≥ 50 modules into an empty inline OPA restarts it with the modules as files (`opa run --server <files>`: one compile, ids unchanged); deltas and external OPAs still use PUTs. A module OPA refuses at start-up falls back to the PUT path, which reports it and keeps nothing of that version (test/policy-preload.test.ts).",
          "A delta is one PUT, so it still pays one compile of the whole set (≈ 150 ms at 500 modules on a quiet machine); the webhook measurement includes git fetch, the delta build, the distributor's bundle cache and the client's ACK.",
        ],
      };
    } finally {
      repo.remove();
    }
  },
};
