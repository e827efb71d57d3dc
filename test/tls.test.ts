/**
 * TLS everywhere, with certificates from a real openssl PKI: the embedded server with
 * mTLS on its HTTP and stream listeners; every distributed process with mTLS between
 * them; and the client reaching OPA over https (token and client-certificate auth).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { Agent, request } from "undici";
import { DistributorService } from "../gen/opal/mesh/v1/distributor_pb.js";
import { grpcServiceDefinition } from "../services/common/grpc/service-definition.js";
import { type CertFiles, TestPki, tlsOptions } from "./helpers/certs.js";
import { GitRepo, tempDir } from "./helpers/git-repo.js";
import { type RunningClient, type RunningServer, startClient, startServer, waitForData, waitReady } from "./helpers/mesh.js";
import { opaBinary } from "./helpers/opa.js";
import { freePort } from "./helpers/ports.js";
import { MeshProcess } from "./helpers/processes.js";
import { waitFor } from "./helpers/wait.js";

const pki = new TestPki();
const rogue = new TestPki("rogue CA");
const serverCert = pki.issue("server");
const clientCert = pki.issue("client");
const rogueCert = rogue.issue("intruder");

function serverTlsEnv(files: CertFiles): Record<string, string> {
  return { OPAL_MESH_TLS_CERT_FILE: files.cert, OPAL_MESH_TLS_KEY_FILE: files.key, OPAL_MESH_TLS_CLIENT_CA_FILE: pki.caCert };
}

function clientTlsEnv(files: CertFiles): Record<string, string> {
  return { OPAL_CLIENT_SSL_CONTEXT_TRUSTED_CA_FILE: pki.caCert, OPAL_MESH_CLIENT_TLS_CERT_FILE: files.cert, OPAL_MESH_CLIENT_TLS_KEY_FILE: files.key };
}

async function publish(url: string, agent: Agent, path: string, value: unknown): Promise<number> {
  const response = await request(`${url}/data/config`, {
    method: "POST",
    dispatcher: agent,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ entries: [{ url: "", dst_path: path, topics: ["policy_data"], data: value }] }),
  });
  await response.body.dump();
  return response.statusCode;
}

/** Resolves to the error a request met; fails the test if it got an answer. */
async function refused(url: string, agent?: Agent): Promise<Error> {
  try {
    const response = await request(`${url}/healthcheck`, agent === undefined ? {} : { dispatcher: agent });
    await response.body.dump();
  } catch (error) {
    return error as Error;
  }
  assert.fail(`${url} answered a connection it should have refused`);
}

describe("embedded server with mTLS", () => {
  let server: RunningServer;
  let client: RunningClient;
  const trusted = new Agent({ connect: tlsOptions(pki.caCert, clientCert) });

  before(async () => {
    server = await startServer(serverTlsEnv(serverCert));
    // The client's own API on TLS too, with the same variables as any opal-mesh listener.
    client = await startClient(server.url, { ...clientTlsEnv(clientCert), ...serverTlsEnv(pki.issue("client-api")) });
    await waitReady(client);
  });

  after(async () => {
    await client?.stop();
    await server?.stop();
    await trusted.close();
  });

  test("the client's own API is on https with mTLS as well", async () => {
    assert.match(client.apiUrl, /^https:/);
    const response = await request(`${client.apiUrl}/ready`, { dispatcher: trusted });
    assert.equal(response.statusCode, 200);
    await response.body.dump();
    const noCert = new Agent({ connect: tlsOptions(pki.caCert) });
    try {
      await refused(client.apiUrl.replace(/\/$/, ""), noCert);
    } finally {
      await noCert.close();
    }
  });

  test("the server listens on https and the client gets policy and data over TLS", async () => {
    assert.match(server.url, /^https:/);
    assert.equal(await publish(server.url, trusted, "/tls/hello", { over: "mtls" }), 200);
    await waitForData(client, "/tls/hello", { over: "mtls" });
  });

  test("a caller without a client certificate, with one from another CA, or speaking cleartext is refused", async () => {
    const noCert = new Agent({ connect: tlsOptions(pki.caCert) });
    const wrongCa = new Agent({ connect: tlsOptions(pki.caCert, rogueCert) });
    try {
      await refused(server.url, noCert);
      await refused(server.url, wrongCa);
      await refused(server.url.replace("https:", "http:"));
    } finally {
      await noCert.close();
      await wrongCa.close();
    }
  });

  test("the client stream listener refuses a gRPC client without a certificate", async () => {
    const Client = grpc.makeGenericClientConstructor(grpcServiceDefinition(DistributorService), "DistributorService");
    const target = `127.0.0.1:${server.server.streamPort}`;
    const withoutCert = new Client(target, grpc.credentials.createSsl(pki.ca));
    const withCert = new Client(target, grpc.credentials.createSsl(pki.ca, ...certPair(clientCert)));
    try {
      const ready = (client: grpc.Client): Promise<Error | undefined> =>
        new Promise((resolve) => client.waitForReady(Date.now() + 3_000, (error) => resolve(error ?? undefined)));
      assert.equal(await ready(withCert), undefined, "a client with a certificate connects");
      assert.ok(await ready(withoutCert), "a client without a certificate never gets a channel");
    } finally {
      withoutCert.close();
      withCert.close();
    }
  });
});

