import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { LookupAddress } from "node:dns";
import type { AddressInfo } from "node:net";
import { request } from "undici";
import { silentLogger } from "../../common/logger.js";
import { UrlAllowlist } from "../../common/url-allowlist.js";
import { FetchGuard, FetchRefusedError, type OwnEndpoint } from "./fetch-guard.js";
import { createHttpFetchProvider } from "./http-provider.js";

const OPA = "http://127.0.0.1:8181";
const API = "http://0.0.0.0:7000";

/** A DNS that answers from a table (and counts its questions). */
function table(names: Record<string, string[]>): { lookup: (host: string) => Promise<LookupAddress[]>; asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    lookup: async (host) => {
      asked.push(host);
      const addresses = names[host.toLowerCase()];
      if (addresses === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" });
      return addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
    },
  };
}

const dns = table({
  localhost: ["127.0.0.1", "::1"],
  "localhost.": ["127.0.0.1"],
  "opa.internal": ["10.0.0.9"],
  "rebound.example": ["127.0.0.1"],
  "data.example.com": ["93.184.216.34"],
  "metadata.google.internal": ["169.254.169.254"],
  "lan.example": ["192.168.1.20"],
});

function guard(allow: string[] = [], endpoints: OwnEndpoint[] = [{ name: "the client's own OPA", url: () => OPA }, { name: "the client's own API", url: () => API }]): FetchGuard {
  return new FetchGuard({ endpoints, allowlist: new UrlAllowlist(allow), lookup: dns.lookup, localAddresses: () => ["192.168.1.20", "fe80::1"] });
}

async function refusal(check: Promise<unknown>): Promise<string> {
  try {
    await check;
    return "allowed";
  } catch (error) {
    assert.ok(error instanceof FetchRefusedError, `a FetchRefusedError, got ${(error as Error).message}`);
    assert.equal(error.retryable, false);
    return error.message;
  }
}

const ownOpa: Array<[string, string]> = [
  ["127.0.0.1", "http://127.0.0.1:8181/v1/policies/x"],
  ["localhost", "http://localhost:8181/v1/data/system/x"],
  ["localhost.", "http://localhost.:8181/v1/data"],
  ["decimal", "http://2130706433:8181/v1/policies/x"],
  ["hex", "http://0x7f000001:8181/v1/policies/x"],
  ["octal", "http://0177.0.0.1:8181/"],
  ["userinfo", "http://evil.example@127.0.0.1:8181/"],
  ["other loopback", "http://127.1.2.3:8181/"],
  ["IPv4-mapped", "http://[::ffff:127.0.0.1]:8181/"],
  ["IPv6 loopback", "http://[::1]:8181/"],
  ["0.0.0.0", "http://0.0.0.0:8181/"],
  ["sub.localhost", "http://a.localhost:8181/"],
  ["a name resolving there", "http://rebound.example:8181/"],
];

