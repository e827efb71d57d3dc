/**
 * Fetches data source entries (unless their data is inline) and commits a job's entries
 * into the store: in one transaction with the status document, whose position advances
 * with the data; when the store refuses that transaction, entry by entry, so one bad
 * entry does not hold back the others.
 * Over 300 lines: screening (reserved paths), fetching, the two commit modes and the
 * retry that never writes again what a failed commit's earlier patches landed decide
 * together which entries a job's transaction holds.
 */
import { type DataSourceEntry, SaveMethod } from "../../../gen/opal/mesh/v1/data_pb.js";
import { retry } from "../../common/backoff.js";
import type { RetryPolicy } from "../../common/config/retry-options.js";
import { redactUrl } from "../../common/config/env-reader.js";
import { parseJsonBytes, saveMethodName } from "../../common/data-entries.js";
import type { Logger } from "../../common/logger.js";
import { landsAtRoot, ReservedPaths } from "../../common/reserved-paths.js";
import type { UrlAllowlist } from "../../common/url-allowlist.js";
import { FetchError, type FetchProvider } from "../fetch/types.js";
import type { FetchProviderRegistry } from "../fetch/registry.js";
import { StreamedSource } from "../fetch/streamed-source.js";
import type { PositionMark } from "../opa-status.js";
import { PolicyStoreError } from "../policy-store.js";
import type { StatusRecord, StatusWriter } from "../sync-state.js";
import { type EntryData, type EntryWrite, StoreLostStateError, writesLanded } from "./data-transaction.js";
import type { JobApplier, UpdateJob } from "./update-pipeline.js";
import { endSpan, SpanKind } from "../../common/telemetry/tracing.js";
import { httpClientAttributes, type UpdateTrace } from "../update-trace.js";

export interface EntryApplierOptions {
  registry: FetchProviderRegistry;
  /** Where writes are committed with the status document (the sync state: it moves the position, and notices a lost OPA). */
  status: StatusWriter;
  fetchRetry: RetryPolicy;
  storeRetry: RetryPolicy;
  splitRootData: boolean;
  /** OPAL_FETCH_URL_ALLOWLIST: sources outside it are refused, whoever published the update. */
  allowlist: UrlAllowlist;
  /**
   * OPA's system namespace: writes there are refused (each entry alone), whatever the
   * server let through (OPAL_MESH_WRITABLE_SYSTEM_PATHS opens parts). Default: none open.
   */
  reservedPaths?: ReservedPaths;
  logger: Logger;
  /** The policy store's URL, for the spans of writes to it. */
  storeUrl?: string;
  /**
   * Documents at least this big (bytes) are streamed from their source into the store
   * when nothing has to be done to them (a PUT, untransformed), never held whole.
   */
  streamAbove?: number;
}

/** Below this a document is fetched whole, as it always was: streaming pays off for big ones. */
export const DEFAULT_STREAM_ABOVE = 1024 * 1024;

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

export class EntryApplier implements JobApplier {
  private readonly reserved: ReservedPaths;

  constructor(private readonly options: EntryApplierOptions) {
    this.reserved = options.reservedPaths ?? ReservedPaths.NONE;
  }

  /**
   * Why this write may not reach the store (it lands in OPA's system namespace: by its
   * dst_path, a JSON Patch operation's path, or a `system` key of a root document).
   */
  private refusal({ entry, data }: EntryWrite): string | undefined {
    const method = saveMethodName(entry.saveMethod);
    let document: unknown;
    if (data instanceof Uint8Array && (method === "PATCH" || landsAtRoot(entry.dstPath))) {
      try {
        document = parseJsonBytes(data);
      } catch {
        // not JSON: the store refuses it, entry by entry
      }
    } else if (data instanceof StreamedSource && landsAtRoot(entry.dstPath)) {
      return `refused to write ${describeEntry(entry)}: a document at the data root is checked for a "system" key, and this one was not read whole`;
    }
    const problem = this.reserved.writeProblem({ path: entry.dstPath, method, data: document });
    return problem === undefined ? undefined : `refused to write ${describeEntry(entry)}: ${problem}`;
  }

