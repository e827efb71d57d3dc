/**
 * OPAL's API bundle source: polls a bundle server for `<POLICY_BUNDLE_URL>/bundle.tar.gz`
 * with a Bearer token and `If-None-Match`, and serves the tarball's files as versions.
 * A version is the sha256 of the tarball, so the same bundle is the same version whether
 * or not the server sends ETags; the ETag only spares downloads.
 */
import { createHash } from "node:crypto";
import { type Dispatcher, Pool } from "undici";
import { redactUrl } from "../common/config/env-reader.js";
import type { Logger } from "../common/logger.js";
import { BundleSignatureError, type BundleVerifier, SIGNATURES_FILE, verifyBundle } from "../common/bundle-signing/bundle-signature.js";
import { extractTarGz, UnsafeBundleError } from "./tar.js";
import type { PolicySource, PolicyTree, TreeChanges } from "./types.js";

export interface BundleServerSourceOptions {
  /** OPAL_POLICY_BUNDLE_URL: the folder holding bundle.tar.gz, or a URL ending in .tar.gz. */
  url: string;
  /** OPAL_POLICY_BUNDLE_SERVER_TOKEN, sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Upper bound of the download and of the extracted files, each; default 64 MiB. */
  maxBytes?: number;
  /** Upper bound of the bundle's entries; default 10,000. */
  maxFiles?: number;
  /** Timeout for the response headers and between body chunks; default 30 s. */
  timeoutMs?: number;
  logger: Logger;
  /** OPAL_MESH_POLICY_VERIFICATION_KEY: every bundle must carry a good OPA signature (.signatures.json). */
  verifier?: BundleVerifier;
}

/** The bundle server could not be reached or answered an error; `status` is unset for network failures. */
export class BundleFetchError extends Error {
  override readonly name = "BundleFetchError";
  constructor(
    message: string,
    readonly status: number | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const DEFAULT_MAX_BYTES = 64 << 20;
const DEFAULT_MAX_FILES = 10_000;
const DEFAULT_TIMEOUT_MS = 30_000;
type ResponseBody = Dispatcher.ResponseData["body"];

/** Versions kept for tree() and changes(): enough for clients a few versions behind. */
const RETAINED_VERSIONS = 16;

/** The tarball's URL: OPAL appends "/bundle.tar.gz" to POLICY_BUNDLE_URL; a URL already naming a .tar.gz is kept. */
export function bundleUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (error) {
    throw new TypeError(`bundle server URL is not a valid URL: ${JSON.stringify(redactUrl(url))}`, { cause: error });
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new TypeError(`bundle server URL must be http or https, got ${JSON.stringify(redactUrl(url))}`);
  }
  if (parsed.username !== "" || parsed.password !== "") {
    throw new TypeError(`bundle server URL must not hold credentials (use the bundle server token): ${JSON.stringify(redactUrl(url))}`);
  }
  if (!parsed.pathname.endsWith(".tar.gz")) parsed.pathname = `${parsed.pathname.replace(/\/+$/, "")}/bundle.tar.gz`;
  return parsed;
}

/** Added or modified (by content) and deleted paths from `base` to `next`, sorted. */
export function diffTrees(base: PolicyTree, next: PolicyTree): TreeChanges {
  const changed: string[] = [];
  for (const [path, content] of next) {
    const before = base.get(path);
    if (before === undefined || !Buffer.from(before.buffer, before.byteOffset, before.byteLength).equals(content)) changed.push(path);
  }
  const deleted = [...base.keys()].filter((path) => !next.has(path));
  return { changed: changed.sort(), deleted: deleted.sort() };
}

export class BundleServerSource implements PolicySource {
  readonly description: string;
  /** Tarballs extracted so far: a 304 or an unchanged tarball costs none. */
  extractions = 0;
  private readonly url: string;
  private readonly maxBytes: number;
  private readonly maxFiles: number;
  private readonly timeoutMs: number;
  private readonly logger: Logger;
  private readonly token: string | undefined;
  private readonly verifier: BundleVerifier | undefined;
  /** Oldest first; the current version is always the last. */
  private readonly versions = new Map<string, PolicyTree>();
  private current: { hash: string; etag: string | undefined } | undefined;
  private pool: Pool | undefined;
  /** Checks run one at a time, so the ETag and the current version move together. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: BundleServerSourceOptions) {
    this.url = options.url;
    this.token = options.token === "" ? undefined : options.token;
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    this.maxFiles = options.maxFiles ?? DEFAULT_MAX_FILES;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.logger = options.logger;
    this.verifier = options.verifier;
    this.description = `bundle ${redactUrl(options.url)}`;
  }

  async start(_signal: AbortSignal): Promise<void> {
    bundleUrl(this.url);
  }

  check(signal: AbortSignal): Promise<string> {
    const run = this.queue.then(() => this.poll(signal));
    // The queue only orders checks: this check's failure goes to its caller (run), not to the next check.
    this.queue = run.catch(() => undefined);
    return run;
  }

  async tree(hash: string, _signal: AbortSignal): Promise<PolicyTree> {
    const tree = this.versions.get(hash);
    if (tree === undefined) throw new Error(`bundle version ${hash} is not one of the ${RETAINED_VERSIONS} latest versions of ${this.description}`);
    return tree;
  }

  async changes(base: string, hash: string, signal: AbortSignal): Promise<TreeChanges | undefined> {
    const next = await this.tree(hash, signal);
    const before = this.versions.get(base);
    return before === undefined ? undefined : diffTrees(before, next);
  }

  async stop(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.close();
  }

  private async poll(signal: AbortSignal): Promise<string> {
    const url = bundleUrl(this.url);
    const shown = redactUrl(url.toString());
    this.pool ??= new Pool(url.origin, { connections: 1, keepAliveTimeout: 30_000 });
    const headers: Record<string, string> = { accept: "application/gzip, application/octet-stream, */*" };
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    if (this.current?.etag !== undefined) headers["if-none-match"] = this.current.etag;

