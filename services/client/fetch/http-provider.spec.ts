import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { silentLogger } from "../../common/logger.js";
import { createHttpFetchProvider } from "./http-provider.js";
import { FetchError, type OpenedBody } from "./types.js";

type Handler = (request: http.IncomingMessage, response: http.ServerResponse) => void;

async function serve(t: TestContext, handler: Handler): Promise<string> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/data`;
}

const provider = createHttpFetchProvider({ logger: silentLogger(), timeoutMs: 1_000 });
const signal = new AbortController().signal;

async function readAll(body: OpenedBody): Promise<string> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body.chunks) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

function open(url: string, bufferBelow: number, config: Record<string, unknown> = {}): Promise<Uint8Array | OpenedBody | undefined> {
  return provider.open?.({ url, config, signal }, bufferBelow) ?? Promise.reject(new Error("the HTTP provider streams"));
}

const BIG = JSON.stringify({ items: Array.from({ length: 5_000 }, (_, index) => ({ index, name: `item ${index}` })) });

test("a document under the streaming size comes back whole", async (t) => {
  const url = await serve(t, (_, response) => response.writeHead(200, { "content-type": "application/json" }).end('{"a":1}'));
  const opened = await open(url, 1024);
  assert.ok(opened instanceof Uint8Array);
  assert.equal(Buffer.from(opened).toString(), '{"a":1}');
});

test("a big document is left on the wire, its declared length known, and reads back whole", async (t) => {
  const url = await serve(t, (_, response) => response.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(BIG) }).end(BIG));
  const opened = await open(url, 1024);
  assert.ok(opened !== undefined && !(opened instanceof Uint8Array));
  assert.equal(opened.length, Buffer.byteLength(BIG));
  assert.equal(await readAll(opened), BIG);
});

test("a big chunked document (no content-length) is streamed too", async (t) => {
  const url = await serve(t, (_, response) => {
    response.writeHead(200, { "content-type": "application/json" });
    for (let start = 0; start < BIG.length; start += 4096) response.write(BIG.slice(start, start + 4096));
    response.end();
  });
  const opened = await open(url, 16 * 1024);
  assert.ok(opened !== undefined && !(opened instanceof Uint8Array));
  assert.equal(opened.length, undefined);
  assert.equal(await readAll(opened), BIG);
});

test("an error status names the url and the status; 5xx is worth retrying, 4xx is not", async (t) => {
  const url = await serve(t, (request, response) => response.writeHead(request.headers["x-status"] === undefined ? 404 : 503).end("x".repeat(100_000)));
  await assert.rejects(open(url, 1024), (error: unknown) => error instanceof FetchError && !error.retryable && error.message.startsWith(`${url} answered 404: xxx`) && error.message.length < 300);
  await assert.rejects(open(url, 1024, { headers: { "X-Status": "503" } }), (error: unknown) => error instanceof FetchError && error.retryable && /answered 503/.test(error.message));
});

test("what is not JSON is refused by its content-type or its first byte, naming the url", async (t) => {
  const url = await serve(t, (request, response) => {
    if (request.headers.accept === "html") response.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end("<html></html>");
    else response.writeHead(200, { "content-type": "application/json" }).end(`  <?xml version="1.0"?>${" ".repeat(5000)}`);
  });
  await assert.rejects(open(url, 1024, { headers: { accept: "html" } }), new RegExp(`^FetchError: ${url} did not return JSON: its content-type is text/html`));
  await assert.rejects(open(url, 1024), (error: unknown) => error instanceof FetchError && !error.retryable && error.message === `${url} did not return JSON: it starts with "<?xml version=\\"1.0\\"?>"`);
  await assert.rejects(provider.fetch({ url, config: {}, signal }), /did not return JSON/);
});

test("configured headers go to the source, and is_json=false is left to fetch() (a transformation)", async (t) => {
  let seen: string | undefined;
  const url = await serve(t, (request, response) => {
    seen = request.headers.authorization;
    response.writeHead(200, { "content-type": "text/plain" }).end("plain text");
  });
  assert.equal(await open(url, 1024, { is_json: false }), undefined);
  assert.equal(Buffer.from(await provider.fetch({ url, config: { is_json: false }, signal })).toString(), '"plain text"');
  await open(url, 1, { headers: { Authorization: "Bearer secret" } }).catch(() => undefined);
  assert.equal(seen, "Bearer secret");
});

test("a source that stalls mid-body past the fetch timeout fails the read, retryably", async (t) => {
  const url = await serve(t, (_, response) => {
    response.writeHead(200, { "content-type": "application/json" });
    response.write(`[${"1,".repeat(10_000)}`);
    // ...and nothing more.
  });
  const opened = await open(url, 1024);
  assert.ok(opened !== undefined && !(opened instanceof Uint8Array));
  await assert.rejects(readAll(opened), (error: unknown) => error instanceof FetchError && error.retryable && /reading .* failed/.test(error.message));
});