  /** The entry's data (JSON bytes, or a big document left on the wire); undefined for DELETE. */
  async fetch(entry: DataSourceEntry, signal: AbortSignal, trace?: UpdateTrace): Promise<EntryData | undefined> {
    // Nothing is fetched for a write that would be refused anyway.
    const refused = this.reserved.pathProblem(entry.dstPath);
    if (refused !== undefined) throw new EntryError("fetch", `refused to write ${describeEntry(entry)}: ${refused}`);
    if (entry.saveMethod === SaveMethod.DELETE) return undefined;
    if (entry.dataJson !== undefined) return entry.dataJson;
    if (trace === undefined) return this.fetchSource(entry, signal);
    const config = entry.configJson.length > 0 ? (parseJsonBytes(entry.configJson) as Record<string, unknown>) : {};
    const method = typeof config.method === "string" ? config.method.toUpperCase() : "GET";
    // The fetcher config holds credentials: only the method and the URL without its query go in the span.
    const span = trace.child(method, SpanKind.CLIENT, { ...httpClientAttributes(method, entry.url), "opal_mesh.fetcher": typeof config.fetcher === "string" ? config.fetcher : "http" });
    try {
      const data = await this.fetchSource(entry, signal);
      const size = data instanceof Uint8Array ? data.byteLength : data?.length;
      if (size !== undefined) span.setAttribute("http.response.body.size", size);
      endSpan(span);
      return data;
    } catch (error) {
      endSpan(span, error);
      throw error;
    }
  }

  private async fetchSource(entry: DataSourceEntry, signal: AbortSignal): Promise<EntryData | undefined> {
    if (!this.options.allowlist.allows(entry.url)) {
      throw new EntryError("fetch", `refused to fetch ${describeEntry(entry)}: not allowed by OPAL_FETCH_URL_ALLOWLIST`);
    }
    const config = entry.configJson.length > 0 ? (parseJsonBytes(entry.configJson) as Record<string, unknown>) : {};
    try {
      const provider = this.options.registry.providerFor(config);
      return await retry(
        (attempt) =>
          this.fetchOnce(provider, entry, config, signal).catch((error: unknown) => {
            this.options.logger.warn({ url: redactUrl(entry.url), attempt, err: (error as Error).message }, "fetch failed");
            throw error;
          }),
        { ...this.options.fetchRetry, signal, isRetryable: (error) => !(error instanceof FetchError) || error.retryable },
      );
    } catch (error) {
      if (signal.aborted) throw error;
      throw new EntryError("fetch", `failed to fetch data for ${describeEntry(entry)}: ${(error as Error).message}`, { cause: error });
    }
  }

  /**
   * A document to write as it is (a PUT, no transformation asked for) comes back as a
   * StreamedSource when it is big; everything else is fetched whole.
   */
  private async fetchOnce(provider: FetchProvider, entry: DataSourceEntry, config: Record<string, unknown>, signal: AbortSignal): Promise<EntryData> {
    const open = provider.open?.bind(provider);
    // A root document is read whole: SPLIT_ROOT_DATA splits it, and its keys are checked for `system`.
    const untransformed = entry.saveMethod === SaveMethod.PUT && !landsAtRoot(entry.dstPath);
    if (open === undefined || !untransformed) return provider.fetch({ url: entry.url, config, signal });
    const opened = await open({ url: entry.url, config, signal }, this.options.streamAbove ?? DEFAULT_STREAM_ABOVE);
    if (opened === undefined) return provider.fetch({ url: entry.url, config, signal });
    if (opened instanceof Uint8Array) return opened;
    const reopen = async (writeSignal: AbortSignal | undefined): Promise<Uint8Array | NonNullable<typeof opened>> => {
      const again = await open({ url: entry.url, config, signal: writeSignal ?? new AbortController().signal }, 0);
      if (again === undefined) throw new FetchError(`${redactUrl(entry.url)} can no longer be streamed`, false);
      return again;
    };
    return new StreamedSource(opened, reopen, redactUrl(entry.url));
  }

  async commit(job: UpdateJob, writes: readonly EntryWrite[], fetchErrors: readonly string[], signal: AbortSignal): Promise<Array<{ ok: boolean; error?: string }>> {
    try {
      return await this.traced([job], () => this.commitJob(job, writes, fetchErrors, signal));
    } finally {
      release(writes);
    }
  }

  async commitMany(items: ReadonlyArray<{ job: UpdateJob; writes: readonly EntryWrite[]; fetchErrors: readonly string[] }>, signal: AbortSignal): Promise<Array<Array<{ ok: boolean; error?: string }>>> {
    try {
      return await this.traced(
        items.map((item) => item.job),
        () => this.commitJobs(items, signal),
      );
    } finally {
      for (const item of items) release(item.writes);
    }
  }

