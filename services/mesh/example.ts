/**
 * `npm start`: the embedded server, one client with inline OPA, and the example policy
 * and data, in one process; prints what to try once the first decision is possible.
 */
import { type Component, component } from "../common/lifecycle.js";
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { request } from "undici";
import { type ClientAgent, createClientAgent } from "../client/agent.js";
import { loadClientConfig } from "../common/config/client-config.js";
import type { Env } from "../common/config/env-reader.js";
import { loadServerConfig } from "../common/config/server-config.js";
import { sendJson } from "../common/http/json-io.js";
import { HttpListener } from "../common/http/listener.js";
import { createLogger } from "../common/logger.js";
import { sleep } from "../common/backoff.js";
import { clientAgentOptions } from "./client-command.js";
import { EmbeddedServer } from "./embedded-server.js";
import { exitOnConfigError, runUntilSignal } from "./run.js";

const EXAMPLES = fileURLToPath(new URL("../../examples/", import.meta.url));
const PROJECT = fileURLToPath(new URL("../../", import.meta.url));

/**
 * The example's policy repo: a real local git repository made from examples/policy on
 * the first run (and kept, so edits survive), which the server tracks like any remote.
 */
function examplePolicyRepo(): string {
  const dir = join(PROJECT, ".opal-mesh", "policy-repo");
  if (existsSync(join(dir, ".git"))) return dir;
  mkdirSync(dir, { recursive: true });
  cpSync(join(EXAMPLES, "policy"), dir, { recursive: true });
  const git = (...args: string[]): void => void execFileSync("git", ["-c", "user.name=opal-mesh example", "-c", "user.email=example@opal-mesh.invalid", ...args], { cwd: dir, stdio: "ignore" });
  git("init", "-q", "-b", "main");
  git("add", "-A");
  git("commit", "-q", "-m", "example policy");
  return dir;
}

/** The example's data service: stands in for the services that own users and roles. */
function exampleDataService(port: number): HttpListener {
  return new HttpListener({
    host: "127.0.0.1",
    port,
    handler: (req, res) => {
      const name = { "/users": "users.json", "/roles": "roles.json" }[req.url ?? ""];
      if (name === undefined) return sendJson(res, 404, { detail: "Not Found" });
      void readFile(`${EXAMPLES}data/${name}`).then((body) => sendJson(res, 200, JSON.parse(body.toString())));
    },
  });
}

export async function runExample(environment: Env): Promise<void> {
  const startedAt = performance.now();
  const dataPort = Number(environment.OPAL_MESH_EXAMPLE_DATA_PORT ?? 7080);
  const serverPort = environment.OPAL_SERVER_BIND_PORT ?? "7002";
  const policyRepo = environment.OPAL_POLICY_REPO_URL ?? examplePolicyRepo();
  const defaults: Env = {
    OPAL_POLICY_REPO_URL: policyRepo,
    OPAL_POLICY_REPO_MAIN_BRANCH: "main",
    OPAL_POLICY_REPO_POLLING_INTERVAL: "1",
    OPAL_DATA_CONFIG_SOURCES: JSON.stringify({
      config: {
        entries: [
          { url: `http://127.0.0.1:${dataPort}/users`, topics: ["policy_data"], dst_path: "/users" },
          { url: `http://127.0.0.1:${dataPort}/roles`, topics: ["policy_data"], dst_path: "/roles" },
        ],
      },
    }),
    OPAL_SERVER_URL: `http://127.0.0.1:${serverPort}`,
    OPAL_INLINE_OPA_CONFIG: JSON.stringify({ addr: "127.0.0.1:8181" }),
  };
  const env: Env = { ...defaults, ...environment };
  let serverConfig, clientConfig;
  try {
    serverConfig = loadServerConfig(env);
    clientConfig = loadClientConfig(env);
  } catch (error) {
    exitOnConfigError(error);
  }
  const logger = createLogger(serverConfig.logging);
  const agent: ClientAgent = await createClientAgent(await clientAgentOptions(clientConfig, logger.child({ part: "client" }), env));
  await runUntilSignal([lifecycleOf(exampleDataService(dataPort)), new EmbeddedServer(serverConfig, logger.child({ part: "server" })), agent], logger);

  const opa = agent.storeUrl;
  const decide = async (): Promise<unknown> => {
    const response = await request(`${opa}/v1/data/app/rbac/allow`, { method: "POST", body: JSON.stringify({ input: { user: "bob", action: "write" } }) });
    return ((await response.body.json()) as { result?: unknown }).result;
  };
  while (!agent.health.isReady()) await sleep(50);
  const decision = await decide();
  const seconds = ((performance.now() - startedAt) / 1000).toFixed(1);
  const server = `http://127.0.0.1:${serverPort}`;
  process.stdout.write(`
opal-mesh is running (first decision after ${seconds} s): server ${server}, client http://127.0.0.1:${agent.apiPort}, OPA ${opa}
bob may write? ${JSON.stringify(decision)}

Try:
  # ask OPA
  curl -s ${opa}/v1/data/app/rbac/allow -d '{"input":{"user":"bob","action":"write"}}'

  # make bob an editor (OPAL's REST route, OPAL's DataUpdate JSON) ... then ask OPA again
  curl -s -X POST ${server}/data/config -H 'content-type: application/json' \\
    -d '{"entries":[{"url":"","data":{"roles":["editor"]},"dst_path":"/users/bob","topics":["policy_data"]}],"reason":"promote bob"}'

  # the same through the Connect API
  curl -s ${server}/opal.mesh.v1.TriggerService/PublishDataUpdate -H 'content-type: application/json' \\
    -d '{"entries":[{"data":{"roles":["viewer"]},"dst_path":"/users/bob","topics":["policy_data"]}]}'

  # change the policy: the server polls its git repo every second
  #   edit ${policyRepo}/rbac/policy.rego, e.g. add the rule:  allow if input.action == "read"
  git -C ${policyRepo} commit -am "let everyone read"
  curl -s ${opa}/v1/data/app/rbac/allow -d '{"input":{"user":"dave","action":"read"}}'

  # client health and readiness
  curl -s http://127.0.0.1:${agent.apiPort}/healthy

Ctrl-C stops everything.
`);
}

function lifecycleOf(listener: HttpListener): Component {
  return component("example-data", { start: () => listener.start(), stop: () => listener.stop() });
}
