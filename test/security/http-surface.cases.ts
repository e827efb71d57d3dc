/** Security cases: JSON only as JSON, limits answered with 413, CORS closed, timeouts and connection caps on every listener. */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { request } from "undici";
import { githubSignature, type Tally } from "../helpers/attacks.js";
import { authEnv, call, issueToken, MASTER_TOKEN, rsaKeys } from "../helpers/auth.js";
import { GitRepo, tempDir } from "../helpers/git-repo.js";
import { type RunningClient, type RunningServer, startClient, startServer, waitForData, waitReady } from "../helpers/mesh.js";
import { drip, rawConnect, type RawConnection } from "../helpers/raw-socket.js";

const HEADERS_MS = 1_000;
const FIRST_BYTE_MS = 500;
const IDLE_MS = 1_000;
const MAX_CONNECTIONS = 16;
const MAX_BODY = 64 * 1024;
/** How long past a deadline the server may take to act on it (Node checks headers on an interval). */
const SLACK_MS = 1_500;
const LIMITS_ENV = {
  OPAL_MESH_HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_MS),
  OPAL_MESH_HTTP_FIRST_BYTE_TIMEOUT_MS: String(FIRST_BYTE_MS),
  OPAL_MESH_HTTP_IDLE_TIMEOUT_MS: String(IDLE_MS),
  OPAL_MESH_MAX_CONNECTIONS: String(MAX_CONNECTIONS),
};
const WEBHOOK_SECRET = "hs-hook-secret-31d7";

/** One HTTP/1.1 request over its own connection, exactly as given (no header added); the status. */
async function rawStatus(base: string, head: string, body: Buffer | string = ""): Promise<number> {
  const connection = await rawConnect(base);
  const payload = typeof body === "string" ? Buffer.from(body) : body;
  connection.socket.write(`${head}Host: x\r\nConnection: close\r\nContent-Length: ${payload.length}\r\n\r\n`);
  connection.socket.write(payload);
  const { text } = await connection.closed;
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
}

/** Opens connections that each make one keep-alive request, until the listener refuses one; how many it took. */
async function fillUntilRefused(base: string, get: string): Promise<{ held: RawConnection[]; refusedAt: number | undefined }> {
  const held: RawConnection[] = [];
  for (let attempt = 1; attempt <= MAX_CONNECTIONS + 1; attempt++) {
    const connection = await rawConnect(base);
    connection.socket.write(get);
    const answered = await Promise.race([
      connection.closed.then(() => false),
      new Promise<boolean>((resolve) => {
        const poll = setInterval(() => {
          if (connection.text().includes("\r\n\r\n")) {
            clearInterval(poll);
            resolve(true);
          }
        }, 10);
        void connection.closed.then(() => clearInterval(poll));
      }),
    ]);
    if (!answered) return { held, refusedAt: attempt };
    held.push(connection);
  }
  return { held, refusedAt: undefined };
}

