/**
 * The sync state against an in-memory store: how Welcome, Resync and events move the
 * resume point, that the durable position moves only once its transaction committed
 * (policy writes included, through the data transactions), that a status found gone is a
 * lost OPA, and which jobs are acknowledged, how.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { DataSourceEntrySchema } from "../../gen/opal/mesh/v1/data_pb.js";
import { AckStatus, ResyncSchema, WelcomeSchema } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { EventSchema } from "../../gen/opal/mesh/v1/event_pb.js";
import { DataTransactions, StoreLostStateError } from "./data/data-transaction.js";
import type { JobKind, JobResult } from "./data/update-pipeline.js";
import { ClientHealth } from "./health.js";
import type { StatusSnapshot } from "./opa-status.js";
import { type PatchOperation, type PolicyStore, PolicyStoreError } from "./policy-store.js";
import { type AckFields, SyncState } from "./sync-state.js";

/** Holds the status document only; `lose()` empties it, as an OPA that restarted. */
class StatusStore implements PolicyStore {
  readonly name = "memory";
  status: unknown;
  patches: PatchOperation[][] = [];
  failNext: Error | undefined;
  isHealthy = () => Promise.resolve(true);
  writeData = () => Promise.resolve();
  readData = () => Promise.resolve(this.status);
  putPolicy = () => Promise.resolve();
  deletePolicy = () => Promise.resolve();
  listPolicies = () => Promise.resolve([]);
  close = () => Promise.resolve();
  exists(path: string): Promise<boolean> {
    return Promise.resolve(path === "/system" || (path === "/system/opal" && this.status !== undefined));
  }
  patch(operations: readonly PatchOperation[]): Promise<void> {
    if (this.failNext !== undefined) {
      const failure = this.failNext;
      this.failNext = undefined;
      return Promise.reject(failure);
    }
    const status = operations.find((operation) => operation.path === "/system/opal");
    if (status?.op === "replace" && this.status === undefined) return Promise.reject(new PolicyStoreError("OPA refused PATCH /: 404 document missing", 404));
    this.patches.push([...operations]);
    if (status?.value instanceof Uint8Array) this.status = JSON.parse(Buffer.from(status.value).toString()) as unknown;
    return Promise.resolve();
  }
  lose(): void {
    this.status = undefined;
  }
}

function setup() {
  const store = new StatusStore();
  const health = new ClientHealth(true, true);
  const acks: AckFields[] = [];
  const lost: string[] = [];
  const sync = new SyncState({ health, clientId: "c", transactions: new DataTransactions(store), sendAck: (ack) => acks.push(ack), onLost: (reason) => lost.push(reason) });
  return { store, health, acks, lost, sync };
}

const signal = new AbortController().signal;
const snapshot = (baselineLoaded: boolean, lost = false): StatusSnapshot => ({
  mark: { logId: "log-1", position: 5n },
  policyHash: "p1",
  rootDataKeys: [],
  baselineLoaded,
  ready: baselineLoaded,
  ...(lost ? { lost: { at: undefined, reason: "earlier", notHeld: [], complete: true } } : {}),
});

test("the resume point: Welcome, events, Resync", async (t) => {
  await t.test("a fresh Welcome loads everything at the head, which becomes the resume point", () => {
    const { sync } = setup();
    const next = sync.welcomed(create(WelcomeSchema, { logId: "log-1", headPosition: 9n }), false);
    assert.deepEqual(next, { load: "all", mark: { logId: "log-1", position: 9n } });
    assert.deepEqual(sync.resumePoint, { logId: "log-1", position: 9n });
  });
  await t.test("each event moves it, in the same log", () => {
    const { sync } = setup();
    sync.welcomed(create(WelcomeSchema, { logId: "log-1", headPosition: 9n }), false);
    assert.deepEqual(sync.eventReceived(create(EventSchema, { position: 10n })), { logId: "log-1", position: 10n });
    assert.deepEqual(sync.resumePoint, { logId: "log-1", position: 10n });
  });
  await t.test("a Resync moves it to the new head", () => {
    const { sync } = setup();
    sync.restore(snapshot(true));
    assert.deepEqual(sync.resynced(create(ResyncSchema, { headPosition: 40n, reason: "too far behind" })), { logId: "log-1", position: 40n });
  });
  const cases: Array<[string, StatusSnapshot, string[]]> = [
    ["a complete baseline resumes with nothing to load", snapshot(true), ["none", "none"]],
    ["an unfinished baseline loads the data once after resuming", snapshot(false), ["data", "none"]],
    ["a loss an earlier run recorded loads the data again", snapshot(true, true), ["data", "none"]],
  ];
  for (const [name, restored, expected] of cases) {
    await t.test(name, () => {
      const { sync } = setup();
      sync.restore(restored);
      assert.deepEqual(sync.resumePoint, restored.mark, "resumes from OPA's position");
      const welcome = create(WelcomeSchema, { logId: "log-1", headPosition: 50n });
      assert.deepEqual([sync.welcomed(welcome, true).load, sync.welcomed(welcome, true).load], expected);
      assert.deepEqual(sync.resumePoint, restored.mark, "a resumed Welcome does not move it");
    });
  }
});

