/**
 * The snapshot's fold against a real OPA (issue 13): for seeded random logs, a client
 * connected from the start (every event in order, one commit each, the baseline written
 * at the scope's redefinition) and a late client (the snapshot's view written in one
 * baseline job: the clearing, the entries from before the baseline point, the baseline,
 * the entries after) must hold the same data, byte for byte, for every subscription.
 * Both go through the client's real write path (EntryApplier, SyncState,
 * DataTransactions) into two real OPA processes, emptied between runs.
 */
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import { after, before, test } from "node:test";
import { request } from "undici";
import { toJsonString } from "@bufbuild/protobuf";
import { type DataSourceEntry, SaveMethod } from "../gen/opal/mesh/v1/data_pb.js";
import { SnapshotItemSchema } from "../gen/opal/mesh/v1/snapshot_pb.js";
import { silentLogger } from "../services/common/logger.js";
import { entrySize } from "../services/common/snapshot/chunks.js";
import { LogSnapshot } from "../services/common/snapshot/log-snapshot.js";
import { anyTopicCovered } from "../services/common/topics.js";
import { UrlAllowlist } from "../services/common/url-allowlist.js";
import { DataTransactions, type EntryWrite } from "../services/client/data/data-transaction.js";
import { EntryApplier } from "../services/client/data/entry-applier.js";
import { replayClearing } from "../services/client/data/replay-roots.js";
import type { UpdateJob } from "../services/client/data/update-pipeline.js";
import { FetchProviderRegistry } from "../services/client/fetch/registry.js";
import { ClientHealth } from "../services/client/health.js";
import { OpaStore } from "../services/client/opa/opa-store.js";
import { SyncState } from "../services/client/sync-state.js";
import { ExternalOpa } from "./helpers/client-process.js";
import { describeEvents, type FoldSequence, foldSequence, redefinitions, SUBSCRIPTIONS } from "./helpers/fold-sequences.js";

const SEQUENCES = 120;
const signal = new AbortController().signal;
const noRetry = { attempts: 1, backoff: { initialMs: 1, maxMs: 1 } };

let connected: ExternalOpa;
let late: ExternalOpa;
let stores: OpaStore[] = [];

before(async () => {
  [connected, late] = await Promise.all([ExternalOpa.start(), ExternalOpa.start()]);
  stores = [new OpaStore({ url: connected.url, authToken: undefined }), new OpaStore({ url: late.url, authToken: undefined })];
});

after(async () => {
  await Promise.all(stores.map((store) => store.close()));
  await Promise.all([connected?.stop(), late?.stop()]);
});

/** A client's write path over `store`, fresh (it knows nothing of what the store holds). */
function writer(store: OpaStore): (job: UpdateJob) => Promise<void> {
  const status = new SyncState({ health: new ClientHealth(true, false), clientId: "fold-check", transactions: new DataTransactions(store), sendAck: () => undefined, onLost: () => undefined });
  const applier = new EntryApplier({
    registry: new FetchProviderRegistry([], { logger: silentLogger(), timeoutMs: 2_000 }),
    status,
    fetchRetry: noRetry,
    storeRetry: noRetry,
    splitRootData: false,
    allowlist: new UrlAllowlist([]),
    logger: silentLogger(),
  });
  return async (job) => {
    const writes: EntryWrite[] = [];
    const fetchErrors: string[] = [];
    for (const entry of await job.entries) {
      try {
        writes.push({ entry, data: await applier.fetch(entry, signal) });
      } catch (error) {
        fetchErrors.push((error as Error).message);
      }
    }
    await applier.commit(job, writes, fetchErrors, signal);
  };
}

async function empty(opa: ExternalOpa): Promise<void> {
  const response = await request(`${opa.url}/v1/data`, { method: "PUT", body: "{}", headers: { "content-type": "application/json" } });
  await response.body.dump();
  assert.equal(response.statusCode, 204);
}

/** What OPA holds outside /system, with sorted keys. */
async function data(opa: ExternalOpa): Promise<unknown> {
  const response = await request(`${opa.url}/v1/data`);
  const { result } = (await response.body.json()) as { result: Record<string, unknown> };
  delete result.system;
  return sorted(result);
}

function sorted(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sorted);
  if (typeof value !== "object" || value === null) return value;
  return Object.fromEntries(Object.keys(value).sort().map((key) => [key, sorted((value as Record<string, unknown>)[key])]));
}

