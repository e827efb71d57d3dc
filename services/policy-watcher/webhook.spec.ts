import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { pino } from "pino";
import { RestRouter } from "../common/http/rest-router.js";
import {
  AZURE_DEVOPS_WEBHOOK_PARAMS,
  BITBUCKET_WEBHOOK_PARAMS,
  GITHUB_WEBHOOK_PARAMS,
  GITLAB_WEBHOOK_PARAMS,
  evaluateWebhook,
  parseWebhookParams,
  webhookRoute,
  type WebhookInput,
  type WebhookParams,
} from "./webhook.js";

const SECRET = "hook-secret-7f3a";
const REPO = "https://github.com/acme/policies.git";

function sign(body: Buffer | string, secret = SECRET): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

/** A GitHub push to acme/policies on main, as GitHub sends it (the fields we read). */
function githubPush(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    ref: "refs/heads/main",
    repository: {
      full_name: "acme/policies",
      html_url: "https://github.com/acme/policies",
      git_url: "git://github.com/acme/policies.git",
      ssh_url: "git@github.com:acme/policies.git",
      clone_url: "https://github.com/acme/policies.git",
    },
    ...extra,
  };
}

interface Call extends Partial<Omit<WebhookInput, "body">> {
  payload?: unknown;
  /** Raw body; wins over payload. */
  raw?: string;
}

/** Evaluates a GitHub-shaped webhook, signed with SECRET unless the headers say otherwise. */
function evaluate(call: Call = {}): ReturnType<typeof evaluateWebhook> {
  const body = Buffer.from(call.raw ?? JSON.stringify(call.payload ?? githubPush()));
  return evaluateWebhook({
    secret: SECRET,
    params: GITHUB_WEBHOOK_PARAMS,
    repoUrl: REPO,
    branch: "main",
    enforceBranch: false,
    ...call,
    headers: call.headers ?? { "x-github-event": "push", "x-hub-signature-256": sign(body) },
    body,
  });
}

const OK_PUSH = { httpStatus: 200, body: { status: "ok", event: "push", repo_url: REPO }, trigger: true };

function assertVerdict(actual: ReturnType<typeof evaluateWebhook>, expected: { httpStatus: number; body: unknown; trigger: boolean }): void {
  assert.deepEqual({ httpStatus: actual.httpStatus, body: actual.body, trigger: actual.trigger }, expected, actual.reason);
}

test("GitHub signatures", async (t) => {
  const body = JSON.stringify(githubPush());
  const signature = sign(body);
  const refused = (detail: string) => ({ httpStatus: 401, body: { detail }, trigger: false });
  const cases: Array<[string, Call, { httpStatus: number; body: unknown; trigger: boolean }]> = [
    ["valid signature", { raw: body, headers: { "x-github-event": "push", "x-hub-signature-256": signature } }, OK_PUSH],
    ["header name in any case", { raw: body, headers: { "X-GitHub-Event": "push", "X-Hub-Signature-256": signature } }, OK_PUSH],
    ["missing signature", { raw: body, headers: { "x-github-event": "push" } }, refused("No secret was provided!")],
    ["no sha256= prefix", { raw: body, headers: { "x-github-event": "push", "x-hub-signature-256": signature.slice(7) } }, refused("No secret was provided!")],
    ["signed with another secret", { raw: body, headers: { "x-github-event": "push", "x-hub-signature-256": sign(body, "other") } }, refused("signatures didn't match!")],
    ["body changed after signing", { raw: body.replace("main", "dev"), headers: { "x-github-event": "push", "x-hub-signature-256": signature } }, refused("signatures didn't match!")],
    ["truncated signature", { raw: body, headers: { "x-github-event": "push", "x-hub-signature-256": signature.slice(0, -2) } }, refused("signatures didn't match!")],
    ["sha1 signature in the sha256 header", { raw: body, headers: { "x-github-event": "push", "x-hub-signature-256": `sha1=${createHmac("sha1", SECRET).update(body).digest("hex")}` } }, refused("No secret was provided!")],
    ["no secret configured: unsigned accepted", { raw: body, secret: undefined, headers: { "x-github-event": "push" } }, OK_PUSH],
    ["no secret configured: bad signature ignored", { raw: body, secret: undefined, headers: { "x-github-event": "push", "x-hub-signature-256": "sha256=00" } }, OK_PUSH],
  ];
  for (const [name, call, expected] of cases) {
    await t.test(name, () => assertVerdict(evaluate(call), expected));
  }
});

