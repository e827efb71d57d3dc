import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import http2 from "node:http2";
import net from "node:net";
import type { ListenerLimits } from "../config/listener-config.js";
import { readJson, sendJson } from "./json-io.js";
import { HttpListener } from "./listener.js";
import { RestRouter } from "./rest-router.js";

// A long linger: on a crowded machine the reading side of a test may not run for seconds.
const LIMITS: ListenerLimits = { firstByteTimeoutMs: 200, headersTimeoutMs: 400, idleTimeoutMs: 300, maxConnections: 4, lingerMs: 30_000 };
const MAX_BODY = 1024;

async function listen(t: TestContext, limits: ListenerLimits = LIMITS): Promise<number> {
  const router = new RestRouter().add(
    { method: "POST", auth: "open", path: "/echo", handle: async (request, response) => sendJson(response, 200, await readJson(request, MAX_BODY)) },
    {
      method: "GET",
      auth: "open",
      path: "/slow",
      // Answers after three idle periods: a stream in flight keeps its HTTP/2 session.
      handle: async (_request, response) => {
        await new Promise((resolve) => setTimeout(resolve, limits.idleTimeoutMs * 3));
        sendJson(response, 200, { status: "late" });
      },
    },
    { method: "GET", auth: "open", path: "/", handle: (_request, response) => sendJson(response, 200, { status: "ok" }) },
  );
  const listener = new HttpListener({ host: "127.0.0.1", port: 0, limits, handler: (request, response) => void router.handle(request, response) });
  await listener.start();
  t.after(() => listener.stop());
  return listener.port;
}

interface Raw {
  socket: net.Socket;
  /** Everything the server sent. */
  text(): string;
  /** Resolves when the server closed the connection: what it sent, any socket error, and when. */
  closed: Promise<{ text: string; error: string | undefined; at: number }>;
}

function connect(port: number): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    let received = "";
    let error: string | undefined;
    socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
    socket.on("error", (problem: NodeJS.ErrnoException) => (error = problem.code ?? problem.message));
    const closed = new Promise<{ text: string; error: string | undefined; at: number }>((done) => socket.once("close", () => done({ text: received, error, at: Date.now() })));
    socket.once("connect", () => resolve({ socket, text: () => received, closed }));
    socket.once("error", reject);
  });
}

const REQUEST = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

test("a connection that sends nothing is closed after the first-byte deadline", async (t) => {
  const port = await listen(t);
  const started = Date.now();
  const raw = await connect(port);
  const { text, at } = await raw.closed;
  assert.equal(text, "");
  assert.ok(at - started < LIMITS.headersTimeoutMs + 1_000, `closed after ${at - started} ms`);
});

