/**
 * Security cases: a client never claims a state its OPA does not hold. Its inline OPA is
 * killed while updates flow; its offline backup holds less than its position says; its
 * backups cannot be written. Each time /healthy, /ready and data.system.opal must say so,
 * and whenever the client says healthy again, OPA must hold what it claims.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { request } from "undici";
import type { Tally } from "../helpers/attacks.js";
import { DeliveryChecker } from "../helpers/checker.js";
import { tempDir } from "../helpers/git-repo.js";
import { type RunningClient, type RunningServer, startClient, startServer, waitReady } from "../helpers/mesh.js";
import { freePort } from "../helpers/ports.js";
import { waitFor } from "../helpers/wait.js";

interface HealthBody {
  status: string;
  message?: string;
  ready: boolean;
  data: { appliedPosition: string; appliedPositionHeld: boolean };
  state: { held: boolean; rebuiltFrom?: string; notHeldCount?: number };
  backup?: { ok: boolean; failures: number; lastError?: string };
}

interface Sample {
  healthy: number;
  ready: number;
  body: HealthBody;
  /** data.system.opal in the client's OPA (undefined: not there). */
  opa: { ready?: boolean; healthy?: boolean; state?: { held: boolean } } | undefined;
}

async function sample(client: RunningClient): Promise<Sample> {
  const healthy = await request(`${client.apiUrl}/healthy`);
  const body = (await healthy.body.json()) as HealthBody;
  const ready = await request(`${client.apiUrl}/ready`);
  await ready.body.dump();
  const opa = (await client.read("/system/opal").catch(() => undefined)) as Sample["opa"];
  return { healthy: healthy.statusCode, ready: ready.statusCode, body, opa };
}

/** Whether anything in a sample claims the client is healthy or ready. */
function claims(s: Sample): boolean {
  return s.healthy === 200 || s.ready === 200 || s.opa?.ready === true || s.opa?.healthy === true;
}

function inline(path: string, value: number): { dstPath: string; topics: string[]; data: { kind: { case: "numberValue"; value: number } } } {
  return { dstPath: path, topics: ["policy_data"], data: { kind: { case: "numberValue", value } } };
}

/** Watchers still sampling: a case that fails before it stops its own must not keep the process alive. */
const watching = new Set<{ stop(): Promise<number> }>();

