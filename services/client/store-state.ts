/**
 * Whether OPA holds the state the client claims. From the moment the client learns OPA
 * lost its state (the inline OPA restarted, OPA answered without our status, a write found
 * it gone, a backup did not verify) it claims nothing: not ready, not healthy, until OPA
 * holds again what it held before.
 *
 * Reloading policy and baseline brings back what the baseline's sources write; what log
 * events wrote elsewhere is gone until something replays it. So the client remembers the
 * data paths events wrote, and after a loss counts them as held again only once a baseline
 * (or a refetch of one of its entries) rewrote them: its sources answer as of now, newer
 * than those events. A path no baseline entry covers stays "not held", and says so —
 * unless the baseline came with the log's whole snapshot (issue 13), which replays them.
 */
import { SaveMethod } from "../../gen/opal/mesh/v1/data_pb.js";
import type { JobResult } from "./data/update-pipeline.js";

/** Past this many remembered paths, they are folded to their first segment (coarser, never looser). */
const MAX_PATHS = 10_000;

export interface StoreLoss {
  /** ISO time the client learned of it. */
  at: string;
  reason: string;
}

export interface StoreStateReport {
  held: boolean;
  lostAt?: string;
  reason?: string;
  /** The baseline position OPA's state was rebuilt from after the loss, once reloaded. */
  rebuiltFrom?: string;
  /** Data paths events wrote before the loss that no reload has written since (a few of them). */
  notHeld?: string[];
  notHeldCount?: number;
  message?: string;
}

function segments(path: string): string[] {
  return path.split("/").filter((segment) => segment !== "");
}

/** Normalised "/a/b" ("/" for the root). */
function normalise(path: string): string {
  return `/${segments(path).join("/")}`;
}

/** `path` is `prefix` or below it. */
export function covers(prefix: string, path: string): boolean {
  return prefix === "/" || path === prefix || path.startsWith(`${prefix}/`);
}

export class StoreState {
  private loss: StoreLoss | undefined;
  /** Paths written by events that OPA holds now and no baseline entry rewrote since. */
  private readonly eventPaths = new Set<string>();
  /** Paths written by events before the loss, not written again since. */
  private readonly lostPaths = new Set<string>();
  private rebuiltFrom: bigint | undefined;
  /** A baseline load wrote into OPA since the loss. */
  private reloaded = false;

  constructor(private readonly now: () => Date = () => new Date()) {}

  get held(): boolean {
    return this.loss === undefined;
  }

  get lostAt(): string | undefined {
    return this.loss?.at;
  }

  /**
   * OPA lost what it held: everything events wrote is gone with it. `notHeld` and `at`:
   * a loss an earlier run recorded in OPA's status document, carried on.
   */
  lose(reason: string, notHeld: readonly string[] = [], at?: string): void {
    for (const path of [...this.eventPaths, ...notHeld.map(normalise)]) this.lostPaths.add(path);
    this.eventPaths.clear();
    fold(this.lostPaths);
    // The first loss is the one to report until the state is back; a second one adds its paths.
    this.loss ??= { at: at ?? this.now().toISOString(), reason };
    this.rebuiltFrom = undefined;
    this.reloaded = false;
  }

  /** Entries an event wrote (PUT/PATCH; a DELETE leaves nothing to lose). */
  eventWrote(paths: readonly string[]): void {
    for (const path of paths) this.eventPaths.add(normalise(path));
    fold(this.eventPaths);
  }

  /**
   * Entries a baseline load or refetch wrote: what events wrote below them is superseded.
   * `position` is the head a full baseline was loaded at (undefined for a refetch).
   */
  baselineWrote(paths: readonly string[], position?: bigint, full = position !== undefined): void {
    const written = paths.map(normalise);
    for (const set of [this.eventPaths, this.lostPaths]) {
      for (const path of [...set]) if (written.some((prefix) => covers(prefix, path))) set.delete(path);
    }
    if (this.loss === undefined || !full) return;
    this.reloaded = true;
    if (position !== undefined) this.rebuiltFrom = position;
  }

