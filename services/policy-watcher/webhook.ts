/**
 * OPAL's git webhook (`POST /webhook`): authenticates the sender (a token, or an HMAC of the
 * body), checks that the push is for the tracked repo and branch, and asks the watcher to
 * pull. Follows opal_server/policy/webhook/{api,deps}.py; where it differs, a comment says why.
 * Longer than a file here should be: it mirrors OPAL's two modules side by side (the
 * per-provider shapes and the checks), which keeps the comparison with OPAL one read.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { readBody, sendJson } from "../common/http/json-io.js";
import type { RestRoute } from "../common/http/rest-router.js";
import type { Logger } from "../common/logger.js";
import { ValidationError } from "../common/validation-error.js";

/** OPAL_POLICY_REPO_WEBHOOK_PARAMS: how one git service shapes its webhooks. */
export interface WebhookParams {
  /** The header holding the token or the signature. */
  readonly secretHeaderName: string;
  readonly secretType: "token" | "signature";
  /** Cuts the secret out of the header value: its first group, or the whole match. */
  readonly secretParsingRegex: string;
  /** The event name is read from this header when set, else from this top-level body key. */
  readonly eventHeaderName?: string | undefined;
  readonly eventRequestKey?: string | undefined;
  readonly pushEventValue: string;
  /** Drop webhooks whose payload names another repo. */
  readonly matchSenderUrl: boolean;
}

// Presets as OPAL's "track a git repo" tutorial documents them.
export const GITHUB_WEBHOOK_PARAMS: WebhookParams = Object.freeze({
  secretHeaderName: "x-hub-signature-256",
  secretType: "signature",
  secretParsingRegex: "sha256=(.*)",
  eventHeaderName: "X-GitHub-Event",
  pushEventValue: "push",
  matchSenderUrl: true,
});
const WHOLE_HEADER_TOKEN = { secretType: "token", secretParsingRegex: "(.*)", matchSenderUrl: true } as const;
export const GITLAB_WEBHOOK_PARAMS: WebhookParams = Object.freeze({
  ...WHOLE_HEADER_TOKEN,
  secretHeaderName: "X-Gitlab-Token",
  eventHeaderName: "X-Gitlab-Event",
  pushEventValue: "Push Hook",
});
export const AZURE_DEVOPS_WEBHOOK_PARAMS: WebhookParams = Object.freeze({
  ...WHOLE_HEADER_TOKEN,
  secretHeaderName: "x-api-key",
  eventRequestKey: "eventType",
  pushEventValue: "git.push",
});
export const BITBUCKET_WEBHOOK_PARAMS: WebhookParams = Object.freeze({
  ...WHOLE_HEADER_TOKEN,
  secretHeaderName: "x-hook-uuid",
  eventHeaderName: "x-event-key",
  pushEventValue: "repo:push",
});

const PARAM_FIELDS = [
  "secret_header_name",
  "secret_type",
  "secret_parsing_regex",
  "event_header_name",
  "event_request_key",
  "push_event_value",
  "match_sender_url",
];

