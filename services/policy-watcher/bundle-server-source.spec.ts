import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, afterEach, before, beforeEach, describe, test } from "node:test";
import { pino } from "pino";
import type { Logger } from "../common/logger.js";
import { BundleFetchError, BundleServerSource, bundleUrl } from "./bundle-server-source.js";
import { UnsafeBundleError } from "./tar.js";

const TOKEN = "s3cr3t-bundle-token-7f2c";
const BUNDLE_PATH = "/bundles/bundle.tar.gz";

let root = "";
let bundles = 0;
before(() => {
  root = mkdtempSync(join(tmpdir(), "opal-bundle-source-spec-"));
});
after(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A real tar.gz of `files`, made by the system's tar. */
function bundle(files: Record<string, string | Uint8Array>, links: Record<string, string> = {}): Buffer {
  const dir = join(root, `bundle${++bundles}`);
  mkdirSync(dir);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  for (const [path, target] of Object.entries(links)) symlinkSync(target, join(dir, path));
  return execFileSync("tar", ["-czf", "-", "-C", dir, "."], { maxBuffer: 64 << 20 });
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function text(tree: ReadonlyMap<string, Uint8Array>): Record<string, string> {
  return Object.fromEntries([...tree].sort(([a], [b]) => a.localeCompare(b)).map(([path, bytes]) => [path, Buffer.from(bytes).toString("utf8")]));
}

/** A bundle server on a random port: Bearer token, ETag and If-None-Match, like nginx or S3. */
class BundleServer {
  tarball: Buffer | undefined;
  etag: string | undefined;
  /** Answers every request with this; "{authorization}" in the body echoes the request's header. */
  failure: { status: number; body: string } | undefined;
  readonly requests: http.IncomingHttpHeaders[] = [];
  readonly statuses: number[] = [];
  readonly sockets = new Set<Socket>();
  /** Sends 200 bodies chunked, without a content-length. */
  chunked = false;
  private readonly server = http.createServer((request, response) => {
    this.requests.push(request.headers);
    const answer = (status: number, body: string | Buffer = "", headers: Record<string, string> = {}): void => {
      this.statuses.push(status);
      response.writeHead(status, headers).end(body);
    };
    const authorization = request.headers.authorization ?? "";
    if (this.failure !== undefined) return answer(this.failure.status, this.failure.body.replace("{authorization}", authorization));
    if (authorization !== `Bearer ${TOKEN}`) return answer(401, `{"detail":"invalid credentials: ${authorization}"}`);
    if (request.url !== BUNDLE_PATH || this.tarball === undefined) return answer(404, '{"detail":"not found"}');
    if (this.etag !== undefined && request.headers["if-none-match"] === this.etag) return answer(304, "", { etag: this.etag });
    const headers = { "content-type": "application/gzip", ...(this.etag === undefined ? {} : { etag: this.etag }) };
    if (!this.chunked) return answer(200, this.tarball, { ...headers, "content-length": String(this.tarball.length) });
    this.statuses.push(200);
    response.writeHead(200, headers);
    for (let offset = 0; offset < this.tarball.length; offset += 1024) response.write(this.tarball.subarray(offset, offset + 1024));
    response.end();
  });

  constructor() {
    this.server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
  }

  serve(tarball: Buffer, etag?: string): void {
    this.tarball = tarball;
    this.etag = etag;
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return this;
  }

  /** POLICY_BUNDLE_URL: the folder; the source appends bundle.tar.gz as OPAL does. */
  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/bundles`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A logger whose JSON lines are kept, to prove what never reaches the logs. */
function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: pino<never>({ level: "trace" }, { write: (line: string) => void lines.push(line) }), lines };
}

function assertRefusedWith(pattern: RegExp, check: (error: BundleFetchError) => void = () => undefined) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof BundleFetchError, `expected BundleFetchError, got ${String(error)}`);
    assert.match(error.message, pattern);
    assert.ok(!error.message.includes(TOKEN), `the token leaked into: ${error.message}`);
    check(error);
    return true;
  };
}

describe("bundleUrl", () => {
  const cases: Array<[string, string]> = [
    ["http://bundles.example/opal", "http://bundles.example/opal/bundle.tar.gz"],
    ["http://bundles.example/opal/", "http://bundles.example/opal/bundle.tar.gz"],
    ["https://bundles.example", "https://bundles.example/bundle.tar.gz"],
    ["https://bundles.example/v2/policies.tar.gz", "https://bundles.example/v2/policies.tar.gz"],
    ["https://bucket.example/opal?X-Amz-Signature=abc", "https://bucket.example/opal/bundle.tar.gz?X-Amz-Signature=abc"],
  ];
  for (const [input, expected] of cases) {
    test(`${input} fetches ${expected}`, () => assert.equal(bundleUrl(input).toString(), expected));
  }
  test("refuses URLs that are not http(s), malformed, or hold credentials, without echoing the password", () => {
    assert.throws(() => bundleUrl("ftp://bundles.example/opal"), { name: "TypeError", message: /http or https/ });
    assert.throws(() => bundleUrl("not a url"), { name: "TypeError", message: /not a valid URL/ });
    assert.throws(
      () => bundleUrl("https://user:hunter2@bundles.example/opal"),
      (error: unknown) => error instanceof TypeError && /credentials/.test(error.message) && !error.message.includes("hunter2"),
    );
  });
});

describe("BundleServerSource", () => {
  const v1 = { "rbac/policy.rego": "package rbac\n\ndefault allow := false\n", "data.json": '{"roles":["admin"]}', "old.rego": "package old\n" };
  const v2 = { "rbac/policy.rego": "package rbac\n\ndefault allow := true\n", "data.json": '{"roles":["admin"]}', "new/added.rego": "package added\n" };
  let server: BundleServer;
  let source: BundleServerSource;
  let logLines: string[];
  const signal = new AbortController().signal;

  beforeEach(async () => {
    server = await new BundleServer().start();
    const { logger, lines } = capturingLogger();
    logLines = lines;
    source = new BundleServerSource({ url: server.url, token: TOKEN, logger, timeoutMs: 5_000 });
  });
  afterEach(async () => {
    await source.stop();
    await server.stop();
  });

  test("describes itself by URL, without the token", () => {
    assert.equal(source.description, `bundle ${server.url}`);
  });

  test("start validates the URL without fetching", async () => {
    await source.start(signal);
    assert.equal(server.requests.length, 0);
    const bad = new BundleServerSource({ url: "ftp://bundles.example/opal", logger: pino({ level: "silent" }) });
    await assert.rejects(bad.start(signal), { name: "TypeError", message: /http or https/ });
  });

  test("the first check downloads and extracts with the Bearer token; the next gets a 304 and extracts nothing", async () => {
    const tarball = bundle(v1);
    server.serve(tarball, '"v1"');

    const first = await source.check(signal);
    assert.equal(first, sha256(tarball));
    assert.equal(source.extractions, 1);
    assert.equal(server.requests[0]?.authorization, `Bearer ${TOKEN}`);
    assert.equal(server.requests[0]?.["if-none-match"], undefined);
    assert.deepEqual(text(await source.tree(first, signal)), v1);

    const second = await source.check(signal);
    assert.equal(second, first);
    assert.equal(server.requests[1]?.["if-none-match"], '"v1"');
    assert.deepEqual(server.statuses, [200, 304]);
    assert.equal(source.extractions, 1);
  });

  test("a changed bundle (new ETag) is a new version, and changes() lists changed and deleted files", async () => {
    const first = bundle(v1);
    const second = bundle(v2);
    server.serve(first, '"v1"');
    const base = await source.check(signal);
    server.serve(second, '"v2"');

    const next = await source.check(signal);
    assert.notEqual(next, base);
    assert.equal(next, sha256(second));
    assert.deepEqual(server.statuses, [200, 200]);
    assert.equal(server.requests[1]?.["if-none-match"], '"v1"');
    assert.equal(source.extractions, 2);
    assert.deepEqual(await source.changes(base, next, signal), { changed: ["new/added.rego", "rbac/policy.rego"], deleted: ["old.rego"] });
    assert.deepEqual(await source.changes(next, base, signal), { changed: ["old.rego", "rbac/policy.rego"], deleted: ["new/added.rego"] });
    assert.deepEqual(await source.changes(next, next, signal), { changed: [], deleted: [] });
    assert.equal(await source.changes("0".repeat(64), next, signal), undefined);
    assert.deepEqual(text(await source.tree(base, signal)), v1);
    assert.deepEqual(text(await source.tree(next, signal)), v2);
    await assert.rejects(source.tree("0".repeat(64), signal), /is not one of the 16 latest versions/);
    await assert.rejects(source.changes(base, "0".repeat(64), signal), /is not one of the 16 latest versions/);
  });

  test("without ETags, the same tarball is the same version and is not extracted again", async () => {
    const tarball = bundle(v1);
    server.serve(tarball);
    const first = await source.check(signal);
    const second = await source.check(signal);
    assert.equal(second, first);
    assert.deepEqual(server.statuses, [200, 200]);
    assert.equal(server.requests[1]?.["if-none-match"], undefined);
    assert.equal(source.extractions, 1);

    server.serve(bundle(v2));
    const third = await source.check(signal);
    assert.notEqual(third, first);
    assert.equal(source.extractions, 2);
    assert.deepEqual(await source.changes(first, third, signal), { changed: ["new/added.rego", "rbac/policy.rego"], deleted: ["old.rego"] });
  });

  test("keeps the 16 latest versions for tree() and changes()", async () => {
    const hashes: string[] = [];
    for (let version = 0; version < 17; version++) {
      server.serve(bundle({ "policy.rego": `package v${version}\n` }), `"${version}"`);
      hashes.push(await source.check(signal));
    }
    assert.equal(new Set(hashes).size, 17);
    const [oldest, second] = hashes;
    const latest = hashes.at(-1) ?? "";
    await assert.rejects(source.tree(oldest ?? "", signal), /not one of the 16 latest/);
    assert.equal(await source.changes(oldest ?? "", latest, signal), undefined);
    assert.deepEqual(await source.changes(second ?? "", latest, signal), { changed: ["policy.rego"], deleted: [] });
  });

  test("a 401 throws with the status and URL; the token was sent but is not in the message", async () => {
    const wrong = new BundleServerSource({ url: server.url, token: "wrong-token-9d1e", logger: pino({ level: "silent" }) });
    try {
      await assert.rejects(
        wrong.check(signal),
        (error: unknown) =>
          assertRefusedWith(/bundle server http:\/\/127\.0\.0\.1:\d+\/bundles\/bundle\.tar\.gz answered 401: .*\[redacted\]/, (failure) => {
            assert.equal(failure.status, 401);
            assert.ok(!failure.message.includes("wrong-token-9d1e"));
          })(error),
      );
      assert.equal(server.requests[0]?.authorization, "Bearer wrong-token-9d1e");
    } finally {
      await wrong.stop();
    }
  });

  test("a 500 throws with the status and URL; a server echoing the token does not leak it into messages or logs", async () => {
    server.serve(bundle(v1), '"v1"');
    const hash = await source.check(signal);
    server.failure = { status: 500, body: "upstream exploded while handling {authorization}" };

    await assert.rejects(
      source.check(signal),
      assertRefusedWith(/\/bundles\/bundle\.tar\.gz answered 500: upstream exploded while handling Bearer \[redacted\]/, (failure) => assert.equal(failure.status, 500)),
    );
    assert.equal(server.requests[1]?.authorization, `Bearer ${TOKEN}`);
    assert.ok(logLines.length > 0, "the source logged its new version");
    assert.ok(logLines.every((line) => !line.includes(TOKEN)));

    // The failure leaves the current version in place.
    server.failure = undefined;
    assert.equal(await source.check(signal), hash);
    assert.equal(server.statuses.at(-1), 304);
  });

  test("a network error throws with the URL and no token", async () => {
    const url = server.url;
    await server.stop();
    const offline = new BundleServerSource({ url, token: TOKEN, logger: pino({ level: "silent" }) });
    try {
      await assert.rejects(offline.check(signal), assertRefusedWith(/could not fetch bundle http:\/\/127\.0\.0\.1:\d+\/bundles\/bundle\.tar\.gz: /, (failure) => assert.equal(failure.status, undefined)));
    } finally {
      await offline.stop();
      server = await new BundleServer().start();
    }
  });

  test("an aborted check rejects with the signal's reason", async () => {
    server.serve(bundle(v1), '"v1"');
    const reason = new Error("shutting down");
    await assert.rejects(source.check(AbortSignal.abort(reason)), (error: unknown) => error === reason);
    assert.equal(source.extractions, 0);
  });

  test("an unsafe or empty bundle is refused and the current version stays", async () => {
    server.serve(bundle(v1), '"v1"');
    const hash = await source.check(signal);

    server.serve(bundle({ "policy.rego": "package p\n" }, { "escape.rego": "/etc/passwd" }), '"v2"');
    await assert.rejects(source.check(signal), { name: "UnsafeBundleError", message: /"\.\/escape\.rego" is a symbolic link/ });
    server.serve(bundle({}), '"v3"');
    await assert.rejects(source.check(signal), { name: "UnsafeBundleError", message: /holds no files/ });

    server.serve(bundle(v2), '"v4"');
    const next = await source.check(signal);
    assert.equal(server.requests.at(-1)?.["if-none-match"], '"v1"', "the ETag did not move past the refused bundles");
    assert.deepEqual(await source.changes(hash, next, signal), { changed: ["new/added.rego", "rbac/policy.rego"], deleted: ["old.rego"] });
  });

  for (const chunked of [false, true]) {
    test(`a download larger than maxBytes is refused (${chunked ? "chunked" : "content-length"})`, async () => {
      // Random bytes do not compress, so the tarball is larger than the file it holds.
      const big = bundle({ "random.bin": randomBytes(30_000) });
      assert.ok(big.length > 4_096, "the bundle spans several chunks");
      server.serve(big, '"big"');
      server.chunked = chunked;
      const limited = (maxBytes: number): BundleServerSource => new BundleServerSource({ url: server.url, token: TOKEN, maxBytes, maxFiles: 10, logger: pino({ level: "silent" }) });
      const small = limited(big.length - 1);
      const exact = limited(big.length);
      try {
        await assert.rejects(small.check(signal), (error: unknown) => error instanceof UnsafeBundleError && new RegExp(`larger than ${big.length - 1} bytes`).test(error.message));
        assert.equal(small.extractions, 0);
        assert.equal(await exact.check(signal), sha256(big));
      } finally {
        await small.stop();
        await exact.stop();
      }
    });
  }

  test("concurrent checks run one after the other", async () => {
    server.serve(bundle(v1), '"v1"');
    const [first, second] = await Promise.all([source.check(signal), source.check(signal)]);
    assert.equal(first, second);
    assert.deepEqual(server.statuses, [200, 304]);
    assert.equal(source.extractions, 1);
  });

  test("stop closes the keep-alive connection, is idempotent, and a later check reconnects", { timeout: 3_000 }, async () => {
    server.serve(bundle(v1), '"v1"');
    const hash = await source.check(signal);
    const open = [...server.sockets];
    assert.equal(open.length, 1, "the pool kept its connection open");
    // The server's keep-alive hint is 5 s, past this test's timeout: only stop() closes it in time.
    await source.stop();
    await Promise.all(open.filter((socket) => !socket.destroyed).map((socket) => once(socket, "close")));
    assert.equal(server.sockets.size, 0);
    await source.stop();
    assert.equal(await source.check(signal), hash);
  });
});
