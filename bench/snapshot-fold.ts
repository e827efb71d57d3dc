/**
 * The snapshot's fold in one process, no I/O: what it costs the fan-out per event (it folds
 * every event before dispatching it) and what it holds.
 * - mixed: 10,000 inline documents (/users/u<i>), then 100,000 updates over them: PATCHes
 *   appending to and replacing in a document, PUTs of a whole document and below one,
 *   DELETEs (written again later);
 * - appends: 100,000 PUTs at new paths.
 * Per event: µs to fold (each event timed; median and p99 over every run's events). Per
 * state: the snapshot's entries and bytes (its stats, and the view's entries encoded) and
 * the heap it retains (after a forced GC, the events themselves gone). The same for the
 * interim fold (kept every entry but same-path PUTs: `--interim <rev>` names the commit
 * whose services/common/snapshot/log-snapshot.ts it was, loaded from git).
 *
 *   node --import tsx bench/snapshot-fold.ts [-- --runs 5 --interim ad7b5d9^]
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { create } from "@bufbuild/protobuf";
import { type DataSourceEntry, DataSourceEntrySchema, SaveMethod } from "../gen/opal/mesh/v1/data_pb.js";
import { type Event, EventSchema } from "../gen/opal/mesh/v1/event_pb.js";
import { LogSnapshot } from "../services/common/snapshot/log-snapshot.js";
import type { Snapshot } from "../services/common/snapshot/types.js";
import { record, root, summary } from "./lib.js";
import { seededRandom } from "../test/helpers/seeded-random.js";

function option(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index === -1 ? fallback : (process.argv[index + 1] ?? fallback);
}
const runs = Number(option("runs", "5"));
const interimRevision = option("interim", "ad7b5d9^");
const PATHS = 10_000;
const UPDATES = 100_000;

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

/** The interim fold from git, its imports pointed back into this checkout. */
async function loadInterim(): Promise<new () => Snapshot> {
  const source = execFileSync("git", ["show", `${interimRevision}:services/common/snapshot/log-snapshot.ts`], { cwd: root, encoding: "utf8" });
  const here = pathToFileURL(join(root, "services/common/snapshot/")).href;
  const rewritten = source.replace(/from "([^"]+)"/g, (_, specifier: string) => `from "${specifier.startsWith(".") ? new URL(specifier, here).href : import.meta.resolve(specifier)}"`);
  const directory = mkdtempSync(join(tmpdir(), "interim-fold-"));
  const file = join(directory, "log-snapshot.ts");
  writeFileSync(join(directory, "package.json"), '{"type":"module"}');
  writeFileSync(file, rewritten);
  try {
    return ((await import(pathToFileURL(file).href)) as { LogSnapshot: new () => Snapshot }).LogSnapshot;
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

const encoder = new TextEncoder();
const json = (value: unknown) => encoder.encode(JSON.stringify(value));
const user = (index: number, version: number) => ({ name: `user ${index}`, roles: ["reader"], team: `t${index % 50}`, version });


function event(position: number, entry: Omit<Partial<DataSourceEntry>, "$typeName">): Event {
  const full = create(DataSourceEntrySchema, { topics: ["policy_data"], ...entry });
  return create(EventSchema, { position: BigInt(position), topics: ["policy_data"], payload: { case: "dataUpdate", value: { id: `u${position}`, entries: [full] } } });
}

/** The 10,000 documents, then the 100,000 mixed updates over them (events made as folded: the fold keeps only what it needs). */
function* mixed(): Generator<Event> {
  const next = seededRandom(13);
  let position = 0;
  for (let index = 0; index < PATHS; index++) yield event(++position, { dstPath: `/users/u${index}`, dataJson: json(user(index, 0)) });
  for (let update = 0; update < UPDATES; update++) {
    const index = Math.floor(next() * PATHS);
    const path = `/users/u${index}`;
    const choice = next();
    if (choice < 0.4) yield event(++position, { dstPath: path, saveMethod: SaveMethod.PATCH, dataJson: json([{ op: "add", path: "/roles/-", value: `role${update % 7}` }]) });
    else if (choice < 0.6) yield event(++position, { dstPath: path, saveMethod: SaveMethod.PATCH, dataJson: json([{ op: "replace", path: "/team", value: `t${update % 50}` }]) });
    else if (choice < 0.8) yield event(++position, { dstPath: path, dataJson: json(user(index, update)) });
    else if (choice < 0.9) yield event(++position, { dstPath: `${path}/attributes/a${update % 5}`, dataJson: json(update) });
    else yield event(++position, { dstPath: path, saveMethod: SaveMethod.DELETE });
  }
}

function* appends(): Generator<Event> {
  for (let index = 0; index < UPDATES; index++) yield event(index + 1, { dstPath: `/items/i${index}`, dataJson: json({ index, owner: `user ${index % 977}` }) });
}

/** Folds `events`, timing each (µs). */
function foldAll(snapshot: Snapshot, events: Iterable<Event>): number[] {
  const samples: number[] = [];
  for (const item of events) {
    const started = process.hrtime.bigint();
    snapshot.fold(item);
    samples.push(Number(process.hrtime.bigint() - started) / 1000);
  }
  return samples;
}

function heapMb(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed / (1024 * 1024);
}

interface Held {
  entries: number;
  bytes: number;
  view_entries: number;
  view_json_bytes: number;
  retained_heap_mb: number;
}

/** What `snapshot` holds, and the heap it retains over `baseHeap`. */
function held(snapshot: Snapshot, baseHeap: number): Held {
  const retained = Math.round((heapMb() - baseHeap) * 100) / 100;
  const view = snapshot.view("default", ["policy_data"]);
  const items = [...view.beforeBaseline, ...view.afterBaseline];
  const viewBytes = items.reduce((sum, item) => sum + (item.entry?.dataJson?.byteLength ?? 0), 0);
  return { entries: snapshot.stats.entries, bytes: snapshot.stats.bytes, view_entries: items.length, view_json_bytes: viewBytes, retained_heap_mb: retained };
}

function* take(events: Iterator<Event>, count: number): Generator<Event> {
  for (let index = 0; index < count; index++) {
    const next = events.next();
    if (next.done === true) return;
    yield next.value;
  }
}

/** What a fresh snapshot holds after each phase of `events` (the snapshot is gone when this returns). */
function heldAfter(Fold: new () => Snapshot, events: Iterator<Event>, phases: readonly number[]): Held[] {
  const base = heapMb();
  const snapshot = new Fold();
  return phases.map((count) => {
    foldAll(snapshot, take(events, count));
    return held(snapshot, base);
  });
}

async function measure(Fold: new () => Snapshot): Promise<Record<string, unknown>> {
  // What it holds, first, with nothing else allocated between the measures.
  const [documents, afterUpdates] = heldAfter(Fold, mixed(), [PATHS, UPDATES]);
  const [appended] = heldAfter(Fold, appends(), [UPDATES]);
  // Then the time per event, over every run's events.
  const mixedSamples: number[] = [];
  const appendSamples: number[] = [];
  for (let run = 0; run < runs; run++) {
    const timed = new Fold();
    const again = mixed();
    foldAll(timed, take(again, PATHS));
    for (const sample of foldAll(timed, again)) mixedSamples.push(sample);
    for (const sample of foldAll(new Fold(), appends())) appendSamples.push(sample);
  }
  return {
    mixed_updates_us_per_event: summary(mixedSamples),
    appends_us_per_event: summary(appendSamples),
    documents_10000: documents,
    after_100000_updates: afterUpdates,
    appends_100000: appended,
  };
}

const folded = await measure(LogSnapshot);
const interim = await measure(await loadInterim());
await record("snapshot-fold", {
  description: `the snapshot's fold in one process (no I/O): ${PATHS} inline documents then ${UPDATES} mixed updates over them (PATCH append/replace, PUT of and below a document, DELETE), and ${UPDATES} PUTs at new paths; µs per folded event (every event timed, ${runs} runs); entries, bytes and retained heap (after GC) of what the snapshot holds; the interim fold (${interimRevision}) on the same events`,
  fold: folded,
  interim,
});
