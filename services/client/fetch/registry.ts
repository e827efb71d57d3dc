/**
 * Picks the provider for an entry by config.fetcher (HttpFetchProvider by default) and
 * loads third-party providers by npm module name, as OPAL_FETCH_PROVIDER_MODULES does.
 */
import { createRequire } from "node:module";
import { isAbsolute, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { type Closed, Closing, type Component } from "../../common/lifecycle.js";
import { httpFetchProviderPlugin } from "./http-provider.js";
import { postgresFetchProviderPlugin } from "./postgres-provider.js";
import { FetchError, type FetchProvider, type FetchProviderContext, type FetchProviderPlugin } from "./types.js";

export const DEFAULT_FETCHER = "HttpFetchProvider";

function isPlugin(value: unknown): value is FetchProviderPlugin {
  return typeof value === "object" && value !== null && typeof (value as FetchProviderPlugin).name === "string" && typeof (value as FetchProviderPlugin).create === "function";
}

/** Resolves a module name from the working directory (where the user installed it), or a path. */
async function importModule(specifier: string, baseDir: string): Promise<Record<string, unknown>> {
  if (specifier.startsWith(".") || isAbsolute(specifier)) {
    return (await import(pathToFileURL(resolve(baseDir, specifier)).href)) as Record<string, unknown>;
  }
  try {
    const resolved = createRequire(join(baseDir, "noop.js")).resolve(specifier);
    return (await import(pathToFileURL(resolved).href)) as Record<string, unknown>;
  } catch {
    // Not installed beside the user's files: a package Node resolves itself (its error, if any, is reported).
    return (await import(specifier)) as Record<string, unknown>;
  }
}

export async function loadProviderPlugins(modules: readonly string[], baseDir: string): Promise<FetchProviderPlugin[]> {
  const plugins: FetchProviderPlugin[] = [];
  for (const specifier of modules) {
    let loaded: Record<string, unknown>;
    try {
      loaded = await importModule(specifier, baseDir);
    } catch (error) {
      throw new Error(`OPAL_FETCH_PROVIDER_MODULES: cannot load "${specifier}": ${(error as Error).message}`, { cause: error });
    }
    const exported = loaded.fetchProviders ?? loaded.default;
    const candidates = Array.isArray(exported) ? exported : [exported];
    const found = candidates.filter(isPlugin);
    if (found.length === 0) {
      throw new Error(`OPAL_FETCH_PROVIDER_MODULES: "${specifier}" exports no fetch provider (expected \`fetchProviders\` or a default export of {name, create})`);
    }
    plugins.push(...found);
  }
  return plugins;
}

/** A lifecycle part: stopping it closes every provider (their pools, their database connections). */
export class FetchProviderRegistry implements Component {
  readonly name = "fetch-providers";
  private readonly providers = new Map<string, FetchProvider>();
  private readonly closing = new Closing();
  private stopping: Promise<void> | undefined;

  constructor(plugins: readonly FetchProviderPlugin[], context: FetchProviderContext) {
    for (const plugin of [httpFetchProviderPlugin, postgresFetchProviderPlugin, ...plugins]) {
      this.providers.set(plugin.name, plugin.create(context));
    }
  }

  names(): string[] {
    return [...this.providers.keys()];
  }

  providerFor(config: Record<string, unknown>): FetchProvider {
    const name = typeof config.fetcher === "string" && config.fetcher !== "" ? config.fetcher : DEFAULT_FETCHER;
    const provider = this.providers.get(name);
    if (provider === undefined) {
      throw new FetchError(`no fetch provider named "${name}" (known: ${this.names().join(", ")}); list its module in OPAL_FETCH_PROVIDER_MODULES`, false);
    }
    return provider;
  }

  get closed(): Promise<Closed> {
    return this.closing.closed;
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.stopping ??= this.close().finally(() => this.closing.stopped());
    return this.stopping;
  }

  async close(): Promise<void> {
    for (const provider of this.providers.values()) await provider.close?.();
  }
}
