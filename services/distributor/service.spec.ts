import assert from "node:assert/strict";
import { test } from "node:test";
import type { HandlerContext } from "@connectrpc/connect";
import { ClientProtocol, type ListClientsResponse } from "../../gen/opal/mesh/v1/distributor_pb.js";
import type { DeliveryTracker } from "./delivery-tracker.js";
import type { Fanout } from "./fanout.js";
import { createDistributorService } from "./service.js";
import { ClientSession } from "./session.js";
import { RecordingSink } from "./spec-support/recording-sink.js";

const LIMITS = { maxFrames: 100, maxBytes: 1 << 20 };

function listClients(sessions: ClientSession[]): ListClientsResponse {
  const service = createDistributorService({
    fanout: { listSessions: () => sessions } as unknown as Fanout,
    delivery: {} as DeliveryTracker,
    dataSources: {} as never,
    streamPort: () => 0,
    streamPublicUrl: undefined,
    streamTls: false,
    scopes: undefined,
    authorizeScope: () => Promise.resolve(),
  });
  const list = service.listClients as (request: object, context: HandlerContext) => ListClientsResponse;
  return list({}, {} as HandlerContext);
}

test("ListClients says how each client is connected and whether it confirms what it applied", () => {
  const mesh = new ClientSession("mesh-1", ["policy_data"], "10.0.0.1:1", new RecordingSink(), LIMITS);
  const opalSilent = new ClientSession("opal:10.0.0.2:2", ["policy_data"], "10.0.0.2:2", new RecordingSink(), LIMITS, "default", false, "opal-ws");
  const opalReporting = new ClientSession("opal:10.0.0.3:3", ["policy:."], "10.0.0.3:3", new RecordingSink(), LIMITS, "default", false, "opal-ws");
  opalReporting.markConfirming();
  const { clients } = listClients([mesh, opalSilent, opalReporting]);
  assert.deepEqual(
    clients.map((client) => [client.clientId, client.protocol, client.confirmsDeliveries]),
    [
      ["mesh-1", ClientProtocol.OPAL_MESH, true],
      ["opal:10.0.0.2:2", ClientProtocol.OPAL_WEBSOCKET, false],
      ["opal:10.0.0.3:3", ClientProtocol.OPAL_WEBSOCKET, true],
    ],
  );
});

test("ListClients carries each client's labels; an OPAL client has none", () => {
  const labelled = new ClientSession("mesh-1", ["policy_data"], "10.0.0.1:1", new RecordingSink(), LIMITS, "default", true, "opal-mesh", { zone: "eu", canary: "true" });
  const opal = new ClientSession("opal:10.0.0.2:2", ["policy_data"], "10.0.0.2:2", new RecordingSink(), LIMITS, "default", false, "opal-ws");
  const { clients } = listClients([labelled, opal]);
  assert.deepEqual(
    clients.map((client) => [client.clientId, client.labels]),
    [
      ["mesh-1", { zone: "eu", canary: "true" }],
      ["opal:10.0.0.2:2", {}],
    ],
  );
});