  /** The write to OPA as a span in each traced job's trace (a batch is one transaction for all). */
  private async traced<T>(jobs: readonly UpdateJob[], write: () => Promise<T>): Promise<T> {
    const spans = jobs.flatMap((job) => (job.trace === undefined ? [] : [job.trace.child("PATCH", SpanKind.CLIENT, { ...httpClientAttributes("PATCH", `${this.options.storeUrl}/v1/data`), "opal_mesh.batch": jobs.length })]));
    try {
      const result = await write();
      for (const span of spans) endSpan(span);
      return result;
    } catch (error) {
      for (const span of spans) endSpan(span, error);
      throw error;
    }
  }

  /** Refused writes fail alone, with the rule in their error; the others are committed. */
  private async commitJob(job: UpdateJob, writes: readonly EntryWrite[], fetchErrors: readonly string[], signal: AbortSignal): Promise<Array<{ ok: boolean; error?: string }>> {
    const refusals = writes.map((write) => this.refusal(write));
    if (refusals.every((refusal) => refusal === undefined)) return this.commitScreened(job, writes, fetchErrors, signal);
    const accepted = writes.filter((_, index) => refusals[index] === undefined);
    const outcomes = await this.commitScreened(job, accepted, [...fetchErrors, ...refusals.filter((refusal) => refusal !== undefined)], signal);
    let next = 0;
    return refusals.map((refusal) => (refusal === undefined ? (outcomes[next++] ?? { ok: false, error: "internal: no outcome" }) : { ok: false, error: refusal }));
  }

  private async commitScreened(job: UpdateJob, writes: readonly EntryWrite[], fetchErrors: readonly string[], signal: AbortSignal): Promise<Array<{ ok: boolean; error?: string }>> {
    const { status } = this.options;
    // Log events (and a baseline, at its head) move the position; periodic refetches do not.
    const mark = markOf(job);
    const expanded = writes.flatMap((write) => this.expand(write));
    // A baseline's own transaction says whether the baseline is now loaded.
    const record = (ok: boolean, error?: string) => ({
      mark,
      transaction: { ok, kind: job.kind, id: job.updateId, ...(error === undefined ? {} : { error }), at: new Date().toISOString() },
      ...(job.kind === "baseline" ? { baselineLoaded: ok } : {}),
    });
    const fetchError = fetchErrors.filter((error) => error !== "").join("; ");
    const landed = await this.commitRetried(expanded, signal, record(fetchError === "", fetchError || undefined));
    if (landed === undefined) return writes.map(() => ({ ok: true }));
    // The store refused the transaction: find out which entries it refuses, leaving out
    // the writes its earlier patches put in the store already.
    const done = this.wholeWrites(writes, landed).count;
    const outcomes: Array<{ ok: boolean; error?: string }> = writes.slice(0, done).map(() => ({ ok: true }));
    for (const write of writes.slice(done)) {
      try {
        await this.withStoreRetry(() => status.commit(this.expand(write), signal), signal);
        outcomes.push({ ok: true });
      } catch (error) {
        if (signal.aborted || error instanceof StoreLostStateError) throw error;
        outcomes.push({ ok: false, error: `failed to save data to the policy store for ${describeEntry(write.entry)}: ${(error as Error).message}` });
      }
    }
    const errors = [fetchError, ...outcomes.map((outcome) => outcome.error ?? "")].filter((error) => error !== "").join("; ");
    await this.withStoreRetry(() => status.commit([], signal, record(false, errors)), signal);
    return outcomes;
  }

