/**
 * Big documents streamed from their source into a real OPA (one JSON-Patch request that
 * carries the document and then the client's status document): the data and the status
 * land together; a source that breaks off mid-way, or sends something that is not JSON,
 * leaves OPA exactly as it was (the position does not advance), and the error names the
 * source; a retried write reads the source again.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import { DataSourceEntrySchema, SaveMethod } from "../gen/opal/mesh/v1/data_pb.js";
import { DataTransactions } from "../services/client/data/data-transaction.js";
import { createHttpFetchProvider } from "../services/client/fetch/http-provider.js";
import { StreamedSource } from "../services/client/fetch/streamed-source.js";
import { FetchError, type OpenedBody } from "../services/client/fetch/types.js";
import { OpaStore } from "../services/client/opa/opa-store.js";
import { PolicyStoreError } from "../services/client/policy-store.js";
import { silentLogger } from "../services/common/logger.js";
import { opaBinary } from "./helpers/opa.js";
import { freePort } from "./helpers/ports.js";
import { waitFor } from "./helpers/wait.js";

const RECORDS = 40_000;

function record(index: number): string {
  return `"k${index}":{"id":${index},"name":"record number ${index}"}`;
}

/** A source of RECORDS records (about 1.5 MB), sent in pieces; /cut stops half-way, /broken turns to garbage. */
function startSource(): Promise<{ url: (path: string) => string; hits: Map<string, number>; server: http.Server }> {
  const hits = new Map<string, number>();
  const server = http.createServer((request, response) => {
    const path = request.url ?? "/";
    hits.set(path, (hits.get(path) ?? 0) + 1);
    if (path === "/html") {
      response.writeHead(200, { "content-type": "text/html" }).end("<!DOCTYPE html><p>sign in</p>");
      return;
    }
    response.writeHead(200, { "content-type": "application/json" });
    response.write("{");
    let index = 0;
    const more = (): void => {
      while (index < RECORDS) {
        if (path === "/cut" && index === RECORDS / 2) {
          response.destroy();
          return;
        }
        const piece = `${index === 0 ? "" : ","}${path === "/broken" && index === RECORDS / 2 ? "oops" : record(index)}`;
        index++;
        if (!response.write(piece)) {
          response.once("drain", more);
          return;
        }
      }
      response.end("}");
    };
    more();
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ url: (path) => `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`, hits, server })));
}

describe("documents streamed from the source into OPA", () => {
  let opa: ChildProcess;
  let store: OpaStore;
  let source: Awaited<ReturnType<typeof startSource>>;
  const provider = createHttpFetchProvider({ logger: silentLogger(), timeoutMs: 5_000 });

  before(async () => {
    const port = await freePort();
    opa = spawn(await opaBinary(), ["run", "--server", `--addr=127.0.0.1:${port}`, "--log-level=error"], { stdio: "ignore" });
    store = new OpaStore({ url: `http://127.0.0.1:${port}`, authToken: undefined });
    await waitFor(() => store.isHealthy(), { message: () => "OPA to answer" });
    source = await startSource();
  });

  after(async () => {
    await store.close();
    opa.kill("SIGKILL");
    source.server.closeAllConnections();
    source.server.close();
  });

  async function streamed(path: string): Promise<StreamedSource> {
    const url = source.url(path);
    const signal = new AbortController().signal;
    const opened = await provider.open?.({ url, config: {}, signal }, 64 * 1024);
    assert.ok(opened !== undefined && !(opened instanceof Uint8Array), "a big document is left on the wire");
    return new StreamedSource(opened, async () => (await provider.open?.({ url, config: {}, signal }, 0)) as OpenedBody, url);
  }

  function entry(dstPath: string): ReturnType<typeof create<typeof DataSourceEntrySchema>> {
    return create(DataSourceEntrySchema, { url: "http://source", dstPath, saveMethod: SaveMethod.PUT });
  }

  const status = (position: number): Uint8Array => Buffer.from(JSON.stringify({ position }));

  test("the document and the status land in one transaction; the report hash is of what was streamed", async () => {
    const transactions = new DataTransactions(store);
    const data = await streamed("/whole");
    await transactions.commit([{ entry: entry("/big/records"), data }], status(1), AbortSignal.timeout(30_000));
    const count = (await store.readData("/big/records/k39999")) as { id: number };
    assert.equal(count.id, RECORDS - 1);
    assert.deepEqual(await store.readData("/system/opal"), { position: 1 });
    assert.match(data.hash ?? "", /^[0-9a-f]{64}$/);
  });

  test("a source cut off mid-way: OPA keeps what it had, and the error is the source's", async () => {
    const transactions = new DataTransactions(store);
    const data = await streamed("/cut");
    await assert.rejects(transactions.commit([{ entry: entry("/big/records"), data }], status(2), AbortSignal.timeout(30_000), true), (error: unknown) => {
      assert.ok(error instanceof FetchError, `a FetchError, got ${String(error)}`);
      assert.ok(error.retryable);
      assert.match(error.message, /reading http:\/\/127\.0\.0\.1:\d+\/cut failed/);
      return true;
    });
    assert.deepEqual(await store.readData("/system/opal"), { position: 1 }, "the position did not advance");
    assert.equal(((await store.readData("/big/records/k39999")) as { id: number }).id, RECORDS - 1, "the earlier document is intact");
  });

  test("a source that turns out not to be JSON: OPA refuses it all, and the error names the source", async () => {
    const transactions = new DataTransactions(store);
    const data = await streamed("/broken");
    await assert.rejects(transactions.commit([{ entry: entry("/big/broken"), data }], status(3), AbortSignal.timeout(30_000), true), (error: unknown) => {
      assert.ok(error instanceof PolicyStoreError, `a PolicyStoreError, got ${String(error)}`);
      assert.ok(error.isRejection);
      assert.match(error.message, /streamed from http:\/\/127\.0\.0\.1:\d+\/broken/);
      return true;
    });
    assert.deepEqual(await store.readData("/system/opal"), { position: 1 });
    assert.equal(await store.exists("/big/broken"), false);
  });

  test("a retried write reads the source again (a body cannot be read twice)", async () => {
    const transactions = new DataTransactions(store);
    const data = await streamed("/again");
    await transactions.commit([{ entry: entry("/big/again"), data }], status(4), AbortSignal.timeout(30_000), true);
    await transactions.commit([{ entry: entry("/big/again2"), data }], status(5), AbortSignal.timeout(30_000), true);
    assert.equal(source.hits.get("/again"), 2);
    assert.equal(((await store.readData("/big/again2/k0")) as { id: number }).id, 0);
    assert.deepEqual(await store.readData("/system/opal"), { position: 5 });
  });

  test("an HTML page is refused before anything is written, naming the url", async () => {
    await assert.rejects(provider.open?.({ url: source.url("/html"), config: {}, signal: new AbortController().signal }, 1024) ?? Promise.resolve(), /\/html did not return JSON: its content-type is text\/html/);
  });
});
