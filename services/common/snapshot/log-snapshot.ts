/**
 * The fold of the log (types.ts says what it promises): per scope, a compacted log of its
 * data entries (scope-fold.ts). Writes into an inline document are folded into it where
 * emulating OPA makes the result certain, and what a later PUT or DELETE replaces is
 * dropped where nothing in between depends on it; everything else stays an entry in log
 * order, so the replay is exact by construction. test/snapshot-fold.test.ts checks it
 * against a real OPA.
 *
 * It runs on the fan-out's hot path (every event, before dispatch): O(path depth) per
 * entry plus the entry's size, entries share the event's bytes, and documents are written
 * back as JSON only when a view or an export asks.
 */
import { clone, create } from "@bufbuild/protobuf";
import { type DataSourceEntry, DataSourceEntrySchema } from "../../../gen/opal/mesh/v1/data_pb.js";
import { type Event, type PolicyRollout, RolloutStage } from "../../../gen/opal/mesh/v1/event_pb.js";
import { SnapshotScopeSchema } from "../../../gen/opal/mesh/v1/snapshot_pb.js";
import { entrySize } from "./chunks.js";
import { DEFAULT_SCOPE, scopeOfTopic, unscopeTopic } from "../scopes/scoped-topics.js";
import { ScopeFold, type Totals } from "./scope-fold.js";
import type { ScopeView, Snapshot, SnapshotExport, SnapshotStats } from "./types.js";

export class LogSnapshot implements Snapshot {
  private at = 0n;
  private readonly scopes = new Map<string, ScopeFold>();
  private totals: Totals = { entries: 0, bytes: 0 };

  get position(): bigint {
    return this.at;
  }

  get stats(): SnapshotStats {
    return { position: this.at, entries: this.totals.entries, bytes: this.totals.bytes, scopes: this.scopes.size };
  }

  fold(event: Event): void {
    if (event.position <= this.at || event.payload.case === undefined) return;
    this.at = event.position;
    switch (event.payload.case) {
      case "policyChanged": {
        const meta = this.scope(event.payload.value.scope || DEFAULT_SCOPE).meta;
        meta.policyHash = event.payload.value.hash;
        // Only a canary stage splits the fleet: a promotion or a rollback ends it.
        meta.rollout = event.payload.value.rollout?.stage === RolloutStage.CANARY ? event.payload.value.rollout : undefined;
        return;
      }
      case "scopeChanged":
        if (!event.payload.value.deleted) {
          const fold = this.scope(event.payload.value.scopeId);
          fold.meta.baselinePosition = event.position;
          fold.freeze(event.position);
        }
        return;
      case "dataUpdate":
        for (const entry of event.payload.value.entries) {
          for (const scope of new Set(entry.topics.map(scopeOfTopic))) this.scope(scope).add(event.position, scoped(entry, scope));
        }
    }
  }

  growthOf(events: readonly Event[]): number {
    let bytes = 0;
    for (const event of events) if (event.payload.case === "dataUpdate") for (const entry of event.payload.value.entries) bytes += entrySize(entry);
    return bytes;
  }

  policyOf(scope: string): { policyHash: string; rollout: PolicyRollout | undefined } {
    const meta = this.scopes.get(scope)?.meta;
    return { policyHash: meta?.policyHash ?? "", rollout: meta?.rollout };
  }

  view(scope: string, topics: readonly string[]): ScopeView {
    const fold = this.scopes.get(scope);
    const { before, after } = fold?.view(topics) ?? { before: [], after: [] };
    return { scope, position: this.at, beforeBaseline: before, afterBaseline: after, policyHash: fold?.meta.policyHash ?? "", rollout: fold?.meta.rollout };
  }

  export(): SnapshotExport {
    const scopes = [...this.scopes.values()];
    return { position: this.at, scopes: scopes.map((fold) => fold.meta), items: scopes.flatMap((fold) => fold.exportItems()) };
  }

  restore(exported: SnapshotExport): void {
    this.reset(exported.position);
    for (const meta of exported.scopes) this.scope(meta.scope).meta = clone(SnapshotScopeSchema, meta);
    // Folded on as the exporting snapshot would (scope-fold.ts): a replica restored from a checkpoint holds what one that never stopped holds.
    for (const item of exported.items) this.scope(item.scope).restoreItem(item);
  }

  reset(position: bigint): void {
    this.at = position;
    this.scopes.clear();
    this.totals = { entries: 0, bytes: 0 };
  }

  private scope(id: string): ScopeFold {
    let fold = this.scopes.get(id);
    if (fold === undefined) {
      fold = new ScopeFold(id, this.totals);
      this.scopes.set(id, fold);
    }
    return fold;
  }
}

/** The entry as the scope's clients receive it: its topics only, unscoped (the event's bytes shared). */
function scoped(entry: DataSourceEntry, scope: string): DataSourceEntry {
  return create(DataSourceEntrySchema, { ...entry, topics: entry.topics.filter((topic) => scopeOfTopic(topic) === scope).map(unscopeTopic) });
}
