import { test } from "node:test";
import assert from "node:assert/strict";
import { SaveMethod } from "../../gen/opal/mesh/v1/data_pb.js";
import {
  DEFAULT_DATA_TOPIC,
  dataSourceEntryToJson,
  dataSourcesConfigToJson,
  normalizeDstPath,
  parseDataSourceEntry,
  parseDataSourcesConfig,
  parseDataUpdate,
  parseJsonBytes,
} from "./data-entries.js";
import { ReservedPaths } from "./reserved-paths.js";
import { UrlAllowlist } from "./url-allowlist.js";
import { ValidationError } from "./validation-error.js";

/** The field a ValidationError names, or fails the test when `parse` accepts its input. */
function rejectedField(parse: () => unknown): string {
  try {
    parse();
  } catch (error) {
    if (error instanceof ValidationError) return error.field;
    throw error;
  }
  assert.fail("expected a ValidationError, but the input was accepted");
}

function json(bytes: Uint8Array | undefined): unknown {
  return bytes === undefined ? undefined : parseJsonBytes(bytes);
}

const SOURCE = "https://api.example.com/users";

test("normalizeDstPath", async (t) => {
  const cases: Array<[string, string, string]> = [
    ["empty is the data root", "", "/"],
    ["slash is the data root", "/", "/"],
    ["blank is the data root", "   ", "/"],
    ["adds the leading slash", "users", "/users"],
    ["keeps the leading slash", "/users", "/users"],
    ["drops a trailing slash", "/a/b/", "/a/b"],
    ["drops repeated trailing slashes", "a/b///", "/a/b"],
    ["trims whitespace", "  /a/b  ", "/a/b"],
    ["keeps nested segments", "a/b/c", "/a/b/c"],
  ];
  for (const [name, input, expected] of cases) {
    await t.test(name, () => assert.equal(normalizeDstPath(input, "dst_path"), expected));
  }
});

test("normalizeDstPath rejects empty segments, naming the field", async (t) => {
  for (const input of ["a//b", "//a", "/a//b/c"]) {
    await t.test(JSON.stringify(input), () => {
      assert.equal(rejectedField(() => normalizeDstPath(input, "entries[2].dst_path")), "entries[2].dst_path");
    });
  }
});

test("parseDataUpdate applies OPAL's defaults", () => {
  const update = parseDataUpdate({ entries: [{ url: SOURCE }] });
  assert.equal(update.id, "");
  assert.equal(update.reason, "");
  assert.deepEqual(update.callbacks, []);
  assert.equal(update.entries.length, 1);
  const [entry] = update.entries;
  assert.ok(entry !== undefined);
  assert.equal(entry.url, SOURCE);
  assert.deepEqual(entry.topics, [DEFAULT_DATA_TOPIC]);
  assert.deepEqual(entry.topics, ["policy_data"]);
  assert.equal(entry.saveMethod, SaveMethod.PUT);
  assert.equal(entry.dstPath, "/");
  assert.equal(entry.configJson.length, 0);
  assert.equal(entry.dataJson, undefined, "no data means the client fetches the url");
  assert.equal(entry.periodicUpdateInterval, undefined);
});

test("parseDataUpdate keeps id, reason and entry order", () => {
  const update = parseDataUpdate({
    id: "update-1",
    reason: "new users",
    entries: [
      { url: SOURCE, dst_path: "users" },
      { url: "https://api.example.com/groups", dst_path: "/groups/", topics: ["policy_data/groups"] },
    ],
  });
  assert.equal(update.id, "update-1");
  assert.equal(update.reason, "new users");
  assert.deepEqual(update.entries.map((entry) => [entry.url, entry.dstPath, entry.topics]), [
    [SOURCE, "/users", ["policy_data"]],
    ["https://api.example.com/groups", "/groups", ["policy_data/groups"]],
  ]);
});