/** Samples the client's health until stopped; each sample goes to `check`. */
function watch(client: RunningClient, check: (s: Sample) => Promise<void>): { stop(): Promise<number> } {
  let running = true;
  let count = 0;
  const loop = (async () => {
    while (running) {
      // The OPA may be down mid-sample: such a sample says nothing either way.
      const s = await sample(client).catch(() => undefined);
      if (s !== undefined) {
        count++;
        // A check reading OPA while it restarts tells nothing either: the next sample will.
        await check(s).catch(() => undefined);
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  })();
  const handle = {
    async stop() {
      running = false;
      watching.delete(handle);
      await loop;
      return count;
    },
  };
  watching.add(handle);
  return handle;
}

async function killInlineOpa(client: RunningClient): Promise<void> {
  const pid = client.agent.inlineOpaPid;
  assert.ok(pid !== undefined, "the client runs an inline OPA");
  process.kill(pid, "SIGKILL");
  await waitFor(() => client.agent.inlineOpaPid !== pid && client.agent.inlineOpaPid !== undefined, { timeoutMs: 30_000, message: "a new OPA process" });
}

/** A path whose parent is a regular file, or a directory chmod 0555 when that stops this user. */
function unwritableBackupPath(directory: string): { path: string; how: string; repair(): void } {
  const locked = join(directory, "locked");
  mkdirSync(locked);
  chmodSync(locked, 0o555);
  let chmodStops = false;
  try {
    writeFileSync(join(locked, "probe"), "");
    rmSync(join(locked, "probe"));
  } catch {
    chmodStops = true;
  }
  if (chmodStops) return { path: join(locked, "opa.json"), how: "a read-only directory", repair: () => chmodSync(locked, 0o755) };
  // Root writes through 0555: make the parent a regular file instead.
  chmodSync(locked, 0o755);
  const file = join(directory, "not-a-directory");
  writeFileSync(file, "");
  return {
    path: join(file, "opa.json"),
    how: "a parent that is a regular file (running as root: chmod does not stop writes)",
    repair: () => {
      rmSync(file);
      mkdirSync(file);
    },
  };
}

export function healthTruthCases(tally: Tally): void {
  describe("health tells the truth", () => {
    let checker: DeliveryChecker;
    let server: RunningServer;
    const clients: RunningClient[] = [];
    const directory = tempDir("opal-mesh-health-truth-");

    before(async () => {
      checker = await new DeliveryChecker().start();
      server = await startServer({ OPAL_DATA_CONFIG_SOURCES: JSON.stringify({ config: { entries: checker.baselineEntries() } }) });
    });

    after(async () => {
      for (const watcher of [...watching]) await watcher.stop();
      for (const client of clients) await client.stop().catch(() => undefined);
      await server?.stop();
      await checker?.source.stop();
      rmSync(directory, { recursive: true, force: true });
    });

    async function client(env: Record<string, string> = {}, serverUrl = server.url): Promise<RunningClient> {
      const started = await startClient(serverUrl, { OPAL_POLICY_STORE_LIVENESS_PROBE_INTERVAL_SECONDS: "0.2", ...env });
      clients.push(started);
      return started;
    }

    test("the inline OPA is killed while updates no baseline source covers flow: it claims nothing until the log's snapshot brought them all back", async () => {
      const c = await client();
      await waitReady(c);
      for (let i = 0; i < 20; i++) await server.trigger.publishDataUpdate({ entries: [inline(`/truth/k${i}`, i)] });
      await waitFor(async () => Object.keys(((await c.read("/truth")) as object | undefined) ?? {}).length === 20, { message: "the first 20 keys in OPA" });
      // From the moment the client knows (it says its state is not held), it may claim
      // nothing while OPA lacks a key written before the loss.
      let knows = false;
      let claimed = 0;
      const watcher = watch(c, async (s) => {
        knows ||= !s.body.state.held;
        if (!knows || !claims(s)) return;
        const truth = ((await c.read("/truth").catch(() => undefined)) as Record<string, unknown> | undefined) ?? {};
        if (Array.from({ length: 20 }, (_, i) => `k${i}`).some((key) => !(key in truth))) claimed++;
      });
      await killInlineOpa(c);
      await waitFor(() => knows, { timeoutMs: 30_000, message: "the client to know OPA lost its state" });
      for (let i = 20; i < 30; i++) await server.trigger.publishDataUpdate({ entries: [inline(`/truth/k${i}`, i)] });
      // The fresh session's snapshot replays every key; the client is ready and healthy again.
      await waitFor(async () => (await sample(c)).body.state.held && (await sample(c)).healthy === 200, { timeoutMs: 30_000, message: "the client to hold its state again" });
      for (let i = 30; i < 35; i++) await server.trigger.publishDataUpdate({ entries: [inline(`/truth/k${i}`, i)] });
      await waitFor(async () => (await c.read("/truth/k34")) === 34, { message: "updates after the reload applied" });
      const samples = await watcher.stop();
      assert.ok(samples > 5, `sampled the health while it happened (${samples})`);
      const held = Object.keys(((await c.read("/truth")) as object | undefined) ?? {}).length;
      const last = await sample(c);

      await tally.attempt("inline OPA killed while updates flow: claims healthy or ready while it lacks a key", 0, async () => claimed, `${samples} samples`);
      await tally.attempt("inline OPA killed while updates flow: every key back (the log's snapshot)", 35, async () => held);
      await tally.attempt("inline OPA killed while updates flow: healthy, ready and held again, in OPA too", "held", async () =>
        last.healthy === 200 && last.ready === 200 && last.body.state.held && last.opa?.ready === true && last.opa.healthy === true ? "held" : JSON.stringify({ healthy: last.healthy, ready: last.ready, state: last.body.state, opa: last.opa }),
      );
      await c.stop();
      clients.splice(clients.indexOf(c), 1);
    });

    test("the inline OPA is killed while updates the baseline covers flow: healthy again only once OPA holds what it claims", async () => {
      const c = await client();
      await waitReady(c);
      await checker.publish(server, 20);
      await checker.verify(c);
      const violations: string[] = [];
      const watcher = watch(c, async (s) => {
        if (s.healthy !== 200) return;
        // Healthy: every update up to the position it reports must be in OPA.
        const position = BigInt(s.body.data.appliedPosition);
        const items = (await checker.read(c)).items ?? {};
        const missing = checker.positions.filter((at, index) => at <= position && items[String(index)] !== index).length;
        if (missing > 0 || !s.body.data.appliedPositionHeld) violations.push(`healthy at ${position} with ${missing} update(s) missing`);
      });
      await killInlineOpa(c);
      await checker.publish(server, 10);
      await waitFor(async () => (await sample(c)).healthy === 200, { timeoutMs: 30_000, message: "the client healthy again" });
      await checker.verify(c);
      await waitFor(async () => (await sample(c)).opa?.ready === true, { message: "data.system.opal ready again" });
      await watcher.stop();
      const last = await sample(c);
      await tally.attempt("inline OPA killed, the baseline covers every update: healthy while OPA lacks what it claims", 0, async () => violations.length, violations.slice(0, 3).join("; "));
      await tally.attempt("inline OPA killed, the baseline covers every update: back to ready once it holds it", "200 200 ready", async () => `${last.healthy} ${last.ready} ${last.opa?.ready === true ? "ready" : "not ready"}`);
      await c.stop();
      clients.splice(clients.indexOf(c), 1);
    });

    test("an offline backup that holds less than its position says is not used: not ready", async () => {
      const backupPath = join(directory, "restore", "opa.json");
      const offline = { OPAL_OFFLINE_MODE_ENABLED: "true", OPAL_STORE_BACKUP_PATH: backupPath, OPAL_STORE_BACKUP_INTERVAL: "0.1" };
      const first = await client(offline);
      await waitReady(first);
      await checker.publish(server, 5);
      await checker.verify(first);
      const lastPosition = checker.positions.at(-1);
      await first.stop();
      clients.splice(clients.indexOf(first), 1);
      const backup = JSON.parse(readFileSync(backupPath, "utf8")) as { status: { position: number }; data: { check: { items: Record<string, number> } } };
      assert.equal(BigInt(backup.status.position), lastPosition, "the final backup holds the last position");
      // Half the items gone, the position as it was: a backup claiming more than it holds.
      for (const key of Object.keys(backup.data.check.items).slice(0, Math.ceil(checker.count / 2))) delete backup.data.check.items[key];
      writeFileSync(backupPath, JSON.stringify(backup));

      // The server is unreachable: what the backup gives is all the client could have.
      const c = await client(offline, `http://127.0.0.1:${await freePort()}`);
      const s = await waitFor(async () => {
        const current = await sample(c);
        return current.body.message?.includes("was not used") === true ? current : undefined;
      }, { message: "the client to say why it did not use the backup" });
      await tally.attempt("offline restore of a backup holding less than it claims: /ready", 503, async () => s.ready);
      await tally.attempt("offline restore of a backup holding less than it claims: /healthy", 503, async () => s.healthy);
      await tally.attempt("offline restore of a backup holding less than it claims: data.system.opal", "claims nothing", async () => (s.opa === undefined || s.opa.ready === false ? "claims nothing" : JSON.stringify(s.opa)));
      await tally.attempt("offline restore of a backup holding less than it claims: names the backup", "named", async () => (s.body.message?.includes(backupPath) === true && /checksum/.test(s.body.message) ? "named" : String(s.body.message)));
      await c.stop();
      clients.splice(clients.indexOf(c), 1);
    });

    test("a backup that cannot be written shows in health and metrics, leaves no temporary file, and clears when one succeeds", async () => {
      const where = join(directory, "unwritable");
      mkdirSync(where);
      const target = unwritableBackupPath(where);
      const c = await client({ OPAL_OFFLINE_MODE_ENABLED: "true", OPAL_STORE_BACKUP_PATH: target.path, OPAL_STORE_BACKUP_INTERVAL: "0.1" });
      await waitReady(c);
      const failing = await waitFor(async () => {
        const current = await sample(c);
        return current.body.backup?.ok === false ? current : undefined;
      }, { message: "the failed backup in /healthy" });
      const metrics = await (await request(`${c.apiUrl}/metrics`)).body.text();
      const failures = Number(/^opal_mesh_client_backup_failures_total (\d+)/m.exec(metrics)?.[1] ?? "0");
      const temporary = readdirSync(where, { recursive: true }).filter((entry) => String(entry).endsWith(".tmp"));

      await tally.attempt("backup into an unwritable path: /healthy", 503, async () => failing.healthy, target.how);
      await tally.attempt("backup into an unwritable path: says which backup and why", "named", async () =>
        failing.body.status === "degraded" && failing.body.message?.includes(target.path) === true && /E[A-Z]+/.test(failing.body.message) ? "named" : `${failing.body.status}: ${failing.body.message}`,
      );
      await tally.attempt("backup into an unwritable path: the failure metric counts it", "counted", async () => (failures > 0 ? "counted" : metrics.split("\n").filter((line) => line.includes("backup")).join(" | ")));
      await tally.attempt("backup into an unwritable path: no temporary file left", 0, async () => temporary.length);
      await tally.attempt("backup into an unwritable path: OPA's data is not called stale for it", "ready, healthy in OPA", async () =>
        failing.opa?.healthy === true && failing.opa.ready === true && failing.ready === 200 ? "ready, healthy in OPA" : `${failing.ready} ${JSON.stringify(failing.opa)}`,
      );

      target.repair();
      const recovered = await waitFor(async () => {
        const current = await sample(c);
        return current.healthy === 200 ? current : undefined;
      }, { message: "healthy once a backup succeeds" });
      await tally.attempt("backup into an unwritable path: healthy again once a backup succeeds", "ok", async () => (recovered.body.backup?.ok === true ? recovered.body.status : JSON.stringify(recovered.body.backup)));
      await c.stop();
      clients.splice(clients.indexOf(c), 1);
    });
  });
}
