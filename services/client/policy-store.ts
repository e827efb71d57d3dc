/**
 * The engine the client writes into. OPA is the first implementation; the interface is
 * what a second engine (Cedar) must provide.
 */
export type SaveMethodName = "PUT" | "PATCH" | "DELETE";

export interface DataWrite {
  method: SaveMethodName;
  /** Data path, "/" for the root. */
  path: string;
  /** JSON bytes: the document for PUT, the operation list for PATCH; none for DELETE. */
  body?: Uint8Array;
}

export class PolicyStoreError extends Error {
  override readonly name = "PolicyStoreError";
  constructor(
    message: string,
    /** The engine's HTTP status; undefined when it could not be reached. */
    readonly status: number | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** The engine rejected the request itself: sending it again cannot help. */
  get isRejection(): boolean {
    return this.status !== undefined && this.status >= 400 && this.status < 500;
  }

  /** The engine refused the client's credentials (OPAL_POLICY_STORE_AUTH_TOKEN, a client certificate). */
  get isAuthFailure(): boolean {
    return this.status === 401 || this.status === 403;
  }
}

/**
 * Why a read of the engine failed, in the terms health reports: only an answer saying the
 * document is missing means the engine lost the client's state; a refusal of our
 * credentials and an engine that does not answer (or fails, 5xx) are problems of their own
 * and say nothing about what it holds.
 */
export type StoreReadProblem = { kind: "refused"; message: string } | { kind: "unavailable"; message: string } | { kind: "rejected"; message: string };

export function classifyStoreError(error: unknown): StoreReadProblem {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof PolicyStoreError && error.isAuthFailure) return { kind: "refused", message: `OPA refuses the client's credentials (check OPAL_POLICY_STORE_AUTH_TOKEN): ${message}` };
  if (error instanceof PolicyStoreError && error.isRejection) return { kind: "rejected", message };
  return { kind: "unavailable", message };
}

/** A value too big to hold: its JSON bytes are read from the source as the write is sent. */
export interface ValueStream {
  /** Where it comes from, for errors (a URL without credentials). */
  readonly source: string;
  /** The value's bytes, in order; each call reads the source afresh (a retried write). */
  chunks(signal?: AbortSignal): AsyncIterable<Uint8Array>;
}

/** One JSON Patch operation at an absolute data path; values stay raw JSON bytes (or a stream of them). */
export interface PatchOperation {
  op: "add" | "remove" | "replace";
  /** A JSON Pointer from the data root ("" is the root). */
  path: string;
  value?: Uint8Array | ValueStream;
}

export interface PolicyStore {
  readonly name: string;
  isHealthy(signal?: AbortSignal): Promise<boolean>;
  writeData(write: DataWrite, signal?: AbortSignal): Promise<void>;
  readData(path: string, signal?: AbortSignal): Promise<unknown>;
  /** Applies every operation in one transaction: all or nothing. */
  patch(operations: readonly PatchOperation[], signal?: AbortSignal): Promise<void>;
  /** Whether a document exists at the path, without reading it. */
  exists(path: string, signal?: AbortSignal): Promise<boolean>;
  putPolicy(id: string, rego: string, signal?: AbortSignal): Promise<void>;
  deletePolicy(id: string, signal?: AbortSignal): Promise<void>;
  /** Every module in the engine, with its source. */
  listPolicies(signal?: AbortSignal): Promise<Array<{ id: string; raw: string }>>;
  close(): Promise<void>;
}
