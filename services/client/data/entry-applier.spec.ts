import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import { DataSourceEntrySchema, SaveMethod } from "../../../gen/opal/mesh/v1/data_pb.js";
import { silentLogger } from "../../common/logger.js";
import { ReservedPaths } from "../../common/reserved-paths.js";
import { UrlAllowlist } from "../../common/url-allowlist.js";
import { StreamedSource } from "../fetch/streamed-source.js";
import { FetchProviderRegistry } from "../fetch/registry.js";
import { ClientHealth } from "../health.js";
import { SyncState } from "../sync-state.js";
import { type DataWrite, type PatchOperation, type PolicyStore, PolicyStoreError } from "../policy-store.js";
import { DataTransactions } from "./data-transaction.js";
import { EntryApplier } from "./entry-applier.js";
import { MemoryStore } from "./spec-support/memory-store.js";
import type { UpdateJob } from "./update-pipeline.js";

const BIG = JSON.stringify({ users: Array.from({ length: 2_000 }, (_, index) => ({ index })) });

/** /big answers BIG; /flaky does too, but only the first time (later it breaks off). */
async function serve(t: TestContext): Promise<(path: string) => string> {
  const hits = new Map<string, number>();
  const server = http.createServer((request, response) => {
    const path = request.url ?? "/";
    const hit = (hits.get(path) ?? 0) + 1;
    hits.set(path, hit);
    response.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(BIG) });
    if (path === "/flaky" && hit > 1) response.end(BIG.slice(0, 100), () => response.destroy());
    else response.end(BIG);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return (path) => `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`;
}

/** Applies patches to a map of path → JSON text, reading streamed values to their end as OPA does. */
class RecordingStore implements PolicyStore {
  readonly name = "recording";
  readonly documents = new Map<string, string>();
  patches = 0;
  async patch(operations: readonly PatchOperation[]): Promise<void> {
    this.patches++;
    const staged = new Map<string, string>();
    for (const { path, value } of operations) {
      if (value === undefined) continue;
      const chunks: Uint8Array[] = [];
      if (value instanceof Uint8Array) chunks.push(value);
      else for await (const chunk of value.chunks()) chunks.push(chunk);
      staged.set(path, Buffer.concat(chunks).toString());
    }
    for (const [path, text] of staged) this.documents.set(path, text);
  }
  async exists(): Promise<boolean> {
    return true;
  }
  async isHealthy(): Promise<boolean> {
    return true;
  }
  async writeData(_write: DataWrite): Promise<void> {}
  async readData(): Promise<unknown> {
    return undefined;
  }
  async putPolicy(): Promise<void> {}
  async deletePolicy(): Promise<void> {}
  async listPolicies(): Promise<Array<{ id: string; raw: string }>> {
    return [];
  }
  async close(): Promise<void> {}
}

function applier(store: PolicyStore, splitRootData = false, reservedPaths?: ReservedPaths): { applier: EntryApplier; status: SyncState } {
  const status = new SyncState({ health: new ClientHealth(true, false), clientId: "client-1", transactions: new DataTransactions(store), sendAck: () => undefined, onLost: () => undefined });
  const noRetry = { attempts: 1, backoff: { initialMs: 1, maxMs: 1 } };
  const applier = new EntryApplier({
    registry: new FetchProviderRegistry([], { logger: silentLogger(), timeoutMs: 2_000 }),
    status,
    fetchRetry: noRetry,
    storeRetry: noRetry,
    splitRootData,
    allowlist: new UrlAllowlist([]),
    logger: silentLogger(),
    streamAbove: 1024,
    ...(reservedPaths === undefined ? {} : { reservedPaths }),
  });
  return { applier, status };
}

const entry = (url: string, dstPath: string, saveMethod = SaveMethod.PUT) => create(DataSourceEntrySchema, { url, dstPath, saveMethod });
const signal = new AbortController().signal;

test("a big untransformed PUT is streamed; PATCH and split root data are fetched whole", async (t) => {
  const url = await serve(t);
  const { applier: plain } = applier(new RecordingStore());
  const streamed = await plain.fetch(entry(url("/big"), "/users"), signal);
  assert.ok(streamed instanceof StreamedSource);
  streamed.release();
  assert.ok((await plain.fetch(entry(url("/big"), "/users", SaveMethod.PATCH), signal)) instanceof Uint8Array);
  const { applier: split } = applier(new RecordingStore(), true);
  assert.ok((await split.fetch(entry(url("/big"), "/"), signal)) instanceof Uint8Array);
  const atKey = await split.fetch(entry(url("/big"), "/users"), signal);
  assert.ok(atKey instanceof StreamedSource, "split root data concerns the root only");
  atKey.release();
});