export function httpSurfaceCases(tally: Tally): void {
  describe("HTTP surface: JSON only as JSON, 413 not resets, CORS closed, deadlines and caps on every port", () => {
    const keys = rsaKeys();
    const repo = new GitRepo();
    let server: RunningServer;
    let client: RunningClient;
    let datasource = "";
    let streamUrl = "";

    async function head(): Promise<number> {
      const response = await request(`${server.url}/healthcheck`);
      return ((await response.body.json()) as { head_position: number }).head_position;
    }

    before(async () => {
      repo.commit({ "rbac/policy.rego": "package app.rbac\n\ndefault allow := false\n" }, "main");
      server = await startServer({
        ...authEnv(keys),
        ...LIMITS_ENV,
        OPAL_MESH_MAX_BODY_BYTES: String(MAX_BODY),
        OPAL_POLICY_REPO_URL: repo.dir,
        OPAL_POLICY_REPO_MAIN_BRANCH: "main",
        OPAL_POLICY_REPO_CLONE_PATH: tempDir("opal-mesh-hs-clones-"),
        OPAL_POLICY_REPO_WEBHOOK_SECRET: WEBHOOK_SECRET,
      });
      datasource = await issueToken(server.url, { type: "datasource" });
      streamUrl = `http://127.0.0.1:${server.server.streamPort}`;
      client = await startClient(server.url, { ...LIMITS_ENV, OPAL_CLIENT_TOKEN: await issueToken(server.url, { type: "client" }), OPAL_AUTH_PUBLIC_KEY: keys.publicPem });
      await waitReady(client);
    });

    after(async () => {
      await client?.stop();
      await server?.stop();
    });

    test("a body that does not say it is JSON in UTF-8 is 415 and publishes nothing", async () => {
      const before = await head();
      const update = JSON.stringify({ entries: [{ url: "", data: "attack", dst_path: "/attack/content-type", topics: ["policy_data"] }] });
      const publish = `POST /data/config HTTP/1.1\r\nAuthorization: Bearer ${datasource}\r\n`;
      const cases: Array<[string, string | undefined, Buffer | string]> = [
        ["text/plain (no preflight from a browser)", "text/plain", update],
        ["a form", "application/x-www-form-urlencoded", update],
        ["multipart", "multipart/form-data; boundary=x", update],
        ["XML", "application/xml", update],
        ["no content type", undefined, update],
      ];
      for (const [note, type, body] of cases) {
        await tally.attempt("non-JSON body to POST /data/config", 415, () => rawStatus(server.url, `${publish}${type === undefined ? "" : `Content-Type: ${type}\r\n`}`, body), note);
      }
      await tally.attempt("JSON body in UTF-16", 415, () => rawStatus(server.url, `${publish}Content-Type: application/json; charset=utf-16\r\n`, Buffer.from(update, "utf16le")));
      await tally.attempt("non-JSON body to other REST routes", 415, () => rawStatus(server.url, `POST /scopes/default/data/update HTTP/1.1\r\nAuthorization: Bearer ${datasource}\r\nContent-Type: text/plain\r\n`, update), "scoped publish");
      await tally.attempt("non-JSON body to other REST routes", 415, () => rawStatus(server.url, `POST /token HTTP/1.1\r\nAuthorization: Bearer ${MASTER_TOKEN}\r\nContent-Type: text/plain\r\n`, '{"type":"datasource"}'), "POST /token");
      const push = JSON.stringify({ ref: "refs/heads/main", repository: { clone_url: repo.dir } });
      await tally.attempt("non-JSON body to other REST routes", 415, () => rawStatus(server.url, `POST /webhook HTTP/1.1\r\nX-GitHub-Event: push\r\nX-Hub-Signature-256: ${githubSignature(WEBHOOK_SECRET, push)}\r\nContent-Type: text/plain\r\n`, push), "signed webhook as text/plain");
      assert.equal(await head(), before, "nothing was published");
      assert.equal(await client.read("/attack"), undefined);
      // The same update as JSON is published: the refusals were about the content type.
      const published = await call(`${server.url}/data/config`, { method: "POST", token: datasource, body: { entries: [{ url: "", data: "as json", dst_path: "/hs/json", topics: ["policy_data"] }] } });
      assert.equal(published.status, 200, JSON.stringify(published.json));
      await waitForData(client, "/hs/json", "as json");
    });

    test("CORS is closed: a foreign origin's preflight and requests get no Access-Control-Allow-Origin", async () => {
      for (const base of [server.url, client.apiUrl]) {
        await tally.attempt("CORS preflight from a foreign origin", "no allow-origin", async () => {
          const response = await request(`${base}/data/config`, { method: "OPTIONS", headers: { origin: "https://evil.example", "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" } });
          await response.body.dump();
          return response.headers["access-control-allow-origin"] === undefined && response.headers["access-control-allow-methods"] === undefined ? "no allow-origin" : `allowed: ${String(response.headers["access-control-allow-origin"])}`;
        });
        await tally.attempt("CORS preflight from a foreign origin", "no allow-origin", async () => {
          const response = await request(`${base}/healthcheck`, { headers: { origin: "https://evil.example" } });
          await response.body.dump();
          return response.headers["access-control-allow-origin"] === undefined ? "no allow-origin" : `allowed: ${String(response.headers["access-control-allow-origin"])}`;
        }, "a simple GET");
      }
    });

    test("a declared 1 GiB body is 413 at once; a chunked one over the limit is 413, not a reset", async () => {
      const before = await head();
      await tally.attempt("declared Content-Length of 1 GiB", "413 without the body", async () => {
        const connection = await rawConnect(server.url);
        const started = Date.now();
        connection.socket.write(`POST /data/config HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${datasource}\r\nContent-Type: application/json\r\nContent-Length: ${1024 ** 3}\r\n\r\n`);
        // Not one byte of the body is sent: the answer must come from the header alone.
        const closedInTime = await connection.closedWithin(HEADERS_MS + SLACK_MS);
        const status = /^HTTP\/1\.1 (\d{3})/.exec(connection.text())?.[1];
        return status === "413" && closedInTime ? "413 without the body" : `${status ?? "no answer"} after ${Date.now() - started} ms, closed: ${closedInTime}`;
      });
      await tally.attempt("chunked body over the limit", 413, async () => {
        const connection = await rawConnect(server.url);
        const chunk = `4000\r\n${"x".repeat(0x4000)}\r\n`;
        const opening = '{"entries":[{"data":"';
        connection.socket.write(`POST /data/config HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${datasource}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${opening.length.toString(16)}\r\n${opening}\r\n`);
        // Keeps uploading (four times the limit) while the answer is on its way.
        for (let i = 0; i < (4 * MAX_BODY) / 0x4000 && !connection.socket.destroyed; i++) connection.socket.write(chunk);
        const { text, error } = await connection.closed;
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
        assert.ok(status !== 0, `no answer, ${error ?? "closed"}`);
        return status;
      });
      assert.equal(await head(), before, "nothing was published");
    });

    /** Slow headers, silence and idle keep-alive on one port: every connection is closed by the server in time. */
    async function slowloris(port: string, base: string, http: boolean): Promise<void> {
      const slow = await Promise.all(Array.from({ length: 5 }, () => rawConnect(base)));
      const silent = await Promise.all(Array.from({ length: 5 }, () => rawConnect(base)));
      const start = http ? "GET /healthcheck HTTP/1.1\r\nHost: x\r\nX-Slow: 0123456789abcdefghijklmnopqrstuvwxyz\r\n\r\n" : "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
      // A byte every 200 ms: the whole start would take longer than the headers deadline.
      for (const connection of slow) drip(connection, start, 200);
      await Promise.all([
        ...slow.map((connection) => tally.attempt(`slow headers (a byte at a time) on the ${port}`, "closed", async () => ((await connection.closedWithin(HEADERS_MS + SLACK_MS)) ? "closed" : "still open"))),
        ...silent.map((connection) => tally.attempt(`connection that never sends a byte on the ${port}`, "closed", async () => ((await connection.closedWithin(FIRST_BYTE_MS + SLACK_MS)) ? "closed" : "still open"))),
      ]);
    }

    test("slow headers, silent and idle connections are closed on the server port", async () => {
      await slowloris("server port", server.url, true);
      await tally.attempt("idle keep-alive connection", "closed", async () => {
        const connection = await rawConnect(server.url);
        connection.socket.write("GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n");
        return (await connection.closedWithin(IDLE_MS + SLACK_MS)) && /^HTTP\/1\.1 200/.test(connection.text()) ? "closed" : `still open or unanswered: ${connection.text().slice(0, 20)}`;
      });
    });

    test("slow starts, silent and idle connections are closed on the stream port", async () => {
      await slowloris("stream port", streamUrl, false);
      await tally.attempt("idle keep-alive connection", "closed", async () => {
        // A complete HTTP/2 preface, then no call: grpc-js closes it as idle.
        const connection = await rawConnect(streamUrl);
        connection.socket.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00");
        return (await connection.closedWithin(IDLE_MS + SLACK_MS)) ? "closed" : "still open";
      }, "stream port");
    });

    test("slow headers, silent and idle connections are closed on the client's API port", async () => {
      await slowloris("client API port", client.apiUrl, true);
      await tally.attempt("idle keep-alive connection", "closed", async () => {
        const connection = await rawConnect(client.apiUrl);
        connection.socket.write("GET /healthy HTTP/1.1\r\nHost: x\r\n\r\n");
        return (await connection.closedWithin(IDLE_MS + SLACK_MS)) ? "closed" : "still open";
      }, "client API port");
    });

    test("connections past the cap are refused on every port, and the port serves again once they go", async () => {
      const ports: Array<[string, string, string]> = [
        ["server port", server.url, "GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n"],
        ["client API port", client.apiUrl, "GET /healthy HTTP/1.1\r\nHost: x\r\n\r\n"],
      ];
      for (const [port, base, get] of ports) {
        await tally.attempt(`connection past OPAL_MESH_MAX_CONNECTIONS`, "refused", async () => {
          const { held, refusedAt } = await fillUntilRefused(base, get);
          for (const connection of held) connection.socket.destroy();
          return refusedAt === undefined ? `all ${MAX_CONNECTIONS + 1} served` : "refused";
        }, port);
      }
      await tally.attempt(`connection past OPAL_MESH_MAX_CONNECTIONS`, "refused", async () => {
        // The client's stream holds one; each of these holds one with a valid HTTP/2 preface.
        const held = await Promise.all(Array.from({ length: MAX_CONNECTIONS }, () => rawConnect(streamUrl)));
        for (const connection of held) connection.socket.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        const extra = await rawConnect(streamUrl);
        const refused = await extra.closedWithin(FIRST_BYTE_MS / 2);
        for (const connection of held) connection.socket.destroy();
        return refused ? "refused" : "accepted";
      }, "stream port");
      // Still serving: a legitimate publish reaches the client over its stream.
      const published = await call(`${server.url}/data/config`, { method: "POST", token: datasource, body: { entries: [{ url: "", data: "after the caps", dst_path: "/hs/after", topics: ["policy_data"] }] } });
      assert.equal(published.status, 200, JSON.stringify(published.json));
      await waitForData(client, "/hs/after", "after the caps");
    });
  });
}
