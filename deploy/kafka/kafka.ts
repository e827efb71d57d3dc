/**
 * A real Apache Kafka broker for development and tests: a single KRaft node on loopback
 * with a clean data directory. The broker jars are resolved from Maven Central once (by
 * `mvn dependency:copy-dependencies` on deploy/kafka/pom.xml) into a cache outside the
 * repository. Java 17 runs it.
 *
 *   npm run kafka -- --port 9092 [--sasl]     # foreground, until Ctrl-C
 *
 * With --sasl the client listener requires SASL/SCRAM-SHA-256 (user "opal", password
 * "opal-secret" unless --user/--password say otherwise).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { terminate } from "../../services/common/child-process.js";

const run = promisify(execFile);
const HERE = fileURLToPath(new URL(".", import.meta.url));
export const KAFKA_VERSION = "4.1.1";

export interface KafkaOptions {
  port: number;
  /** SASL/SCRAM-SHA-256 on the client listener. */
  sasl?: { username: string; password: string };
  /** Where the jars are cached; default ~/.cache/opal-mesh/kafka/<version>/libs. */
  cacheDir?: string;
  /** Broker stderr lines, for diagnostics. */
  onLog?: (line: string) => void;
  /** server.properties entries added to (or replacing) the defaults below, e.g. to try a setting in a bench. */
  brokerProperties?: Record<string, string>;
  /** More JVM options (after the defaults, so they win). */
  jvmOptions?: string[];
}

export interface RunningKafka {
  bootstrap: string;
  port: number;
  dataDir: string;
  /** The broker's process id while it runs (benches read its CPU time). */
  pid(): number | undefined;
  /** Stops the broker (SIGTERM, then SIGKILL), keeping the data directory. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data (a broker outage, in tests). */
  restart(): Promise<void>;
  /** Stops it and removes its data. */
  destroy(): Promise<void>;
}

function cacheRoot(options: KafkaOptions): string {
  return options.cacheDir ?? join(process.env.OPAL_MESH_CACHE_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "opal-mesh"), "kafka", KAFKA_VERSION);
}

/** Resolves the broker jars from Maven Central into the cache, once. */
export async function ensureKafkaJars(options: KafkaOptions = { port: 0 }): Promise<string> {
  const libs = join(cacheRoot(options), "libs");
  if (existsSync(libs) && readdirSync(libs).some((name) => name.startsWith("kafka_2.13-"))) return libs;
  mkdirSync(libs, { recursive: true });
  try {
    await run("mvn", ["-q", "-B", "-f", join(HERE, "pom.xml"), "dependency:copy-dependencies", `-Dkafka.version=${KAFKA_VERSION}`, `-DoutputDirectory=${libs}`, "-DincludeScope=runtime"], { timeout: 15 * 60_000 });
  } catch (error) {
    rmSync(libs, { recursive: true, force: true });
    throw new Error(`could not resolve the Kafka ${KAFKA_VERSION} broker from Maven Central (needs Java 17 and Maven: \`apt-get install maven openjdk-17-jre-headless\`): ${(error as Error).message}`, { cause: error });
  }
  return libs;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * A small broker that is fast from its first second: this one lives for a test or a bench
 * run, on a machine of a few cores it shares with everything under test. C2's compile
 * threads and G1's concurrent ones took those cores for most of a 30 s run (bench/kafka-log.ts,
 * 8 publishers: the broker's CPU per event 540 → 170 µs in the first 3 s, 160 → 75 µs warm,
 * events/s ≈2× until C2 had caught up); C1 code and the serial collector are enough for it.
 */
const JVM_OPTIONS = ["-Xms128m", "-Xmx512m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"];

function java(libs: string, args: string[], jvmOptions: readonly string[] = []): string[] {
  return [`-Dlog4j2.configurationFile=${join(HERE, "log4j2.properties")}`, ...JVM_OPTIONS, ...jvmOptions, "-cp", `${libs}/*`, ...args];
}