/** Parses OPAL's JSON form (snake_case; `null` as OPAL's docs write `None`). Throws ValidationError. */
export function parseWebhookParams(json: unknown): WebhookParams {
  const value = typeof json === "string" ? parseJsonText(json) : json;
  if (!isRecord(value)) throw new ValidationError("", "webhook params must be a JSON object");
  // Pydantic would drop unknown keys; a misspelt optional key would then silently change behaviour.
  const unknown = Object.keys(value).find((key) => !PARAM_FIELDS.includes(key));
  if (unknown !== undefined) throw new ValidationError(unknown, "unknown field");
  const secretType = value.secret_type;
  if (secretType !== "token" && secretType !== "signature") {
    throw new ValidationError("secret_type", `expected "token" or "signature", got ${JSON.stringify(secretType)}`);
  }
  const matchSenderUrl = value.match_sender_url ?? true;
  if (typeof matchSenderUrl !== "boolean") throw new ValidationError("match_sender_url", "expected true or false");
  const params: WebhookParams = {
    secretHeaderName: requiredString(value, "secret_header_name"),
    secretType,
    secretParsingRegex: requiredString(value, "secret_parsing_regex"),
    eventHeaderName: optionalString(value, "event_header_name"),
    eventRequestKey: optionalString(value, "event_request_key"),
    pushEventValue: requiredString(value, "push_event_value"),
    matchSenderUrl,
  };
  // OPAL only logs this at request time and then fails on an unset variable; refuse at start-up.
  if (params.eventHeaderName === undefined && params.eventRequestKey === undefined) {
    throw new ValidationError("event_header_name", "set event_header_name or event_request_key");
  }
  try {
    new RegExp(params.secretParsingRegex);
  } catch (error) {
    throw new ValidationError("secret_parsing_regex", `not a valid regular expression: ${(error as Error).message}`);
  }
  return params;
}

export interface WebhookInput {
  headers: Record<string, string | string[] | undefined>;
  /** The raw body: signatures are computed over these exact bytes. */
  body: Buffer;
  /** OPAL_POLICY_REPO_WEBHOOK_SECRET; undefined accepts any sender, as OPAL does. */
  secret: string | undefined;
  params: WebhookParams;
  repoUrl: string;
  branch: string;
  enforceBranch: boolean;
}

export interface WebhookVerdict {
  httpStatus: number;
  body: Record<string, unknown>;
  /** True when the tracked repo should be pulled now. */
  trigger: boolean;
  /** Why, for the log; never holds the secret. */
  reason: string;
}

export function evaluateWebhook(input: WebhookInput): WebhookVerdict {
  const { params } = input;
  const authFailure = authenticate(input);
  if (authFailure !== undefined) return refuse(401, authFailure);

  const payload = parsePayload(input.body);
  if (typeof payload === "string") return refuse(400, payload);
  const sender = describeSender(payload);
  if (sender.urls.length === 0 && sender.names.length === 0) return refuse(400, "repo url or full name not found in payload!");

  const event = eventName(input.headers, payload, params);
  const ignored = (reason: string): WebhookVerdict => ({ httpStatus: 200, body: { status: "ignored", event }, trigger: false, reason });

  if (input.enforceBranch && !sender.branches.includes(input.branch)) {
    return ignored(`webhook is for branch ${sender.branches.join(", ") || "(none)"}, not the tracked ${input.branch}`);
  }
  if (input.repoUrl === "" || (params.matchSenderUrl && !isTrackedRepo(input.repoUrl, sender))) {
    const named = [...sender.urls.map(stripCredentials), ...sender.names].join(", ");
    return ignored(`webhook names ${named}, not the tracked repo`);
  }
  const trigger = event === params.pushEventValue;
  return {
    httpStatus: 200,
    body: { status: "ok", event, repo_url: stripCredentials(input.repoUrl) },
    trigger,
    reason: trigger ? "push to the tracked repo" : `event ${event} is not ${params.pushEventValue}`,
  };
}

export interface WebhookRouteOptions extends Omit<WebhookInput, "headers" | "body"> {
  /** Defaults to "/webhook". */
  path?: string;
  maxBodyBytes: number;
  /** Called once per accepted push; the watcher pulls on it. */
  onPush: () => void;
  logger: Logger;
}

export function webhookRoute(options: WebhookRouteOptions): RestRoute {
  const { logger, onPush, maxBodyBytes, path, ...settings } = options;
  if (settings.secret === undefined) logger.warn("no webhook secret is set: POST /webhook accepts requests from anyone");
  return {
    method: "POST",
    path: path ?? "/webhook",
    // Verified by the webhook secret (signature or token), as OPAL does.
    auth: "self",
    async handle(request, response) {
      const body = await readBody(request, maxBodyBytes);
      const verdict = evaluateWebhook({ ...settings, headers: request.headers, body });
      // Only the verdict is logged: headers carry the secret or signature.
      const fields = { status: verdict.httpStatus, event: verdict.body.event, reason: verdict.reason };
      // As OPAL: refused and ignored webhooks are warnings; a ping on the tracked repo is not.
      const level = verdict.httpStatus !== 200 || verdict.body.status === "ignored" ? "warn" : "info";
      logger[level](fields, verdict.trigger ? "webhook: pulling the policy repo" : "webhook: not pulling");
      if (verdict.trigger) onPush();
      sendJson(response, verdict.httpStatus, verdict.body);
    },
  };
}