test("token services (GitLab, Azure DevOps, Bitbucket)", async (t) => {
  const gitlabPush = {
    ref: "refs/heads/main",
    project: { path_with_namespace: "acme/policies", git_http_url: "https://gitlab.com/acme/policies.git", git_ssh_url: "git@gitlab.com:acme/policies.git" },
  };
  const azure = (eventType: string, ref = "refs/heads/main") => ({
    eventType,
    resource: { refUpdates: [{ name: ref }], repository: { remoteUrl: "https://acme@dev.azure.com/acme/proj/_git/policies" } },
  });
  const bitbucketPush = { push: { changes: [] }, repository: { full_name: "acme/policies", name: "policies" } };
  const gitlab = { params: GITLAB_WEBHOOK_PARAMS, repoUrl: "https://gitlab.com/acme/policies.git", payload: gitlabPush };
  const azureBase = { params: AZURE_DEVOPS_WEBHOOK_PARAMS, repoUrl: "https://dev.azure.com/acme/proj/_git/policies" };
  const bitbucket = { params: BITBUCKET_WEBHOOK_PARAMS, repoUrl: "https://bitbucket.org/acme/policies.git", payload: bitbucketPush };
  const ok = (event: string, repoUrl: string, trigger: boolean) => ({ httpStatus: 200, body: { status: "ok", event, repo_url: repoUrl }, trigger });
  const cases: Array<[string, Call, { httpStatus: number; body: unknown; trigger: boolean }]> = [
    ["GitLab right token", { ...gitlab, headers: { "x-gitlab-token": SECRET, "x-gitlab-event": "Push Hook" } }, ok("Push Hook", gitlab.repoUrl, true)],
    ["GitLab wrong token", { ...gitlab, headers: { "x-gitlab-token": "guess", "x-gitlab-event": "Push Hook" } }, { httpStatus: 401, body: { detail: "secret-tokens didn't match!" }, trigger: false }],
    ["GitLab token with the secret as prefix", { ...gitlab, headers: { "x-gitlab-token": `${SECRET}x`, "x-gitlab-event": "Push Hook" } }, { httpStatus: 401, body: { detail: "secret-tokens didn't match!" }, trigger: false }],
    ["GitLab missing token", { ...gitlab, headers: { "x-gitlab-event": "Push Hook" } }, { httpStatus: 401, body: { detail: "No secret was provided!" }, trigger: false }],
    ["GitLab tag push is not a push", { ...gitlab, headers: { "x-gitlab-token": SECRET, "x-gitlab-event": "Tag Push Hook" } }, ok("Tag Push Hook", gitlab.repoUrl, false)],
    ["Azure git.push from the body", { ...azureBase, payload: azure("git.push"), headers: { "x-api-key": SECRET } }, ok("git.push", azureBase.repoUrl, true)],
    ["Azure pull request event", { ...azureBase, payload: azure("git.pullrequest.created"), headers: { "x-api-key": SECRET } }, ok("git.pullrequest.created", azureBase.repoUrl, false)],
    ["Azure event header is not read", { ...azureBase, payload: azure("git.pullrequest.created"), headers: { "x-api-key": SECRET, "x-github-event": "git.push" } }, ok("git.pullrequest.created", azureBase.repoUrl, false)],
    ["Azure branch from refUpdates", { ...azureBase, enforceBranch: true, payload: azure("git.push", "refs/heads/dev"), headers: { "x-api-key": SECRET } }, { httpStatus: 200, body: { status: "ignored", event: "git.push" }, trigger: false }],
    ["Azure ssh-configured repo", { ...azureBase, repoUrl: "git@ssh.dev.azure.com:v3/acme/proj/policies", payload: azure("git.push"), headers: { "x-api-key": SECRET } }, ok("git.push", "git@ssh.dev.azure.com:v3/acme/proj/policies", true)],
    ["Azure wrong token", { ...azureBase, payload: azure("git.push"), headers: { "x-api-key": "nope" } }, { httpStatus: 401, body: { detail: "secret-tokens didn't match!" }, trigger: false }],
    ["Bitbucket repo:push by full_name", { ...bitbucket, headers: { "x-hook-uuid": SECRET, "x-event-key": "repo:push" } }, ok("repo:push", bitbucket.repoUrl, true)],
    ["Bitbucket other event", { ...bitbucket, headers: { "x-hook-uuid": SECRET, "x-event-key": "repo:commit_status_created" } }, ok("repo:commit_status_created", bitbucket.repoUrl, false)],
    ["Bitbucket wrong uuid", { ...bitbucket, headers: { "x-hook-uuid": "0000", "x-event-key": "repo:push" } }, { httpStatus: 401, body: { detail: "secret-tokens didn't match!" }, trigger: false }],
  ];
  for (const [name, call, expected] of cases) {
    await t.test(name, () => assertVerdict(evaluate(call), expected));
  }
});