function certPair(files: CertFiles): [Buffer, Buffer] {
  const { key, cert } = tlsOptions(pki.caCert, files);
  return [key!, cert!];
}

describe("distributed processes with mTLS between every service", () => {
  const processes: MeshProcess[] = [];
  let client: RunningClient;
  let trigger: string;
  const trusted = new Agent({ connect: tlsOptions(pki.caCert, clientCert) });
  const readyTls = tlsOptions(pki.caCert, clientCert);

  async function service(command: string, name: string, env: Record<string, string>): Promise<MeshProcess> {
    const port = await freePort();
    const cert = pki.issue(name);
    const process = new MeshProcess(
      command,
      { OPAL_SERVER_HOST: "127.0.0.1", OPAL_SERVER_BIND_PORT: String(port), OPAL_MESH_SERVICE_CA_FILE: pki.caCert, ...serverTlsEnv(cert), ...env },
      `https://127.0.0.1:${port}/healthcheck`,
      readyTls,
    );
    processes.push(process);
    await process.ready();
    return process;
  }
  const urlOf = (process: MeshProcess): string => `https://127.0.0.1:${process.env.OPAL_SERVER_BIND_PORT}`;

  before(async () => {
    const repo = new GitRepo();
    repo.commit({ "rbac/policy.rego": 'package app.rbac\n\ndefault allow := false\n\nallow if input.user == "alice"\n' }, "initial");
    const broadcaster = await service("broadcaster", "broadcaster", {});
    const watcher = await service("policy-watcher", "policy-watcher", {
      OPAL_MESH_BROADCASTER_URLS: urlOf(broadcaster),
      OPAL_POLICY_REPO_URL: repo.dir,
      OPAL_POLICY_REPO_MAIN_BRANCH: "main",
      OPAL_POLICY_REPO_CLONE_PATH: tempDir("opal-mesh-clones-"),
    });
    const distributor = await service("distributor", "distributor", {
      OPAL_MESH_BROADCASTER_URLS: urlOf(broadcaster),
      OPAL_MESH_POLICY_WATCHER_URLS: urlOf(watcher),
      OPAL_MESH_STREAM_PORT: String(await freePort()),
    });
    trigger = urlOf(await service("trigger-api", "trigger-api", { OPAL_MESH_BROADCASTER_URLS: urlOf(broadcaster) }));
    client = await startClient(urlOf(distributor), clientTlsEnv(clientCert));
    await waitReady(client);
  });

  after(async () => {
    await client?.stop();
    await Promise.all(processes.map((process) => process.kill("SIGTERM")));
    await trusted.close();
  });

  test("an update goes trigger-api → broadcaster → distributor → client, every hop over mTLS", async () => {
    assert.equal(await publish(trigger, trusted, "/tls/distributed", [1, 2, 3]), 200);
    await waitForData(client, "/tls/distributed", [1, 2, 3]);
    const policy = await request(`${client.opaUrl}/v1/data/app/rbac/allow`, { method: "POST", body: JSON.stringify({ input: { user: "alice" } }) });
    assert.deepEqual(await policy.body.json(), { result: true });
  });

  test("a service reached without a certificate from the mesh's CA refuses the connection", async () => {
    const wrongCa = new Agent({ connect: tlsOptions(pki.caCert, rogueCert) });
    try {
      for (const process of processes) await refused(urlOf(process), wrongCa);
    } finally {
      await wrongCa.close();
    }
  });
});

