/**
 * Fetch providers end to end on real components: a real PostgreSQL server behind OPAL's
 * PostgresFetchProvider config, a third-party provider loaded by npm module name
 * (OPAL_FETCH_PROVIDER_MODULES), and the HttpFetchProvider's OPAL config fields, each
 * landing in a real inline OPA through the embedded server.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import pg from "pg";
import { request } from "undici";
import { DataSource } from "./helpers/data-source.js";
import { type RunningClient, type RunningServer, startClient, startServer, waitReady } from "./helpers/mesh.js";
import { type RunningPostgres, startPostgres } from "./helpers/postgres.js";
import { waitFor } from "./helpers/wait.js";

interface Transaction {
  ok: boolean;
  id: string;
  error?: string;
}

async function postDataConfig(server: RunningServer, body: unknown): Promise<string> {
  const response = await request(`${server.url}/data/config`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = (await response.body.json()) as { status?: string; id?: string };
  assert.equal(response.statusCode, 200, `POST /data/config answered ${response.statusCode}: ${JSON.stringify(json)}`);
  assert.equal(json.status, "ok");
  assert.equal(typeof json.id, "string");
  return json.id as string;
}

/** Waits until an OPA document deep-equals `expected` (OPA sorts object keys, so no JSON text comparison). */
async function waitForData(client: RunningClient, path: string, expected: unknown): Promise<void> {
  let last: unknown;
  await waitFor(
    async () => {
      last = await client.read(path);
      return isDeepStrictEqual(last, expected);
    },
    { message: () => `OPA ${path} to be ${JSON.stringify(expected)}, last ${JSON.stringify(last)}` },
  );
}

/** Waits until the client's /healthy answers 503 naming this update as the failed data transaction. */
async function waitForFailedUpdate(client: RunningClient, updateId: string): Promise<Transaction> {
  let last: unknown;
  return waitFor(
    async () => {
      const response = await request(`${client.apiUrl}/healthy`);
      const report = (await response.body.json()) as { data: { lastTransaction?: Transaction } };
      last = { status: response.statusCode, report };
      const transaction = report.data.lastTransaction;
      return response.statusCode === 503 && transaction?.id === updateId && !transaction.ok ? transaction : undefined;
    },
    { message: () => `client health to report update ${updateId} as failed, last ${JSON.stringify(last)}` },
  );
}

async function healthStatus(client: RunningClient): Promise<number> {
  const response = await request(`${client.apiUrl}/healthy`);
  await response.body.dump();
  return response.statusCode;
}