test("headers sent a byte at a time are cut off at the headers deadline", async (t) => {
  const port = await listen(t);
  const cases: Array<[string, string, string, RegExp]> = [
    ["HTTP/1.1 from its first byte", "", "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: 1234567890\r\n\r\n", /^$/],
    // Past the first 24 bytes it is Node's headers timeout that answers.
    ["HTTP/1.1 after its first line", "GET / HTTP/1.1\r\nHost: x\r\n", "X-Slow: 1234567890abcdefghij\r\n\r\n", /^HTTP\/1\.1 408/],
    ["the HTTP/2 preface", "", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", /^$/],
  ];
  for (const [name, prefix, drip, answer] of cases) {
    await t.test(name, async () => {
      const raw = await connect(port);
      raw.socket.write(prefix);
      let sent = 0;
      const timer = setInterval(() => {
        if (sent < drip.length && !raw.socket.destroyed) raw.socket.write(drip[sent++] ?? "");
      }, 40);
      const { text } = await raw.closed;
      clearInterval(timer);
      assert.ok(sent < drip.length, `closed only after all ${drip.length} bytes`);
      assert.match(text, answer);
    });
  }
});

test("an idle keep-alive connection is closed", async (t) => {
  const port = await listen(t);
  const raw = await connect(port);
  raw.socket.write(REQUEST);
  const { text } = await raw.closed;
  assert.match(text, /^HTTP\/1\.1 200/);
});

test("an HTTP/2 session is idle only without an open stream", async (t) => {
  const port = await listen(t);
  const session = http2.connect(`http://127.0.0.1:${port}`);
  t.after(() => session.destroy());
  session.on("error", () => undefined);
  const closed = new Promise<void>((resolve) => session.once("close", resolve));
  const answer = await new Promise<string>((resolve, reject) => {
    const stream = session.request({ ":path": "/slow" });
    let body = "";
    stream.on("data", (chunk: Buffer) => (body += chunk.toString()));
    stream.once("end", () => resolve(body));
    stream.once("error", reject);
  });
  assert.deepEqual(JSON.parse(answer), { status: "late" });
  await closed; // then, with no stream, it is closed
});

test("connections past the cap are closed as they arrive", async (t) => {
  const port = await listen(t, { ...LIMITS, idleTimeoutMs: 5_000 });
  const held: Raw[] = [];
  for (let i = 0; i < LIMITS.maxConnections; i++) {
    const raw = await connect(port);
    raw.socket.write(REQUEST);
    held.push(raw);
  }
  // Answered, so every one of them is open on the server's side.
  for (const raw of held) while (!raw.text().includes("\r\n\r\n")) await new Promise((resolve) => setTimeout(resolve, 10));
  const extra = await connect(port);
  extra.socket.write(REQUEST);
  const { text } = await extra.closed;
  assert.equal(text, "", "the connection past the cap got no answer");
  for (const raw of held) raw.socket.destroy();
});

test("a declared body over the limit is answered 413 at once, without sending it", async (t) => {
  const port = await listen(t);
  const raw = await connect(port);
  const started = Date.now();
  raw.socket.write(`POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${1024 ** 3}\r\n\r\n`);
  const { text, error, at } = await raw.closed;
  assert.equal(error, undefined);
  assert.match(text, /^HTTP\/1\.1 413/);
  assert.match(text, /connection: close/i);
  assert.match(text, /exceeds the limit of 1024 bytes/);
  assert.ok(at - started < 1_000, `answered and closed after ${at - started} ms`);
});

test("a chunked body over the limit is answered 413 when it crosses it, not reset", async (t) => {
  const port = await listen(t);
  for (let round = 0; round < 3; round++) {
    const raw = await connect(port);
    const chunk = `4000\r\n${"x".repeat(0x4000)}\r\n`;
    // A client streaming a large body: far past the limit is on its way when the answer comes,
    raw.socket.write(`POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${chunk.repeat(64)}`);
    // and it reads the answer only later: a reset arriving first would discard it.
    const busyUntil = Date.now() + 150;
    while (Date.now() < busyUntil) {
      // the client's own work
    }
    const { text, error } = await raw.closed;
    assert.match(text, /^HTTP\/1\.1 413/, `got ${JSON.stringify(text.slice(0, 40))} (${error ?? "no error"})`);
    assert.match(text, /connection: close/i);
  }
});

test("an upgrade request reaches the upgrade handler; without one it is refused with 404", async (t) => {
  const seen: string[] = [];
  const withUpgrade = new HttpListener({
    host: "127.0.0.1",
    port: 0,
    limits: LIMITS,
    handler: (_request, response) => sendJson(response, 200, {}),
    upgrade: (request, socket) => {
      seen.push(request.url ?? "");
      socket.end("HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    },
  });
  const without = new HttpListener({ host: "127.0.0.1", port: 0, limits: LIMITS, handler: (_request, response) => sendJson(response, 200, {}) });
  await withUpgrade.start();
  await without.start();
  t.after(() => withUpgrade.stop());
  t.after(() => without.stop());
  const handshake = async (port: number): Promise<string> => {
    const socket = net.connect(port, "127.0.0.1");
    let text = "";
    socket.on("data", (chunk: Buffer) => (text += chunk.toString("latin1")));
    socket.write("GET /ws?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    await new Promise((resolve) => socket.once("close", resolve));
    return text;
  };
  assert.match(await handshake(withUpgrade.port), /^HTTP\/1\.1 418/);
  assert.deepEqual(seen, ["/ws?x=1"]);
  assert.match(await handshake(without.port), /^HTTP\/1\.1 404/);
});
