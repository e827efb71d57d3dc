import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { request } from "undici";
import { HttpError, readJson, sendJson } from "./json-io.js";
import { RestRouter } from "./rest-router.js";
import { ValidationError } from "../validation-error.js";

/** Status the test server answers when the router itself throws (it must not). */
const ROUTER_THREW = 599;

function echo(name: string): Parameters<RestRouter["add"]>[0]["handle"] {
  return (request, response, context) =>
    sendJson(response, 200, { route: name, method: request.method, params: context.params, query: Object.fromEntries(context.url.searchParams) });
}

function router(): RestRouter {
  return new RestRouter().add(
    { method: "GET", auth: "open", path: "/", handle: echo("root") },
    { method: "GET", auth: "open", path: "/data/config", handle: echo("get config") },
    { method: "POST", auth: "open", path: "/data/config", handle: echo("post config") },
    { method: "GET", auth: "open", path: "/scopes/{scopeId}/policy", handle: echo("scope policy") },
    { method: "PUT", auth: "open", path: "/scopes/{scopeId}/data/{key}", handle: echo("scope data") },
    { method: "GET", auth: "open", path: "/status.json", handle: echo("status") },
    { method: "GET", auth: "open", path: "/a+b", handle: echo("plus") },
    {
      method: "POST",
      auth: "open",
      path: "/echo",
      handle: async (request, response) => sendJson(response, 200, await readJson(request, 1024)),
    },
    {
      method: "POST",
      auth: "open",
      path: "/errors/http",
      handle: () => {
        throw new HttpError(422, "entries[0].url: is empty");
      },
    },
    {
      method: "POST",
      auth: "open",
      path: "/errors/http-body",
      handle: () => {
        throw new HttpError(422, "invalid", [{ loc: ["body", "entries", 0], msg: "field required" }]);
      },
    },
    {
      method: "POST",
      auth: "open",
      path: "/errors/async",
      handle: async () => {
        await Promise.resolve();
        throw new HttpError(409, "already exists");
      },
    },
    {
      method: "POST",
      auth: "open",
      path: "/errors/plain",
      handle: () => {
        throw new Error("secret internals");
      },
    },
    {
      method: "POST",
      auth: "open",
      path: "/errors/after-headers",
      handle: (_request, response) => {
        const target = response as http.ServerResponse;
        target.writeHead(200, { "content-type": "text/plain" });
        target.write("partial");
        throw new Error("failed half way");
      },
    },
  );
}

