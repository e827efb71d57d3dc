import { test } from "node:test";
import assert from "node:assert/strict";
import { readDashboardConfig, traceUrl } from "./dashboard-config.js";
import { EnvReader } from "./env-reader.js";

test("OPAL_MESH_TRACE_UI_URL", async (t) => {
  const cases: Array<[string, string | undefined, string | undefined, RegExp | undefined]> = [
    ["unset: no links", undefined, undefined, undefined],
    ["empty: no links", "  ", undefined, undefined],
    ["Jaeger", "http://localhost:16686/trace/{trace_id}", "http://localhost:16686/trace/{trace_id}", undefined],
    ["in the query, https", "https://grafana.example/explore?trace={trace_id}&org=1", "https://grafana.example/explore?trace={trace_id}&org=1", undefined],
    ["without the placeholder", "http://localhost:16686/trace/", undefined, /^OPAL_MESH_TRACE_UI_URL: must contain \{trace_id\}/],
    ["not http", "ftp://traces/{trace_id}", undefined, /^OPAL_MESH_TRACE_UI_URL: expected an http or https URL/],
    ["javascript:", "javascript:alert('{trace_id}')", undefined, /^OPAL_MESH_TRACE_UI_URL: expected an http or https URL/],
    ["not a URL", "localhost:16686/{trace_id}", undefined, /^OPAL_MESH_TRACE_UI_URL: /],
    ["relative", "/trace/{trace_id}", undefined, /^OPAL_MESH_TRACE_UI_URL: not a valid URL/],
  ];
  for (const [name, value, expected, problem] of cases) {
    await t.test(name, () => {
      const env = new EnvReader({ OPAL_MESH_TRACE_UI_URL: value });
      assert.equal(readDashboardConfig(env).traceUiUrl, expected);
      if (problem === undefined) assert.deepEqual(env.problems, []);
      else {
        assert.equal(env.problems.length, 1, env.problems.join("; "));
        assert.match(env.problems[0] as string, problem);
      }
    });
  }
});

test("traceUrl() fills the template, or gives no link", () => {
  assert.equal(traceUrl("http://jaeger/trace/{trace_id}", "4bf92f3577b34da6a3ce929d0e0e4736"), "http://jaeger/trace/4bf92f3577b34da6a3ce929d0e0e4736");
  assert.equal(traceUrl("http://x/?a={trace_id}&b={trace_id}", "ab"), "http://x/?a=ab&b=ab");
  assert.equal(traceUrl(undefined, "ab"), "");
  assert.equal(traceUrl("http://jaeger/trace/{trace_id}", ""), "");
});