    let response;
    try {
      response = await this.pool.request({
        path: `${url.pathname}${url.search}`,
        method: "GET",
        headers,
        signal,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
    } catch (error) {
      if (signal.aborted) throw error;
      throw new BundleFetchError(`could not fetch bundle ${shown}: ${this.scrub((error as Error).message)}`, undefined, { cause: error });
    }

    if (response.statusCode === 304) {
      await response.body.dump();
      if (this.current === undefined) throw new BundleFetchError(`bundle server ${shown} answered 304 to a request without If-None-Match`, 304);
      this.logger.debug({ url: shown, hash: this.current.hash }, "policy bundle not modified");
      return this.current.hash;
    }
    if (response.statusCode < 200 || response.statusCode >= 300) {
      const excerpt = await this.excerpt(response.body);
      throw new BundleFetchError(`bundle server ${shown} answered ${response.statusCode}${excerpt === "" ? "" : `: ${excerpt}`}`, response.statusCode);
    }

    const tarball = await this.download(response.body, response.headers["content-length"], shown, signal);
    const hash = createHash("sha256").update(tarball).digest("hex");
    const etag = typeof response.headers.etag === "string" ? response.headers.etag : undefined;
    let tree = this.versions.get(hash);
    if (tree === undefined) {
      this.extractions++;
      tree = extractTarGz(tarball, { maxBytes: this.maxBytes, maxFiles: this.maxFiles });
      // OPAL refuses an empty bundle too: serving it would delete every policy.
      if (tree.size === 0) throw new UnsafeBundleError(`bundle ${shown} holds no files`);
      // Before it is retained: a refused bundle never becomes a version, the last good one stays current.
      this.checkSignature(tree, shown);
      this.logger.info({ url: shown, hash, bytes: tarball.byteLength, files: tree.size }, "new policy bundle");
    }
    this.retain(hash, tree);
    this.current = { hash, etag };
    return hash;
  }

  /** Throws BundleSignatureError (naming the bundle, never the key) when a signature is required and not good. */
  private checkSignature(tree: PolicyTree, shown: string): void {
    const signatures = tree.get(SIGNATURES_FILE);
    let refusal: BundleSignatureError | undefined;
    if (this.verifier === undefined) {
      // As `opa build -b` does: a bundle its producer signed is not loaded unverified.
      if (signatures !== undefined) refusal = new BundleSignatureError(`bundle ${shown} is signed (${SIGNATURES_FILE}) but OPAL_MESH_POLICY_VERIFICATION_KEY is not set, so its signature cannot be checked`);
    } else if (signatures === undefined) {
      refusal = new BundleSignatureError(`bundle ${shown} is not signed (no ${SIGNATURES_FILE}) and OPAL_MESH_POLICY_VERIFICATION_KEY requires a signature`);
    } else {
      try {
        verifyBundle(tree, Buffer.from(signatures.buffer, signatures.byteOffset, signatures.byteLength).toString("utf8"), this.verifier);
      } catch (error) {
        refusal = new BundleSignatureError(`bundle ${shown} has a bad signature: ${(error as Error).message}`, { cause: error });
      }
    }
    if (refusal === undefined) return;
    // Polls that fail are only in health; a refused bundle is worth a line in the log too.
    this.logger.error({ url: shown, err: refusal.message, keeping: this.current?.hash }, "policy bundle refused: its signature is missing or bad; the last good version stays");
    throw refusal;
  }

  private async download(body: ResponseBody, contentLength: unknown, shown: string, signal: AbortSignal): Promise<Buffer> {
    const tooLarge = (): UnsafeBundleError => new UnsafeBundleError(`bundle ${shown} is larger than ${this.maxBytes} bytes`);
    if (typeof contentLength === "string" && Number(contentLength) > this.maxBytes) {
      // Destroying emits an abort error that nobody else is listening for.
      body.on("error", () => undefined).destroy();
      throw tooLarge();
    }
    const chunks: Uint8Array[] = [];
    let length = 0;
    try {
      for await (const chunk of body as AsyncIterable<Uint8Array>) {
        length += chunk.byteLength;
        // Leaving the loop destroys the body, which closes the connection mid-transfer.
        if (length > this.maxBytes) throw tooLarge();
        chunks.push(chunk);
      }
    } catch (error) {
      if (signal.aborted || error instanceof UnsafeBundleError) throw error;
      throw new BundleFetchError(`could not download bundle ${shown}: ${this.scrub((error as Error).message)}`, undefined, { cause: error });
    }
    return Buffer.concat(chunks, length);
  }

  /** The start of an error response, for the message; bundle servers may echo the request. */
  private async excerpt(body: ResponseBody): Promise<string> {
    const chunks: Uint8Array[] = [];
    let length = 0;
    try {
      for await (const chunk of body as AsyncIterable<Uint8Array>) {
        chunks.push(chunk);
        length += chunk.byteLength;
        if (length >= 200) break;
      }
    } catch {
      // The status is the news; a body cut short adds nothing.
    }
    // Draining frees the connection; a body that fails to drain is dropped with it, and the status already says what went wrong.
    await body.dump().catch(() => undefined);
    return this.scrub(Buffer.concat(chunks).subarray(0, 200).toString("utf8").trim());
  }

  private scrub(text: string): string {
    return this.token === undefined ? text : text.replaceAll(this.token, "[redacted]");
  }

  private retain(hash: string, tree: PolicyTree): void {
    this.versions.delete(hash);
    this.versions.set(hash, tree);
    while (this.versions.size > RETAINED_VERSIONS) {
      const oldest = this.versions.keys().next().value;
      if (oldest === undefined) break;
      this.versions.delete(oldest);
    }
  }
}
