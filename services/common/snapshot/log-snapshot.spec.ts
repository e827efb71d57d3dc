/**
 * The fold, by named cases (test/snapshot-fold.test.ts checks it against a real OPA): what
 * folds into a document, what a later write drops, and what must stay; replay order,
 * scopes and baseline points are kept.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { SaveMethod } from "../../../gen/opal/mesh/v1/data_pb.js";
import { type Event, EventSchema } from "../../../gen/opal/mesh/v1/event_pb.js";
import { LogSnapshot } from "./log-snapshot.js";

let position = 0n;
function data(path: string, value: string | undefined, method = SaveMethod.PUT, topics = ["t"]): Event {
  return create(EventSchema, { position: ++position, topics, payload: { case: "dataUpdate", value: { id: `u${position}`, entries: [{ dstPath: path, topics, saveMethod: method, ...(value === undefined ? {} : { dataJson: Buffer.from(value) }) }] } } });
}
const paths = (snapshot: LogSnapshot, topics = ["t"]) => snapshot.view("default", topics).afterBaseline.map((item) => `${item.entry?.dstPath}=${Buffer.from(item.entry?.dataJson ?? []).toString()}`);
const methods = (snapshot: LogSnapshot, topics = ["t"]) => snapshot.view("default", topics).afterBaseline.map((item) => `${SaveMethod[item.entry?.saveMethod ?? 0]} ${item.entry?.dstPath}`);
const fold = (...events: Event[]) => {
  const snapshot = new LogSnapshot();
  for (const event of events) snapshot.fold(event);
  return snapshot;
};

test("a later PUT at the same path and topics drops the earlier one; a PATCH elsewhere does not keep it", () => {
  const snapshot = new LogSnapshot();
  for (const event of [data("/a", "1"), data("/b", "2"), data("/a", "3")]) snapshot.fold(event);
  assert.deepEqual(paths(snapshot), ["/b=2", "/a=3"]);
  // Under a number OPA refuses it: dropped, the state is the same.
  snapshot.fold(data("/b", '[{"op":"add","path":"/x","value":1}]', SaveMethod.PATCH));
  snapshot.fold(data("/a", "4"));
  assert.deepEqual(paths(snapshot), ["/b=2", "/a=4"]);
  assert.equal(snapshot.stats.entries, 2);
  assert.equal(snapshot.position, position);
});

test("other topics, array indexes and a baseline point keep what came before", () => {
  const snapshot = new LogSnapshot();
  snapshot.fold(data("/c", "1", SaveMethod.PUT, ["t", "u"]));
  snapshot.fold(data("/c", "2"));
  snapshot.fold(data("/l/0", "1"));
  snapshot.fold(data("/l/0", "2"));
  assert.deepEqual(paths(snapshot), ["/c=1", "/c=2", "/l/0=1", "/l/0=2"]);
  assert.deepEqual(paths(snapshot, ["u"]), ["/c=1"], "a client of u alone sees what it applied");
  snapshot.fold(create(EventSchema, { position: ++position, topics: ["default:scope"], payload: { case: "scopeChanged", value: { scopeId: "default" } } }));
  snapshot.fold(data("/c", "3"));
  const view = snapshot.view("default", ["t"]);
  assert.equal(view.beforeBaseline.length, 4);
  assert.deepEqual(view.afterBaseline.map((item) => item.entry?.dstPath), ["/c"]);
});

test("a view is a copy; export and restore give the same views", () => {
  const snapshot = new LogSnapshot();
  snapshot.fold(data("/a", "1"));
  const before = snapshot.view("default", ["t"]);
  snapshot.fold(data("/a", "2"));
  assert.deepEqual(before.afterBaseline.map((item) => item.entry?.dataJson?.toString()), ["1"]);
  const copy = new LogSnapshot();
  copy.restore(snapshot.export());
  assert.deepEqual(paths(copy), paths(snapshot));
  assert.deepEqual(copy.stats, snapshot.stats);
});

test("PATCHes, PUTs and DELETEs below a document of the same topics fold into it; a view taken before keeps what it had", () => {
  const snapshot = fold(data("/users/u1", '{"roles":["r"],"team":"a"}'));
  const before = snapshot.view("default", ["t"]);
  snapshot.fold(data("/users/u1", '[{"op":"add","path":"/roles/-","value":"w"},{"op":"replace","path":"/team","value":"b"}]', SaveMethod.PATCH));
  snapshot.fold(data("/users/u1/attributes/level", "3"));
  snapshot.fold(data("/users/u1/team", undefined, SaveMethod.DELETE));
  assert.deepEqual(paths(snapshot), ['/users/u1={"roles":["r","w"],"attributes":{"level":3}}']);
  assert.equal(snapshot.stats.entries, 1);
  assert.equal(snapshot.stats.bytes, 64 + Buffer.byteLength('{"roles":["r","w"],"attributes":{"level":3}}') + "/users/u1".length);
  assert.deepEqual(before.afterBaseline.map((item) => Buffer.from(item.entry?.dataJson ?? []).toString()), ['{"roles":["r"],"team":"a"}']);
  // Other topics, or a write in between that overlaps: each stays in its turn.
  snapshot.fold(data("/users/u1", '[{"op":"add","path":"/x","value":1}]', SaveMethod.PATCH, ["u"]));
  snapshot.fold(data("/users/u1", '[{"op":"add","path":"/y","value":2}]', SaveMethod.PATCH));
  assert.equal(snapshot.stats.entries, 3);
});

test("a document deleted after its PUT leaves its ancestors: PATCH [] then DELETE (one PATCH adding and removing would leave null in OPA)", () => {
  const snapshot = fold(data("/a/b/c", '{"x":1}'), data("/a/b/c", undefined, SaveMethod.DELETE));
  assert.deepEqual(methods(snapshot), ["PATCH /a/b/c", "DELETE /a/b/c"]);
  assert.equal(paths(snapshot)[0], "/a/b/c=[]");
  assert.equal(snapshot.stats.entries, 2);
  assert.deepEqual(methods(fold(data("/top", "1"), data("/top", undefined, SaveMethod.DELETE))), ["DELETE /top"], "at depth 1 there is nothing to keep");
  const again = fold(data("/a/b/c", '{"x":1}'), data("/a/b/c", undefined, SaveMethod.DELETE), data("/a/b/c/d", "2"));
  assert.deepEqual(paths(again), ["/a/b/c=[]", '/a/b/c={"d":2}'], "written into again, the DELETE is a document once more");
  assert.equal(again.stats.entries, 2);
});

test("a PUT above earlier writes drops them, unless a PATCH between reads them and writes elsewhere", () => {
  assert.deepEqual(paths(fold(data("/a/b", "1"), data("/a/c", "2"), data("/a", "{}", SaveMethod.PUT, ["t/x"]))), ["/a={}"], "every client of t has t/x too");
  assert.deepEqual(paths(fold(data("/a/b", "1", SaveMethod.PUT, ["t/x"]), data("/a", "{}"))).length, 2, "a client of t/x alone does not get the PUT");
  const blocked = fold(data("/a/b", "1"), data("/", '[{"op":"replace","path":"/a/b","value":2},{"op":"add","path":"/x","value":3}]', SaveMethod.PATCH, ["u"]), data("/a", "{}"));
  assert.deepEqual(paths(blocked, ["t", "u"]).length, 3);
  const beside = fold(data("/a/b", "1"), data("/", '[{"op":"add","path":"/x","value":3}]', SaveMethod.PATCH, ["u"]), data("/a", "{}"));
  assert.deepEqual(paths(beside, ["t", "u"]).length, 2, "a PATCH that reads elsewhere does not keep it");
});

test("a DELETE above other topics' documents keeps the ancestors they made: the newest becomes PATCH [] at the deleted path", () => {
  const snapshot = fold(data("/a/b/c", "1"), data("/a/b/d", "2"), data("/a/b/e", undefined, SaveMethod.DELETE), data("/a/b", undefined, SaveMethod.DELETE, ["t/x"]));
  assert.deepEqual(methods(snapshot), ["PATCH /a/b", "DELETE /a/b"]);
  assert.deepEqual(methods(fold(data("/a/b", "1"), data("/a", undefined, SaveMethod.DELETE, ["t/x"]))), ["DELETE /a"], "at depth 1, dropped outright");
  assert.equal(fold(data("/a/b", "1", SaveMethod.PUT, ["u"]), data("/a", undefined, SaveMethod.DELETE)).stats.entries, 2, "u is not covered by t");
});

test("a restored snapshot folds on as the one it came from; what cannot be reasoned about stays: a URL PATCH, bytes that are not JSON", () => {
  const first = [data("/a", '{"x":1}'), data("/b/c", "1"), data("/b/c", undefined, SaveMethod.DELETE), data("/a/z", '{"l":[1]}')];
  const then = [data("/a", '[{"op":"add","path":"/y","value":2}]', SaveMethod.PATCH), data("/b/c/d", "2"), data("/a/z/l/0", "5")];
  const straight = fold(...first, ...then);
  const restored = new LogSnapshot();
  restored.restore(fold(...first).export());
  for (const event of then) restored.fold(event);
  assert.deepEqual(restored.export(), straight.export());
  assert.deepEqual(restored.stats, straight.stats);
  const wild = fold(data("/a", '{"x":1}'), data("/a", undefined, SaveMethod.PATCH), data("/a", "2"));
  assert.equal(wild.stats.entries, 3, "a URL PATCH (its operations unknown) keeps what it may read, and itself");
  assert.equal(fold(data("/a", '{"x":1}'), data("/a", '{"y":')).stats.entries, 2, "a PUT OPA refuses replaces nothing");
});