test("parseDataSourceEntry accepts", async (t) => {
  interface Case {
    input: Record<string, unknown>;
    saveMethod?: SaveMethod;
    data?: unknown;
    topics?: string[];
    config?: unknown;
    url?: string;
  }
  const cases: Array<[string, Case]> = [
    ["null data means fetch", { input: { url: SOURCE, data: null } }],
    ["inline object data without url", { input: { data: { alice: { role: "admin" } } }, data: { alice: { role: "admin" } }, url: "" }],
    ["inline falsy data counts as data", { input: { data: false }, data: false, url: "" }],
    ["inline zero counts as data", { input: { url: "", data: 0 }, data: 0, url: "" }],
    ["url is trimmed", { input: { url: `  ${SOURCE}  ` }, url: SOURCE }],
    ["null save_method is PUT", { input: { url: SOURCE, save_method: null }, saveMethod: SaveMethod.PUT }],
    ["empty save_method is PUT", { input: { url: SOURCE, save_method: "" }, saveMethod: SaveMethod.PUT }],
    ["save_method is case-insensitive", { input: { url: SOURCE, save_method: "patch" }, saveMethod: SaveMethod.PATCH }],
    ["PATCH fetched from a url", { input: { url: SOURCE, save_method: "PATCH" }, saveMethod: SaveMethod.PATCH }],
    [
      "PATCH with an operation list",
      { input: { save_method: "PATCH", data: [{ op: "add", path: "/a", value: 1 }] }, saveMethod: SaveMethod.PATCH, data: [{ op: "add", path: "/a", value: 1 }], url: "" },
    ],
    ["PATCH with an empty operation list", { input: { save_method: "PATCH", data: [] }, saveMethod: SaveMethod.PATCH, data: [], url: "" }],
    ["DELETE without url or data", { input: { save_method: "DELETE", dst_path: "users" }, saveMethod: SaveMethod.DELETE, url: "" }],
    ["DELETE with null data", { input: { save_method: "DELETE", data: null }, saveMethod: SaveMethod.DELETE, url: "" }],
    ["topics are trimmed", { input: { url: SOURCE, topics: [" a ", "b/c"] }, topics: ["a", "b/c"] }],
    ["null topics are the default", { input: { url: SOURCE, topics: null }, topics: ["policy_data"] }],
    ["config object is kept", { input: { url: SOURCE, config: { headers: { x: "1" } } }, config: { headers: { x: "1" } } }],
    ["empty config is no config", { input: { url: SOURCE, config: {} }, config: undefined }],
    ["null config is no config", { input: { url: SOURCE, config: null }, config: undefined }],
  ];
  for (const [name, c] of cases) {
    await t.test(name, () => {
      const entry = parseDataSourceEntry(c.input, "entry");
      assert.equal(entry.saveMethod, c.saveMethod ?? SaveMethod.PUT);
      assert.deepEqual(json(entry.dataJson), c.data);
      assert.deepEqual(entry.topics, c.topics ?? ["policy_data"]);
      assert.deepEqual(entry.configJson.length > 0 ? json(entry.configJson) : undefined, c.config);
      assert.equal(entry.url, c.url ?? SOURCE);
    });
  }
});

