/**
 * OPAL's update reports: with OPAL_SHOULD_REPORT_ON_DATA_UPDATES, a DataUpdateReport is
 * POSTed to the default callbacks and the update's own `callback.callbacks` after every
 * data update. Unlike OPAL, each is retried with backoff; none delays the next update.
 * Entry configs (which may hold credentials) and data are not repeated in the report.
 * Every callback, the operator's too, goes through the FetchGuard: a report is never
 * sent into the client's own OPA or API, nor to a metadata address not allow-listed.
 */
import { request } from "undici";
import type { CallbackTarget } from "../../gen/opal/mesh/v1/data_pb.js";
import { retry } from "../common/backoff.js";
import { redactUrl } from "../common/config/env-reader.js";
import { parseJsonBytes, saveMethodName } from "../common/data-entries.js";
import { type Closed, Closing, type Component } from "../common/lifecycle.js";
import type { Logger } from "../common/logger.js";
import type { UrlAllowlist } from "../common/url-allowlist.js";
import type { JobResult } from "./data/update-pipeline.js";
import { closeWhenDone, type FetchGuard, FetchRefusedError } from "./fetch/fetch-guard.js";

export interface UpdateReporterOptions {
  enabled: boolean;
  /** A publisher's own callbacks are held to OPAL_FETCH_URL_ALLOWLIST (the operator's defaults are not). */
  allowlist: UrlAllowlist;
  /** Where a report may go (the callback's method is the report's, not held to the method rule). */
  guard: FetchGuard;
  callbacks: readonly CallbackTarget[];
  defaultConfig: Record<string, unknown>;
  logger: Logger;
  attempts?: number;
}

/** A lifecycle part: reports under way are given a moment at stop, then dropped. */
export class UpdateReporter implements Component {
  readonly name = "update-reporter";
  private readonly closing = new Closing();
  private stopping: Promise<void> | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly controller = new AbortController();
  /** Reports delivered, for tests and metrics. */
  delivered = 0;

  constructor(private readonly options: UpdateReporterOptions) {}

  report(result: JobResult, policyHash: string): void {
    if (!this.options.enabled) return;
    const body = JSON.stringify({
      update_id: result.job.updateId,
      reports: result.entries.map((outcome) => ({
        entry: { url: redactUrl(outcome.entry.url), topics: outcome.entry.topics, dst_path: outcome.entry.dstPath, save_method: saveMethodName(outcome.entry.saveMethod) },
        fetched: outcome.fetched,
        saved: outcome.saved,
        ...(outcome.error === undefined ? {} : { error: outcome.error }),
        ...(outcome.hash === undefined ? {} : { hash: outcome.hash }),
      })),
      policy_hash: policyHash,
      user_data: {},
    });
    const own = (result.job.callbacks ?? []).filter((target) => {
      const allowed = this.options.allowlist.allows(target.url);
      if (!allowed) this.options.logger.warn({ callback: redactUrl(target.url) }, "not reporting to a callback outside OPAL_FETCH_URL_ALLOWLIST");
      return allowed;
    });
    for (const target of [...this.options.callbacks, ...own]) {
      const sending = this.send(target, body).finally(() => this.inFlight.delete(sending));
      this.inFlight.add(sending);
    }
  }

  get closed(): Promise<Closed> {
    return this.closing.closed;
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  /** Waits (briefly) for reports under way, then drops the rest. */
  stop(timeoutMs = 2_000): Promise<void> {
    this.stopping ??= (async () => {
      const timer = setTimeout(() => this.controller.abort(), timeoutMs);
      // Each send catches and logs its own failure: settled is all there is to wait for.
      await Promise.allSettled([...this.inFlight]);
      clearTimeout(timer);
      this.controller.abort();
      this.closing.stopped();
    })();
    return this.stopping;
  }

  private async send(target: CallbackTarget, body: string): Promise<void> {
    const config = { ...this.options.defaultConfig, ...(target.configJson.length > 0 ? (parseJsonBytes(target.configJson) as Record<string, unknown>) : {}) };
    const method = typeof config.method === "string" ? config.method.toUpperCase() : "POST";
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (typeof config.headers === "object" && config.headers !== null) {
      for (const [name, value] of Object.entries(config.headers as Record<string, unknown>)) headers[name.toLowerCase()] = String(value);
    }
    try {
      await retry(
        async () => {
          const dispatcher = this.options.guard.dispatcherFor(await this.options.guard.check(target.url, method, false));
          try {
            const response = await request(target.url, { method: method as "POST", headers, body, signal: this.controller.signal, headersTimeout: 10_000, bodyTimeout: 10_000, dispatcher });
            await response.body.dump();
            if (response.statusCode >= 300) throw new Error(`answered ${response.statusCode}`);
          } finally {
            closeWhenDone(dispatcher);
          }
        },
        { attempts: this.options.attempts ?? 4, backoff: { initialMs: 200, maxMs: 5_000 }, signal: this.controller.signal, isRetryable: (error) => !(error instanceof FetchRefusedError) },
      );
      this.delivered++;
    } catch (error) {
      if (!this.controller.signal.aborted) this.options.logger.warn({ callback: redactUrl(target.url), err: (error as Error).message }, "update report not delivered");
    }
  }
}
