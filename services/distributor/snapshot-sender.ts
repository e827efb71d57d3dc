/**
 * Sends a fresh or resynced client the snapshot of the log at the position it starts
 * from, before any event after it (issue 13). The view is a copy taken in the same turn
 * as the session's start, so it is exactly the state at that position; its parts are
 * encoded one at a time and written at the client's pace (catch-up's back-pressure),
 * while live events are held back in the session and flushed after the last part.
 */
import type { DataSourceEntry } from "../../gen/opal/mesh/v1/data_pb.js";
import type { Logger } from "../common/logger.js";
import { scopeOfTopic, unscopeTopic } from "../common/scopes/scoped-topics.js";
import { entrySize, inParts } from "../common/snapshot/chunks.js";
import type { ScopeView, Snapshot } from "../common/snapshot/types.js";
import { encodeSnapshotPart } from "./frames.js";
import type { ClientSession } from "./session.js";

/** Where a session's snapshot comes from: the fan-out's own fold of the log. */
export interface SnapshotSource {
  readonly snapshot: Snapshot;
  /** Why the snapshot misses events, if it does (told to the client with the last part). */
  readonly snapshotProblem: string | undefined;
}

interface Placed {
  entry: DataSourceEntry;
  beforeBaseline: boolean;
}

/** The view's parts as frames, in replay order: entries under the baseline first, then those on top. */
export function* snapshotFrames(view: ScopeView, incomplete: string | undefined): Generator<Uint8Array> {
  const placed: Placed[] = [];
  for (const item of view.beforeBaseline) if (item.entry !== undefined) placed.push({ entry: item.entry, beforeBaseline: true });
  for (const item of view.afterBaseline) if (item.entry !== undefined) placed.push({ entry: item.entry, beforeBaseline: false });
  const parts = [...inParts(placed, (one) => entrySize(one.entry))];
  if (parts.length === 0) parts.push([]);
  for (const [index, part] of parts.entries()) {
    const last = index === parts.length - 1;
    yield encodeSnapshotPart({
      position: view.position,
      beforeBaseline: part.filter((one) => one.beforeBaseline).map((one) => one.entry),
      afterBaseline: part.filter((one) => !one.beforeBaseline).map((one) => one.entry),
      last,
      ...(last ? { policyHash: view.policyHash, incomplete: incomplete ?? "", ...(view.rollout === undefined ? {} : { rollout: view.rollout }) } : {}),
    });
  }
}

/**
 * Starts the session at `position` with `intro` (a Welcome or Resync saying a snapshot
 * follows) and the snapshot's parts; live events wait in the session until the last part
 * is written. Call it in the turn that decided `position`, before any later dispatch.
 */
export function sendSnapshot(session: ClientSession, intro: Uint8Array, position: bigint, source: SnapshotSource, logger: Logger): void {
  // The session's topics are log topics, inside its scope; the view takes them as its clients know them.
  const topics = session.topics.filter((topic) => scopeOfTopic(topic) === session.scope).map(unscopeTopic);
  const view = source.snapshot.view(session.scope, topics);
  if (view.position !== position) {
    // The fan-out folds each event before it dispatches it: they never disagree. If they
    // did, the client would write a state that is not the one at its position.
    throw new Error(`internal: the snapshot is at ${view.position}, the session starts at ${position}`);
  }
  session.beginCatchUp(position);
  session.sendControl(intro);
  const frames = snapshotFrames(view, source.snapshotProblem);
  void (async () => {
    for (const frame of frames) {
      await session.roomForCatchUp();
      if (session.isClosed) return;
      session.sendControl(frame);
    }
    session.endCatchUp();
  })().catch((error: unknown) => {
    // Writing to a stream that ended is its end: the client reconnects and gets it again.
    logger.warn({ err: error, clientId: session.clientId }, "could not send the snapshot; dropping the client so it reconnects");
    session.terminate("unavailable", "could not send the snapshot; reconnect");
  });
}
