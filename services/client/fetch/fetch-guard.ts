/**
 * Where a client may connect on a publisher's word. A data source entry (or a callback)
 * names a URL; whoever holds a datasource token chooses it. So before any connection:
 * the host is resolved (every address), and the fetch is refused when an address and
 * port are the client's own OPA or its own API (in any spelling: localhost., 2130706433,
 * [::ffff:127.0.0.1], a name resolving there), or a link-local or cloud-metadata address
 * not allowed by OPAL_FETCH_URL_ALLOWLIST; methods other than GET need the allow-list.
 * The connection then goes to the addresses checked, never to a second lookup's answer
 * (DNS rebinding), through a dispatcher whose lookup is pinned to them.
 */
import type { LookupAddress } from "node:dns";
import { lookup as dnsLookup } from "node:dns/promises";
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import { Agent, type Dispatcher } from "undici";
import { redactUrl } from "../../common/config/env-reader.js";
import { canonicalAddress, isLinkLocal, isLocalhostName, isLoopback, isMetadata, isUnspecified, METADATA_HOST_NAMES } from "../../common/ip-addresses.js";
import { UrlAllowlist } from "../../common/url-allowlist.js";
import { FetchError } from "./types.js";

/** One of the client's own listeners: what it is called in errors, and its URL once known. */
export interface OwnEndpoint {
  name: string;
  url: () => string | undefined;
}

export type LookupAll = (host: string) => Promise<LookupAddress[]>;

export interface FetchGuardOptions {
  /** The client's own OPA and API (their URLs, read when a fetch is checked). */
  endpoints: readonly OwnEndpoint[];
  /** OPAL_FETCH_URL_ALLOWLIST. */
  allowlist: UrlAllowlist;
  /** Resolves a host name to all its addresses (dns.lookup by default). */
  lookup?: LookupAll;
  /** The addresses of this machine's interfaces (os.networkInterfaces by default). */
  localAddresses?: () => string[];
}

/** A fetch the guard refused: never retried (the same URL is refused again), the message names the rule. */
export class FetchRefusedError extends FetchError {
  constructor(message: string) {
    super(`fetch refused: ${message}`, false);
  }
}

/** A URL the guard allowed, with the addresses the connection must use. */
export interface CheckedTarget {
  url: URL;
  addresses: LookupAddress[];
}

const DEFAULT_PORTS: Record<string, number> = { "http:": 80, "https:": 443, "postgres:": 5432, "postgresql:": 5432 };

function portOf(url: URL): number {
  return url.port !== "" ? Number(url.port) : (DEFAULT_PORTS[url.protocol] ?? 0);
}

function bareHost(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, "");
}

const defaultLookup: LookupAll = (host) => dnsLookup(host, { all: true, verbatim: true });

function interfaceAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((entry) => entry.address));
}

export class FetchGuard {
  private readonly lookup: LookupAll;
  private readonly localAddresses: () => string[];

  constructor(private readonly options: FetchGuardOptions) {
    this.lookup = options.lookup ?? defaultLookup;
    this.localAddresses = options.localAddresses ?? interfaceAddresses;
  }

  /** A guard that knows no own endpoints and has no allow-list (unit tests, standalone providers). */
  static withoutEndpoints(allowlist = new UrlAllowlist([])): FetchGuard {
    return new FetchGuard({ endpoints: [], allowlist });
  }

