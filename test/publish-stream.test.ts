/**
 * TriggerService.PublishStream end to end: the real embedded server, a real client with its
 * inline OPA, the stream publisher the CLI uses (grpc-js), and the CLI's --bulk mode spawned
 * as a process. Also: the server keeps nothing of a long stream (its heap, after a full GC,
 * in a server process of its own).
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { PublishDataUpdateRequestSchema } from "../gen/opal/mesh/v1/trigger_pb.js";
import { type PublishOutcome, StreamPublisher, statusName } from "../services/mesh/cli/publish-stream-client.js";
import { authEnv, issueToken, rsaKeys } from "./helpers/auth.js";
import { InspectedProcess } from "./helpers/inspector.js";
import { type RunningClient, type RunningServer, startClient, startServer, waitForData, waitReady } from "./helpers/mesh.js";
import { scrape } from "./helpers/metrics.js";
import { freePort } from "./helpers/ports.js";
import { MeshProcess } from "./helpers/processes.js";

const BIN = fileURLToPath(new URL("../bin/opal-mesh.js", import.meta.url));
const MiB = 1024 * 1024;

const update = (json: Record<string, unknown>) => fromJson(PublishDataUpdateRequestSchema, json as JsonValue);
/** Appends `value` to the list at `path` (a JSON Patch): the list in OPA shows the order the client applied. */
const append = (path: string, value: unknown) => update({ entries: [{ dst_path: path, save_method: "PATCH", data: [{ op: "add", path: "/-", value }], topics: ["policy_data"] }] });

/** Publishes every update over one stream, `room()` respected; every outcome and the stream's status. */
async function publishAll(publisher: StreamPublisher, updates: Iterable<ReturnType<typeof update>>): Promise<{ outcomes: PublishOutcome[]; status: string }> {
  const outcomes: Array<Promise<PublishOutcome>> = [];
  for (const one of updates) {
    await publisher.room();
    outcomes.push(publisher.publish(one));
  }
  const all = await Promise.all(outcomes);
  const status = statusName((await publisher.end()).code);
  publisher.close();
  return { outcomes: all, status };
}

