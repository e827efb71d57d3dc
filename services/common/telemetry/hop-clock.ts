/**
 * The latency budget's clock: a timestamp at each hop of an update (REST parse, log append,
 * dispatch, frame write, client receive, the OPA write, the ACK, the delivery tracker),
 * keyed by the update's id, written as lines to OPAL_MESH_HOP_TIMING_FILE for the bench
 * (`bench/scenarios/budget.ts`) to join across processes. Off unless that variable is set:
 * then each mark is one property read and a branch, so the hot path carries it always.
 *
 * One recorder per process, configured by the composition root through `createTracing`
 * (where the telemetry configuration arrives), because the marks sit in a dozen modules
 * that have no other reason to share a dependency; a diagnostics clock is not state
 * anything depends on. Times are performance.timeOrigin + now(): one clock for every
 * process of the machine, to the microsecond.
 */
import { appendFileSync } from "node:fs";

export type Hop =
  | "rest.received"
  | "rest.parsed"
  | "broadcaster.appended"
  | "fanout.dispatched"
  | "stream.queued"
  | "client.received"
  | "client.write.started"
  | "client.written"
  | "client.acked"
  | "distributor.acked"
  | "trigger.answered";

class HopClock {
  private file: string | undefined;
  private process = "";
  private lines: string[] = [];
  private timer: NodeJS.Timeout | undefined;

  get enabled(): boolean {
    return this.file !== undefined;
  }

  /** Starts recording into `file` (appended; several processes may share it). */
  start(file: string, processName: string): void {
    if (this.file !== undefined) return;
    this.file = file;
    this.process = processName;
    this.timer = setInterval(() => this.flush(), 250);
    this.timer.unref();
    process.once("exit", () => this.flush());
  }

  /** The clock's time now (0 when off): for a hop whose update id is known only later. */
  now(): number {
    return this.file === undefined ? 0 : performance.timeOrigin + performance.now();
  }

  /** `client`: the client the hop concerns, for hops per client (frame write, ACK); `at`: a time taken earlier with now(). */
  mark(hop: Hop, updateId: string, client = "", at = 0): void {
    if (this.file === undefined || updateId === "") return;
    this.lines.push(`${(at === 0 ? performance.timeOrigin + performance.now() : at).toFixed(3)}\t${this.process}\t${hop}\t${updateId}\t${client}\n`);
  }

  /** Writes what was marked (also every 250 ms and at exit). */
  flush(): void {
    if (this.file === undefined || this.lines.length === 0) return;
    const text = this.lines.join("");
    this.lines = [];
    appendFileSync(this.file, text);
  }
}

export const hopClock = new HopClock();
