/**
 * Which checkpoint of the snapshot topic a starting log restores, and which records it may
 * tombstone once its own checkpoint is written. Every replica writes its own checkpoints;
 * readers take the newest whole one, so a crashed write, a dead replica's last checkpoint
 * or a checkpoint of another log never wins over a good one.
 */
import { type CheckpointContent, CheckpointError, decodeCheckpoint, generationOf, type Manifest, manifestKey, parseManifest } from "./checkpoint-codec.js";

/** A live record of the compacted topic (its latest value per key; tombstones removed). */
export interface TopicRecord {
  value: Buffer;
  timestampMs: number;
}

export interface Generation {
  generation: string;
  /** Every live key it has. */
  keys: string[];
  manifest: Manifest | undefined;
  newestTimestampMs: number;
}

export interface CheckpointChoice {
  chosen: CheckpointContent | undefined;
  /** Manifests passed over, and why (newest first). */
  rejected: Array<{ generation: string; reason: string }>;
  generations: Map<string, Generation>;
}

/** Parts without a manifest younger than this may be a checkpoint another replica is writing. */
export const STRAY_AGE_MS = 60 * 60_000;

export function groupGenerations(records: ReadonlyMap<string, TopicRecord>): { generations: Map<string, Generation>; unreadable: Array<{ generation: string; reason: string }> } {
  const generations = new Map<string, Generation>();
  const unreadable: Array<{ generation: string; reason: string }> = [];
  for (const [key, record] of records) {
    const generation = generationOf(key);
    if (generation === undefined) continue;
    let group = generations.get(generation);
    if (group === undefined) {
      group = { generation, keys: [], manifest: undefined, newestTimestampMs: 0 };
      generations.set(generation, group);
    }
    group.keys.push(key);
    group.newestTimestampMs = Math.max(group.newestTimestampMs, record.timestampMs);
    if (key !== manifestKey(generation)) continue;
    try {
      group.manifest = parseManifest(key, record.value);
    } catch (error) {
      if (!(error instanceof CheckpointError)) throw error;
      unreadable.push({ generation, reason: error.message });
    }
  }
  return { generations, unreadable };
}

/**
 * The manifest with the highest position (the latest written among equals) whose parts are
 * all present and valid, of this log, and not past the events topic's high watermark (read
 * after the snapshot topic, so only a checkpoint of an earlier topic of the same name is).
 */
export function chooseCheckpoint(records: ReadonlyMap<string, TopicRecord>, expected: { logId: string; highWatermark: bigint }): CheckpointChoice {
  const { generations, unreadable } = groupGenerations(records);
  const rejected = [...unreadable];
  const manifests = [...generations.values()]
    .flatMap((group) => (group.manifest === undefined ? [] : [group.manifest]))
    .sort((a, b) => (a.position === b.position ? b.writtenAtUnixMs - a.writtenAtUnixMs : a.position > b.position ? -1 : 1));
  const values = new Map([...records].map(([key, record]) => [key, record.value]));
  for (const manifest of manifests) {
    if (manifest.logId !== expected.logId) {
      rejected.push({ generation: manifest.generation, reason: `it is of log ${manifest.logId}, not ${expected.logId}` });
      continue;
    }
    if (manifest.position > expected.highWatermark) {
      rejected.push({ generation: manifest.generation, reason: `its position ${manifest.position} is past the events topic's end (${expected.highWatermark}): an earlier topic of the same name` });
      continue;
    }
    try {
      return { chosen: decodeCheckpoint(manifest, values), rejected, generations };
    } catch (error) {
      if (!(error instanceof CheckpointError)) throw error;
      rejected.push({ generation: manifest.generation, reason: error.message });
    }
  }
  return { chosen: undefined, rejected, generations };
}

/**
 * The keys a replica may tombstone once its own checkpoint at `position` is acknowledged:
 * every generation seen whose manifest is at or below it, or is unusable (another log, past
 * the end, not whole), and parts no manifest names that are old enough to be a crashed write.
 * Never a generation with a newer manifest, nor fresh parts another replica may be writing.
 */
export function staleKeys(choice: CheckpointChoice, position: bigint, nowMs: number, strayAgeMs = STRAY_AGE_MS): string[] {
  const unusable = new Set(choice.rejected.map((rejection) => rejection.generation));
  const keys: string[] = [];
  for (const group of choice.generations.values()) {
    const stale =
      group.manifest === undefined || unusable.has(group.generation)
        ? nowMs - group.newestTimestampMs >= strayAgeMs || (group.manifest !== undefined && group.manifest.position <= position)
        : group.manifest.position <= position;
    // A manifest goes before its parts: a reader never meets one that names missing parts.
    if (stale) keys.push(...group.keys.sort((a, b) => (a.startsWith("manifest/") ? -1 : b.startsWith("manifest/") ? 1 : 0)));
  }
  return keys;
}
