/**
 * One trace per update, read back from a real Jaeger: the trigger's server span (continuing
 * the caller's traceparent) → the publish → (Kafka) → the distributor → each of 3 clients
 * (fetch, OPA write, ACK) → the distributor's receipt of each ACK; and a policy change
 * from its announcement to each client's apply. The clients export over OTLP gRPC,
 * HTTP/protobuf and HTTP/JSON. No secret or data value is in any span.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { request } from "undici";
import { DataSource } from "./helpers/data-source.js";
import { GitRepo, tempDir } from "./helpers/git-repo.js";
import { type JaegerSpan, parentOf, type RunningJaeger, startTestJaeger, tag } from "./helpers/jaeger.js";
import { type RunningKafka, startTestKafka } from "./helpers/kafka.js";
import { type RunningClient, type RunningServer, startClient, startServer, waitForData, waitReady } from "./helpers/mesh.js";
import { waitFor } from "./helpers/wait.js";

const SECRET = "Bearer fetch-secret-2d8e";
const VALUE = "data-value-never-in-spans-71a";
const PROTOCOLS = ["grpc", "http/protobuf", "http/json"] as const;

let jaeger: RunningJaeger;
const source = new DataSource();

before(async () => {
  jaeger = await startTestJaeger();
  await source.start();
  source.set("/users", { alice: { role: "admin", note: VALUE } });
});

after(async () => {
  await jaeger?.stop();
  await source.stop();
});

function otel(protocol: (typeof PROTOCOLS)[number], serviceName?: string): Record<string, string> {
  return {
    OTEL_TRACES_EXPORTER: "otlp",
    OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
    OTEL_EXPORTER_OTLP_ENDPOINT: protocol === "grpc" ? jaeger.otlpGrpc : jaeger.otlpHttp,
    OTEL_BSP_SCHEDULE_DELAY: "50",
    ...(serviceName === undefined ? {} : { OTEL_SERVICE_NAME: serviceName }),
  };
}

async function publishTraced(server: RunningServer, path: string): Promise<string> {
  const traceId = randomBytes(16).toString("hex");
  const response = await request(`${server.url}/data/config`, {
    method: "POST",
    headers: { "content-type": "application/json", traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01` },
    body: JSON.stringify({ entries: [{ url: source.url("/users"), config: { headers: { Authorization: SECRET } }, topics: ["policy_data"], dst_path: path }] }),
  });
  assert.equal(response.statusCode, 200, await response.body.text());
  return traceId;
}

function only(spans: readonly JaegerSpan[], name: string, predicate: (span: JaegerSpan) => boolean = () => true): JaegerSpan {
  const found = spans.filter((span) => span.operationName === name && predicate(span));
  assert.equal(found.length, 1, `one "${name}" span, found ${found.length}: ${spans.map((span) => `${span.service}:${span.operationName}`).join(", ")}`);
  return found[0] as JaegerSpan;
}

function childrenOf(parent: JaegerSpan, spans: readonly JaegerSpan[]): JaegerSpan[] {
  return spans.filter((span) => parentOf(span, spans)?.spanID === parent.spanID);
}

/** Each client's part: its process span under `distributor`, with the fetch, the write and the ACK under it, and the server's receipt of that ACK. */
function assertClientLegs(spans: readonly JaegerSpan[], distributor: JaegerSpan, clients: readonly RunningClient[], steps: readonly string[], kind: "data" | "policy"): void {
  const legs = spans.filter((span) => span.operationName === `process ${kind} update`);
  assert.equal(legs.length, clients.length, `one "process ${kind} update" per client`);
  const ids = new Set<unknown>();
  for (const leg of legs) {
    assert.equal(leg.service, "opal-mesh-client");
    assert.equal(parentOf(leg, spans)?.spanID, distributor.spanID, "a client's span is a child of the distributor's");
    ids.add(tag(leg, "opal_mesh.client_id"));
    const children = childrenOf(leg, spans).map((span) => span.operationName).sort();
    assert.deepEqual(children, [...steps, "send ack"].sort(), `the client's steps for ${String(tag(leg, "opal_mesh.client_id"))}`);
    const sendAck = childrenOf(leg, spans).find((span) => span.operationName === "send ack") as JaegerSpan;
    const receipt = spans.filter((span) => span.operationName === "receive ack" && parentOf(span, spans)?.spanID === sendAck.spanID);
    assert.equal(receipt.length, 1, "the distributor's receipt of the ACK is a child of the client's send");
    assert.equal(receipt[0]?.service, "opal-mesh-server");
    assert.equal(tag(receipt[0], "opal_mesh.client_id"), tag(leg, "opal_mesh.client_id"));
  }
  assert.equal(ids.size, clients.length, "every client is in the trace");
}

function assertNoSecrets(spans: readonly JaegerSpan[]): void {
  const text = JSON.stringify(spans.map((span) => span.tags));
  assert.ok(!text.includes(SECRET.slice("Bearer ".length)), "the fetcher's credential is not in any span");
  assert.ok(!text.includes(VALUE), "no data value is in any span");
}

async function traceOf(traceId: string, expected: number): Promise<JaegerSpan[]> {
  let spans: JaegerSpan[] = [];
  await waitFor(
    async () => {
      spans = await jaeger.trace(traceId);
      return spans.length >= expected;
    },
    { timeoutMs: 20_000, message: () => `trace ${traceId} to have ${expected} spans (has ${spans.length}: ${spans.map((span) => span.operationName).join(", ")})` },
  );
  return spans;
}

