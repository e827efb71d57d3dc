/**
 * Offline mode: a client whose OPA starts empty while the server is unreachable loads its
 * backup, is ready (online: false), and resumes from the backup's position when the
 * server is back. Update reports reach OPAL-style callbacks, with retries.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { request } from "undici";
import { DeliveryChecker } from "./helpers/checker.js";
import { DataSource } from "./helpers/data-source.js";
import { tempDir } from "./helpers/git-repo.js";
import { type RunningClient, type RunningServer, startClient, startServer, waitReady } from "./helpers/mesh.js";
import { freePort } from "./helpers/ports.js";
import { TcpProxy } from "./helpers/tcp-proxy.js";
import { waitFor } from "./helpers/wait.js";

describe("offline mode", () => {
  let checker: DeliveryChecker;
  let server: RunningServer;
  let httpProxy: TcpProxy;
  let streamProxy: TcpProxy;
  let serverUrl: string;
  const backupDir = tempDir("opal-mesh-backup-");
  const backupPath = join(backupDir, "opa.json");
  let client: RunningClient | undefined;

  before(async () => {
    checker = await new DeliveryChecker().start();
    const [httpPort, streamPort] = [await freePort(), await freePort()];
    httpProxy = new TcpProxy({ host: "127.0.0.1", port: httpPort });
    streamProxy = new TcpProxy({ host: "127.0.0.1", port: streamPort });
    serverUrl = `http://127.0.0.1:${await httpProxy.start()}`;
    const streamProxyPort = await streamProxy.start();
    server = await startServer({
      OPAL_SERVER_BIND_PORT: String(httpPort),
      OPAL_MESH_STREAM_PORT: String(streamPort),
      OPAL_MESH_STREAM_PUBLIC_URL: `http://127.0.0.1:${streamProxyPort}`,
      OPAL_DATA_CONFIG_SOURCES: JSON.stringify({ config: { entries: checker.baselineEntries() } }),
    });
  });

  after(async () => {
    await client?.stop();
    await server?.stop();
    await httpProxy?.stop();
    await streamProxy?.stop();
    await checker?.source.stop();
    rmSync(backupDir, { recursive: true, force: true });
  });

  const offlineEnv = { OPAL_OFFLINE_MODE_ENABLED: "true", OPAL_STORE_BACKUP_PATH: backupPath, OPAL_STORE_BACKUP_INTERVAL: "0.1", OPAL_CLIENT_STAT_ID: "offline-client" };

  test("the client backs up policy, data and position to disk", async () => {
    client = await startClient(serverUrl, offlineEnv);
    await waitReady(client);
    await checker.publish(server, 50);
    await checker.verify(client);
    const last = checker.positions.at(-1);
    await waitFor(
      () => {
        try {
          return BigInt((JSON.parse(readFileSync(backupPath, "utf8")) as { status: { position: number } }).status.position) === last;
        } catch {
          return false;
        }
      },
      { message: "a backup holding the last position" },
    );
    await client.stop();
    client = undefined;
  });

  test("a fresh OPA starts from the backup while the server is unreachable, then resumes when it is back", async () => {
    httpProxy.refuse(true);
    streamProxy.refuse(true);
    const baselineFetches = checker.source.hits.get("/check");
    client = await startClient(serverUrl, offlineEnv);
    await waitReady(client);
    const healthy = await request(`${client.apiUrl}/healthy`);
    const report = (await healthy.body.json()) as { status: string; online: boolean };
    assert.equal(healthy.statusCode, 200);
    assert.equal(report.online, false, "ready from the backup, not connected");
    await checker.verify(client);

    await checker.publish(server, 50);
    httpProxy.refuse(false);
    streamProxy.refuse(false);
    await checker.verify(client);
    assert.equal(checker.source.hits.get("/check"), baselineFetches, "resumed from the backup's position: no baseline reload");
  });
});

describe("update reports (callbacks)", () => {
  let receiver: DataSource;
  let server: RunningServer;
  let client: RunningClient;

  before(async () => {
    receiver = await new DataSource().start();
    receiver.set("/default", { ok: true });
    receiver.set("/configured", { ok: true });
    receiver.set("/flaky", { error: "not yet" }, 500);
    server = await startServer();
    client = await startClient(server.url, {
      OPAL_SHOULD_REPORT_ON_DATA_UPDATES: "true",
      OPAL_DEFAULT_UPDATE_CALLBACKS: JSON.stringify({ callbacks: [receiver.url("/default")] }),
    });
    await waitReady(client);
  });

  after(async () => {
    await client?.stop();
    await server?.stop();
    await receiver?.stop();
  });

  test("reports go to the default and the update's own callbacks, retried until delivered", async () => {
    const data = { roles: ["admin"] };
    const response = await request(`${server.url}/data/config`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        entries: [{ data, dst_path: "/reported", topics: ["policy_data"] }],
        callback: { callbacks: [receiver.url("/flaky"), [receiver.url("/configured"), { headers: { "x-callback-test": "yes" } }]] },
      }),
    });
    const { id } = (await response.body.json()) as { id: string };
    await waitFor(() => (receiver.hits.get("/flaky") ?? 0) >= 2, { message: "two failed attempts at the flaky callback" });
    receiver.set("/flaky", { ok: true });
    const delivered = (path: string): boolean => receiver.requests.some((r) => r.path === path && r.body.includes(id));
    await waitFor(() => delivered("/default") && delivered("/configured") && (receiver.hits.get("/flaky") ?? 0) >= 3, { message: "reports at every callback" });
    const byPath = (path: string) => receiver.requests.filter((r) => r.path === path && r.method === "POST").map((r) => JSON.parse(r.body) as { update_id: string; reports: Array<{ saved: boolean; hash: string; entry: { dst_path: string } }> });
    for (const path of ["/default", "/configured", "/flaky"]) {
      const report = byPath(path).find((candidate) => candidate.update_id === id);
      assert.ok(report !== undefined, `a report at ${path}`);
      assert.equal(report.reports[0]?.saved, true);
      assert.equal(report.reports[0]?.entry.dst_path, "/reported");
      assert.equal(report.reports[0]?.hash, createHash("sha256").update(JSON.stringify(data)).digest("hex"));
    }
    assert.ok(receiver.requests.some((r) => r.path === "/configured" && r.headers["x-callback-test"] === "yes"), "the per-callback config applied");
  });
});