test("parseDataUpdate rejects, naming the exact field", async (t) => {
  const ok = { url: SOURCE };
  const cases: Array<[string, unknown, string]> = [
    ["body is not an object", [ok], ""],
    ["body is null", null, ""],
    ["entries missing", {}, "entries"],
    ["entries not a list", { entries: ok }, "entries"],
    ["entries empty", { entries: [] }, "entries"],
    ["entry not an object", { entries: [ok, "https://x"] }, "entries[1]"],
    ["unknown save_method", { entries: [ok, { url: SOURCE, save_method: "POST" }] }, "entries[1].save_method"],
    ["save_method not a string", { entries: [{ url: SOURCE, save_method: 1 }] }, "entries[0].save_method"],
    ["empty url without data", { entries: [{ url: "" }] }, "entries[0].url"],
    ["missing url without data", { entries: [ok, { dst_path: "users" }] }, "entries[1].url"],
    ["blank url without data", { entries: [{ url: "   " }] }, "entries[0].url"],
    ["null url and null data", { entries: [{ url: null, data: null }] }, "entries[0].url"],
    ["url is not a URL", { entries: [{ url: "not a url" }] }, "entries[0].url"],
    ["relative url", { entries: [{ url: "/data/users" }] }, "entries[0].url"],
    ["url not a string", { entries: [{ url: 42 }] }, "entries[0].url"],
    ["PATCH data is an object", { entries: [{ save_method: "PATCH", data: { a: 1 } }] }, "entries[0].data"],
    ["PATCH data has a bad operation", { entries: [ok, { save_method: "PATCH", data: [{ op: "merge", path: "/a" }] }] }, "entries[1].data"],
    ["PATCH add without value", { entries: [{ save_method: "PATCH", data: [{ op: "add", path: "/a" }] }] }, "entries[0].data"],
    ["DELETE with data", { entries: [{ save_method: "DELETE", data: { a: 1 } }] }, "entries[0].data"],
    ["DELETE with falsy data", { entries: [{ url: SOURCE, save_method: "DELETE", data: false }] }, "entries[0].data"],
    ["config not an object", { entries: [{ url: SOURCE, config: "headers" }] }, "entries[0].config"],
    ["config is a list", { entries: [{ url: SOURCE, config: [] }] }, "entries[0].config"],
    ["topics not a list", { entries: [{ url: SOURCE, topics: "policy_data" }] }, "entries[0].topics"],
    ["topics empty", { entries: [{ url: SOURCE, topics: [] }] }, "entries[0].topics"],
    ["topic blank", { entries: [{ url: SOURCE, topics: ["a", " "] }] }, "entries[0].topics[1]"],
    ["topic not a string", { entries: [ok, { url: SOURCE, topics: [7] }] }, "entries[1].topics[0]"],
    ["dst_path not a string", { entries: [{ url: SOURCE, dst_path: 3 }] }, "entries[0].dst_path"],
    ["dst_path with an empty segment", { entries: [{ url: SOURCE, dst_path: "a//b" }] }, "entries[0].dst_path"],
    ["periodic_update_interval in an update", { entries: [{ url: SOURCE, periodic_update_interval: 10 }] }, "entries[0].periodic_update_interval"],
    ["id not a string", { id: 5, entries: [ok] }, "id"],
    ["reason not a string", { reason: {}, entries: [ok] }, "reason"],
    ["callback not an object", { entries: [ok], callback: ["https://cb"] }, "callback"],
    ["callbacks not a list", { entries: [ok], callback: { callbacks: "https://cb" } }, "callback.callbacks"],
    ["callback item not a url", { entries: [ok], callback: { callbacks: ["https://cb", 5] } }, "callback.callbacks[1]"],
    ["callback url empty", { entries: [ok], callback: { callbacks: [""] } }, "callback.callbacks[0]"],
    ["callback pair without url", { entries: [ok], callback: { callbacks: [[null, {}]] } }, "callback.callbacks[0]"],
    ["callback config not an object", { entries: [ok], callback: { callbacks: [["https://cb", "x"]] } }, "callback.callbacks[0][1]"],
  ];
  for (const [name, input, field] of cases) {
    await t.test(name, () => assert.equal(rejectedField(() => parseDataUpdate(input)), field));
  }
});

test("parseDataUpdate validation messages say what is wrong", () => {
  assert.throws(() => parseDataUpdate({ entries: [{ url: SOURCE, save_method: "POST" }] }), {
    name: "ValidationError",
    message: /^entries\[0\]\.save_method: must be "PUT", "PATCH" or "DELETE", got "POST"$/,
  });
  assert.throws(() => parseDataUpdate({ entries: [{ save_method: "PATCH", data: { a: 1 } }] }), {
    message: /^entries\[0\]\.data: with save_method PATCH, must be a JSON Patch list/,
  });
  assert.throws(() => parseDataUpdate([]), { message: /^the body must be a JSON object/ });
});