describe("fetch providers", () => {
  let postgres: RunningPostgres;
  let source: DataSource;
  let server: RunningServer;
  /** Subscribed to policy_data: the PostgreSQL and HTTP entries. */
  let client: RunningClient;
  /** Subscribed to plugins, with the third-party echo provider loaded. */
  let pluginClient: RunningClient;
  let moduleDir: string;

  before(async () => {
    postgres = await startPostgres();
    await postgres.query("CREATE TABLE users (id integer PRIMARY KEY, name text NOT NULL, role text NOT NULL, active boolean NOT NULL)");
    await postgres.query("INSERT INTO users VALUES (1, 'alice', 'admin', true), (2, 'bob', 'viewer', true), (3, 'carol', 'viewer', false)");
    // A second database, reached only through connection_params (the url names `postgres`).
    await postgres.query("CREATE DATABASE tenants");

    source = await new DataSource().start();

    moduleDir = await mkdtemp(join(tmpdir(), "opal-mesh-fetcher-"));
    const packageDir = join(moduleDir, "node_modules", "opal-fetcher-echo");
    await mkdir(packageDir, { recursive: true });
    await writeFile(join(packageDir, "package.json"), JSON.stringify({ name: "opal-fetcher-echo", type: "module", main: "index.js" }));
    await writeFile(
      join(packageDir, "index.js"),
      `export const fetchProviders = [{
  name: "EchoFetchProvider",
  create(context) {
    return {
      name: "EchoFetchProvider",
      async fetch({ url, config }) {
        return Buffer.from(JSON.stringify({ echoed: url, config }));
      },
    };
  },
}];
`,
    );

    server = await startServer({
      OPAL_DATA_CONFIG_SOURCES: JSON.stringify({
        config: {
          entries: [
            {
              url: postgres.url,
              config: { fetcher: "PostgresFetchProvider", query: "SELECT id, name, role FROM users WHERE active ORDER BY id", connection_params: {} },
              topics: ["policy_data/users"],
              dst_path: "/pg/users",
            },
          ],
        },
      }),
    });
    // Methods other than GET go only to allow-listed sources (the local data source; PostgreSQL, reached through connection_params from db.invalid).
    client = await startClient(server.url, { OPAL_DATA_TOPICS: "policy_data", OPAL_CLIENT_STAT_ID: "fetch-client", OPAL_FETCH_URL_ALLOWLIST: "127.0.0.1,db.invalid" });
    pluginClient = await startClient(
      server.url,
      { OPAL_DATA_TOPICS: "plugins", OPAL_CLIENT_STAT_ID: "plugin-client", OPAL_FETCH_PROVIDER_MODULES: '["opal-fetcher-echo"]' },
      moduleDir,
    );
    await Promise.all([waitReady(client), waitReady(pluginClient)]);
  });

  after(async () => {
    await Promise.all([client?.stop(), pluginClient?.stop()]);
    await server?.stop();
    await Promise.all([source?.stop(), postgres?.stop()]);
    if (moduleDir !== undefined) await rm(moduleDir, { recursive: true, force: true });
  });

  describe("PostgresFetchProvider", () => {
    test("the baseline loads rows as a list of objects (dict_mode defaults to true)", async () => {
      assert.deepEqual(await client.read("/pg/users"), [
        { id: 1, name: "alice", role: "admin" },
        { id: 2, name: "bob", role: "viewer" },
      ]);
      // The plugin client is not subscribed to policy_data.
      assert.equal(await pluginClient.read("/pg"), undefined);
    });

    test("an update re-runs the query: the table's current rows reach OPA", async () => {
      await postgres.query("UPDATE users SET active = true WHERE name = $1", ["carol"]);
      await postDataConfig(server, {
        entries: [
          {
            url: postgres.url,
            config: { fetcher: "PostgresFetchProvider", query: "SELECT name FROM users WHERE active ORDER BY id" },
            topics: ["policy_data/users"],
            dst_path: "/pg/names",
          },
        ],
      });
      await waitForData(client, "/pg/names", [{ name: "alice" }, { name: "bob" }, { name: "carol" }]);
    });

    test("fetch_one stores a single object; with no row it stores null", async () => {
      await postDataConfig(server, {
        entries: [
          {
            url: postgres.url,
            config: { fetcher: "PostgresFetchProvider", query: "SELECT id, name, role FROM users WHERE name = 'alice'", fetch_one: true },
            topics: ["policy_data/users"],
            dst_path: "/pg/alice",
          },
          {
            url: postgres.url,
            config: { fetcher: "PostgresFetchProvider", query: "SELECT id FROM users WHERE name = 'nobody'", fetch_one: true },
            topics: ["policy_data/users"],
            dst_path: "/pg/nobody",
          },
        ],
      });
      await waitForData(client, "/pg/alice", { id: 1, name: "alice", role: "admin" });
      await waitForData(client, "/pg/nobody", null);
    });

    test("dict_mode=false stores rows as arrays (with fetch_one: one array)", async () => {
      await postDataConfig(server, {
        entries: [
          {
            url: postgres.url,
            config: { fetcher: "PostgresFetchProvider", query: "SELECT id, name FROM users ORDER BY id", dict_mode: false },
            topics: ["policy_data/users"],
            dst_path: "/pg/tuples",
          },
          {
            url: postgres.url,
            config: { fetcher: "PostgresFetchProvider", query: "SELECT id, name FROM users WHERE id = 2", dict_mode: false, fetch_one: true },
            topics: ["policy_data/users"],
            dst_path: "/pg/tuple",
          },
        ],
      });
      await waitForData(client, "/pg/tuples", [
        [1, "alice"],
        [2, "bob"],
        [3, "carol"],
      ]);
      await waitForData(client, "/pg/tuple", [2, "bob"]);
    });

    test("connection_params override the connection string (asyncpg's rule in OPAL)", async () => {
      const tenants = new pg.Client({ connectionString: postgres.url.replace(/\/postgres$/, "/tenants") });
      await tenants.connect();
      try {
        await tenants.query("CREATE TABLE IF NOT EXISTS tenants (name text)");
        await tenants.query("DELETE FROM tenants");
        await tenants.query("INSERT INTO tenants VALUES ('acme'), ('globex')");
      } finally {
        await tenants.end();
      }
      // Every part of this url is wrong: only connection_params reach the server.
      const url = "postgresql://nobody@db.invalid:1/postgres";
      await postDataConfig(server, {
        entries: [
          {
            url,
            config: { fetcher: "PostgresFetchProvider", query: "SELECT current_database() AS db, current_user AS role, (SELECT array_agg(name ORDER BY name) FROM tenants) AS tenants", fetch_one: true, connection_params: { host: "127.0.0.1", port: postgres.port, user: "postgres", dbname: "tenants" } },
            topics: ["policy_data"],
            dst_path: "/pg/tenants",
          },
        ],
      });
      await waitForData(client, "/pg/tenants", { db: "tenants", role: "postgres", tenants: ["acme", "globex"] });
    });

    test("a bad query is a failed update in the client's health, and later updates still apply", async () => {
      const updateId = await postDataConfig(server, {
        entries: [
          {
            url: postgres.url,
            config: { fetcher: "PostgresFetchProvider", query: "SELEC name FROM users" },
            topics: ["policy_data/users"],
            dst_path: "/pg/broken",
          },
        ],
        reason: "a query with a syntax error",
      });
      const failure = await waitForFailedUpdate(client, updateId);
      assert.match(failure.error ?? "", /PostgreSQL/);
      assert.match(failure.error ?? "", /syntax error at or near "SELEC"/);
      assert.equal(await client.read("/pg/broken"), undefined);
      // The client is still there: the earlier data is intact and the next update applies.
      assert.deepEqual(await client.read("/pg/alice"), { id: 1, name: "alice", role: "admin" });
      await postgres.query("INSERT INTO users VALUES (4, 'dave', 'admin', true)");
      await postDataConfig(server, {
        entries: [
          {
            url: postgres.url,
            config: { fetcher: "PostgresFetchProvider", query: "SELECT name FROM users WHERE role = 'admin' AND active ORDER BY id" },
            topics: ["policy_data/users"],
            dst_path: "/pg/admins",
          },
        ],
      });
      await waitForData(client, "/pg/admins", [{ name: "alice" }, { name: "dave" }]);
      await waitFor(async () => (await healthStatus(client)) === 200, { message: "client healthy again after a good update" });
    });
  });

  describe("third-party provider from OPAL_FETCH_PROVIDER_MODULES", () => {
    test("the module is loaded by npm name from the client's directory and fetches entries", async () => {
      await postDataConfig(server, {
        entries: [{ url: "echo://inventory/items?x=1", config: { fetcher: "EchoFetchProvider", shelf: 7, tags: ["a", "b"] }, topics: ["plugins/echo"], dst_path: "/echo" }],
      });
      await waitForData(pluginClient, "/echo", { echoed: "echo://inventory/items?x=1", config: { fetcher: "EchoFetchProvider", shelf: 7, tags: ["a", "b"] } });
      // The other client, without the module, is not subscribed and holds nothing.
      assert.equal(await client.read("/echo"), undefined);
    });

    test("an entry naming an unknown fetcher is a failed update naming it", async () => {
      const updateId = await postDataConfig(server, {
        entries: [{ url: "echo://nowhere", config: { fetcher: "NoSuchFetchProvider" }, topics: ["plugins"], dst_path: "/unknown" }],
      });
      const failure = await waitForFailedUpdate(pluginClient, updateId);
      assert.match(failure.error ?? "", /no fetch provider named "NoSuchFetchProvider"/);
      assert.match(failure.error ?? "", /EchoFetchProvider/, "the error lists the known providers");
      // Later updates still apply.
      await postDataConfig(server, { entries: [{ url: "echo://again", config: { fetcher: "EchoFetchProvider" }, topics: ["plugins"], dst_path: "/echo_again" }] });
      await waitForData(pluginClient, "/echo_again", { echoed: "echo://again", config: { fetcher: "EchoFetchProvider" } });
      await waitFor(async () => (await healthStatus(pluginClient)) === 200, { message: "plugin client healthy again" });
    });

    test("a client configured with a module that does not exist fails to start, naming the variable", async () => {
      await assert.rejects(
        // An external store (the running client's OPA), so the failed start leaves no OPA process behind.
        startClient(
          server.url,
          {
            OPAL_DATA_TOPICS: "plugins",
            OPAL_CLIENT_STAT_ID: "broken-plugin-client",
            OPAL_FETCH_PROVIDER_MODULES: '["opal-fetcher-echo", "opal-fetcher-does-not-exist"]',
            OPAL_INLINE_OPA_ENABLED: "false",
            OPAL_POLICY_STORE_URL: pluginClient.opaUrl,
          },
          moduleDir,
        ),
        (error: Error) => {
          assert.match(error.message, /OPAL_FETCH_PROVIDER_MODULES/);
          assert.match(error.message, /opal-fetcher-does-not-exist/);
          return true;
        },
      );
    });
  });

  describe("HttpFetchProvider config", () => {
    test("method POST with a data body and custom headers reaches the source", async () => {
      source.set("/search", { results: ["r1", "r2"] });
      await postDataConfig(server, {
        entries: [
          {
            url: source.url("/search"),
            config: { fetcher: "HttpFetchProvider", method: "post", data: { query: "roles", limit: 2 }, headers: { "X-Tenant": "acme", Authorization: "Bearer s3cret" } },
            topics: ["policy_data"],
            dst_path: "/http/search",
          },
        ],
      });
      await waitForData(client, "/http/search", { results: ["r1", "r2"] });
      const seen = source.requests.filter((entry) => entry.path === "/search");
      assert.equal(seen.length, 1);
      const [hit] = seen;
      assert.equal(hit?.method, "POST");
      assert.deepEqual(JSON.parse(hit?.body ?? "null"), { query: "roles", limit: 2 });
      assert.equal(hit?.headers["x-tenant"], "acme");
      assert.equal(hit?.headers.authorization, "Bearer s3cret");
      assert.equal(hit?.headers["content-type"], "application/json");
    });

    test("without config the fetch is a plain GET with no body", async () => {
      source.set("/plain", { plain: true });
      await postDataConfig(server, { entries: [{ url: source.url("/plain"), topics: ["policy_data"], dst_path: "/http/plain" }] });
      await waitForData(client, "/http/plain", { plain: true });
      const hit = source.requests.find((entry) => entry.path === "/plain");
      assert.equal(hit?.method, "GET");
      assert.equal(hit?.body, "");
    });

    test("is_json: false stores the response text as a JSON string", async () => {
      source.set("/motd", "hello, world: not JSON");
      source.set("/json-text", '{"looks":"like json"}');
      await postDataConfig(server, {
        entries: [
          { url: source.url("/motd"), config: { is_json: false }, topics: ["policy_data"], dst_path: "/http/motd" },
          { url: source.url("/json-text"), config: { fetcher: "HttpFetchProvider", is_json: false }, topics: ["policy_data"], dst_path: "/http/json_text" },
        ],
      });
      await waitForData(client, "/http/motd", "hello, world: not JSON");
      await waitForData(client, "/http/json_text", '{"looks":"like json"}');
    });
  });
});