test("a streamed document is committed with the position; a source that breaks off fails only its entry", async (t) => {
  const url = await serve(t);
  const store = new RecordingStore();
  const { applier: subject, status } = applier(store);
  const job: UpdateJob = { kind: "event", position: 7n, logId: "log", updateId: "u1", reason: "", entries: [] };
  const big = entry(url("/big"), "/users");
  const data = await subject.fetch(big, signal);
  const outcomes = await subject.commit(job, [{ entry: big, data }], [], signal);
  assert.deepEqual(outcomes, [{ ok: true }]);
  assert.equal(store.documents.get("/users"), BIG);
  assert.equal(status.position?.position, 7n);
  assert.equal((JSON.parse(store.documents.get("/system/opal") ?? "{}") as { position: number }).position, 7);

  // /flaky is whole at fetch time, and breaks off when the store's write is retried entry by entry.
  const flaky = entry(url("/flaky"), "/flaky");
  const small = create(DataSourceEntrySchema, { dstPath: "/small", saveMethod: SaveMethod.PUT, dataJson: Buffer.from("[1]") });
  const failing: UpdateJob = { ...job, position: 8n, updateId: "u2" };
  const flakyData = await subject.fetch(flaky, signal);
  assert.ok(flakyData instanceof StreamedSource);
  // The first attempt reads the body opened at fetch time; make the store refuse it so the source is read again.
  let refused = false;
  const original = store.patch.bind(store);
  store.patch = async (operations) => {
    if (!refused) {
      refused = true;
      for (const operation of operations) if (operation.value !== undefined && !(operation.value instanceof Uint8Array)) for await (const _ of operation.value.chunks()) void _;
      throw new PolicyStoreError("refused", 400);
    }
    return original(operations);
  };
  const results = await subject.commit(failing, [{ entry: small, data: Buffer.from("[1]") }, { entry: flaky, data: flakyData }], [], signal);
  assert.deepEqual(results[0], { ok: true });
  assert.equal(results[1]?.ok, false);
  assert.match(results[1]?.error ?? "", /reading http:\/\/127\.0\.0\.1:\d+\/flaky failed/);
  assert.equal(store.documents.has("/flaky"), false, "nothing of the broken document was written");
  const written = JSON.parse(store.documents.get("/system/opal") ?? "{}") as { position: number; last_data_transaction: { ok: boolean; error: string } };
  assert.equal(written.position, 8);
  assert.equal(written.last_data_transaction.ok, false);
});

const inline = (dstPath: string, data: unknown, saveMethod = SaveMethod.PUT) =>
  create(DataSourceEntrySchema, { dstPath, saveMethod, ...(data === undefined ? {} : { dataJson: Buffer.from(JSON.stringify(data)) }) });

