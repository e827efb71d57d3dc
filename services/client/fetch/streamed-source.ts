/**
 * A fetched document too big to hold, as it travels from the fetch stage to the write:
 * the source's response, opened and checked to be JSON but left on the wire, read once
 * while the write to the store is being sent. A retried write (OPA unreachable, the
 * source cut off mid-way) opens the source again: a body cannot be read twice.
 */
import { createHash } from "node:crypto";
import type { ValueStream } from "../policy-store.js";
import { BufferCollector } from "./buffer-gc.js";
import type { OpenedBody } from "./types.js";

export type Reopen = (signal: AbortSignal | undefined) => Promise<Uint8Array | OpenedBody>;

function bodyOf(opened: Uint8Array | OpenedBody): OpenedBody {
  if (!(opened instanceof Uint8Array)) return opened;
  // The source shrank below the streaming size since the first fetch: its bytes as one chunk.
  return {
    chunks: (async function* () {
      yield opened;
    })(),
    length: opened.byteLength,
    discard: () => undefined,
  };
}

export class StreamedSource implements ValueStream {
  /** sha256 of the body last read to its end (OPAL's report hash). */
  hash: string | undefined;
  /** Bytes of the body last read to its end. */
  bytes: number | undefined;
  private pending: OpenedBody | undefined;

  constructor(
    first: OpenedBody,
    private readonly reopen: Reopen,
    /** The source's URL without credentials. */
    readonly source: string,
  ) {
    this.pending = first;
  }

  /** What the source declared, when it did. */
  get length(): number | undefined {
    return this.pending?.length ?? this.bytes;
  }

  async *chunks(signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    const body = this.pending ?? bodyOf(await this.reopen(signal));
    this.pending = undefined;
    const hash = createHash("sha256");
    const collector = new BufferCollector();
    let bytes = 0;
    try {
      for await (const chunk of body.chunks) {
        hash.update(chunk);
        bytes += chunk.byteLength;
        yield chunk;
        collector.streamed(chunk.byteLength);
      }
    } finally {
      // Read to the end, or abandoned by a failed write: either way the connection is done.
      body.discard();
    }
    this.hash = hash.digest("hex");
    this.bytes = bytes;
  }

  /** Frees the body opened at fetch time if no write read it (the job was dropped or failed early). */
  release(): void {
    this.pending?.discard();
    this.pending = undefined;
  }
}

/** The report hash of a fetched document: of its bytes, or of the body streamed into the store. */
export function documentHash(data: Uint8Array | StreamedSource): string | undefined {
  return data instanceof Uint8Array ? createHash("sha256").update(data).digest("hex") : data.hash;
}
