import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { EventSchema } from "../../gen/opal/mesh/v1/event_pb.js";
import { eventForScope } from "./frames.js";

function dataEvent(entries: Array<{ path: string; topics: string[] }>) {
  return create(EventSchema, {
    position: 7n,
    topics: [...new Set(entries.flatMap((entry) => entry.topics))],
    payload: { case: "dataUpdate", value: { id: "u1", entries: entries.map((entry) => ({ dstPath: entry.path, topics: entry.topics })) } },
  });
}

test("a default-scope event goes out as it is (the same object: one serialization)", () => {
  const event = dataEvent([{ path: "/a", topics: ["policy_data"] }]);
  assert.equal(eventForScope(event, "default"), event);
});

test("a scope's clients get plain topics; the log keeps the scoped event", () => {
  const event = dataEvent([{ path: "/a", topics: ["acme:data:policy_data"] }]);
  const out = eventForScope(event, "acme");
  assert.deepEqual(out.topics, ["policy_data"]);
  assert.equal(out.payload.case, "dataUpdate");
  assert.deepEqual(out.payload.case === "dataUpdate" ? out.payload.value.entries.map((entry) => entry.topics) : [], [["policy_data"]]);
  assert.deepEqual(event.topics, ["acme:data:policy_data"], "the original is untouched");
  assert.equal(out.position, 7n);
});

test("an event mixing scopes (e.g. written straight into Kafka) carries only each scope's own entries", () => {
  const event = dataEvent([
    { path: "/mine", topics: ["acme:data:policy_data"] },
    { path: "/theirs", topics: ["globex:data:policy_data"] },
    { path: "/shared", topics: ["policy_data"] },
  ]);
  const paths = (scope: string): string[] => {
    const out = eventForScope(event, scope);
    return out.payload.case === "dataUpdate" ? out.payload.value.entries.map((entry) => entry.dstPath) : [];
  };
  assert.deepEqual(paths("acme"), ["/mine"]);
  assert.deepEqual(paths("globex"), ["/theirs"]);
  assert.deepEqual(paths("default"), ["/shared"]);
  assert.deepEqual(eventForScope(event, "default").topics, ["policy_data"]);
});

test("a scope's policy and notices keep their kind", () => {
  const policy = create(EventSchema, { topics: ["acme:policy:.", "acme:policy:rbac"], payload: { case: "policyChanged", value: { hash: "h", scope: "acme", dirs: [".", "rbac"] } } });
  assert.deepEqual(eventForScope(policy, "acme").topics, ["policy:.", "policy:rbac"]);
  const notice = create(EventSchema, { topics: ["acme:scope"], payload: { case: "scopeChanged", value: { scopeId: "acme" } } });
  assert.deepEqual(eventForScope(notice, "acme").topics, ["scope"]);
});