// --- authentication ---

/** Returns why the sender is refused (OPAL's wording), or undefined when it is accepted. */
function authenticate({ headers, body, secret, params }: WebhookInput): string | undefined {
  if (secret === undefined) return undefined;
  const provided = parseSecret(params.secretParsingRegex, header(headers, params.secretHeaderName) ?? "");
  if (provided === "") return "No secret was provided!";
  if (params.secretType === "signature") {
    const expected = createHmac("sha256", secret).update(body).digest("hex");
    return secretsEqual(provided, expected) ? undefined : "signatures didn't match!";
  }
  return secretsEqual(provided, secret) ? undefined : "secret-tokens didn't match!";
}

/** Like Python's re.findall(...)[0]: the first group when the regex has groups, else the match. */
function parseSecret(regex: string, value: string): string {
  const match = new RegExp(regex).exec(value);
  if (match === null) return "";
  return match.length > 1 ? (match[1] ?? "") : match[0];
}

/** Constant time, and hashing first keeps a wrong length from showing in the timing. */
function secretsEqual(provided: string, expected: string): boolean {
  const digest = (text: string): Buffer => createHash("sha256").update(text, "utf8").digest();
  return timingSafeEqual(digest(provided), digest(expected));
}

function header(headers: WebhookInput["headers"], name: string): string | undefined {
  const wanted = name.toLowerCase();
  const value = Object.entries(headers).find(([key]) => key.toLowerCase() === wanted)?.[1];
  // Node joins repeated custom headers into one string; an array only comes from callers.
  return Array.isArray(value) ? value[0] : value;
}

// --- payload ---

interface Sender {
  urls: string[];
  /** "org/repo" names, used when the payload has no URL (Bitbucket). */
  names: string[];
  branches: string[];
}

function parsePayload(body: Buffer): Record<string, unknown> | string {
  if (body.length === 0) return "the request body is empty; expected JSON";
  let payload: unknown;
  try {
    payload = JSON.parse(body.toString("utf8"));
  } catch (error) {
    return `the request body is not valid JSON: ${(error as Error).message}`;
  }
  return isRecord(payload) ? payload : "the request body must be a JSON object";
}