test("events other than push", async (t) => {
  const cases: Array<[string, Record<string, string>, string]> = [
    ["ping", { "x-github-event": "ping" }, "ping"],
    ["pull_request", { "x-github-event": "pull_request" }, "pull_request"],
    ["no event header counts as ping", {}, "ping"],
  ];
  for (const [name, eventHeaders, event] of cases) {
    await t.test(name, () => {
      const body = JSON.stringify(githubPush());
      const verdict = evaluate({ raw: body, headers: { ...eventHeaders, "x-hub-signature-256": sign(body) } });
      assertVerdict(verdict, { httpStatus: 200, body: { status: "ok", event, repo_url: REPO }, trigger: false });
    });
  }
});

test("repo matching", async (t) => {
  const github = (repository: Record<string, unknown>) => ({ ref: "refs/heads/main", repository });
  const cases: Array<[string, string, unknown, boolean]> = [
    ["same https URL", REPO, githubPush(), true],
    ["ssh config, https payload", "git@github.com:acme/policies.git", github({ html_url: "https://github.com/acme/policies" }), true],
    ["ssh:// config with port", "ssh://git@github.com:22/acme/policies.git", github({ clone_url: "https://github.com/acme/policies.git" }), true],
    ["https config, ssh payload", "https://github.com/acme/policies", github({ ssh_url: "git@github.com:acme/policies.git" }), true],
    ["credentials, case and trailing slash", "https://x-access-token:tok@GitHub.com/Acme/Policies/", github({ url: "https://github.com/acme/policies" }), true],
    ["full_name only", "https://github.com/acme/policies.git", github({ full_name: "acme/policies" }), true],
    ["full_name in another case", "https://bitbucket.org/acme/policies.git", { repository: { full_name: "Acme/Policies" } }, true],
    ["GitLab nested group by name", "https://gitlab.example.com/group/sub/policies.git", { project: { path_with_namespace: "group/sub/policies" } }, true],
    ["another repo", REPO, github({ clone_url: "https://github.com/acme/other.git", full_name: "acme/other" }), false],
    ["a repo whose name extends ours", REPO, github({ clone_url: "https://github.com/acme/policies-old.git" }), false],
    ["same path on another host", REPO, github({ clone_url: "https://gitlab.com/acme/policies.git" }), false],
    ["URLs win over a matching name", REPO, github({ clone_url: "https://ghe.example.com/acme/policies.git", full_name: "acme/policies" }), false],
    ["another full_name", REPO, github({ full_name: "acme/other" }), false],
  ];
  for (const [name, repoUrl, payload, matches] of cases) {
    await t.test(name, () => {
      const verdict = evaluate({ repoUrl, payload });
      const expected = matches ? { status: "ok", event: "push", repo_url: verdict.body.repo_url } : { status: "ignored", event: "push" };
      assert.deepEqual(verdict.body, expected, verdict.reason);
      assert.equal(verdict.trigger, matches);
    });
  }

  await t.test("repo_url in the answer has no credentials", () => {
    const verdict = evaluate({ repoUrl: "https://x-access-token:tok@github.com/acme/policies.git" });
    assert.equal(verdict.body.repo_url, "https://github.com/acme/policies.git");
  });
  await t.test("match_sender_url false accepts another repo", () => {
    const payload = github({ clone_url: "https://github.com/acme/other.git" });
    assertVerdict(evaluate({ payload, params: { ...GITHUB_WEBHOOK_PARAMS, matchSenderUrl: false } }), OK_PUSH);
  });
  await t.test("a payload naming no repo is a bad request", () => {
    assertVerdict(evaluate({ payload: { ref: "refs/heads/main" } }), { httpStatus: 400, body: { detail: "repo url or full name not found in payload!" }, trigger: false });
  });
  await t.test("no tracked repo configured ignores everything", () => {
    assertVerdict(evaluate({ repoUrl: "" }), { httpStatus: 200, body: { status: "ignored", event: "push" }, trigger: false });
  });
});

