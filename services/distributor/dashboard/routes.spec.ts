import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import { request } from "undici";
import { EventSchema } from "../../../gen/opal/mesh/v1/event_pb.js";
import { AuthError } from "../../common/auth/tokens.js";
import { RestRouter } from "../../common/http/rest-router.js";
import { DeliveryTracker } from "../delivery-tracker.js";
import { ChangeFeed } from "./change-feed.js";
import { DASHBOARD_SCRIPT, DASHBOARD_STYLE } from "./page.js";
import { dashboardRoutes } from "./routes.js";
import type { DashboardState } from "./state.js";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";

/** The routes on a real HTTP server (dev mode: no security), stopped when the test ends. */
async function serve(t: TestContext, feed = new ChangeFeed()): Promise<{ url: string; feed: ChangeFeed; delivery: DeliveryTracker }> {
  const delivery = new DeliveryTracker({ maxUpdates: 10 });
  delivery.dispatched(create(EventSchema, { position: 3n, topics: ["policy_data"], traceContext: { traceparent: `00-${TRACE}-00f067aa0ba902b7-01` }, payload: { case: "dataUpdate", value: { id: "u3" } } }), []);
  delivery.dispatched(create(EventSchema, { position: 4n, topics: ["acme:data:policy_data"], payload: { case: "dataUpdate", value: { id: "u4" } } }), []);
  const router = new RestRouter().add(
    ...dashboardRoutes({
      fanout: { listSessions: () => [], head: 4n, logId: "memory:test" },
      delivery,
      feed,
      startedAt: Date.now(),
      traceUiUrl: "http://jaeger/trace/{trace_id}",
      // As a token allowed only the default scope.
      authorizeScope: async (_principal, scope) => {
        if (scope !== "default") throw new AuthError(`not allowed in scope ${scope}`, 403);
      },
    }),
  );
  const server = http.createServer((req, res) => {
    if (!router.handle(req, res)) res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(async () => {
    feed.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, feed, delivery };
}

/** Reads an event stream across calls (a for-await that breaks would destroy the body). */
function eventReader(body: AsyncIterable<Buffer>): (count: number) => Promise<string[]> {
  // Each event as "name data", e.g. `changed {"revision":3}`.
  const iterator = body[Symbol.asyncIterator]();
  let buffer = "";
  return async (count) => {
    const events: string[] = [];
    while (events.length < count) {
      let end: number;
      while (events.length < count && (end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.+)$/m.exec(block)?.[1];
        if (event !== undefined) events.push(`${event} ${/^data: (.*)$/m.exec(block)?.[1] ?? ""}`);
      }
      if (events.length >= count) break;
      const next = await iterator.next();
      if (next.done === true) throw new Error("the event stream ended");
      buffer += next.value.toString("utf8");
    }
    return events;
  };
}

test("GET /dashboard: the page, allowed to run only its own inline script and style", async (t) => {
  const { url } = await serve(t);
  const response = await request(`${url}/dashboard`);
  const html = await response.body.text();
  assert.equal(response.statusCode, 200);
  assert.match(String(response.headers["content-type"]), /^text\/html/);
  const csp = String(response.headers["content-security-policy"]);
  const hash = (text: string): string => `'sha256-${createHash("sha256").update(text).digest("base64")}'`;
  assert.ok(csp.includes(`script-src ${hash(DASHBOARD_SCRIPT)}`), csp);
  assert.ok(csp.includes(`style-src ${hash(DASHBOARD_STYLE)}`), csp);
  assert.match(csp, /default-src 'none'/);
  assert.equal(response.headers["referrer-policy"], "no-referrer");
  assert.ok(html.includes("<title>opal-mesh dashboard</title>"));
});

test("GET /dashboard/api/state: what the caller's scopes allow, with trace links", async (t) => {
  const { url } = await serve(t);
  const response = await request(`${url}/dashboard/api/state`);
  const state = (await response.body.json()) as DashboardState;
  assert.equal(response.statusCode, 200);
  assert.equal(state.server.head_position, 4);
  assert.deepEqual(
    state.updates.map((update) => [update.update_id, update.trace_url]),
    [["u3", `http://jaeger/trace/${TRACE}`]],
    "u4 belongs to the scope acme",
  );
});

test("GET /dashboard/api/events: a first tick, then bursts coalesced, and the viewer forgotten when it leaves", async (t) => {
  const feed = new ChangeFeed({ minIntervalMs: 50 });
  const { url } = await serve(t, feed);
  const controller = new AbortController();
  const response = await request(`${url}/dashboard/api/events`, { signal: controller.signal });
  assert.equal(response.statusCode, 200);
  assert.match(String(response.headers["content-type"]), /^text\/event-stream/);
  const readEvents = eventReader(response.body as AsyncIterable<Buffer>);
  assert.deepEqual(await readEvents(1), ['changed {"revision":0}'], "the page loads the state at once");
  assert.equal(feed.viewerCount, 1);
  for (let index = 0; index < 100; index++) feed.changed();
  assert.deepEqual(await readEvents(1), ['changed {"revision":100}'], "one event for the whole burst");
  controller.abort();
  await response.body.dump().catch(() => undefined);
  // The server sees the disconnect a moment later: wait for it by polling the count.
  for (let turn = 0; feed.viewerCount > 0 && turn < 500; turn++) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(feed.viewerCount, 0);
});

test("ChangeFeed sends at most one event per interval however many changes", async (t) => {
  const feed = new ChangeFeed({ minIntervalMs: 200 });
  const { url } = await serve(t, feed);
  const response = await request(`${url}/dashboard/api/events`);
  const readEvents = eventReader(response.body as AsyncIterable<Buffer>);
  await readEvents(1);
  feed.changed();
  await readEvents(1);
  const started = Date.now();
  feed.changed();
  feed.changed();
  assert.deepEqual(await readEvents(1), ['changed {"revision":3}']);
  // Measured from after the first arrived, so a little less than the interval.
  assert.ok(Date.now() - started >= 150, `the second event waited for the interval (${Date.now() - started} ms)`);
  response.body.destroy();
});
