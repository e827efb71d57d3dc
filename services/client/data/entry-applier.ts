/**
 * Fetches one data source entry (unless its data is inline) and writes it into the
 * policy store at its dst_path, each step under its own retry policy.
 */
import { type DataSourceEntry, SaveMethod } from "../../../gen/opal/mesh/v1/data_pb.js";
import { retry } from "../../common/backoff.js";
import type { RetryPolicy } from "../../common/config/retry-options.js";
import { redactUrl } from "../../common/config/env-reader.js";
import { parseJsonBytes, saveMethodName } from "../../common/data-entries.js";
import type { Logger } from "../../common/logger.js";
import { FetchError } from "../fetch/types.js";
import type { FetchProviderRegistry } from "../fetch/registry.js";
import { type PolicyStore, PolicyStoreError } from "../policy-store.js";

export interface EntryApplierOptions {
  registry: FetchProviderRegistry;
  store: PolicyStore;
  fetchRetry: RetryPolicy;
  storeRetry: RetryPolicy;
  splitRootData: boolean;
  logger: Logger;
}

/** Where an entry failed, for health and ACKs. */
export class EntryError extends Error {
  override readonly name = "EntryError";
  constructor(
    readonly stage: "fetch" | "save",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function describeEntry(entry: DataSourceEntry): string {
  const source = entry.dataJson !== undefined ? "inline data" : entry.url === "" ? "no source" : redactUrl(entry.url);
  return `${saveMethodName(entry.saveMethod)} ${entry.dstPath} from ${source}`;
}

export class EntryApplier {
  constructor(private readonly options: EntryApplierOptions) {}

  /** The entry's data as JSON bytes; undefined for DELETE. */
  async fetch(entry: DataSourceEntry, signal: AbortSignal): Promise<Uint8Array | undefined> {
    if (entry.saveMethod === SaveMethod.DELETE) return undefined;
    if (entry.dataJson !== undefined) return entry.dataJson;
    const config = entry.configJson.length > 0 ? (parseJsonBytes(entry.configJson) as Record<string, unknown>) : {};
    try {
      const provider = this.options.registry.providerFor(config);
      return await retry((attempt) => provider.fetch({ url: entry.url, config, signal }).catch((error: unknown) => {
        this.options.logger.warn({ url: redactUrl(entry.url), attempt, err: (error as Error).message }, "fetch failed");
        throw error;
      }), {
        ...this.options.fetchRetry,
        signal,
        isRetryable: (error) => !(error instanceof FetchError) || error.retryable,
      });
    } catch (error) {
      if (signal.aborted) throw error;
      throw new EntryError("fetch", `failed to fetch data for ${describeEntry(entry)}: ${(error as Error).message}`, { cause: error });
    }
  }

  async save(entry: DataSourceEntry, data: Uint8Array | undefined, signal: AbortSignal): Promise<void> {
    const method = saveMethodName(entry.saveMethod);
    const writes =
      this.options.splitRootData && entry.dstPath === "/" && method !== "DELETE" && data !== undefined ? splitRoot(data, method) : [{ path: entry.dstPath, body: data }];
    try {
      for (const write of writes) {
        await retry(() => this.options.store.writeData({ method, path: write.path, body: write.body }, signal), {
          ...this.options.storeRetry,
          signal,
          isRetryable: (error) => !(error instanceof PolicyStoreError) || !error.isRejection,
        });
      }
    } catch (error) {
      if (signal.aborted) throw error;
      throw new EntryError("save", `failed to save data to the policy store for ${describeEntry(entry)}: ${(error as Error).message}`, { cause: error });
    }
  }
}

/** OPAL_SPLIT_ROOT_DATA: a root object is written one top-level key at a time. */
function splitRoot(data: Uint8Array, _method: string): Array<{ path: string; body: Uint8Array }> {
  const parsed = parseJsonBytes(data);
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return [{ path: "/", body: data }];
  return Object.entries(parsed as Record<string, unknown>).map(([key, value]) => ({ path: `/${key}`, body: Buffer.from(JSON.stringify(value)) }));
}
