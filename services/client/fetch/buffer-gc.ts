/**
 * Streaming a big document allocates one network buffer per socket read, dead as soon as
 * it is passed on. Their memory is outside V8's heap and is freed only when V8 collects
 * their small JS wrappers, and V8 lets about 64 MB of such external memory pile up before
 * it does: on a 150 MB stream, most of what the client would grow by. A minor GC (a
 * scavenge, about a millisecond) every few MB streamed keeps that pile small.
 */
import v8 from "node:v8";
import vm from "node:vm";

/** How much may be streamed between two collections. */
export const COLLECT_EVERY_BYTES = 8 * 1024 * 1024;

type Collect = (options?: { type?: "minor" | "major" }) => void;

let collect: Collect | null | undefined;

function collector(): Collect | null {
  if (collect === undefined) {
    try {
      // --expose-gc set now reaches new contexts only: the process's own globals are unchanged.
      v8.setFlagsFromString("--expose-gc");
      const gc: unknown = vm.runInNewContext("gc");
      collect = typeof gc === "function" ? (gc as Collect) : null;
    } catch {
      // No collector to call: buffers are freed by V8's own schedule.
      collect = null;
    }
  }
  return collect;
}

/** Counts streamed bytes and collects dead buffers every COLLECT_EVERY_BYTES. */
export class BufferCollector {
  private sinceLast = 0;

  streamed(bytes: number): void {
    this.sinceLast += bytes;
    if (this.sinceLast < COLLECT_EVERY_BYTES) return;
    this.sinceLast = 0;
    collector()?.({ type: "minor" });
  }
}
