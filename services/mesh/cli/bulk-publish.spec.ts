import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { DeliveryState, UpdateStatusSchema } from "../../../gen/opal/mesh/v1/delivery_pb.js";
import { BulkReport, numberedLines, parseBulkLine } from "./bulk-publish.js";
import { ExitCode } from "./shared.js";

const noWait = { wait: false, timeoutMs: 30_000 };

test("an NDJSON line as an update", async (t) => {
  await t.test("OPAL's DataUpdate JSON, proto field names as OPAL writes them", () => {
    const parsed = parseBulkLine('{"id":"u1","entries":[{"url":"","data":{"a":1},"dst_path":"/x","topics":["t"],"save_method":"PATCH"}],"reason":"why"}', 3, noWait);
    assert.ok(parsed !== undefined && "update" in parsed);
    assert.equal(parsed.line, 3);
    assert.equal(parsed.update.id, "u1");
    assert.equal(parsed.update.reason, "why");
    assert.deepEqual(parsed.update.entries.map((entry) => [entry.dstPath, entry.saveMethod, entry.topics]), [["/x", "PATCH", ["t"]]]);
    assert.equal(parsed.update.wait, false);
  });
  await t.test("fields OPAL does not define are ignored, as its REST route ignores them", () => {
    const parsed = parseBulkLine('{"entries":[{"dst_path":"/x","data":1,"periodic_update_interval":5}],"extra":true}', 1, noWait);
    assert.ok(parsed !== undefined && "update" in parsed);
  });
  await t.test("--wait and --timeout go into every update", () => {
    const parsed = parseBulkLine('{"entries":[{"dst_path":"/x","data":1}]}', 1, { wait: true, timeoutMs: 5_000 });
    assert.ok(parsed !== undefined && "update" in parsed);
    assert.equal(parsed.update.wait, true);
    assert.equal(parsed.update.waitTimeoutMs, 5_000);
  });
  await t.test("blank lines are no updates", () => {
    assert.equal(parseBulkLine("   ", 4, noWait), undefined);
  });
  const problems: Array<[string, string, RegExp]> = [
    ["invalid JSON", '{"entries": [', /^not valid JSON/],
    ["a list", "[1,2]", /expected a JSON object/],
    ["a string", '"x"', /expected a JSON object/],
    ["a field of the wrong type, named without the package", '{"entries":[{"dst_path":5}]}', /DataSourceEntryInput\.dst_path/],
  ];
  for (const [name, text, problem] of problems) {
    await t.test(`${name}: a problem naming the line`, () => {
      const parsed = parseBulkLine(text, 7, noWait);
      assert.ok(parsed !== undefined && "problem" in parsed, JSON.stringify(parsed));
      assert.equal(parsed.line, 7);
      assert.match(parsed.problem, problem);
      assert.doesNotMatch(parsed.problem, /opal\.mesh\.v1\./);
    });
  }
});

test("lines are numbered from 1, CRLF or LF, blank ones counted", async () => {
  const lines = [];
  for await (const line of numberedLines(Readable.from(["a\r\n", "\nb", "\nc\n"]))) lines.push([line.line, line.text]);
  assert.deepEqual(lines, [[1, "a"], [2, ""], [3, "b"], [4, "c"]]);
});

const delivered = (failed: number, pending: number) =>
  create(UpdateStatusSchema, { known: true, applied: 1, failed, pending, clients: failed > 0 ? [{ clientId: "c1", state: DeliveryState.FAILED, error: "fetch: 500" }] : [] });

test("the report: refusals by line, totals, the last position, and the exit code", async (t) => {
  await t.test("all published: exit 0", () => {
    const report = new BulkReport();
    report.outcome(1, { index: 0, id: "a", position: 10n });
    report.outcome(2, { index: 1, id: "b", position: 11n });
    assert.deepEqual(report.lines(false), ["published 2 of 2 updates, 0 refused, last position 11"]);
    assert.equal(report.exitCode(), ExitCode.ok);
  });
  await t.test("a refused line and a malformed one: both named, the others still counted, exit 3", () => {
    const report = new BulkReport();
    report.outcome(1, { index: 0, id: "a", position: 10n });
    report.outcome(4, { index: 1, id: "", position: 0n, error: { code: "INVALID_ARGUMENT", message: "entries[0].dst_path: must start with /", field: "entries[0].dst_path" } });
    report.malformed(2, "not valid JSON (Unexpected end)");
    report.outcome(5, { index: 2, id: "c", position: 12n });
    assert.deepEqual(report.lines(false), [
      "line 2: refused: not sent: not valid JSON (Unexpected end)",
      "line 4: refused: INVALID_ARGUMENT: entries[0].dst_path: must start with /",
      "published 2 of 4 updates, 2 refused, last position 12",
    ]);
    assert.equal(report.exitCode(), ExitCode.refused);
  });
  await t.test("with --wait: a failed delivery names its line and client, exit 1", () => {
    const report = new BulkReport();
    report.outcome(1, { index: 0, id: "a", position: 10n, delivery: delivered(0, 0) });
    report.outcome(2, { index: 1, id: "b", position: 11n, delivery: delivered(1, 0) });
    assert.deepEqual(report.lines(true), ["line 2: failed by 1 client(s) (c1: fetch: 500)", "published 2 of 2 updates, 0 refused, last position 11", "delivery: 1 applied by every addressed client, 1 failed by a client, 0 still pending"]);
    assert.equal(report.exitCode(), ExitCode.failed);
  });
  await t.test("with --wait: still pending at the timeout, or the wait itself failed: exit 2", () => {
    const report = new BulkReport();
    report.outcome(1, { index: 0, id: "a", position: 10n, delivery: delivered(0, 1) });
    report.outcome(2, { index: 1, id: "b", position: 11n, error: { code: "UNAVAILABLE", message: "no distributor", field: "" } });
    assert.equal(report.published, 2, "both were published");
    assert.deepEqual(report.deliveries, { applied: 0, failed: 0, pending: 2, unconfirmed: 0 });
    assert.equal(report.exitCode(), ExitCode.timeout);
  });
  await t.test("with --wait: OPAL clients without update reports are named once, not counted as applied, exit 0", () => {
    const report = new BulkReport();
    const unconfirmed = (ids: string[]) =>
      create(UpdateStatusSchema, { known: true, complete: true, applied: 1, unconfirmed: ids.length, clients: [{ clientId: "mesh", state: DeliveryState.APPLIED }, ...ids.map((clientId) => ({ clientId, state: DeliveryState.SENT_UNCONFIRMED }))] });
    report.outcome(1, { index: 0, id: "a", position: 10n, delivery: unconfirmed(["opal:b", "opal:a"]) });
    report.outcome(2, { index: 1, id: "b", position: 11n, delivery: unconfirmed(["opal:a"]) });
    report.outcome(3, { index: 2, id: "c", position: 12n, delivery: delivered(0, 0) });
    assert.deepEqual(report.deliveries, { applied: 1, failed: 0, pending: 0, unconfirmed: 2 });
    assert.equal(
      report.lines(true).at(-1),
      "delivery: 1 applied by every addressed client, 0 failed by a client, 0 still pending, 2 sent, unconfirmed by 2 client(s) that cannot confirm (OPAL clients without update reports): opal:a, opal:b",
    );
    assert.equal(report.exitCode(), ExitCode.ok);
  });
  await t.test("nothing published: no last position", () => {
    const report = new BulkReport();
    report.malformed(1, "expected a JSON object");
    assert.deepEqual(report.lines(false).at(-1), "published 0 of 1 update, 1 refused");
  });
});