describe("the client reaches OPA over https", () => {
  const opas: ChildProcess[] = [];
  const opaCert = pki.issue("opa");
  let server: RunningServer;

  /** A real OPA serving https, with its own authentication mode. */
  async function startOpa(args: string[]): Promise<string> {
    const port = await freePort();
    const child = spawn(await opaBinary(), ["run", "--server", `--addr=127.0.0.1:${port}`, `--tls-cert-file=${opaCert.cert}`, `--tls-private-key-file=${opaCert.key}`, ...args], { stdio: "ignore" });
    opas.push(child);
    const url = `https://127.0.0.1:${port}`;
    const probe = new Agent({ connect: tlsOptions(pki.caCert, clientCert) });
    try {
      await waitFor(
        async () => {
          const response = await request(`${url}/health`, { dispatcher: probe });
          await response.body.dump();
          return true;
        },
        { timeoutMs: 20_000, message: () => `OPA at ${url} to answer` },
      );
    } finally {
      await probe.close();
    }
    return url;
  }

  before(async () => {
    server = await startServer();
  });

  after(async () => {
    for (const child of opas) child.kill("SIGKILL");
    await server?.stop();
  });

  test("token authentication over TLS: the client's writes land, a caller without the token is denied", async () => {
    const authz = join(tempDir("opal-mesh-authz-"), "authz.rego");
    writeFileSync(authz, 'package system.authz\n\ndefault allow := false\n\nallow if input.identity == "opa-secret-token"\n');
    const url = await startOpa(["--authentication=token", "--authorization=basic", authz]);
    const client = await startClient(server.url, {
      OPAL_INLINE_OPA_ENABLED: "false",
      OPAL_POLICY_STORE_URL: url,
      OPAL_POLICY_STORE_AUTH_TYPE: "token",
      OPAL_POLICY_STORE_AUTH_TOKEN: "opa-secret-token",
      OPAL_POLICY_STORE_TLS_CA: pki.caCert,
    });
    const anonymous = new Agent({ connect: tlsOptions(pki.caCert) });
    try {
      await waitReady(client);
      await server.trigger.publishDataUpdate({ entries: [{ dstPath: "/opa_tls/token", topics: ["policy_data"], data: { kind: { case: "stringValue", value: "written" } } }] });
      await waitFor(
        async () => {
          const response = await request(`${url}/v1/data/opa_tls/token`, { dispatcher: anonymous, headers: { authorization: "Bearer opa-secret-token" } });
          return ((await response.body.json()) as { result?: unknown }).result === "written";
        },
        { timeoutMs: 15_000, message: () => "the update to reach OPA" },
      );
      const denied = await request(`${url}/v1/data/opa_tls/token`, { dispatcher: anonymous });
      await denied.body.dump();
      assert.equal(denied.statusCode, 401);
    } finally {
      await anonymous.close();
      await client.stop();
    }
  });

  test("client-certificate authentication (OPAL_POLICY_STORE_AUTH_TYPE=tls)", async () => {
    const url = await startOpa([`--tls-ca-cert-file=${pki.caCert}`, "--authentication=tls"]);
    const client = await startClient(server.url, {
      OPAL_INLINE_OPA_ENABLED: "false",
      OPAL_POLICY_STORE_URL: url,
      OPAL_POLICY_STORE_AUTH_TYPE: "tls",
      OPAL_POLICY_STORE_TLS_CA: pki.caCert,
      OPAL_POLICY_STORE_TLS_CLIENT_CERT: clientCert.cert,
      OPAL_POLICY_STORE_TLS_CLIENT_KEY: clientCert.key,
    });
    const withCert = new Agent({ connect: tlsOptions(pki.caCert, clientCert) });
    const anonymous = new Agent({ connect: tlsOptions(pki.caCert) });
    try {
      await waitReady(client);
      await server.trigger.publishDataUpdate({ entries: [{ dstPath: "/opa_tls/cert", topics: ["policy_data"], data: { kind: { case: "numberValue", value: 7 } } }] });
      await waitFor(
        async () => {
          const response = await request(`${url}/v1/data/opa_tls/cert`, { dispatcher: withCert });
          return ((await response.body.json()) as { result?: unknown }).result === 7;
        },
        { timeoutMs: 15_000, message: () => "the update to reach OPA" },
      );
      await refused(url, anonymous);
    } finally {
      await anonymous.close();
      await withCert.close();
      await client.stop();
    }
  });
});