function firstDifference(left: unknown, right: unknown, path = ""): string | undefined {
  if (JSON.stringify(left) === JSON.stringify(right)) return undefined;
  const isObject = (value: unknown) => typeof value === "object" && value !== null && !Array.isArray(value);
  if (!isObject(left) || !isObject(right)) return `${path || "/"}: ${JSON.stringify(left)} vs ${JSON.stringify(right)}`;
  const keys = [...new Set([...Object.keys(left as object), ...Object.keys(right as object)])].sort();
  for (const key of keys) {
    const found = firstDifference((left as Record<string, unknown>)[key], (right as Record<string, unknown>)[key], `${path}/${key}`);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** The client connected from the start: the baseline at the last redefinition (none before), every event in its turn; how many log entries it applied. */
async function replayConnected(sequence: FoldSequence, topics: readonly string[]): Promise<number> {
  const write = writer(stores[0] as OpaStore);
  const last = redefinitions(sequence).at(-1);
  const mine = (entries: readonly DataSourceEntry[]) => entries.filter((entry) => anyTopicCovered(topics, entry.topics));
  let applied = 0;
  for (const event of sequence.events) {
    const base = { position: event.position, logId: "fold-check", reason: "" };
    if (event.payload.case === "scopeChanged") {
      if (event.position === last) await write({ ...base, kind: "baseline", updateId: "baseline", entries: mine(sequence.baseline) });
    } else if (event.payload.case === "dataUpdate") {
      const entries = mine(event.payload.value.entries);
      applied += entries.length;
      if (entries.length > 0) await write({ ...base, kind: "event", updateId: event.payload.value.id, entries });
    }
  }
  return applied;
}

/** The fold of every event (through a checkpoint's export and restore, when `restoring` and the sequence asks). */
function folded(sequence: FoldSequence, restoring = true): LogSnapshot {
  let snapshot = new LogSnapshot();
  for (const event of sequence.events) {
    snapshot.fold(event);
    if (restoring && event.position === sequence.restoreAt) {
      const restored = new LogSnapshot();
      restored.restore(snapshot.export());
      snapshot = restored;
    }
  }
  return snapshot;
}

/** The late client: its snapshot view with the baseline, in one baseline job (as data-updater.ts builds it). */
async function replayLate(snapshot: LogSnapshot, sequence: FoldSequence, topics: readonly string[]): Promise<number> {
  const view = snapshot.view("default", topics);
  const mine = (entries: readonly DataSourceEntry[]) => entries.filter((entry) => anyTopicCovered(topics, entry.topics));
  const beforeBaseline = mine(view.beforeBaseline.map((item) => item.entry as DataSourceEntry));
  const afterBaseline = mine(view.afterBaseline.map((item) => item.entry as DataSourceEntry));
  const baseline = mine(sequence.baseline);
  const clearing = replayClearing([...beforeBaseline, ...baseline, ...afterBaseline], []);
  const replayed = new Set([...clearing, ...beforeBaseline, ...afterBaseline]);
  await writer(stores[1] as OpaStore)({
    kind: "baseline",
    position: view.position,
    logId: "fold-check",
    updateId: "baseline",
    reason: "snapshot",
    entries: [...clearing, ...beforeBaseline, ...baseline, ...afterBaseline],
    replayed: { has: (entry) => replayed.has(entry), complete: true },
  });
  return beforeBaseline.length + afterBaseline.length;
}

test(`the snapshot written into an empty OPA holds what the ordered replay holds (${SEQUENCES} seeded logs × ${SUBSCRIPTIONS.length} subscriptions)`, async (t) => {
  let applied = 0;
  let replayed = 0;
  const problems: string[] = [];
  for (let seed = 1; seed <= SEQUENCES; seed++) {
    const sequence = foldSequence(seed, 20 + (seed % 21));
    const snapshot = folded(sequence);
    for (const topics of SUBSCRIPTIONS) {
      await Promise.all([empty(connected), empty(late)]);
      const [entries, items] = await Promise.all([replayConnected(sequence, topics), replayLate(snapshot, sequence, topics)]);
      applied += entries;
      replayed += items;
      const [expected, actual] = await Promise.all([data(connected), data(late)]);
      const difference = firstDifference(expected, actual);
      if (difference !== undefined) {
        const view = snapshot.view("default", topics);
        const items = [...view.beforeBaseline, ...view.afterBaseline].map((item) => `${item.position} ${SaveMethod[item.entry?.saveMethod ?? 0]} ${item.entry?.dstPath} [${item.entry?.topics.join(",")}] ${Buffer.from(item.entry?.dataJson ?? []).toString()}`);
        assert.fail(`seed ${seed}, subscribed to ${JSON.stringify(topics)}: the snapshot's replay differs from the ordered replay at ${difference} (connected vs late)\n${describeEvents(sequence)}\nsnapshot (${view.beforeBaseline.length} before the baseline):\n${items.join("\n")}`);
      }
    }
    // Restored from a checkpoint midway, it holds what the fold that never stopped holds;
    // its totals are what it holds (the limit counts them). Told after every replay compared.
    const exported = (of: LogSnapshot) => of.export().items.map((item) => toJsonString(SnapshotItemSchema, item));
    if (sequence.restoreAt > 0n && !isDeepStrictEqual(exported(snapshot), exported(folded(sequence, false)))) problems.push(`seed ${seed}: restored at ${sequence.restoreAt}, the snapshot differs from the fold that never stopped`);
    const held = snapshot.export().items;
    const bytes = held.reduce((sum, item) => sum + entrySize(item.entry as DataSourceEntry), 0);
    if (snapshot.stats.entries !== held.length || snapshot.stats.bytes !== bytes) problems.push(`seed ${seed}: stats say ${snapshot.stats.entries} entries, ${snapshot.stats.bytes} bytes; it exports ${held.length}, ${bytes}`);
  }
  assert.deepEqual(problems, []);
  t.diagnostic(`the views held ${replayed} items for the ${applied} entries the connected clients applied`);
  // Exact is not enough: the fold must also compact.
  assert.ok(replayed < applied * 0.8, `the views held ${replayed} items for ${applied} applied entries`);
});
