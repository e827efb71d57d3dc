/**
 * Fetch providers turn a data source entry into JSON bytes. HTTP and PostgreSQL are
 * built in; third-party providers are npm modules listed in OPAL_FETCH_PROVIDER_MODULES
 * that export `fetchProviders` (or a default export) of FetchProviderPlugin.
 */
import type { Logger } from "../../common/logger.js";
import type { FetchGuard } from "./fetch-guard.js";

export interface FetchRequest {
  url: string;
  /** The entry's `config` object (OPAL's FetcherConfig), {} when none. */
  config: Record<string, unknown>;
  signal: AbortSignal;
}

/** A JSON document still arriving from its source: read it once, or discard it. */
export interface OpenedBody {
  /** The whole body, in order (bytes already read to validate it come first). */
  chunks: AsyncIterable<Uint8Array>;
  /** What the source declared (content-length), when it did. */
  length?: number;
  /** Frees the connection when the body will not be read to its end. */
  discard(): void;
}

export interface FetchProvider {
  /** OPAL's fetcher name, matched against config.fetcher (e.g. "HttpFetchProvider"). */
  readonly name: string;
  /** Returns the data as JSON bytes. */
  fetch(request: FetchRequest): Promise<Uint8Array>;
  /**
   * Optional: the document as it is, untransformed, for writing straight into the store.
   * A body shorter than `bufferBelow` bytes comes back whole; a longer one is left on the
   * wire (validated as JSON by its first bytes) so the client never holds all of it.
   * Returns undefined when the entry's config asks for a transformation (fetch() then).
   */
  open?(request: FetchRequest, bufferBelow: number): Promise<Uint8Array | OpenedBody | undefined>;
  close?(): Promise<void>;
}

export interface FetchProviderContext {
  logger: Logger;
  /** Per attempt: time allowed for the source to answer. */
  timeoutMs: number;
  /**
   * Checks every URL before a connection (the client's own OPA and API, metadata and
   * link-local addresses, methods other than GET); a provider that connects anywhere
   * calls it. Absent: one that knows no own endpoints and has no allow-list.
   */
  guard?: FetchGuard;
}

export interface FetchProviderPlugin {
  readonly name: string;
  create(context: FetchProviderContext): FetchProvider;
}

export class FetchError extends Error {
  override readonly name = "FetchError";
  constructor(
    message: string,
    /** False when trying again cannot help (e.g. a 404 or a bad query). */
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
