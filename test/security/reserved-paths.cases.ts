/** Security cases: no publisher writes into OPA's system namespace or the client's own documents. */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { connectOutcome, type Tally } from "../helpers/attacks.js";
import { authEnv, call, issueToken, rsaKeys } from "../helpers/auth.js";
import { DataSource } from "../helpers/data-source.js";
import { GitRepo, tempDir } from "../helpers/git-repo.js";
import { type RunningClient, type RunningServer, startClient, startServer, waitForData } from "../helpers/mesh.js";
import { waitFor } from "../helpers/wait.js";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { TriggerService } from "../../gen/opal/mesh/v1/trigger_pb.js";

/** Every spelling of a path in data.system the issue tried, and the ones normalisation must catch. */
const RESERVED = ["/system", "system", "system/opal", "/system/opal", "/system/opal_mesh", "/system/opal_mesh/policy", "/system/version", "/system/authz", "//system/opal", "/./system", "/users/../system/opal", "/%73ystem/opal", "/%2Fsystem", "/users%2F..%2Fsystem", "/%2573ystem"];

export function reservedPathCases(tally: Tally): void {
  describe("reserved paths: OPA's system namespace and the client's own documents", () => {
    const keys = rsaKeys();
    const repo = new GitRepo();
    const source = new DataSource();
    let server: RunningServer;
    let client: RunningClient;
    let datasource = "";
    let before_: { opal: unknown; opalMesh: unknown } = { opal: undefined, opalMesh: undefined };

    const publish = async (entry: Record<string, unknown>): Promise<number> =>
      (await call(`${server.url}/data/config`, { method: "POST", token: datasource, body: { entries: [{ topics: ["policy_data"], ...entry }] } })).status;

    before(async () => {
      await source.start();
      // An external data sources config: entries the server never sees, so only the client can refuse them.
      const sources = {
        entries: [
          { url: "", data: { owned: true }, dst_path: "/system/opal_mesh/policy", topics: ["policy_data"] },
          { url: "", data: { owned: true }, dst_path: "%73ystem/authz", topics: ["policy_data"] },
          { url: "", data: [{ op: "add", path: "/system/authz", value: { allow: true } }], save_method: "PATCH", dst_path: "/", topics: ["policy_data"] },
          { url: "", data: { fine: true }, dst_path: "/fine", topics: ["policy_data"] },
        ],
      };
      repo.commit({ "rbac/policy.rego": "package app.rbac\n\ndefault allow := false\n" }, "main");
      server = await startServer({
        ...authEnv(keys),
        OPAL_POLICY_REPO_URL: repo.dir,
        OPAL_POLICY_REPO_MAIN_BRANCH: "main",
        OPAL_POLICY_REPO_CLONE_PATH: tempDir("opal-mesh-rp-clones-"),
        OPAL_DATA_CONFIG_SOURCES: JSON.stringify({ external_source_url: source.url("/sources") }),
      });
      datasource = await issueToken(server.url, { type: "datasource" });
      const clientToken = await issueToken(server.url, { type: "client" });
      // The client follows external_source_url with its token in the query, as OPAL does.
      source.set(`/sources?token=${clientToken}`, sources);
      client = await startClient(server.url, { OPAL_CLIENT_TOKEN: clientToken, OPAL_AUTH_PUBLIC_KEY: keys.publicPem, OPAL_CLIENT_STAT_ID: "reserved-paths-client" });
      await waitForData(client, "/fine", { fine: true });
      await waitFor(async () => JSON.stringify(await client.read("/system/opal")).includes("refused to write"), { message: () => "the client's status names the refused baseline entries" });
      before_ = { opal: await client.read("/system/opal"), opalMesh: await client.read("/system/opal_mesh") };
    });

    after(async () => {
      await client?.stop();
      await server?.stop();
      await source.stop();
    });

    test("PUT, PATCH and DELETE of every spelling are refused at publish (422)", async () => {
      for (const dst of RESERVED) {
        await tally.attempt("write into data.system", 422, () => publish({ url: "", data: { owned: true }, dst_path: dst }), `PUT ${dst}`);
        await tally.attempt("write into data.system", 422, () => publish({ url: "", data: [{ op: "add", path: "/x", value: 1 }], save_method: "PATCH", dst_path: dst }), `PATCH ${dst}`);
        await tally.attempt("write into data.system", 422, () => publish({ save_method: "DELETE", dst_path: dst }), `DELETE ${dst}`);
      }
      await tally.attempt("write into data.system", 422, () => publish({ url: source.url("/sources"), dst_path: "/system/opal" }), "PUT from a URL");
    });

    test("the 422 names the field", async () => {
      const answer = await call(`${server.url}/data/config`, { method: "POST", token: datasource, body: { entries: [{ url: "", data: 1, dst_path: "/fine" }, { url: "", data: 1, dst_path: "/%73ystem/opal" }] } });
      assert.equal(answer.status, 422);
      assert.match(JSON.stringify(answer.json), /entries\[1\]\.dst_path|"entries",1,"dst_path"/);
      assert.match(JSON.stringify(answer.json), /client's own document \/system\/opal/);
    });

    test("JSON Patch operations and root documents that land in data.system are refused at publish", async () => {
      const patches: Array<[string, string, unknown]> = [
        ["/", "op into system", [{ op: "add", path: "/system/opal", value: { ready: true } }]],
        ["", "op into system, empty dst_path", [{ op: "replace", path: "/system/authz", value: {} }]],
        ["/users", "op climbing out", [{ op: "remove", path: "/../system/opal_mesh" }]],
        ["/", "replace the root with a system key", [{ op: "replace", path: "", value: { system: {} } }]],
      ];
      for (const [dst, name, data] of patches) await tally.attempt("JSON Patch into data.system", 422, () => publish({ url: "", data, save_method: "PATCH", dst_path: dst }), name);
      for (const dst of ["/", ""]) await tally.attempt("root document with a system key", 422, () => publish({ url: "", data: { users: [], system: { authz: { allow: true } } }, dst_path: dst }), `dst_path ${JSON.stringify(dst)}`);
    });

    test("the Connect route refuses the same", async () => {
      const trigger = createClient(TriggerService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", interceptors: [(next) => (request) => (request.header.set("authorization", `Bearer ${datasource}`), next(request))] }));
      for (const dstPath of ["/system/opal", "system/opal_mesh", "/%73ystem"]) {
        await tally.attempt("write into data.system", "InvalidArgument", () => connectOutcome(() => trigger.publishDataUpdate({ entries: [{ dstPath, topics: ["policy_data"], data: create(ValueSchema, { kind: { case: "stringValue", value: "owned" } }) }] })), `Connect ${dstPath}`);
      }
    });

    test("entries the server never saw (an external data sources config) are refused by the client", async () => {
      const status = JSON.stringify(before_.opal);
      await tally.attempt("write into data.system (client-side)", "refused", async () => (status.includes("refused to write PUT /system/opal_mesh/policy") ? "refused" : status), "PUT /system/opal_mesh/policy");
      await tally.attempt("write into data.system (client-side)", "refused", async () => (status.includes("refused to write PUT /%73ystem/authz") ? "refused" : status), "PUT %73ystem/authz");
      await tally.attempt("write into data.system (client-side)", "refused", async () => (/refused to write PATCH \/ from inline data: operation 0 path/.test(status) ? "refused" : status), "PATCH / with an op into system");
      assert.equal(await client.read("/system/authz"), undefined);
      assert.notDeepEqual(await client.read("/system/opal_mesh/policy"), { owned: true });
    });

    test("afterwards the client's documents are its own and it still serves", async () => {
      assert.equal(await client.read("/system/authz"), undefined, "OPA's system.authz untouched");
      assert.deepEqual(await client.read("/system/opal_mesh"), before_.opalMesh, "the client's own records untouched");
      assert.equal(((await client.read("/system/opal")) as { client_id?: string } | undefined)?.client_id, "reserved-paths-client", "the status is the client's");
      assert.equal(await publish({ url: "", data: { still: "served" }, dst_path: "/served" }), 200);
      await waitForData(client, "/served", { still: "served" });
    });
  });
}
