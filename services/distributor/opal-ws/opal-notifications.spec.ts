import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { EventSchema } from "../../../gen/opal/mesh/v1/event_pb.js";
import { SaveMethod } from "../../../gen/opal/mesh/v1/data_pb.js";
import { jsonBytes } from "../../common/data-entries.js";
import { opalEventOf, topicCombos, withParentDirectories } from "./opal-notifications.js";

interface UpdateJson {
  entries: Array<{ topics: string[]; save_method: string; dst_path: string; data: unknown }>;
  callback: { callbacks: unknown[] };
}
interface PolicyJson {
  old_policy_hash: string;
  new_policy_hash: string;
  changed_directories: string[];
}
const parse = <T>(text: string | undefined): T => JSON.parse(text ?? "{}") as T;

const dataEvent = (entries: Array<{ topics: string[]; dstPath: string; data?: unknown; saveMethod?: SaveMethod }>, callbacks: Array<{ url: string; configJson?: Uint8Array }> = []) =>
  create(EventSchema, {
    position: 7n,
    topics: [...new Set(entries.flatMap((entry) => entry.topics))],
    payload: {
      case: "dataUpdate",
      value: {
        id: "u1",
        reason: "because",
        entries: entries.map((entry) => ({ url: "", topics: entry.topics, dstPath: entry.dstPath, saveMethod: entry.saveMethod ?? SaveMethod.PUT, ...(entry.data === undefined ? {} : { dataJson: jsonBytes(entry.data) }) })),
        callbacks,
      },
    },
  });

test("topic combos and parent directories are OPAL's", () => {
  assert.deepEqual(topicCombos("policy_data/users/keys"), ["policy_data", "policy_data/users", "policy_data/users/keys"]);
  assert.deepEqual(withParentDirectories(["authz/rules", "."]).sort(), [".", "authz", "authz/rules"]);
  assert.deepEqual(withParentDirectories([]), []);
});

test("a data update is OPAL's DataUpdate, each entry's topics expanded to every prefix, our report URL added to its callbacks", () => {
  const event = dataEvent([{ topics: ["policy_data/users"], dstPath: "/users", data: { alice: 1 } }], [{ url: "https://hooks/a" }, { url: "https://hooks/b", configJson: jsonBytes({ method: "post" }) }]);
  const opal = opalEventOf(event);
  assert.ok(opal !== undefined);
  assert.equal(opal.kind, "data");
  assert.deepEqual(opal.topics, ["policy_data", "policy_data/users"]);
  assert.deepEqual(JSON.parse(opal.body("http://server/data/callback_report/key")), {
    id: "u1",
    reason: "because",
    entries: [{ url: "", config: null, topics: ["policy_data", "policy_data/users"], dst_path: "/users", save_method: "PUT", data: { alice: 1 } }],
    callback: { callbacks: ["https://hooks/a", ["https://hooks/b", { method: "post" }], ["http://server/data/callback_report/key", { method: "post", headers: { "content-type": "application/json" }, process_data: false }]] },
  });
  assert.equal(parse<UpdateJson>(opal.body(undefined)).callback.callbacks.length, 2);
});

test("a scoped client sees its scope's OPAL topic names", () => {
  const opal = opalEventOf(dataEvent([{ topics: ["policy_data/x"], dstPath: "/x", data: 1 }]), "tenant-1");
  assert.deepEqual(opal?.topics, ["tenant-1:data:policy_data", "tenant-1:data:policy_data/x"]);
  assert.deepEqual(parse<UpdateJson>(opal?.body(undefined)).entries[0]?.topics, ["tenant-1:data:policy_data", "tenant-1:data:policy_data/x"]);
});

test("a DELETE reaches OPAL's client as a JSON Patch remove at the parent (OPAL has no DELETE)", () => {
  const opal = opalEventOf(dataEvent([{ topics: ["policy_data"], dstPath: "/users/a~b", saveMethod: SaveMethod.DELETE }]));
  const entry = parse<UpdateJson>(opal?.body(undefined)).entries[0];
  assert.equal(entry?.save_method, "PATCH");
  assert.equal(entry?.dst_path, "/users");
  assert.deepEqual(entry?.data, [{ op: "remove", path: "/a~0b" }]);
});

test("a policy change is OPAL's PolicyUpdateMessage on policy:<dir> for every changed directory and its parents", () => {
  const event = create(EventSchema, { position: 3n, topics: ["policy:authz"], payload: { case: "policyChanged", value: { hash: "new", oldHash: "old", dirs: ["authz/rules"] } } });
  const opal = opalEventOf(event);
  assert.equal(opal?.kind, "policy");
  assert.deepEqual([...(opal?.topics ?? [])].sort(), ["policy:.", "policy:authz", "policy:authz/rules"]);
  const body = parse<PolicyJson>(opal?.body("ignored"));
  assert.equal(body.old_policy_hash, "old");
  assert.equal(body.new_policy_hash, "new");
  assert.deepEqual([...body.changed_directories].sort(), [".", "authz", "authz/rules"]);
  assert.deepEqual(opalEventOf(event, "t1")?.topics.includes("t1:policy:."), true);
});

test("scope notices have no OPAL counterpart", () => {
  assert.equal(opalEventOf(create(EventSchema, { topics: ["t1:scope"], payload: { case: "scopeChanged", value: { scopeId: "t1" } } })), undefined);
});

test("inline data OPAL's client would refuse (not an object or a list) is named", () => {
  assert.match(opalEventOf(dataEvent([{ topics: ["policy_data"], dstPath: "/a", data: { ok: 1 } }, { topics: ["policy_data"], dstPath: "/b", data: 42 }]))?.refusal ?? "", /entries\[1\]: OPAL's client accepts only an object or a list/);
  assert.equal(opalEventOf(dataEvent([{ topics: ["policy_data"], dstPath: "/a", data: [1] }]))?.refusal, undefined);
});