function properties(options: KafkaOptions, controllerPort: number, internalPort: number, dataDir: string): string {
  const sasl = options.sasl !== undefined;
  const client = sasl ? "SASL_PLAINTEXT" : "PLAINTEXT";
  const lines = [
    "process.roles=broker,controller",
    "node.id=1",
    `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
    `listeners=${client}://127.0.0.1:${options.port},CONTROLLER://127.0.0.1:${controllerPort},INTERNAL://127.0.0.1:${internalPort}`,
    `advertised.listeners=${client}://127.0.0.1:${options.port},INTERNAL://127.0.0.1:${internalPort}`,
    "controller.listener.names=CONTROLLER",
    "inter.broker.listener.name=INTERNAL",
    `listener.security.protocol.map=${client}:${client},CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT`,
    `log.dirs=${dataDir}`,
    "offsets.topic.replication.factor=1",
    "transaction.state.log.replication.factor=1",
    "transaction.state.log.min.isr=1",
    "share.coordinator.state.topic.replication.factor=1",
    "share.coordinator.state.topic.min.isr=1",
    // Tests join consumer groups constantly; a production broker keeps its 3 s default.
    "group.initial.rebalance.delay.ms=0",
    // Lets tests elect a new policy publisher in about 2 s (OPAL_MESH_LEADER_SESSION_TIMEOUT_MS);
    // a production broker's 6 s minimum is the default there.
    "group.min.session.timeout.ms=1000",
    "auto.create.topics.enable=false",
    // One selector thread and two request handlers serve a loopback broker with a handful of
    // clients; the defaults (3 and 8) only add thread hand-offs competing for a few cores.
    "num.network.threads=1",
    "num.io.threads=2",
    ...(sasl
      ? [
          "sasl.enabled.mechanisms=SCRAM-SHA-256",
          "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;",
        ]
      : []),
  ];
  // Later lines win in a properties file: the overrides go last.
  const overrides = Object.entries(options.brokerProperties ?? {}).map(([name, value]) => `${name}=${value}`);
  return [...lines, ...overrides].join("\n");
}

async function waitForPort(port: number, child: ChildProcess, output: () => string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the Kafka broker exited (${child.exitCode}):\n${output()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, "127.0.0.1", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`the Kafka broker did not listen on ${port} in time:\n${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export async function startKafka(options: KafkaOptions): Promise<RunningKafka> {
  const libs = await ensureKafkaJars(options);
  const dir = mkdtempSync(join(tmpdir(), "opal-mesh-kafka-"));
  const dataDir = join(dir, "data");
  // The kernel may hand back a port just released: keep the three listeners' ports distinct.
  const taken = new Set([options.port]);
  const distinctPort = async (): Promise<number> => {
    for (;;) {
      const port = await freePort();
      if (!taken.has(port)) {
        taken.add(port);
        return port;
      }
    }
  };
  const [controllerPort, internalPort] = [await distinctPort(), await distinctPort()];
  const config = join(dir, "server.properties");
  writeFileSync(config, properties(options, controllerPort, internalPort, dataDir));
  const clusterId = (await run("java", java(libs, ["kafka.tools.StorageTool", "random-uuid"]))).stdout.trim().split("\n").pop() ?? randomUUID();
  const scram = options.sasl === undefined ? [] : ["--add-scram", `SCRAM-SHA-256=[name=${options.sasl.username},password=${options.sasl.password}]`];
  await run("java", java(libs, ["kafka.tools.StorageTool", "format", "-t", clusterId, "-c", config, ...scram]));

  let child: ChildProcess | undefined;
  let lines: string[] = [];
  const launch = async (): Promise<void> => {
    lines = [];
    const broker = spawn("java", java(libs, ["kafka.Kafka", config], options.jvmOptions), { stdio: ["ignore", "pipe", "pipe"] });
    child = broker;
    const onOutput = (chunk: Buffer): void => {
      for (const line of chunk.toString().split("\n")) {
        if (line.trim() === "" || line.startsWith("SLF4J")) continue;
        lines.push(line);
        if (lines.length > 50) lines.shift();
        options.onLog?.(line);
      }
    };
    broker.stdout?.on("data", onOutput);
    broker.stderr?.on("data", onOutput);
    await waitForPort(options.port, broker, () => lines.join("\n"));
  };
  const stop = async (): Promise<void> => {
    if (child !== undefined) await terminate(child, 15_000);
  };
  const killOnExit = (): void => void child?.kill("SIGKILL");
  process.once("exit", killOnExit);
  await launch();
  return {
    bootstrap: `127.0.0.1:${options.port}`,
    port: options.port,
    dataDir,
    pid: () => child?.pid,
    stop,
    restart: async () => {
      await stop();
      await launch();
    },
    destroy: async () => {
      await stop();
      process.off("exit", killOnExit);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// `npm run kafka -- --port N [--sasl] [--user U --password P]`
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const arg = (name: string): string | undefined => {
    const index = process.argv.indexOf(`--${name}`);
    return index === -1 ? undefined : process.argv[index + 1];
  };
  const port = Number(arg("port") ?? 9092);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    process.stderr.write("usage: npm run kafka -- --port N [--sasl] [--user U --password P]\n");
    process.exit(2);
  }
  const sasl = process.argv.includes("--sasl") ? { username: arg("user") ?? "opal", password: arg("password") ?? "opal-secret" } : undefined;
  const kafka = await startKafka({ port, sasl, onLog: (line) => process.stderr.write(`${line}\n`) });
  process.stdout.write(`Kafka ${KAFKA_VERSION} is up on ${kafka.bootstrap}${sasl ? ` (SASL/SCRAM-SHA-256, user ${sasl.username})` : ""}; data in ${kafka.dataDir}. Ctrl-C stops it.\n`);
  const shutdown = (): void => void kafka.destroy().then(() => process.exit(0));
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);
}