test("parseDataUpdate reads callbacks as a url or [url, config]", async (t) => {
  const cases: Array<[string, unknown, Array<[string, unknown]>]> = [
    ["no callback", undefined, []],
    ["null callback", null, []],
    ["callback without callbacks", {}, []],
    ["bare url", { callbacks: ["https://cb.example.com/done"] }, [["https://cb.example.com/done", undefined]]],
    ["url with config", { callbacks: [["https://cb", { method: "post", headers: { a: "b" } }]] }, [["https://cb", { method: "post", headers: { a: "b" } }]]],
    ["url with null config", { callbacks: [["https://cb", null]] }, [["https://cb", undefined]]],
    ["url alone in a list", { callbacks: [["https://cb"]] }, [["https://cb", undefined]]],
    ["mixed, in order", { callbacks: ["https://one", ["https://two", { timeout: 5 }]] }, [["https://one", undefined], ["https://two", { timeout: 5 }]]],
  ];
  for (const [name, callback, expected] of cases) {
    await t.test(name, () => {
      const update = parseDataUpdate({ entries: [{ url: SOURCE }], callback });
      assert.deepEqual(
        update.callbacks.map((target) => [target.url, target.configJson.length > 0 ? json(target.configJson) : undefined]),
        expected,
      );
    });
  }
});

test("parseDataSourcesConfig accepts", async (t) => {
  await t.test("entries with periodic_update_interval", () => {
    const config = parseDataSourcesConfig({
      config: {
        entries: [
          { url: SOURCE, dst_path: "users", periodic_update_interval: 30 },
          { url: "https://api.example.com/groups", periodic_update_interval: 0.5 },
          { data: { a: 1 }, dst_path: "static" },
        ],
      },
    });
    assert.equal(config.externalSourceUrl, "");
    assert.deepEqual(config.entries.map((entry) => [entry.dstPath, entry.periodicUpdateInterval]), [
      ["/users", 30],
      ["/", 0.5],
      ["/static", undefined],
    ]);
  });
  await t.test("null periodic_update_interval is none", () => {
    const config = parseDataSourcesConfig({ config: { entries: [{ url: SOURCE, periodic_update_interval: null }] } });
    assert.equal(config.entries[0]?.periodicUpdateInterval, undefined);
  });
  await t.test("config without entries is empty", () => {
    assert.deepEqual(parseDataSourcesConfig({ config: {} }).entries, []);
  });
  await t.test("external_source_url", () => {
    const config = parseDataSourcesConfig({ external_source_url: "https://cfg.example.com/sources?scope=a" });
    assert.equal(config.externalSourceUrl, "https://cfg.example.com/sources?scope=a");
    assert.deepEqual(config.entries, []);
  });
  await t.test("external_source_url with a null config", () => {
    assert.equal(parseDataSourcesConfig({ config: null, external_source_url: "http://cfg" }).externalSourceUrl, "http://cfg");
  });
  await t.test("config with a null external_source_url", () => {
    assert.equal(parseDataSourcesConfig({ config: { entries: [{ url: SOURCE }] }, external_source_url: null }).entries.length, 1);
  });
});

test("parseDataSourcesConfig rejects, naming the exact field", async (t) => {
  const cases: Array<[string, unknown, string]> = [
    ["not an object", "https://cfg", ""],
    ["neither config nor external_source_url", {}, ""],
    ["both config and external_source_url", { config: { entries: [] }, external_source_url: "https://cfg" }, ""],
    ["config not an object", { config: [] }, "config"],
    ["entries not a list", { config: { entries: {} } }, "config.entries"],
    ["periodic_update_interval zero", { config: { entries: [{ url: SOURCE, periodic_update_interval: 0 }] } }, "config.entries[0].periodic_update_interval"],
    ["periodic_update_interval negative", { config: { entries: [{ url: SOURCE }, { url: SOURCE, periodic_update_interval: -5 }] } }, "config.entries[1].periodic_update_interval"],
    ["periodic_update_interval a string", { config: { entries: [{ url: SOURCE, periodic_update_interval: "10" }] } }, "config.entries[0].periodic_update_interval"],
    ["entry save_method", { config: { entries: [{ url: SOURCE }, { url: SOURCE, save_method: "POST" }] } }, "config.entries[1].save_method"],
    ["entry url", { config: { entries: [{ url: "" }] } }, "config.entries[0].url"],
    ["external_source_url not a string", { external_source_url: 5 }, "external_source_url"],
    ["external_source_url not a URL", { external_source_url: "cfg.example.com" }, "external_source_url"],
    ["external_source_url not http(s)", { external_source_url: "ftp://cfg.example.com/sources" }, "external_source_url"],
    ["external_source_url empty", { external_source_url: "" }, "external_source_url"],
  ];
  for (const [name, input, field] of cases) {
    await t.test(name, () => assert.equal(rejectedField(() => parseDataSourcesConfig(input)), field));
  }
});