test("branch enforcement", async (t) => {
  const cases: Array<[string, boolean, unknown, boolean]> = [
    ["enforced, tracked branch", true, githubPush(), true],
    ["enforced, other branch", true, githubPush({ ref: "refs/heads/dev" }), false],
    ["enforced, tag", true, githubPush({ ref: "refs/tags/main" }), false],
    ["enforced, no ref", true, githubPush({ ref: undefined }), false],
    ["not enforced, other branch", false, githubPush({ ref: "refs/heads/dev" }), true],
  ];
  for (const [name, enforceBranch, payload, trigger] of cases) {
    await t.test(name, () => {
      const verdict = evaluate({ enforceBranch, payload });
      assert.equal(verdict.trigger, trigger, verdict.reason);
      assert.equal(verdict.body.status, trigger ? "ok" : "ignored");
    });
  }
});

test("body must be a JSON object", async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ["not JSON", "ref=refs/heads/main", /not valid JSON/],
    ["empty", "", /empty/],
    ["an array", "[1,2]", /JSON object/],
  ];
  for (const [name, raw, detail] of cases) {
    await t.test(name, () => {
      const verdict = evaluate({ raw });
      assert.equal(verdict.httpStatus, 400);
      assert.match(String(verdict.body.detail), detail);
      assert.equal(verdict.trigger, false);
    });
  }
  await t.test("the signature is checked before the body is read", () => {
    assert.equal(evaluate({ raw: "not json", headers: { "x-hub-signature-256": sign("other") } }).httpStatus, 401);
  });
});

test("parseWebhookParams reads OPAL's documented JSON", async (t) => {
  // Copied from OPAL's "track a git repo" tutorial, with Python's None written as null.
  const cases: Array<[string, unknown, WebhookParams]> = [
    ["GitHub", { secret_header_name: "x-hub-signature-256", secret_type: "signature", secret_parsing_regex: "sha256=(.*)", event_header_name: "X-GitHub-Event", event_request_key: null, push_event_value: "push" }, GITHUB_WEBHOOK_PARAMS],
    ["GitLab", { secret_header_name: "X-Gitlab-Token", secret_type: "token", secret_parsing_regex: "(.*)", event_header_name: "X-Gitlab-Event", push_event_value: "Push Hook" }, GITLAB_WEBHOOK_PARAMS],
    ["Azure", { secret_header_name: "x-api-key", secret_type: "token", secret_parsing_regex: "(.*)", event_header_name: null, event_request_key: "eventType", push_event_value: "git.push" }, AZURE_DEVOPS_WEBHOOK_PARAMS],
    ["Bitbucket", { secret_header_name: "x-hook-uuid", secret_type: "token", secret_parsing_regex: "(.*)", event_header_name: "x-event-key", event_request_key: null, push_event_value: "repo:push" }, BITBUCKET_WEBHOOK_PARAMS],
  ];
  for (const [name, json, expected] of cases) {
    await t.test(name, () => assert.deepEqual({ ...parseWebhookParams(json) }, { eventHeaderName: undefined, eventRequestKey: undefined, ...expected }));
  }
  await t.test("a JSON string, match_sender_url false", () => {
    const text = JSON.stringify({ secret_header_name: "x-token", secret_type: "token", secret_parsing_regex: "(.*)", event_request_key: "kind", push_event_value: "push", match_sender_url: false });
    const params = parseWebhookParams(text);
    assert.equal(params.matchSenderUrl, false);
    assert.equal(params.eventRequestKey, "kind");
  });
});

