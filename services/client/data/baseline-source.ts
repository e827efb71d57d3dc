/**
 * Where the client's baseline entries come from: the server's GetDataSourcesConfig (or
 * OPAL's REST /data/config when OPAL_DEFAULT_DATA_SOURCES_CONFIG_URL is set), following
 * an external_source_url with the client's token, as OPAL does.
 */
import { createClient } from "@connectrpc/connect";
import { request } from "undici";
import type { DataSourceEntry } from "../../../gen/opal/mesh/v1/data_pb.js";
import { DistributorService } from "../../../gen/opal/mesh/v1/distributor_pb.js";
import { redactUrl } from "../../common/config/env-reader.js";
import type { ClientTls } from "../../common/config/tls-config.js";
import { parseDataSourceEntry } from "../../common/data-entries.js";
import { callTransport } from "../server-transports.js";

export interface BaselineSourceOptions {
  /** The server currently in use. */
  serverUrl: () => string;
  configUrl: string | undefined;
  token: string | undefined;
  clientId: string;
  scope: string;
  timeoutMs: number;
  tls?: ClientTls;
}

export class BaselineSource {
  constructor(private readonly options: BaselineSourceOptions) {}

  async entries(signal: AbortSignal): Promise<DataSourceEntry[]> {
    if (this.options.configUrl !== undefined) return this.fetchEntries(this.options.configUrl, signal);
    const transport = callTransport(this.options.serverUrl(), this.options.tls);
    const response = await createClient(DistributorService, transport).getDataSourcesConfig(
      { clientId: this.options.clientId, scope: this.options.scope },
      { signal, headers: this.headers(), timeoutMs: this.options.timeoutMs },
    );
    const config = response.config;
    if (config === undefined) return [];
    if (config.externalSourceUrl !== "") {
      const url = new URL(config.externalSourceUrl);
      if (this.options.token !== undefined) url.searchParams.set("token", this.options.token);
      return this.fetchEntries(url.toString(), signal);
    }
    return config.entries;
  }

  private headers(): Record<string, string> {
    return this.options.token === undefined ? {} : { authorization: `Bearer ${this.options.token}` };
  }

  /** OPAL's DataSourceConfig JSON, {"entries": [...]}, following redirects. */
  private async fetchEntries(url: string, signal: AbortSignal, redirects = 3): Promise<DataSourceEntry[]> {
    const response = await request(url, { headers: this.headers(), signal, headersTimeout: this.options.timeoutMs, bodyTimeout: this.options.timeoutMs });
    if ([301, 302, 303, 307, 308].includes(response.statusCode) && redirects > 0) {
      await response.body.dump();
      const location = response.headers.location;
      if (typeof location !== "string") throw new Error(`${redactUrl(url)} redirected without a location`);
      return this.fetchEntries(new URL(location, url).toString(), signal, redirects - 1);
    }
    const text = await response.body.text();
    if (response.statusCode !== 200) throw new Error(`data sources config at ${redactUrl(url)} answered ${response.statusCode}: ${text.slice(0, 200)}`);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new Error(`data sources config at ${redactUrl(url)} is not JSON`);
    }
    const entries = (json as { entries?: unknown }).entries;
    if (!Array.isArray(entries)) throw new Error(`data sources config at ${redactUrl(url)} has no "entries" list`);
    return entries.map((entry, index) => parseDataSourceEntry(entry, `entries[${index}]`, { allowPeriodic: true }));
  }
}