test("dataSourceEntryToJson(parseDataSourceEntry(x)) keeps the values", async (t) => {
  const cases: Array<[string, Record<string, unknown>, Record<string, unknown>]> = [
    [
      "defaults filled in",
      { url: SOURCE },
      { url: SOURCE, config: null, topics: ["policy_data"], dst_path: "/", save_method: "PUT" },
    ],
    [
      "every field",
      { url: SOURCE, config: { headers: { a: "b" } }, topics: ["t1", "t2"], dst_path: "users/", save_method: "PUT", periodic_update_interval: 15 },
      { url: SOURCE, config: { headers: { a: "b" } }, topics: ["t1", "t2"], dst_path: "/users", save_method: "PUT", periodic_update_interval: 15 },
    ],
    [
      "inline data",
      { data: { alice: ["admin"] }, dst_path: "/roles" },
      { url: "", config: null, topics: ["policy_data"], dst_path: "/roles", save_method: "PUT", data: { alice: ["admin"] } },
    ],
    [
      "inline falsy data",
      { data: false, dst_path: "flag" },
      { url: "", config: null, topics: ["policy_data"], dst_path: "/flag", save_method: "PUT", data: false },
    ],
    [
      "PATCH operations",
      { save_method: "PATCH", data: [{ op: "remove", path: "/a" }], topics: ["x"] },
      { url: "", config: null, topics: ["x"], dst_path: "/", save_method: "PATCH", data: [{ op: "remove", path: "/a" }] },
    ],
    [
      "DELETE",
      { save_method: "delete", dst_path: "old" },
      { url: "", config: null, topics: ["policy_data"], dst_path: "/old", save_method: "DELETE" },
    ],
  ];
  for (const [name, input, expected] of cases) {
    await t.test(name, () => {
      const entry = parseDataSourceEntry(input, "entry", { allowPeriodic: true });
      const output = dataSourceEntryToJson(entry);
      assert.deepEqual(output, expected);
      // What we serve must parse back to the same entry.
      assert.deepEqual(parseDataSourceEntry(output, "entry", { allowPeriodic: true }), entry);
    });
  }
});

test("dataSourcesConfigToJson serves the entries as OPAL's DataSourceConfig", () => {
  const config = parseDataSourcesConfig({ config: { entries: [{ url: SOURCE, periodic_update_interval: 5 }, { data: 1, dst_path: "n" }] } });
  assert.deepEqual(dataSourcesConfigToJson(config), {
    entries: [
      { url: SOURCE, config: null, topics: ["policy_data"], dst_path: "/", save_method: "PUT", periodic_update_interval: 5 },
      { url: "", config: null, topics: ["policy_data"], dst_path: "/n", save_method: "PUT", data: 1 },
    ],
  });
  assert.deepEqual(parseDataSourcesConfig({ config: dataSourcesConfigToJson(config) }), config);
});

const update = (entry: Record<string, unknown>): unknown => ({ entries: [{ topics: ["policy_data"], ...entry }] });