/** A real HTTP server on a random port, routing through `rest`; unmatched paths get 404 "fallthrough". */
async function serve(t: TestContext, rest: RestRouter): Promise<string> {
  const server = http.createServer((req, res) => {
    try {
      if (!rest.handle(req, res)) sendJson(res, 404, { fallthrough: true });
    } catch (error) {
      sendJson(res, ROUTER_THREW, { threw: (error as Error).message });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

type Method = "GET" | "POST" | "PUT" | "DELETE" | "PATCH";

async function call(base: string, method: Method, path: string, body?: string) {
  const response = await request(`${base}${path}`, { method, body, headers: body === undefined ? {} : { "content-type": "application/json" } });
  const text = await response.body.text();
  return { status: response.statusCode, type: response.headers["content-type"], json: text === "" ? undefined : (JSON.parse(text) as unknown) };
}

test("routes match by method and path, with {param} segments", async (t) => {
  const base = await serve(t, router());
  const cases: Array<[string, Method, string, unknown]> = [
    ["root", "GET", "/", { route: "root", method: "GET", params: {}, query: {} }],
    ["static path", "GET", "/data/config", { route: "get config", method: "GET", params: {}, query: {} }],
    ["same path, other method", "POST", "/data/config", { route: "post config", method: "POST", params: {}, query: {} }],
    ["query string is not part of the path", "GET", "/data/config?token=abc&x=1", { route: "get config", method: "GET", params: {}, query: { token: "abc", x: "1" } }],
    ["one parameter", "GET", "/scopes/tenant-1/policy", { route: "scope policy", method: "GET", params: { scopeId: "tenant-1" }, query: {} }],
    ["two parameters", "PUT", "/scopes/s1/data/users", { route: "scope data", method: "PUT", params: { scopeId: "s1", key: "users" }, query: {} }],
    ["parameters are percent-decoded", "GET", "/scopes/a%20b%2Fc/policy", { route: "scope policy", method: "GET", params: { scopeId: "a b/c" }, query: {} }],
    ["a dot in a path is literal", "GET", "/status.json", { route: "status", method: "GET", params: {}, query: {} }],
    ["a plus in a path is literal", "GET", "/a+b", { route: "plus", method: "GET", params: {}, query: {} }],
  ];
  for (const [name, method, path, expected] of cases) {
    await t.test(name, async () => {
      const response = await call(base, method, path);
      assert.equal(response.status, 200);
      assert.deepEqual(response.json, expected);
    });
  }
});

test("the handler can read the request body", async (t) => {
  const base = await serve(t, router());
  const response = await call(base, "POST", "/echo", JSON.stringify({ entries: [{ url: "https://x" }] }));
  assert.equal(response.status, 200);
  assert.deepEqual(response.json, { entries: [{ url: "https://x" }] });
});

test("unknown paths fall through", async (t) => {
  const base = await serve(t, router());
  const cases: Array<[string, Method, string]> = [
    ["unknown path", "GET", "/nope"],
    ["trailing slash is another path", "GET", "/data/config/"],
    ["prefix of a route", "GET", "/data"],
    ["longer than a route", "GET", "/data/config/extra"],
    ["a parameter does not span segments", "GET", "/scopes/a/b/policy"],
    ["a parameter is not empty", "GET", "/scopes//policy"],
    ["a dot does not match any character", "GET", "/statusXjson"],
    ["a plus does not repeat", "GET", "/aab"],
    ["unknown path with another method", "DELETE", "/nope"],
  ];
  for (const [name, method, path] of cases) {
    await t.test(name, async () => {
      const response = await call(base, method, path);
      assert.deepEqual([response.status, response.json], [404, { fallthrough: true }]);
    });
  }
});

test("handle() returns false without touching the response for an unknown path", () => {
  let touched = false;
  const response = new Proxy({}, { get: () => (touched = true) }) as unknown as http.ServerResponse;
  const handled = router().handle({ url: "/nope", method: "GET" } as http.IncomingMessage, response);
  assert.equal(handled, false);
  assert.equal(touched, false);
});

test("a known path with the wrong method is 405 with FastAPI's detail body", async (t) => {
  const base = await serve(t, router());
  const cases: Array<[string, Method, string]> = [
    ["GET-only path", "DELETE", "/data/config"],
    ["parameterised path", "POST", "/scopes/s1/policy"],
    ["root", "PATCH", "/"],
  ];
  for (const [name, method, path] of cases) {
    await t.test(name, async () => {
      const response = await call(base, method, path);
      assert.equal(response.status, 405);
      assert.equal(response.type, "application/json");
      assert.deepEqual(response.json, { detail: `method ${method} not allowed on ${path}` });
    });
  }
});

test("errors thrown by a handler become FastAPI error responses", async (t) => {
  const base = await serve(t, router());
  const cases: Array<[string, string, number, unknown]> = [
    ["HttpError uses its status and message", "/errors/http", 422, { detail: "entries[0].url: is empty" }],
    ["HttpError with a body sends the body as detail", "/errors/http-body", 422, { detail: [{ loc: ["body", "entries", 0], msg: "field required" }] }],
    ["async HttpError", "/errors/async", 409, { detail: "already exists" }],
    ["any other error is a 500 that hides the message", "/errors/plain", 500, { detail: "internal error" }],
    ["malformed JSON body", "/echo", 400, undefined],
  ];
  for (const [name, path, status, detail] of cases) {
    await t.test(name, async () => {
      const response = await call(base, "POST", path, path === "/echo" ? "{not json" : "{}");
      assert.equal(response.status, status);
      assert.equal(response.type, "application/json");
      if (detail === undefined) assert.match(String((response.json as { detail: unknown }).detail), /not valid JSON/);
      else assert.deepEqual(response.json, detail);
    });
  }
});

test("an error after the headers were sent aborts the response", async (t) => {
  const base = await serve(t, router());
  // Depending on timing the client sees the headers or not; it must never see a complete response.
  await assert.rejects(async () => {
    const response = await request(`${base}/errors/after-headers`, { method: "POST", body: "{}", headers: { "content-type": "application/json" } });
    await response.body.text();
  }, { code: "UND_ERR_SOCKET" });
});

test("malformed request targets are answered, not thrown", async (t) => {
  const base = await serve(t, router());
  const cases: Array<[string, string]> = [
    ["an empty authority (`GET //`)", "//"],
    ["an invalid authority", "//[/x"],
    ["a bad %-escape in a {param}", "/scopes/%ZZ/policy"],
  ];
  for (const [name, path] of cases) {
    await t.test(name, async () => {
      const response = await call(base, "GET", path);
      assert.notEqual(response.status, ROUTER_THREW, `handle() threw: ${JSON.stringify(response.json)}`);
      assert.ok(response.status === 400 || response.status === 404, `got ${response.status}`);
    });
  }
});

test("a body that does not say it is JSON is 415 before any handler runs, whether or not the route reads it", async (t) => {
  let ran = 0;
  const rest = router().add({
    method: "POST",
    auth: "open",
    path: "/ignores-body",
    handle: (_request, response) => {
      ran++;
      sendJson(response, 200, { status: "ok" });
    },
  });
  const base = await serve(t, rest);
  const cases: Array<[string, string, Record<string, string>]> = [
    ["text/plain to a route that reads JSON", "/echo", { "content-type": "text/plain" }],
    ["no content type", "/echo", {}],
    ["UTF-16", "/echo", { "content-type": "application/json; charset=utf-16" }],
    ["a form to a route that ignores its body", "/ignores-body", { "content-type": "application/x-www-form-urlencoded" }],
  ];
  for (const [name, path, headers] of cases) {
    await t.test(name, async () => {
      const response = await request(`${base}${path}`, { method: "POST", headers, body: '{"a":1}' });
      const json = (await response.body.json()) as { detail: string };
      assert.equal(response.statusCode, 415);
      assert.match(json.detail, /expected application\/json/);
    });
  }
  assert.equal(ran, 0);
  const without = await request(`${base}/ignores-body`, { method: "POST" });
  assert.equal(without.statusCode, 200, "a POST without a body needs no content type");
  await without.body.dump();
  const merge = await request(`${base}/echo`, { method: "POST", headers: { "content-type": "application/merge-patch+json" }, body: '{"a":1}' });
  assert.deepEqual([merge.statusCode, await merge.body.json()], [200, { a: 1 }]);
});

test("the handler's signal aborts when the client leaves before the answer, and not after a full answer", async (t) => {
  let waiting: AbortSignal | undefined;
  let answered: AbortSignal | undefined;
  const rest = new RestRouter().add(
    {
      method: "GET",
      auth: "open",
      path: "/wait",
      handle: async (_request, response, context) => {
        waiting = context.signal;
        await new Promise<void>((resolve) => context.signal.addEventListener("abort", () => resolve(), { once: true }));
        response.destroy();
      },
    },
    {
      method: "GET",
      auth: "open",
      path: "/answer",
      handle: (_request, response, context) => {
        answered = context.signal;
        sendJson(response, 200, { status: "ok" });
      },
    },
  );
  const base = await serve(t, rest);
  const answer = await request(`${base}/answer`);
  await answer.body.dump();
  const leaving = new AbortController();
  const left = request(`${base}/wait`, { signal: leaving.signal }).catch((error: unknown) => error);
  await waitUntil(() => waiting !== undefined);
  assert.equal(waiting?.aborted, false, "not aborted while the client waits");
  leaving.abort();
  await left;
  await waitUntil(() => waiting?.aborted === true);
  assert.equal(answered?.aborted, false, "a request answered in full is never aborted");
});

test("a ValidationError from a handler is 422 with the field errors", async (t) => {
  const rest = new RestRouter().add({
    method: "POST",
    auth: "open",
    path: "/validate",
    handle: () => {
      throw new ValidationError("entries[0].dst_path", "must start with /");
    },
  });
  const base = await serve(t, rest);
  const response = await call(base, "POST", "/validate", "{}");
  assert.equal(response.status, 422);
  assert.match(JSON.stringify(response.json), /entries.*dst_path|must start with \//);
});

/** Polls a condition with a deadline (the handler runs on the server's side of the socket). */
async function waitUntil(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail("condition not met before the deadline");
    await new Promise((resolve) => setImmediate(resolve));
  }
}