  /**
   * Checks a fetch of `url` with `method` (the HTTP fetcher's; GET for other fetchers).
   * `sendsWhatItIsTold`: false for the client's own reports (a callback always POSTs
   * the report), which are held to the address rules but not the method rule.
   */
  async check(url: string, method = "GET", sendsWhatItIsTold = true): Promise<CheckedTarget> {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new FetchRefusedError(`${JSON.stringify(redactUrl(url))} is not a valid URL`);
    }
    const shown = redactUrl(url);
    const allowListed = !this.options.allowlist.isEmpty && this.options.allowlist.allows(url);
    if (sendsWhatItIsTold && method !== "GET" && !allowListed) {
      throw new FetchRefusedError(`${method} ${shown}: methods other than GET are sent only to URLs OPAL_FETCH_URL_ALLOWLIST allows${this.options.allowlist.isEmpty ? " (it is empty)" : ""}`);
    }
    const host = bareHost(parsed);
    if (host === "") return { url: parsed, addresses: [] };
    const addresses = await this.resolve(host, shown);
    const port = portOf(parsed);
    for (const { address } of addresses) {
      const own = await this.ownEndpointAt(address, port, host);
      if (own !== undefined) throw new FetchRefusedError(`${shown} is ${own} (${address} port ${port}); a client never fetches from its own OPA or API`);
    }
    if (!allowListed) {
      const internal = METADATA_HOST_NAMES.includes(host.toLowerCase().replace(/\.$/, "")) ? host : addresses.find(({ address }) => isMetadata(address) || isLinkLocal(address))?.address;
      if (internal !== undefined) {
        const kind = isMetadata(internal) || !isIP(internal) ? "a cloud metadata address" : "a link-local address";
        throw new FetchRefusedError(`${shown} resolves to ${internal}, ${kind}; fetched only when OPAL_FETCH_URL_ALLOWLIST allows the URL`);
      }
    }
    return { url: parsed, addresses };
  }

  /** A dispatcher that connects to the checked addresses only (close it when the response is done). */
  dispatcherFor(target: CheckedTarget): Agent {
    const pinned = target.addresses;
    const lookup = (hostname: string, options: { all?: boolean }, callback: (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void): void => {
      const first = pinned[0];
      if (first === undefined) {
        callback(Object.assign(new Error(`no checked address for ${hostname}`), { code: "ENOTFOUND" }), "");
        return;
      }
      if (options.all === true) callback(null, pinned);
      else callback(null, first.address, first.family);
    };
    return new Agent({ connect: { lookup } as Record<string, unknown> });
  }

  private async resolve(host: string, shown: string): Promise<LookupAddress[]> {
    const family = isIP(host);
    if (family !== 0) return [{ address: host, family }];
    // The local host by definition (RFC 6761): not a question for DNS, which could answer otherwise.
    if (isLocalhostName(host)) return [{ address: "127.0.0.1", family: 4 }, { address: "::1", family: 6 }];
    try {
      const addresses = await this.lookup(host);
      if (addresses.length === 0) throw new Error("no addresses");
      return addresses;
    } catch (error) {
      throw new FetchError(`could not resolve the host of ${shown}: ${(error as Error).message}`, true, { cause: error });
    }
  }

  /** Which own endpoint (by name) listens at this address and port, if any. */
  private async ownEndpointAt(address: string, port: number, host: string): Promise<string | undefined> {
    const local = this.isLocal(address) || isLocalhostName(host);
    for (const endpoint of this.options.endpoints) {
      const listening = endpoint.url();
      if (listening === undefined) continue;
      let own: URL;
      try {
        own = new URL(listening);
      } catch {
        continue; // an endpoint without a valid URL cannot be the one asked for
      }
      if (portOf(own) !== port) continue;
      const ownHost = bareHost(own);
      // A listener on loopback, 0.0.0.0 or :: is reached through any of the host's own addresses.
      if (local && (isLocalhostName(ownHost) || (isIP(ownHost) !== 0 && this.isLocal(ownHost)))) return endpoint.name;
      const ownAddresses = isIP(ownHost) !== 0 ? [ownHost] : await this.lookup(ownHost).then((list) => list.map((entry) => entry.address), () => [] as string[]);
      if (ownAddresses.some((candidate) => canonicalAddress(candidate) === canonicalAddress(address) || (local && this.isLocal(candidate)))) return endpoint.name;
    }
    return undefined;
  }

  private isLocal(address: string): boolean {
    if (isLoopback(address) || isUnspecified(address)) return true;
    const canonical = canonicalAddress(address);
    return this.localAddresses().some((candidate) => canonicalAddress(candidate) === canonical);
  }
}

/** Sends through a dispatcher pinned to the checked addresses, closing it once the response is done. */
export function closeWhenDone(dispatcher: Dispatcher): void {
  // close() waits for the request under way (its body read to the end or dropped) before it closes.
  // Its request's outcome is reported by the caller; a failed close leaves nothing to do.
  void dispatcher.close().catch(() => undefined);
}
