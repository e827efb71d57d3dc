/**
 * Security cases: a client that stays connected does not keep what its stream delivered.
 * connect-es 2.3 holds every message a stream received until the stream ends (#1524);
 * a long-lived sidecar would grow by every byte its server ever sent it.
 */
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { InspectedProcess } from "../helpers/inspector.js";
import type { Tally } from "../helpers/attacks.js";
import { call } from "../helpers/auth.js";
import { type RunningServer, startServer } from "../helpers/mesh.js";
import { scrape } from "../helpers/metrics.js";
import { opaBinary } from "../helpers/opa.js";
import { freePort } from "../helpers/ports.js";
import { MeshProcess } from "../helpers/processes.js";
import { waitFor } from "../helpers/wait.js";

const MiB = 1024 * 1024;
const UPDATES = 1_500;
const VALUE_BYTES = 100 * 1024;
const PUBLISHERS = 4;
/**
 * What the client's live memory (heap and the buffers outside it) may grow by over the
 * run: its own bookkeeping (metrics, spans, OPA's answers in flight), far below the
 * ~150 MB it receives. A received event's bytes live outside the heap.
 */
const GROWTH_BOUND = 32 * MiB;
const PATH = "/big/value";

const mb = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MB`;
const valueOf = (index: number): string => `${index}:`.padEnd(VALUE_BYTES, String.fromCharCode(97 + (index % 26)));

/** The process's own resident memory (not its inline OPA's). */
function rssBytes(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

export function clientMemoryCases(tally: Tally): void {
  describe("client memory: a client connected while 1,500 updates of 100 KB arrive", () => {
    let server: RunningServer;
    let client: MeshProcess;
    let clientUrl: string;
    let opaUrl: string;
    let inspector: InspectedProcess;

    before(async () => {
      server = await startServer({ OPAL_DATA_CONFIG_SOURCES: JSON.stringify({ config: { entries: [] } }) });
      const [apiPort, opaPort, inspectorPort] = [await freePort(), await freePort(), await freePort()];
      clientUrl = `http://127.0.0.1:${apiPort}`;
      opaUrl = `http://127.0.0.1:${opaPort}`;
      // A process of its own, so that its heap is the client's alone; the inspector lets the test collect its garbage before measuring.
      client = new MeshProcess(
        "client",
        {
          NODE_OPTIONS: `--inspect=127.0.0.1:${inspectorPort}`,
          OPAL_SERVER_URL: server.url,
          OPAL_CLIENT_API_SERVER_PORT: String(apiPort),
          OPAL_INLINE_OPA_EXEC_PATH: await opaBinary(),
          OPAL_INLINE_OPA_CONFIG: JSON.stringify({ addr: `127.0.0.1:${opaPort}` }),
          OPAL_CLIENT_STAT_ID: "long-lived",
        },
        `${clientUrl}/ready`,
      );
      await client.ready();
      inspector = new InspectedProcess(inspectorPort);
    });
    after(async () => {
      inspector?.close();
      await client?.kill("SIGTERM");
      await server?.stop();
    });

    test("its live memory grows by far less than it received, and OPA holds the last update", { timeout: 90_000 }, async () => {
      const pid = client.child.pid as number;
      const appliedEvents = async (): Promise<number> => (await scrape(clientUrl)).count("opal_mesh_client_updates_applied_total", { kind: "event" });
      const publish = async (value: string): Promise<void> => {
        const answer = await call(`${server.url}/data/config`, { method: "POST", body: { entries: [{ url: "", data: value, dst_path: PATH, topics: ["policy_data"] }] } });
        assert.equal(answer.status, 200, JSON.stringify(answer.json));
      };
      const liveMemory = async (): Promise<{ heap: number; external: number }> => {
        await inspector.collectGarbage();
        const metrics = await scrape(clientUrl);
        return { heap: metrics.count("nodejs_heap_size_used_bytes"), external: metrics.count("nodejs_external_memory_bytes") };
      };
      const appliedBefore = await appliedEvents();
      const before = await liveMemory();
      const rssBefore = rssBytes(pid);
      let rssPeak = rssBefore;
      const sampler = setInterval(() => {
        rssPeak = Math.max(rssPeak, rssBytes(pid));
      }, 100);
      let next = 0;
      try {
        await Promise.all(
          Array.from({ length: PUBLISHERS }, async () => {
            while (next < UPDATES - 1) await publish(valueOf(next++));
          }),
        );
        // The last one alone, after every other is in the log: OPA must end on it.
        await publish(valueOf(UPDATES - 1));
        let applied = 0;
        await waitFor(async () => (applied = (await appliedEvents()) - appliedBefore) >= UPDATES, { timeoutMs: 60_000, message: () => `the client to apply ${UPDATES} events (applied ${applied})` });
      } finally {
        clearInterval(sampler);
      }
      const afterRun = await liveMemory();
      const growth = afterRun.heap + afterRun.external - (before.heap + before.external);
      const received = UPDATES * VALUE_BYTES;
      process.stdout.write(
        `  client memory after a full GC: heap ${mb(before.heap)} → ${mb(afterRun.heap)}, external ${mb(before.external)} → ${mb(afterRun.external)}; growth ${mb(growth)} (bound ${mb(GROWTH_BOUND)}) for ${mb(received)} of values received; ` +
          `client RSS: before ${mb(rssBefore)}, peak ${mb(rssPeak)}, after ${mb(rssBytes(pid))}\n`,
      );

      const opa = await (await fetch(`${opaUrl}/v1/data${PATH}`)).json();
      await tally.attempt("a long-lived client's stream (1,500 × 100 KB updates)", "under the bound", () => Promise.resolve(growth <= GROWTH_BOUND ? "under the bound" : `grew ${mb(growth)}, over ${mb(GROWTH_BOUND)}`), "live memory growth");
      assert.equal((await appliedEvents()) - appliedBefore, UPDATES, "every update applied once");
      assert.equal((opa as { result?: unknown }).result, valueOf(UPDATES - 1), "OPA holds the last update");
    });
  });
}