  private async commitJobs(items: ReadonlyArray<{ job: UpdateJob; writes: readonly EntryWrite[]; fetchErrors: readonly string[] }>, signal: AbortSignal): Promise<Array<Array<{ ok: boolean; error?: string }>>> {
    const last = items.at(-1);
    if (last === undefined) return [];
    // A refused write fails alone: the jobs go one by one, as when the store refuses one.
    if (items.some((item) => item.writes.some((write) => this.refusal(write) !== undefined))) {
      const outcomes: Array<Array<{ ok: boolean; error?: string }>> = [];
      for (const item of items) outcomes.push(await this.commitJob(item.job, item.writes, item.fetchErrors, signal));
      return outcomes;
    }
    const mark = markOf(last.job);
    const fetchError = items.flatMap((item) => item.fetchErrors).filter((error) => error !== "").join("; ");
    const transaction = { ok: fetchError === "", kind: last.job.kind, id: last.job.updateId, ...(fetchError === "" ? {} : { error: fetchError }), at: new Date().toISOString() };
    const landed = await this.commitRetried(items.flatMap((item) => item.writes.flatMap((write) => this.expand(write))), signal, { mark, transaction });
    if (landed === undefined) return items.map((item) => item.writes.map(() => ({ ok: true })));
    // One of them is refused: commit them one by one, so only that one fails; what the
    // store took already (the batch's earlier patches) is not written again.
    const outcomes: Array<Array<{ ok: boolean; error?: string }>> = [];
    let left = landed;
    for (const item of items) {
      const done = this.wholeWrites(item.writes, left);
      left = done.count === item.writes.length ? left - done.parts : 0;
      const tail = done.count === item.writes.length ? [] : await this.commitJob(item.job, item.writes.slice(done.count), item.fetchErrors, signal);
      outcomes.push([...item.writes.slice(0, done.count).map(() => ({ ok: true })), ...tail]);
    }
    return outcomes;
  }

  /**
   * Commits with the store's retries, each writing only what the attempts before it did
   * not land (a commit in several patches may fail after its first). Undefined once all
   * is committed; when the store refused, how many writes landed all the same.
   */
  private async commitRetried(writes: readonly EntryWrite[], signal: AbortSignal, record: StatusRecord): Promise<number | undefined> {
    let landed = 0;
    try {
      await this.withStoreRetry(
        () =>
          this.options.status.commit(writes.slice(landed), signal, record).catch((error: unknown) => {
            landed += writesLanded(error);
            throw error;
          }),
        signal,
      );
      return undefined;
    } catch (error) {
      // The sync state has started the reload: this job is over.
      if (error instanceof StoreLostStateError) throw error;
      if (signal.aborted || !refusedOrSourceFailed(error)) {
        throw new EntryError("save", `failed to save to the policy store: ${(error as Error).message}`, { cause: error });
      }
      return landed;
    }
  }

  /**
   * The leading writes wholly among the first `landed` expanded ones, and their parts. (A
   * patch boundary never falls inside a split root's parts; if one did, writing those PUTs
   * again would leave the same state.)
   */
  private wholeWrites(writes: readonly EntryWrite[], landed: number): { count: number; parts: number } {
    let count = 0;
    let parts = 0;
    for (const write of writes) {
      const size = this.expand(write).length;
      if (parts + size > landed) break;
      parts += size;
      count++;
    }
    return { count, parts };
  }

  /** OPAL_SPLIT_ROOT_DATA: a root object is written one top-level key at a time. */
  private expand(write: EntryWrite): EntryWrite[] {
    const { entry, data } = write;
    if (!this.options.splitRootData || entry.dstPath !== "/" || entry.saveMethod !== SaveMethod.PUT || !(data instanceof Uint8Array)) return [write];
    const parsed = parseJsonBytes(data);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return [write];
    return Object.entries(parsed as Record<string, unknown>).map(([key, value]) => ({
      entry: { ...entry, dstPath: `/${key}` },
      data: Buffer.from(JSON.stringify(value)),
    }));
  }

  /** A lost OPA is not retried: the sync state has started the reload, and a retry would write into the empty OPA. */
  private withStoreRetry<T>(operation: () => Promise<T>, signal: AbortSignal): Promise<T> {
    return retry(operation, {
      ...this.options.storeRetry,
      signal,
      isRetryable: (error) => (error instanceof FetchError ? error.retryable : !(error instanceof StoreLostStateError) && (!(error instanceof PolicyStoreError) || !error.isRejection)),
    });
  }
}

/** The position a job moves OPA to: a log event's, a baseline's head; none for a refetch. */
function markOf(job: UpdateJob): PositionMark | undefined {
  return job.position !== undefined && job.logId !== undefined ? { logId: job.logId, position: job.position } : undefined;
}

/**
 * The store refused the transaction, or a source streamed into it failed (the store then
 * applied nothing): worth finding out entry by entry which one it was.
 */
function refusedOrSourceFailed(error: unknown): boolean {
  return error instanceof FetchError || (error instanceof PolicyStoreError && error.isRejection);
}

/** Frees the source connections of streamed documents no write read. */
function release(writes: readonly EntryWrite[]): void {
  for (const { data } of writes) if (data instanceof StreamedSource) data.release();
}
