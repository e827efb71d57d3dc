/** Security cases: delivery status never waits on a client that left; one stream per client id. */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Tally } from "../helpers/attacks.js";
import { call } from "../helpers/auth.js";
import { type RunningClient, type RunningServer, startClient, startServer, waitForData, waitReady } from "../helpers/mesh.js";
import { RawStream } from "../helpers/raw-stream.js";
import { waitFor } from "../helpers/wait.js";

/** Long enough that reaching it shows the wait waited on the departed client. */
const WAIT_TIMEOUT_S = 30;

interface DeliveryAnswer {
  complete: boolean;
  pending: number;
  disconnected: number;
  clients: Array<{ client_id: string; state: string }>;
}

export function deliveryStatusCases(tally: Tally): void {
  describe("delivery status: clients that left, and a second stream with the same client id", () => {
    let server: RunningServer;
    let present: RunningClient;
    const streams: RawStream[] = [];
    const target = (): string => `127.0.0.1:${server.server.streamPort}`;
    const sessions = async (clientId: string): Promise<string[]> =>
      (await server.distributor.listClients({})).clients.filter((session) => session.clientId === clientId).map((session) => session.sessionId);
    const open = (clientId: string, mode: "ack" | "stall" = "ack"): RawStream => {
      const stream = new RawStream(target(), { clientId }, { mode });
      streams.push(stream);
      return stream;
    };
    let counter = 0;
    /** POST /data/config?wait=true; the answer's delivery and how long the wait took. */
    const publishAndWait = async (): Promise<{ delivery: DeliveryAnswer; seconds: number }> => {
      const started = Date.now();
      const answer = await call(`${server.url}/data/config?wait=true&timeout=${WAIT_TIMEOUT_S}`, { method: "POST", body: { entries: [{ url: "", data: ++counter, dst_path: "/delivery-case", topics: ["policy_data"] }] } });
      assert.equal(answer.status, 200, JSON.stringify(answer.json));
      return { delivery: (answer.json as { delivery: DeliveryAnswer }).delivery, seconds: (Date.now() - started) / 1000 };
    };
    const stateOf = (delivery: DeliveryAnswer, clientId: string): string => delivery.clients.find((client) => client.client_id === clientId)?.state.replace(/^DELIVERY_STATE_/, "") ?? "absent";
    /** "answered: <state>" when the wait came back complete well before its timeout; else what happened. */
    const outcome = (result: { delivery: DeliveryAnswer; seconds: number }, clientId: string): string => {
      process.stdout.write(`  wait answered in ${result.seconds.toFixed(2)} s (timeout ${WAIT_TIMEOUT_S} s): complete=${result.delivery.complete} pending=${result.delivery.pending} disconnected=${result.delivery.disconnected}\n`);
      if (result.seconds >= WAIT_TIMEOUT_S / 2) return `waited ${result.seconds.toFixed(1)} s`;
      if (!result.delivery.complete) return "incomplete";
      return `answered: ${stateOf(result.delivery, clientId)}`;
    };

    before(async () => {
      server = await startServer();
      present = await startClient(server.url, { OPAL_CLIENT_STAT_ID: "present" });
      await waitReady(present);
    });
    after(async () => {
      for (const stream of streams) stream.close();
      await present?.stop();
      await server?.stop();
    });

    test("a client that left before the publish is disconnected, and the wait does not wait on it", async () => {
      const leaver = open("leaver");
      await leaver.welcome;
      leaver.close();
      await waitFor(async () => (await sessions("leaver")).length === 0, { message: "the distributor to see the client leave" });
      await tally.attempt("publish-and-wait with a departed client", "answered: DISCONNECTED", async () => outcome(await publishAndWait(), "leaver"));
      await waitForData(present, "/delivery-case", counter);
    });

    test("a client that leaves while the publish waits on it ends the wait at once", async () => {
      // It reads (so the update reaches it) but never applies anything: only its leaving can end the wait.
      const silent = open("silent", "stall");
      const { headPosition } = await silent.welcome;
      const waiting = publishAndWait();
      const sent = async (): Promise<bigint> => (await server.distributor.listClients({})).clients.find((session) => session.clientId === "silent")?.sentPosition ?? 0n;
      await waitFor(async () => (await sent()) > headPosition, { message: "the update to be sent to the silent client" });
      silent.close();
      await tally.attempt("publish-and-wait with a client that leaves during the wait", "answered: DISCONNECTED", async () => outcome(await waiting, "silent"));
    });

    test("a second stream with the same client id replaces the first", async () => {
      const first = open("twin");
      await first.welcome;
      const [firstSession] = await sessions("twin");
      const second = open("twin");
      const welcome = await second.welcome;
      await tally.attempt("second stream with the same client id", "ABORTED", async () => {
        const end = await first.ended;
        assert.match(end.details, /replaced by a newer stream with the same client id "twin"/);
        return end.code;
      });
      assert.deepEqual(await sessions("twin"), [welcome.sessionId], "one session, the new one");
      assert.notEqual(welcome.sessionId, firstSession);
      // The new stream gets the updates and is the one the wait counts.
      const { delivery } = await publishAndWait();
      assert.equal(stateOf(delivery, "twin"), "APPLIED");
      assert.equal(delivery.clients.filter((client) => client.client_id === "twin").length, 1);
      assert.equal(second.isEnded, false);
    });
  });
}
