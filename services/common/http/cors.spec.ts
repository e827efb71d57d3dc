import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { request } from "undici";
import { withCors } from "./cors.js";
import { sendJson } from "./json-io.js";
import { HttpListener } from "./listener.js";

async function serve(t: TestContext, origins: string[]): Promise<string> {
  const listener = new HttpListener({ host: "127.0.0.1", port: 0, handler: withCors(origins, (_request, response) => sendJson(response, 405, { detail: "method not allowed" })) });
  await listener.start();
  t.after(() => listener.stop());
  return `http://127.0.0.1:${listener.port}`;
}

const preflight = (origin: string) => ({ method: "OPTIONS" as const, headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" } });

test("without OPAL_ALLOWED_ORIGINS no answer carries CORS headers", async (t) => {
  const base = await serve(t, []);
  for (const options of [preflight("https://evil.example"), { method: "GET" as const, headers: { origin: "https://evil.example" } }]) {
    const response = await request(`${base}/data/config`, options);
    await response.body.dump();
    assert.equal(response.headers["access-control-allow-origin"], undefined);
    assert.equal(response.headers["access-control-allow-methods"], undefined);
  }
});

test("a configured origin gets its preflight answered; any other gets nothing", async (t) => {
  const base = await serve(t, ["https://console.example"]);
  const allowed = await request(`${base}/data/config`, preflight("https://console.example"));
  await allowed.body.dump();
  assert.equal(allowed.statusCode, 204);
  assert.equal(allowed.headers["access-control-allow-origin"], "https://console.example");
  assert.equal(allowed.headers["access-control-allow-headers"], "authorization, content-type");
  const foreign = await request(`${base}/data/config`, preflight("https://evil.example"));
  await foreign.body.dump();
  assert.equal(foreign.statusCode, 405);
  assert.equal(foreign.headers["access-control-allow-origin"], undefined);
});

test('"*" allows every origin', async (t) => {
  const base = await serve(t, ["*"]);
  const response = await request(`${base}/`, { headers: { origin: "https://anywhere.example" } });
  await response.body.dump();
  assert.equal(response.headers["access-control-allow-origin"], "*");
});