describe("the embedded server", () => {
  let server: RunningServer;
  const clients: RunningClient[] = [];
  const repo = new GitRepo();

  before(async () => {
    repo.commit({ "rbac/policy.rego": 'package app.rbac\n\ndefault allow := false\n\nallow if input.user == "alice"\n' }, "initial");
    server = await startServer({ ...otel("http/protobuf"), OPAL_POLICY_REPO_URL: repo.dir, OPAL_POLICY_REPO_MAIN_BRANCH: "main", OPAL_POLICY_REPO_CLONE_PATH: tempDir("opal-mesh-clones-") });
    for (const protocol of PROTOCOLS) clients.push(await startClient(server.url, otel(protocol)));
    await Promise.all(clients.map((client) => waitReady(client)));
  });

  after(async () => {
    for (const client of clients) await client.stop();
    await server?.stop();
    repo.remove();
  });

  test("a data update: trigger → log → distributor → 3 clients (fetch, OPA write, ACK) → ACK receipts, in one trace", async () => {
    const traceId = await publishTraced(server, "/users");
    for (const client of clients) await waitForData(client, "/users/alice/role", "admin");
    const spans = await traceOf(traceId, 3 + 3 * 5);
    const trigger = only(spans, "POST /data/config");
    assert.equal(trigger.service, "opal-mesh-server");
    assert.equal(tag(trigger, "http.request.method"), "POST");
    assert.equal(trigger.references[0]?.traceID, traceId, "it continues the caller's traceparent");
    const publish = only(spans, "send opal-mesh-events");
    assert.equal(parentOf(publish, spans)?.spanID, trigger.spanID);
    const distributor = only(spans, "process opal-mesh-events");
    assert.equal(parentOf(distributor, spans)?.spanID, publish.spanID);
    assert.equal(tag(distributor, "opal_mesh.clients"), 3);
    assertClientLegs(spans, distributor, clients, ["GET", "PATCH"], "data");
    const fetch = spans.find((span) => span.operationName === "GET") as JaegerSpan;
    assert.equal(tag(fetch, "url.full"), source.url("/users"));
    assertNoSecrets(spans);
  });

  test("a policy change: announcement → distributor → 3 clients (bundle, OPA write, ACK) → ACK receipts, in one trace", async () => {
    const sha = repo.commit({ "rbac/policy.rego": 'package app.rbac\n\ndefault allow := false\n\nallow if input.user == "bob"\n' }, "bob");
    await server.policy.refresh({});
    await waitFor(() => clients.every((client) => client.agent.policyHash === sha), { message: () => "every client to apply the commit" });
    let spans: JaegerSpan[] = [];
    await waitFor(
      async () => {
        const traces = await jaeger.search("opal-mesh-server", "send policy change");
        const trace = traces.find((candidate) => candidate.some((span) => tag(span, "opal_mesh.policy.hash") === sha));
        spans = trace === undefined ? [] : await jaeger.trace(trace[0]?.traceID ?? "");
        return spans.length >= 2 + 3 * 5;
      },
      { timeoutMs: 20_000, message: () => `the policy change's trace (${spans.length} spans)` },
    );
    const announce = only(spans, "send policy change");
    assert.equal(parentOf(announce, spans), undefined, "the change starts its trace");
    const distributor = only(spans, "process opal-mesh-events");
    assert.equal(parentOf(distributor, spans)?.spanID, announce.spanID);
    assertClientLegs(spans, distributor, clients, ["opal.mesh.v1.PolicyService/GetBundle", "PUT"], "policy");
    const bundle = spans.find((span) => span.operationName === "opal.mesh.v1.PolicyService/GetBundle") as JaegerSpan;
    assert.equal(tag(bundle, "rpc.system"), "connect_rpc");
  });
});

describe("through Kafka", () => {
  let kafka: RunningKafka;
  let server: RunningServer;
  const clients: RunningClient[] = [];
  const TOPIC = "opal-mesh-traced";

  before(async () => {
    kafka = await startTestKafka();
    server = await startServer({ ...otel("grpc"), OPAL_BROADCAST_URI: `kafka://${kafka.bootstrap}`, OPAL_BROADCAST_CHANNEL_NAME: TOPIC, OPAL_MESH_KAFKA_REPLICATION_FACTOR: "1" });
    for (const protocol of PROTOCOLS) clients.push(await startClient(server.url, otel(protocol)));
    await Promise.all(clients.map((client) => waitReady(client)));
  });

  after(async () => {
    for (const client of clients) await client.stop();
    await server?.stop();
    await kafka?.destroy();
  });

  test("the Kafka producer span joins the trace; its context travels in the message headers", async () => {
    const traceId = await publishTraced(server, "/via-kafka");
    for (const client of clients) await waitForData(client, "/via-kafka/alice/role", "admin");
    const spans = await traceOf(traceId, 4 + 3 * 5);
    const trigger = only(spans, "POST /data/config");
    const publish = only(spans, `send ${TOPIC}`, (span) => tag(span, "messaging.system") === "opal_mesh");
    const produce = only(spans, `send ${TOPIC}`, (span) => tag(span, "messaging.system") === "kafka");
    const distributor = only(spans, `process ${TOPIC}`);
    assert.equal(parentOf(publish, spans)?.spanID, trigger.spanID);
    assert.equal(parentOf(produce, spans)?.spanID, publish.spanID);
    assert.equal(parentOf(distributor, spans)?.spanID, produce.spanID, "the distributor continues from the Kafka headers");
    assert.equal(tag(produce, "messaging.destination.name"), TOPIC);
    assertClientLegs(spans, distributor, clients, ["GET", "PATCH"], "data");
    assertNoSecrets(spans);
  });
});