  /**
   * Called as policy and baseline load: once both are loaded again (`loaded`) and nothing
   * written before the loss is missing, OPA holds the state again. `needsBaseline`: the
   * client loads data, so a baseline must have been written since the loss. True when
   * that changed the answer.
   */
  settle(loaded: boolean, needsBaseline: boolean): boolean {
    if (this.loss === undefined || !loaded || (needsBaseline && !this.reloaded) || this.lostPaths.size > 0) return false;
    this.restored();
    return true;
  }

  /**
   * A whole snapshot of the log was written: every path events wrote before the loss is
   * back, as of the snapshot's position (the baseline still has to load for `settle`).
   */
  replayed(): void {
    for (const path of this.lostPaths) this.eventPaths.add(path);
    this.lostPaths.clear();
    fold(this.eventPaths);
  }

  /** Something brought back everything (a replay of the log from before the loss). */
  restored(): void {
    this.loss = undefined;
    this.lostPaths.clear();
    this.rebuiltFrom = undefined;
    this.reloaded = false;
  }

  /** Up to `limit` of the paths not held (all of them when there are no more). */
  notHeld(limit: number): string[] {
    return [...this.lostPaths].slice(0, limit);
  }

  get notHeldCount(): number {
    return this.lostPaths.size;
  }

  /** Why the client claims nothing; undefined while OPA holds its state. */
  message(): string | undefined {
    const loss = this.loss;
    if (loss === undefined) return undefined;
    const head = `OPA lost its state at ${loss.at} (${loss.reason})`;
    if (!this.reloaded) return `${head}; reloading policy and data`;
    const from = this.rebuiltFrom === undefined ? "" : ` (rebuilt from position ${this.rebuiltFrom}, and the updates after it)`;
    const some = [...this.lostPaths].slice(0, 5).join(", ");
    if (this.lostPaths.size === 0) return `${head}; reloaded${from}, waiting for the policy and every baseline source`;
    return `${head}; holds the baseline only${from}: ${this.lostPaths.size} path(s) written by earlier updates are not held (${some}${this.lostPaths.size > 5 ? ", …" : ""})`;
  }

  report(): StoreStateReport {
    const loss = this.loss;
    if (loss === undefined) return { held: true };
    return {
      held: false,
      lostAt: loss.at,
      reason: loss.reason,
      ...(this.rebuiltFrom === undefined ? {} : { rebuiltFrom: this.rebuiltFrom.toString() }),
      notHeld: [...this.lostPaths].slice(0, 20),
      notHeldCount: this.lostPaths.size,
      message: this.message(),
    };
  }
}

/** Keeps a path set bounded: past the limit, each path gives way to its first segment. */
function fold(set: Set<string>): void {
  if (set.size <= MAX_PATHS) return;
  const folded = new Set([...set].map((path) => `/${segments(path)[0] ?? ""}`));
  set.clear();
  for (const path of folded.size > MAX_PATHS ? ["/"] : folded) set.add(path);
}

/** What a finished job wrote, in the terms above: events write, baseline entries (PUT) supersede. */
export function noteJob(state: StoreState, result: JobResult): void {
  const { job } = result;
  const saved = result.entries.filter((outcome) => outcome.saved);
  if (job.kind === "event") {
    state.eventWrote(saved.filter((outcome) => outcome.entry.saveMethod !== SaveMethod.DELETE).map((outcome) => outcome.entry.dstPath));
  } else if (job.kind === "baseline" || job.kind === "periodic" || job.kind === "manual") {
    // The log's whole snapshot, written: what events wrote before a loss is back.
    if (job.kind === "baseline" && job.replayed?.complete === true) state.replayed();
    // Only a PUT replaces what is below its path; a PATCH or DELETE leaves the rest as it was.
    const replaced = saved.filter((outcome) => outcome.entry.saveMethod === SaveMethod.PUT).map((outcome) => outcome.entry.dstPath);
    state.baselineWrote(replaced, job.kind === "baseline" ? job.position : undefined, job.kind === "baseline");
  }
}