describe("PublishStream to a dev-mode server with one client and its OPA", () => {
  let server: RunningServer;
  let client: RunningClient;

  before(async () => {
    server = await startServer({ OPAL_DATA_CONFIG_SOURCES: JSON.stringify({ config: { entries: [] } }) });
    client = await startClient(server.url, { OPAL_CLIENT_STAT_ID: "stream-client-0" });
    await waitReady(client);
  });
  after(async () => {
    await client?.stop();
    await server?.stop();
  });

  test("300 updates over one stream: answered in order, appended in order, and OPA holds them in that order", async () => {
    const { outcomes: [start] } = await publishAll(new StreamPublisher({ url: server.url }), [update({ entries: [{ dst_path: "/stream/list", data: [], topics: ["policy_data"] }] })]);
    assert.equal(start?.error, undefined);
    const { outcomes, status } = await publishAll(new StreamPublisher({ url: server.url, maxUpdatesPerMessage: 16 }), Array.from({ length: 300 }, (_, n) => append("/stream/list", n)));
    assert.equal(status, "OK");
    assert.deepEqual(outcomes.map((outcome) => outcome.error), Array.from({ length: 300 }, () => undefined));
    assert.deepEqual(outcomes.map((outcome) => outcome.index), Array.from({ length: 300 }, (_, n) => n));
    assert.ok(outcomes.every((outcome, n) => n === 0 || outcome.position > (outcomes[n - 1] as PublishOutcome).position), "positions increase with the index");
    await waitForData(client, "/stream/list", Array.from({ length: 300 }, (_, n) => n));
  });

  test("a bad update in the middle gets its own error naming the field; the others are applied", async () => {
    await publishAll(new StreamPublisher({ url: server.url }), [update({ entries: [{ dst_path: "/stream/mixed", data: [], topics: ["policy_data"] }] })]);
    const updates = Array.from({ length: 40 }, (_, n) => append("/stream/mixed", n));
    updates[17] = update({ entries: [{ dst_path: "/stream/mixed", data: 1 }, { dst_path: "/system/opal/x", data: 2 }] });
    updates[23] = update({ entries: [{ dst_path: "/stream/mixed", save_method: "POST", data: 3 }] });
    const { outcomes, status } = await publishAll(new StreamPublisher({ url: server.url }), updates);
    assert.equal(status, "OK", "a refusal does not end the stream");
    assert.deepEqual(
      outcomes.flatMap((outcome) => (outcome.error === undefined ? [] : [[outcome.index, outcome.error.code, outcome.error.field]])),
      [
        [17, "INVALID_ARGUMENT", "entries[1].dst_path"],
        [23, "INVALID_ARGUMENT", "entries[0].save_method"],
      ],
    );
    assert.match(outcomes[17]?.error?.message ?? "", /^entries\[1\]\.dst_path: /);
    assert.equal(outcomes[17]?.position, 0n, "nothing of a refused update is appended: not even its valid first entry");
    await waitForData(client, "/stream/mixed", Array.from({ length: 40 }, (_, n) => n).filter((n) => n !== 17 && n !== 23));
  });

  test("wait: an update's second result is its delivery, applied by the client once it is committed in OPA", async () => {
    const waited = update({ entries: [{ dst_path: "/stream/waited", data: { on: true }, topics: ["policy_data"] }], wait: true, wait_timeout_ms: 20_000 });
    const { outcomes } = await publishAll(new StreamPublisher({ url: server.url }), [append("/stream/list", 300), waited]);
    const delivery = outcomes[1]?.delivery;
    assert.ok(delivery !== undefined, `no delivery: ${JSON.stringify(outcomes[1], (_key, value: unknown) => (typeof value === "bigint" ? value.toString() : value))}`);
    assert.deepEqual([delivery.complete, delivery.applied, delivery.failed, delivery.pending], [true, 1, 0, 0]);
    assert.equal(delivery.position, outcomes[1]?.position);
    assert.deepEqual(await client.read("/stream/waited"), { on: true }, "applied means committed in OPA");
    assert.equal(outcomes[0]?.delivery, undefined, "only updates that asked wait get a delivery");
  });

  test("the CLI's --bulk: NDJSON over one stream, refused and malformed lines named by number, the rest applied", async () => {
    const dir = mkdtempSync(join(tmpdir(), "opal-mesh-bulk-"));
    try {
      const lines = Array.from({ length: 50 }, (_, n) => JSON.stringify({ entries: [{ url: "", data: n, dst_path: `/bulk/k${n}`, topics: ["policy_data"] }], reason: "bulk" }));
      lines[4] = '{"entries": [';
      lines[9] = JSON.stringify({ entries: [{ data: 1, dst_path: "/system/opal/x" }] });
      lines[14] = "";
      const file = join(dir, "updates.ndjson");
      writeFileSync(file, `${lines.join("\n")}\n`);
      const child = spawn(process.execPath, [BIN, "publish-data-update", "--bulk", file, "-s", server.url, "--wait", "--timeout", "20"], { env: { PATH: process.env.PATH ?? "" }, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      const [code] = (await once(child, "close")) as [number | null];
      const show = `exit ${code}\nstdout: ${stdout}\nstderr: ${stderr}`;
      assert.equal(code, 3, `a refused line makes the exit code 3: ${show}`);
      assert.match(stdout, /^line 5: refused: not sent: not valid JSON/m, show);
      assert.match(stdout, /^line 10: refused: INVALID_ARGUMENT: entries\[0\]\.dst_path: /m, show);
      assert.match(stdout, /^published 47 of 49 updates, 2 refused, last position \d+$/m, show);
      assert.match(stdout, /^delivery: 47 applied by every addressed client, 0 failed by a client, 0 still pending$/m, show);
      assert.equal(await client.read("/bulk/k49"), 49, "--wait: applied before the CLI exits");
      assert.equal(await client.read("/bulk/k4"), undefined);
      assert.equal(await client.read("/bulk/k48"), 48);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("PublishStream on a server with auth keys", () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ ...authEnv(rsaKeys()), OPAL_DATA_CONFIG_SOURCES: JSON.stringify({ config: { entries: [] } }) });
  });
  after(async () => server?.stop());

  test("a topic outside the token's permitted_topics is refused per update; the others are published", async () => {
    const token = await issueToken(server.url, { type: "datasource", claims: { permitted_topics: ["tenant_x"] } });
    const on = (topic: string, n: number) => update({ entries: [{ dst_path: `/tenant/${n}`, data: n, topics: [topic] }] });
    const { outcomes, status } = await publishAll(new StreamPublisher({ url: server.url, token }), [on("tenant_x", 0), on("policy_data", 1), on("tenant_x", 2)]);
    assert.equal(status, "OK");
    assert.deepEqual(outcomes.map((outcome) => outcome.error?.code ?? "ok"), ["ok", "PERMISSION_DENIED", "ok"]);
    assert.match(outcomes[1]?.error?.message ?? "", /policy_data/);
    assert.ok((outcomes[2]?.position ?? 0n) > (outcomes[0]?.position ?? 0n));
  });

  test("no token, or a client's token: the stream itself is refused and nothing is published", async () => {
    const clientToken = await issueToken(server.url, { type: "client" });
    const datasource = await issueToken(server.url, { type: "datasource" });
    const probe = async (): Promise<bigint> => (await publishAll(new StreamPublisher({ url: server.url, token: datasource }), [update({ entries: [{ dst_path: "/probe", data: 1 }] })])).outcomes[0]?.position ?? 0n;
    const first = await probe();
    for (const [token, expected] of [
      [undefined, "UNAUTHENTICATED"],
      [clientToken, "PERMISSION_DENIED"],
    ] as const) {
      const { outcomes, status } = await publishAll(new StreamPublisher({ url: server.url, token }), [update({ entries: [{ dst_path: "/x", data: 1 }] })]);
      assert.equal(status, expected);
      assert.equal(outcomes[0]?.position, 0n);
      assert.equal(outcomes[0]?.error?.code, expected);
    }
    assert.equal(await probe(), first + 1n, "nothing was appended in between");
  });
});

describe("PublishStream memory: one long stream through a server process of its own", () => {
  const UPDATES = 3_000;
  const VALUE_BYTES = 100 * 1024;
  /** The server's bookkeeping (metrics, logs, the small accepted updates in its log) — far below the 300 MB sent. */
  const GROWTH_BOUND = 32 * MiB;
  let server: MeshProcess;
  let inspector: InspectedProcess;
  let url: string;

  before(async () => {
    const [port, streamPort, inspectorPort] = [await freePort(), await freePort(), await freePort()];
    url = `http://127.0.0.1:${port}`;
    server = new MeshProcess(
      "server",
      { NODE_OPTIONS: `--inspect=127.0.0.1:${inspectorPort}`, OPAL_SERVER_HOST: "127.0.0.1", OPAL_SERVER_BIND_PORT: String(port), OPAL_MESH_STREAM_PORT: String(streamPort), OPAL_DATA_CONFIG_SOURCES: JSON.stringify({ config: { entries: [] } }) },
      `${url}/healthcheck`,
    );
    await server.ready();
    inspector = new InspectedProcess(inspectorPort);
  });
  after(async () => {
    inspector?.close();
    await server?.kill("SIGTERM");
  });

  test("264 MB through one stream: the server's live memory grows by far less, every update answered", { timeout: 120_000 }, async () => {
    const liveMemory = async (): Promise<number> => {
      await inspector.collectGarbage();
      const metrics = await scrape(url);
      return metrics.count("nodejs_heap_size_used_bytes") + metrics.count("nodejs_external_memory_bytes");
    };
    // Warm up the stream path (code, pools), so that what grows is what a stream keeps.
    await publishAll(new StreamPublisher({ url }), Array.from({ length: 50 }, (_, n) => update({ entries: [{ dst_path: "/warm", data: n }] })));
    const before = await liveMemory();
    const big = "x".repeat(VALUE_BYTES);
    // Nine in ten are large and refused after they were read whole (save_method): nothing of them may stay.
    // One in ten is small and published: the log keeps those, as it should.
    const updates = function* () {
      for (let n = 0; n < UPDATES; n++) yield n % 10 === 0 ? update({ entries: [{ dst_path: `/kept/k${n % 32}`, data: n }] }) : update({ entries: [{ dst_path: `/big/k${n % 32}`, save_method: "POST", data: `${n}${big}` }] });
    };
    const { outcomes, status } = await publishAll(new StreamPublisher({ url }), updates());
    const after = await liveMemory();
    const growth = after - before;
    process.stdout.write(`  server live memory (heap + external) after a full GC: ${(before / MiB).toFixed(1)} → ${(after / MiB).toFixed(1)} MB for ${((UPDATES * VALUE_BYTES * 0.9) / MiB).toFixed(0)} MB sent over one stream\n`);
    assert.equal(status, "OK");
    assert.equal(outcomes.filter((outcome) => outcome.error === undefined).length, UPDATES / 10);
    assert.equal(outcomes.filter((outcome) => outcome.error?.field === "entries[0].save_method").length, (UPDATES * 9) / 10);
    assert.ok(growth <= GROWTH_BOUND, `grew ${(growth / MiB).toFixed(1)} MB, over the bound of ${GROWTH_BOUND / MiB} MB`);
  });
});
