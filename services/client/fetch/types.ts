/**
 * Fetch providers turn a data source entry into JSON bytes. HTTP and PostgreSQL are
 * built in; third-party providers are npm modules listed in OPAL_FETCH_PROVIDER_MODULES
 * that export `fetchProviders` (or a default export) of FetchProviderPlugin.
 */
import type { Logger } from "../../common/logger.js";

export interface FetchRequest {
  url: string;
  /** The entry's `config` object (OPAL's FetcherConfig), {} when none. */
  config: Record<string, unknown>;
  signal: AbortSignal;
}

export interface FetchProvider {
  /** OPAL's fetcher name, matched against config.fetcher (e.g. "HttpFetchProvider"). */
  readonly name: string;
  /** Returns the data as JSON bytes. */
  fetch(request: FetchRequest): Promise<Uint8Array>;
  close?(): Promise<void>;
}

export interface FetchProviderContext {
  logger: Logger;
  /** Per attempt: time allowed for the source to answer. */
  timeoutMs: number;
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