test("publish refuses writes into OPA's system namespace, naming the field", async (t) => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ["PUT /system", { data: 1, dst_path: "/system" }, "entries[0].dst_path"],
    ["PUT system/opal", { data: 1, dst_path: "system/opal" }, "entries[0].dst_path"],
    ["PATCH /system/opal_mesh/policy", { data: [{ op: "add", path: "/x", value: 1 }], save_method: "PATCH", dst_path: "/system/opal_mesh/policy" }, "entries[0].dst_path"],
    ["PUT /system/version from a URL", { url: SOURCE, dst_path: "/system/version" }, "entries[0].dst_path"],
    ["DELETE /system/opal_mesh", { save_method: "DELETE", dst_path: "/system/opal_mesh" }, "entries[0].dst_path"],
    ["percent-encoded", { data: 1, dst_path: "/%73ystem/x" }, "entries[0].dst_path"],
    ["encoded slash", { data: 1, dst_path: "/%2Fsystem" }, "entries[0].dst_path"],
    ["PATCH op into system", { data: [{ op: "add", path: "/system/authz", value: 1 }], save_method: "PATCH", dst_path: "/" }, "entries[0].data"],
    ["PATCH op climbing out", { data: [{ op: "remove", path: "/../system/opal" }], save_method: "PATCH", dst_path: "/users" }, "entries[0].data"],
    ["PUT root with a system key", { data: { users: [], system: { authz: {} } }, dst_path: "/" }, "entries[0].data"],
    ["PUT empty dst_path with a system key", { data: { system: 1 }, dst_path: "" }, "entries[0].data"],
  ];
  for (const [name, entry, field] of cases) {
    await t.test(name, () => assert.equal(rejectedField(() => parseDataUpdate(update(entry))), field));
  }
  await t.test("a writable prefix opens its part, never the client's own documents", () => {
    const reservedPaths = new ReservedPaths(["/system/authz"]);
    assert.equal(parseDataUpdate(update({ data: 1, dst_path: "/system/authz/rules" }), { reservedPaths }).entries[0]?.dstPath, "/system/authz/rules");
    assert.equal(rejectedField(() => parseDataUpdate(update({ data: 1, dst_path: "/system/opal" }), { reservedPaths })), "entries[0].dst_path");
  });
  await t.test("data sources configs too", () => {
    assert.equal(rejectedField(() => parseDataSourcesConfig({ config: { entries: [{ data: 1, dst_path: "/system/x" }] } })), "config.entries[0].dst_path");
  });
});

test("publish refuses what no client would fetch, naming the field", async (t) => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ["cloud metadata", { url: "http://169.254.169.254/latest/meta-data/" }, "entries[0].url"],
    ["metadata over IPv6", { url: "http://[fd00:ec2::254]/" }, "entries[0].url"],
    ["metadata by name", { url: "http://metadata.google.internal/computeMetadata/v1/" }, "entries[0].url"],
    ["IPv4-mapped metadata", { url: "http://[::ffff:169.254.169.254]/" }, "entries[0].url"],
    ["link-local", { url: "http://169.254.1.1:8080/" }, "entries[0].url"],
    ["unparsable", { url: "http://" }, "entries[0].url"],
    ["not an HTTP method", { url: SOURCE, config: { method: "FETCH" } }, "entries[0].config.method"],
  ];
  for (const [name, entry, field] of cases) {
    await t.test(name, () => assert.equal(rejectedField(() => parseDataUpdate(update(entry))), field));
  }
  await t.test("allowed when the server's allow-list names it", () => {
    const allowlist = new UrlAllowlist(["http://169.254.169.254/latest/"]);
    assert.equal(parseDataUpdate(update({ url: "http://169.254.169.254/latest/meta-data/" }), { allowlist }).entries.length, 1);
  });
  await t.test("a non-GET method is left to the client's allow-list (it may differ from the server's)", () => {
    assert.equal(parseDataUpdate(update({ url: SOURCE, config: { method: "put", data: "x" } })).entries.length, 1);
    assert.equal(parseDataUpdate(update({ url: "postgresql://db/x", config: { fetcher: "PostgresFetchProvider", method: 7 } })).entries.length, 1);
  });
});