for (const [name, url] of ownOpa) {
  test(`the own OPA is refused: ${name}`, async () => {
    assert.match(await refusal(guard().check(url)), /is the client's own OPA/);
  });
}

test("the own OPA is refused even when the allow-list names it", async () => {
  assert.match(await refusal(guard(["127.0.0.1:8181", "localhost"]).check("http://localhost:8181/v1/data/x")), /own OPA/);
});

test("an API listening on 0.0.0.0 is refused through any of the host's addresses", async () => {
  for (const url of ["http://127.0.0.1:7000/", "http://[::1]:7000/", "http://192.168.1.20:7000/", "http://lan.example:7000/", "http://[fe80::1]:7000/"]) {
    assert.match(await refusal(guard(["*"]).check(url)), /own API/, url);
  }
});

test("another port on the same host, and other hosts, are allowed", async () => {
  assert.equal(await refusal(guard().check("http://127.0.0.1:8182/")), "allowed");
  assert.equal(await refusal(guard().check("http://data.example.com/x")), "allowed");
  assert.equal(await refusal(guard().check("https://data.example.com:8181/x")), "allowed");
});

test("a store elsewhere is matched by its resolved address and port", async () => {
  const remote = guard([], [{ name: "the client's own OPA", url: () => "http://opa.internal:8181" }]);
  assert.match(await refusal(remote.check("http://10.0.0.9:8181/v1/policies/x")), /own OPA/);
  assert.equal(await refusal(remote.check("http://127.0.0.1:8181/")), "allowed", "the local port is someone else's then");
});

test("an endpoint not listening yet is skipped", async () => {
  assert.equal(await refusal(guard([], [{ name: "the client's own API", url: () => undefined }]).check("http://127.0.0.1:7000/")), "allowed");
});

test("metadata and link-local addresses need the allow-list", async () => {
  for (const url of ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://metadata.google.internal/computeMetadata/v1/", "http://169.254.10.1/", "http://[::ffff:169.254.169.254]/"]) {
    assert.match(await refusal(guard().check(url)), /metadata|link-local/, url);
  }
  assert.equal(await refusal(guard(["http://169.254.169.254/latest/"]).check("http://169.254.169.254/latest/meta-data/")), "allowed");
  assert.match(await refusal(guard(["http://169.254.169.254/latest/"]).check("http://169.254.169.254/other")), /metadata/);
});

test("methods other than GET need a non-empty allow-list that names the URL", async () => {
  assert.match(await refusal(guard().check("http://data.example.com/x", "PUT")), /PUT .*OPAL_FETCH_URL_ALLOWLIST allows \(it is empty\)/);
  assert.match(await refusal(guard(["other.example.com"]).check("http://data.example.com/x", "POST")), /POST/);
  assert.equal(await refusal(guard(["data.example.com"]).check("http://data.example.com/x", "POST")), "allowed");
  assert.equal(await refusal(guard().check("http://data.example.com/x", "POST", false)), "allowed", "a callback's report");
  assert.match(await refusal(guard().check("http://127.0.0.1:8181/v1/data/system", "POST", false)), /own OPA/, "a callback into the OPA");
});

test("an unparsable URL is refused; an unresolvable host is a (retryable) fetch error", async () => {
  assert.match(await refusal(guard().check("http://")), /not a valid URL/);
  await assert.rejects(guard().check("http://nowhere.example/"), (error: Error & { retryable?: boolean }) => !(error instanceof FetchRefusedError) && error.retryable === true);
});

async function serve(t: TestContext, handler: http.RequestListener): Promise<number> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return (server.address() as AddressInfo).port;
}

test("the connection goes to the address checked, not to a second lookup's answer", async (t) => {
  const port = await serve(t, (_, response) => response.end("pinned"));
  let answers = 0;
  // First the harmless address; any later lookup would answer the metadata address.
  const rebinding = new FetchGuard({
    endpoints: [],
    allowlist: new UrlAllowlist([]),
    lookup: async () => [{ address: answers++ === 0 ? "127.0.0.1" : "169.254.169.254", family: 4 }],
  });
  const target = await rebinding.check(`http://rebind.example:${port}/`);
  const dispatcher = rebinding.dispatcherFor(target);
  const response = await request(`http://rebind.example:${port}/`, { dispatcher });
  assert.equal(await response.body.text(), "pinned");
  assert.equal(answers, 1, "asked once");
  await dispatcher.close();
});

test("the HTTP fetcher refuses with the rule's name, and checks each redirect hop", async (t) => {
  const opaPort = await serve(t, (_, response) => response.writeHead(200, { "content-type": "application/json" }).end('{"result":"reached"}'));
  const sourcePort = await serve(t, (request, response) => {
    if (request.url === "/to-opa") response.writeHead(302, { location: `http://localhost:${opaPort}/v1/data` }).end();
    else if (request.url === "/to-data") response.writeHead(307, { location: "/data" }).end();
    else response.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
  });
  const provider = createHttpFetchProvider({
    logger: silentLogger(),
    timeoutMs: 1_000,
    guard: new FetchGuard({ endpoints: [{ name: "the client's own OPA", url: () => `http://127.0.0.1:${opaPort}` }], allowlist: new UrlAllowlist([]) }),
  });
  const signal = new AbortController().signal;
  await assert.rejects(provider.fetch({ url: `http://127.0.0.1:${opaPort}/v1/policies/x`, config: { method: "PUT", data: "package x" }, signal }), /fetch refused: PUT .* OPAL_FETCH_URL_ALLOWLIST/);
  await assert.rejects(provider.fetch({ url: `http://localhost:${opaPort}/v1/data`, config: {}, signal }), /fetch refused: .* is the client's own OPA/);
  await assert.rejects(provider.fetch({ url: `http://127.0.0.1:${sourcePort}/to-opa`, config: {}, signal }), /fetch refused: http:\/\/localhost:\d+\/v1\/data is the client's own OPA/);
  assert.equal(Buffer.from(await provider.fetch({ url: `http://127.0.0.1:${sourcePort}/to-data`, config: {}, signal })).toString(), '{"ok":true}', "a redirect elsewhere is followed");
});