test("a write into OPA's system namespace is refused before anything is fetched", async (t) => {
  const url = await serve(t);
  const { applier: subject } = applier(new RecordingStore());
  for (const dst of ["/system/opal", "system/version", "/%73ystem/x", "/users/../system"]) {
    await assert.rejects(subject.fetch(entry(url("/big"), dst), signal), (error: Error & { stage?: string }) => error.stage === "fetch" && /refused to write PUT .* reserved system namespace|client's own document|namespace \(data.system\) itself/.test(error.message), dst);
  }
});

test("refused writes fail alone, naming the rule; the others and the status are committed", async () => {
  const store = new RecordingStore();
  const { applier: subject } = applier(store);
  const job: UpdateJob = { kind: "event", position: 3n, logId: "log", updateId: "u-sys", reason: "", entries: [] };
  const writes = [
    { entry: inline("/system/opal", { ready: true }), data: Buffer.from('{"ready":true}') },
    { entry: inline("/system/opal_mesh", undefined, SaveMethod.DELETE), data: undefined },
    { entry: inline("/", [{ op: "add", path: "/system/authz", value: 1 }], SaveMethod.PATCH), data: Buffer.from('[{"op":"add","path":"/system/authz","value":1}]') },
    { entry: inline("/", { users: 1, system: {} }), data: Buffer.from('{"users":1,"system":{}}') },
    { entry: inline("/users", [1]), data: Buffer.from("[1]") },
  ];
  const outcomes = await subject.commit(job, writes, [], signal);
  assert.deepEqual(outcomes.map((outcome) => outcome.ok), [false, false, false, false, true]);
  assert.match(outcomes[0]?.error ?? "", /refused to write PUT \/system\/opal .*client's own document/);
  assert.match(outcomes[1]?.error ?? "", /refused to write DELETE \/system\/opal_mesh/);
  assert.match(outcomes[2]?.error ?? "", /operation 0 path/);
  assert.match(outcomes[3]?.error ?? "", /data root .* "system"/);
  assert.equal(store.documents.get("/users"), "[1]");
  assert.deepEqual([...store.documents.keys()].sort(), ["/system/opal", "/users"], "nothing but the data and the status was written");
  const statusDoc = JSON.parse(store.documents.get("/system/opal") ?? "{}") as { position: number; ready?: unknown; last_transaction?: { ok: boolean; error?: string } };
  assert.equal(statusDoc.position, 3);
  assert.ok(JSON.stringify(statusDoc).includes("refused to write"), "the status names the refusal");

  // In a batch, too.
  const many = await subject.commitMany([{ job: { ...job, position: 4n, updateId: "u-a" }, writes: [{ entry: inline("/a", 1), data: Buffer.from("1") }], fetchErrors: [] }, { job: { ...job, position: 5n, updateId: "u-b" }, writes: [writes[0] as (typeof writes)[number]], fetchErrors: [] }], signal);
  assert.deepEqual(many.map((outcomes) => outcomes.map((outcome) => outcome.ok)), [[true], [false]]);
});

test("OPAL_MESH_WRITABLE_SYSTEM_PATHS opens its part of data.system on the client", async () => {
  const store = new RecordingStore();
  const { applier: subject } = applier(store, false, new ReservedPaths(["/system/authz"]));
  const job: UpdateJob = { kind: "event", position: 1n, logId: "log", updateId: "u", reason: "", entries: [] };
  const outcomes = await subject.commit(job, [{ entry: inline("/system/authz", { allow: true }), data: Buffer.from('{"allow":true}') }, { entry: inline("/system/opal_mesh/x", 1), data: Buffer.from("1") }], [], signal);
  assert.deepEqual(outcomes.map((outcome) => outcome.ok), [true, false]);
  assert.equal(store.documents.get("/system/authz"), '{"allow":true}');
});

test("a refused write after a patch the store took: what it took is not written again, alone or in a batch", async (t) => {
  const append = (value: number) => ({ entry: inline("/check", [{ op: "add", path: "/log/-", value }], SaveMethod.PATCH), data: Buffer.from(JSON.stringify([{ op: "add", path: "/log/-", value }])) });
  const put = (path: string, value: unknown) => ({ entry: inline(path, value), data: Buffer.from(JSON.stringify(value)) });
  // The PUT below /a needs a second patch; the replace of what is not there fails that one.
  const refused = { entry: inline("/gone", [{ op: "replace", path: "/x", value: 1 }], SaveMethod.PATCH), data: Buffer.from('[{"op":"replace","path":"/x","value":1}]') };
  const job = (position: bigint): UpdateJob => ({ kind: "event", position, logId: "log", updateId: `u${position}`, reason: "", entries: [] });

  await t.test("one job", async () => {
    const store = new MemoryStore({ check: { log: [] }, gone: {} });
    const { applier: subject } = applier(store);
    const outcomes = await subject.commit(job(1n), [append(1), put("/a", { b: {} }), put("/a/b/c", 1), refused], [], signal);
    assert.deepEqual(outcomes.map((outcome) => outcome.ok), [true, true, true, false]);
    assert.deepEqual((store.document as { check: unknown }).check, { log: [1] });
    assert.deepEqual((store.document as { a: unknown }).a, { b: { c: 1 } });
  });

  await t.test("a batch", async () => {
    const store = new MemoryStore({ check: { log: [] }, gone: {} });
    const { applier: subject } = applier(store);
    const outcomes = await subject.commitMany(
      [
        { job: job(1n), writes: [append(1), put("/a", { b: {} })], fetchErrors: [] },
        { job: job(2n), writes: [put("/a/b/c", 1), append(2)], fetchErrors: [] },
        { job: job(3n), writes: [refused, append(3)], fetchErrors: [] },
      ],
      signal,
    );
    assert.deepEqual(outcomes.map((each) => each.map((outcome) => outcome.ok)), [[true, true], [true, true], [false, true]]);
    assert.deepEqual((store.document as { check: unknown }).check, { log: [1, 2, 3] }, "each append once, in order");
  });
});
