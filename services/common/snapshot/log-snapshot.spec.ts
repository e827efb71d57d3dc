/** The interim fold: only certainly-dead entries go; replay order, scopes and baseline points are kept. */
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