function describeSender(payload: Record<string, unknown>): Sender {
  const repository = field(payload, "repository"); // GitHub, GitLab, Bitbucket
  const project = field(payload, "project"); // GitLab
  const resource = field(payload, "resource"); // Azure DevOps
  const urls = [
    ...strings(repository, ["git_url", "ssh_url", "clone_url", "url", "html_url", "git_http_url", "git_ssh_url"]),
    ...strings(project, ["git_http_url", "git_ssh_url", "web_url"]),
    ...strings(field(resource, "repository"), ["remoteUrl"]),
  ];
  const names = [...strings(repository, ["full_name"]), ...strings(project, ["path_with_namespace"])];
  // OPAL reads Azure's refUpdates at the top level, where Azure never puts it.
  const refUpdates = field(resource, "refUpdates");
  const refs = [payload.ref, ...(Array.isArray(refUpdates) ? refUpdates.map((update) => field(update, "name")) : [])];
  const branches = refs.filter((ref) => typeof ref === "string").map((ref) => ref.replace(/^refs\/heads\//, ""));
  return { urls: [...new Set(urls)], names: [...new Set(names)], branches };
}

function eventName(headers: WebhookInput["headers"], payload: Record<string, unknown>, params: WebhookParams): string {
  if (params.eventHeaderName !== undefined) return header(headers, params.eventHeaderName) ?? "ping";
  const value = params.eventRequestKey === undefined ? undefined : payload[params.eventRequestKey];
  return typeof value === "string" ? value : "ping";
}

// --- repo identity ---

/**
 * OPAL compares its configured URL verbatim with the payload's URLs, so an ssh-configured
 * repo never matches GitHub's https URLs. Comparing host and path makes every form agree.
 * Names are only a fallback, as in OPAL: "org/repo" alone does not say which host.
 */
function isTrackedRepo(repoUrl: string, sender: Sender): boolean {
  const tracked = repoKey(repoUrl);
  if (sender.urls.length > 0) return sender.urls.some((url) => repoKey(url) === tracked);
  const trackedPath = tracked.slice(tracked.indexOf("/") + 1);
  return sender.names.some((name) => normalizePath(name).toLowerCase() === trackedPath);
}

// scp-like ssh: [user@]host:path, but not scheme://...
const SCP_LIKE = /^(?:[^@/]+@)?([^/:]+):(?!\/\/)(.*)$/;

/** "host/path", lower case, without credentials, port, scheme or ".git". */
function repoKey(url: string): string {
  const trimmed = url.trim();
  let host = "";
  let path = trimmed;
  const scp = SCP_LIKE.exec(trimmed);
  if (scp !== null) {
    host = scp[1] ?? "";
    path = scp[2] ?? "";
  } else if (URL.canParse(trimmed)) {
    const parsed = new URL(trimmed);
    host = parsed.hostname;
    path = parsed.pathname;
  }
  path = normalizePath(path);
  // Azure DevOps spells one repo two ways: ssh.dev.azure.com:v3/org/project/repo and
  // dev.azure.com/org/project/_git/repo.
  const azure = /^v3\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(path);
  if (host.toLowerCase() === "ssh.dev.azure.com" && azure !== null) {
    host = "dev.azure.com";
    path = `${azure[1]}/${azure[2]}/_git/${azure[3]}`;
  }
  // Hosts are case-insensitive; GitHub, GitLab and Bitbucket paths are too.
  return `${host}/${path}`.toLowerCase();
}

function normalizePath(path: string): string {
  let decoded = path;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    // Keep a path with a stray "%" as written.
  }
  return decoded.replace(/\/+$/, "").replace(/\.git$/i, "").replace(/^\/+|\/+$/g, "");
}

/** OPAL echoes POLICY_REPO_URL as is, which can leak a token; drop the userinfo of http(s) URLs. */
function stripCredentials(url: string): string {
  if (!URL.canParse(url)) return url;
  const parsed = new URL(url);
  if (parsed.password === "" && (parsed.username === "" || !parsed.protocol.startsWith("http"))) return url;
  if (parsed.protocol.startsWith("http")) parsed.username = "";
  parsed.password = "";
  return parsed.toString();
}

// --- small JSON helpers ---

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function field(value: unknown, key: string): unknown {
  return isRecord(value) ? value[key] : undefined;
}

function strings(value: unknown, keys: string[]): string[] {
  return keys.map((key) => field(value, key)).filter((item): item is string => typeof item === "string" && item !== "");
}

function parseJsonText(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new ValidationError("", `webhook params are not valid JSON: ${(error as Error).message}`);
  }
}

function requiredString(value: Record<string, unknown>, key: string): string {
  const item = value[key];
  if (typeof item !== "string" || item === "") throw new ValidationError(key, "required, a non-empty string");
  return item;
}

function optionalString(value: Record<string, unknown>, key: string): string | undefined {
  const item = value[key];
  if (item === undefined || item === null) return undefined;
  if (typeof item !== "string" || item === "") throw new ValidationError(key, "expected a non-empty string or null");
  return item;
}

function refuse(httpStatus: number, detail: string): WebhookVerdict {
  return { httpStatus, body: { detail }, trigger: false, reason: detail };
}