test("the durable position moves once its transaction committed", async () => {
  const { store, sync } = setup();
  const entry = create(DataSourceEntrySchema, { dstPath: "/users", dataJson: Buffer.from("{}") });
  await sync.commit([{ entry, data: Buffer.from("{}") }], signal, { mark: { logId: "log-1", position: 3n } });
  assert.deepEqual(sync.position, { logId: "log-1", position: 3n });
  assert.equal(sync.written, true);
  assert.equal((store.status as { position: number }).position, 3);

  store.failNext = new PolicyStoreError("OPA refused PATCH /: 400 bad", 400);
  await assert.rejects(sync.commit([{ entry, data: Buffer.from("{}") }], signal, { mark: { logId: "log-1", position: 4n } }), /400/);
  assert.deepEqual(sync.position, { logId: "log-1", position: 3n }, "a refused transaction leaves the position");

  await sync.commit([], signal);
  assert.equal((store.status as { position: number }).position, 3, "no mark: the position OPA holds is written again");
});

test("policy writes go through the data transactions: the first adds the status, later ones replace it, a replace that finds it gone is a lost OPA", async () => {
  const { store, sync, lost, health } = setup();
  sync.policyApplied("p1", ["users"]);
  assert.equal(health.policyHash, "p1");
  await sync.commit([], signal, { mark: { logId: "log-1", position: 1n } });
  assert.equal(store.patches[0]?.find((operation) => operation.path === "/system/opal")?.op, "add");
  assert.deepEqual((store.status as { policy: unknown }).policy, { hash: "p1", root_data_keys: ["users"] });
  await sync.commit([], signal, { mark: { logId: "log-1", position: 2n } });
  assert.equal(store.patches[1]?.find((operation) => operation.path === "/system/opal")?.op, "replace");

  store.lose();
  await assert.rejects(sync.commit([], signal, { mark: { logId: "log-1", position: 3n } }), StoreLostStateError);
  assert.equal(lost.length, 1, "the loss is reported once");
  assert.deepEqual(sync.position, { logId: "log-1", position: 2n });
  sync.forget();
  assert.deepEqual([sync.resumePoint, sync.position, sync.written, sync.policyHash], [undefined, undefined, false, ""]);
});

test("acknowledge: every job that took a log position's turn, and only those", async (t) => {
  const result = (kind: JobKind, ok: boolean, position?: bigint, errors: { job?: string; entries?: string[] } = {}): JobResult => ({
    job: { kind, updateId: kind === "policy" ? "" : `${kind}-1`, reason: "test", entries: [], ...(position === undefined ? {} : { position, logId: "log-1" }) },
    ok,
    entries: (errors.entries ?? []).map((error) => ({ entry: create(DataSourceEntrySchema, {}), fetched: true, saved: false, error })),
    ...(errors.job === undefined ? {} : { error: errors.job }),
  });
  const cases: Array<[string, JobResult, Array<Pick<AckFields, "position" | "updateId" | "status" | "error">>]> = [
    ["an applied event", result("event", true, 7n), [{ position: 7n, updateId: "event-1", status: AckStatus.APPLIED, error: "" }]],
    ["a baseline at its head", result("baseline", true, 3n), [{ position: 3n, updateId: "baseline-1", status: AckStatus.APPLIED, error: "" }]],
    ["a failed event names every failure", result("event", false, 8n, { entries: ["a failed", "b failed"] }), [{ position: 8n, updateId: "event-1", status: AckStatus.FAILED, error: "a failed; b failed" }]],
    ["a failed policy change", result("policy", false, 9n, { job: "no bundle" }), [{ position: 9n, updateId: "", status: AckStatus.FAILED, error: "no bundle" }]],
    ["a policy sync without a position (a triggered refresh)", result("policy", true), []],
    ["a periodic refetch", result("periodic", true), []],
    ["a manual reload", result("manual", false, undefined, { job: "down" }), []],
  ];
  for (const [name, given, expected] of cases) {
    await t.test(name, () => {
      const { sync, acks, health } = setup();
      sync.acknowledge(given);
      assert.deepEqual(
        acks.map(({ position, updateId, status, error }) => ({ position, updateId, status, error })),
        expected,
      );
      assert.equal(health.appliedPosition, expected[0]?.position ?? 0n);
    });
  }
});

test("with a snapshot to follow, the head becomes the resume point only once the snapshot arrived whole", () => {
  const { sync } = setup();
  const next = sync.welcomed(create(WelcomeSchema, { headPosition: 9n, logId: "L", snapshotFollows: true }), false);
  assert.deepEqual(next, { load: "all", mark: { logId: "L", position: 9n } });
  // A stream cut now starts fresh again (and gets the snapshot again).
  assert.equal(sync.resumePoint, undefined);
  sync.snapshotReceived({ logId: "L", position: 9n });
  assert.deepEqual(sync.resumePoint, { logId: "L", position: 9n });
  // A Resync with a snapshot keeps the old resume point until it arrives, too.
  const mark = sync.resynced(create(ResyncSchema, { reason: "r", headPosition: 20n, snapshotFollows: true }));
  assert.deepEqual(mark, { logId: "L", position: 20n });
  assert.deepEqual(sync.resumePoint, { logId: "L", position: 9n });
  sync.snapshotReceived(mark);
  assert.deepEqual(sync.resumePoint, { logId: "L", position: 20n });
});
