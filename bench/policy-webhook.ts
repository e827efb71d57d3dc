/**
 * Time from `git commit` + a signed GitHub webhook to the new decision in OPA, one
 * client, embedded server; server and client run as their own processes.
 *
 *   npm run bench:policy-webhook [-- --commits 50]
 */
import { execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "undici";
import { freePort, record, runMesh, summary, until } from "./lib.js";

const flag = process.argv.indexOf("--commits");
const commits = flag === -1 ? 50 : Number(process.argv[flag + 1]);
const secret = "bench-secret";
const repo = mkdtempSync(join(tmpdir(), "opal-mesh-bench-repo-"));
const git = (...args: string[]): string => execFileSync("git", ["-c", "user.email=b@b", "-c", "user.name=bench", ...args], { cwd: repo, encoding: "utf8" });
const write = (version: number): void => {
  mkdirSync(join(repo, "app"), { recursive: true });
  writeFileSync(join(repo, "app", "version.rego"), `package app\n\nversion := ${version}\n`);
};
git("init", "-q", "-b", "main");
write(0);
git("add", "-A");
git("commit", "-q", "-m", "v0");

const [serverPort, streamPort, apiPort, opaPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
const server = runMesh("server", {
  OPAL_SERVER_BIND_PORT: String(serverPort),
  OPAL_MESH_STREAM_PORT: String(streamPort),
  OPAL_POLICY_REPO_URL: repo,
  OPAL_POLICY_REPO_MAIN_BRANCH: "main",
  OPAL_POLICY_REPO_WEBHOOK_SECRET: secret,
  OPAL_POLICY_REPO_CLONE_PATH: mkdtempSync(join(tmpdir(), "opal-mesh-bench-clones-")),
});
const client = runMesh("client", {
  OPAL_SERVER_URL: `http://127.0.0.1:${serverPort}`,
  OPAL_CLIENT_API_SERVER_PORT: String(apiPort),
  OPAL_INLINE_OPA_CONFIG: JSON.stringify({ addr: `127.0.0.1:${opaPort}` }),
});
const version = async (): Promise<unknown> => ((await (await request(`http://127.0.0.1:${opaPort}/v1/data/app/version`)).body.json()) as { result?: unknown }).result;
try {
  await until(async () => (await request(`http://127.0.0.1:${apiPort}/ready`)).statusCode === 200, "the client to be ready");
  await until(async () => (await version()) === 0, "the first policy");
  const samples: number[] = [];
  for (let i = 1; i <= commits; i++) {
    const started = performance.now();
    write(i);
    git("commit", "-q", "-am", `v${i}`);
    const body = JSON.stringify({ ref: "refs/heads/main", repository: { clone_url: repo } });
    const response = await request(`http://127.0.0.1:${serverPort}/webhook`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-github-event": "push", "x-hub-signature-256": `sha256=${createHmac("sha256", secret).update(body).digest("hex")}` },
      body,
    });
    if (response.statusCode !== 200) throw new Error(`webhook answered ${response.statusCode}`);
    await response.body.dump();
    await until(async () => (await version()) === i, `version ${i} in OPA`, 30_000);
    samples.push(performance.now() - started);
  }
  await record("policy-webhook", { description: "git commit + signed webhook until the new policy answers in OPA (1 client, embedded)", ms: summary(samples) });
} finally {
  client.kill("SIGTERM");
  server.kill("SIGTERM");
  rmSync(repo, { recursive: true, force: true });
}
