/**
 * The latency budget from hop marks (services/common/telemetry/hop-clock.ts): the lines
 * every process of the system under test wrote, joined by update id (and client), turned
 * into one duration per hop per update. Marks come from different processes, on one
 * machine's clock (performance.timeOrigin + now()).
 */
import { readFile } from "node:fs/promises";

/** One update's marks: update-wide hops once, per-client hops by client id. */
interface Timeline {
  once: Map<string, number>;
  clients: Map<string, Map<string, number>>;
}

/** Reads the hop files; `sent` and `answered` are the bench's own times per update id. */
export async function readTimelines(files: readonly string[]): Promise<Map<string, Timeline>> {
  const timelines = new Map<string, Timeline>();
  for (const file of files) {
    const text = await readFile(file, "utf8").catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return "";
      throw error;
    });
    for (const line of text.split("\n")) {
      if (line === "") continue;
      const [time, , hop, updateId, client] = line.split("\t");
      if (time === undefined || hop === undefined || updateId === undefined) continue;
      let timeline = timelines.get(updateId);
      if (timeline === undefined) {
        timeline = { once: new Map(), clients: new Map() };
        timelines.set(updateId, timeline);
      }
      if (client === undefined || client === "") {
        // A hop marked twice (e.g. an update's entry re-marked) keeps its first time.
        if (!timeline.once.has(hop)) timeline.once.set(hop, Number(time));
      } else {
        let marks = timeline.clients.get(client);
        if (marks === undefined) {
          marks = new Map();
          timeline.clients.set(client, marks);
        }
        if (!marks.has(hop)) marks.set(hop, Number(time));
      }
    }
  }
  return timelines;
}

/** A row of the budget: the time from one hop to the next, per update (or per update and client). */
export interface BudgetRow {
  name: string;
  samples: number[];
}

/** The hops in path order; each row is the time from the mark before it. */
const UPDATE_HOPS: Array<[string, string, string]> = [
  ["bench.sent", "rest.received", "bench → REST handler (HTTP request on loopback, Node's parser)"],
  ["rest.received", "rest.parsed", "REST body read, parse and validation, topic authorization"],
  ["rest.parsed", "broadcaster.appended", "event batcher turn + broadcaster call + log append"],
  ["broadcaster.appended", "fanout.dispatched", "log → distributor's subscription → fan-out"],
];
const CLIENT_HOPS: Array<[string, string, string]> = [
  ["fanout.dispatched", "stream.queued", "fan-out: fold, encode once, hand to the client's session"],
  ["stream.queued", "client.received", "send queue turn, grpc-js write, HTTP/2 on loopback, client decode"],
  ["client.received", "client.write.started", "client: routing and queueing before the OPA write"],
  ["client.write.started", "client.written", "the OPA write (HTTP PATCH to OPA, one transaction)"],
  ["client.written", "client.acked", "client: job results, ACK built and sent (cumulative at the end of the turn)"],
  ["client.acked", "distributor.acked", "ACK on the stream, decode, delivery tracker"],
];

/**
 * The budget rows from the timelines of `updateIds` (the measured ones). Each update must
 * have every hop: a missing mark is a broken path or a broken clock, and fails the run.
 */
export function budget(timelines: Map<string, Timeline>, updateIds: readonly string[], bench: Map<string, { sent: number; answered: number }>, clients: number): BudgetRow[] {
  const rows = new Map<string, number[]>();
  const add = (name: string, value: number): void => {
    let samples = rows.get(name);
    if (samples === undefined) {
      samples = [];
      rows.set(name, samples);
    }
    samples.push(Math.round(value * 1000) / 1000);
  };
  for (const updateId of updateIds) {
    const timeline = timelines.get(updateId);
    const own = bench.get(updateId);
    if (timeline === undefined || own === undefined) throw new Error(`update ${updateId}: no hop marks (was OPAL_MESH_HOP_TIMING_FILE passed to every process?)`);
    const once = new Map(timeline.once);
    once.set("bench.sent", own.sent);
    const at = (marks: Map<string, number>, hop: string, who: string): number => {
      const time = marks.get(hop);
      if (time === undefined) throw new Error(`update ${updateId}${who}: no "${hop}" mark`);
      return time;
    };
    for (const [from, to, name] of UPDATE_HOPS) add(name, at(once, to, "") - at(once, from, ""));
    if (timeline.clients.size !== clients) throw new Error(`update ${updateId}: marks from ${timeline.clients.size} clients, not ${clients}`);
    let lastAck = 0;
    let lastWritten = 0;
    for (const [client, marks] of timeline.clients) {
      const merged = new Map([...once, ...marks]);
      for (const [from, to, name] of CLIENT_HOPS) add(name, at(merged, to, ` (${client})`) - at(merged, from, ` (${client})`));
      lastAck = Math.max(lastAck, at(merged, "distributor.acked", ` (${client})`));
      lastWritten = Math.max(lastWritten, at(merged, "client.written", ` (${client})`));
    }
    add("last client's ACK → publish-with-wait answered (waiter, status, JSON)", at(once, "trigger.answered", "") - lastAck);
    add("publish → readable in every client's OPA (the last client's PATCH answered)", lastWritten - own.sent);
    add("answer → bench has the response", own.answered - at(once, "trigger.answered", ""));
    add("total: bench sent → bench has the answer", own.answered - own.sent);
  }
  return [...rows].map(([name, samples]) => ({ name, samples }));
}