test("parseWebhookParams names the bad field", async (t) => {
  const valid = { secret_header_name: "x-token", secret_type: "token", secret_parsing_regex: "(.*)", event_header_name: "x-event", push_event_value: "push" };
  const cases: Array<[string, unknown, RegExp]> = [
    ["missing secret_header_name", { ...valid, secret_header_name: undefined }, /^secret_header_name: /],
    ["empty push_event_value", { ...valid, push_event_value: "" }, /^push_event_value: /],
    ["push_event_value not a string", { ...valid, push_event_value: 1 }, /^push_event_value: /],
    ["unknown secret_type", { ...valid, secret_type: "hmac" }, /^secret_type: .*"hmac"/],
    ["Python-only regex syntax", { ...valid, secret_parsing_regex: "sha256=(?P<sig>.*)" }, /^secret_parsing_regex: not a valid regular expression/],
    ["match_sender_url not a boolean", { ...valid, match_sender_url: "yes" }, /^match_sender_url: /],
    ["no event source", { ...valid, event_header_name: null }, /^event_header_name: .*event_request_key/],
    ["event_request_key not a string", { ...valid, event_request_key: 3 }, /^event_request_key: /],
    ["misspelt field", { ...valid, match_sender_urls: false }, /^match_sender_urls: unknown field/],
    ["not an object", ["x"], /JSON object/],
    ["not JSON text", "{secret_type: token}", /not valid JSON/],
  ];
  for (const [name, json, message] of cases) {
    await t.test(name, () => assert.throws(() => parseWebhookParams(json), { message }));
  }
});

test("webhookRoute over HTTP", async (t) => {
  const logLines: string[] = [];
  const logger = pino({ level: "debug" }, new Writable({ write: (chunk: Buffer, _encoding, done) => (logLines.push(chunk.toString()), done()) }));
  let pushes = 0;
  const router = new RestRouter().add(
    webhookRoute({ secret: SECRET, params: GITHUB_WEBHOOK_PARAMS, repoUrl: REPO, branch: "main", enforceBranch: true, maxBodyBytes: 4096, onPush: () => pushes++, logger }),
    webhookRoute({ path: "/hooks/open", secret: undefined, params: GITHUB_WEBHOOK_PARAMS, repoUrl: REPO, branch: "main", enforceBranch: false, maxBodyBytes: 4096, onPush: () => pushes++, logger }),
  );
  const server = http.createServer((request, response) => {
    if (!router.handle(request, response)) response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const post = async (path: string, body: string, headers: Record<string, string>) => {
    const response = await fetch(`${base}${path}`, { method: "POST", body, headers: { "content-type": "application/json", ...headers } });
    return { status: response.status, body: await response.json() };
  };
  const body = JSON.stringify(githubPush());

  await t.test("a signed push answers ok and pulls once", async () => {
    const before = pushes;
    assert.deepEqual(await post("/webhook", body, { "x-github-event": "push", "x-hub-signature-256": sign(body) }), { status: 200, body: OK_PUSH.body });
    assert.equal(pushes, before + 1);
  });
  await t.test("a bad signature is 401 and does not pull", async () => {
    const before = pushes;
    assert.deepEqual(await post("/webhook", body, { "x-github-event": "push", "x-hub-signature-256": sign(body, "wrong") }), { status: 401, body: { detail: "signatures didn't match!" } });
    assert.equal(pushes, before);
  });
  await t.test("a ping answers ok and does not pull", async () => {
    const before = pushes;
    assert.equal((await post("/webhook", body, { "x-github-event": "ping", "x-hub-signature-256": sign(body) })).status, 200);
    assert.equal(pushes, before);
  });
  await t.test("a body over maxBodyBytes is 413", async () => {
    const big = JSON.stringify(githubPush({ padding: "x".repeat(5000) }));
    assert.equal((await post("/webhook", big, { "x-github-event": "push", "x-hub-signature-256": sign(big) })).status, 413);
  });
  await t.test("the path option, without a secret", async () => {
    const before = pushes;
    assert.equal((await post("/hooks/open", body, { "x-github-event": "push" })).status, 200);
    assert.equal(pushes, before + 1);
  });
  await t.test("logs hold neither the secret nor a signature", () => {
    const logs = logLines.join("");
    assert.match(logs, /no webhook secret is set/);
    assert.match(logs, /signatures didn't match/);
    assert.doesNotMatch(logs, new RegExp(SECRET));
    assert.doesNotMatch(logs, new RegExp(sign(body).slice(7)));
    assert.doesNotMatch(logs, new RegExp(sign(body, "wrong").slice(7)));
  });
});
