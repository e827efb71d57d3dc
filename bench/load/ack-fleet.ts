/**
 * A fleet of load-generator clients (ACK only, no OPA) for the fan-out and reconnect-storm
 * scenarios: one process holding N streaming clients of DistributorService.Connect over
 * grpc-js. Each says Hello (resuming from its last position and log id after a break),
 * ACKs every event at once as APPLIED, and keeps no policy store. Started by a scenario
 * through runBenchProcess (bench/load/ack-harness.ts); it reports over IPC
 * (bench/load/ack-protocol.ts).
 *
 *   --target 127.0.0.1:7003 --clients 1000 [--per-connection 1] [--id-prefix load] [--topic policy_data]
 *
 * Loss check: every event in the benchmark's log is addressed to these clients (the
 * scenario publishes only to the topic they subscribe to), so within one log a client
 * must see positions last+1, last+2, …; a jump is a lost event, a repeat a duplicate.
 */
import * as grpc from "@grpc/grpc-js";
import { DistributorService } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { backoffDelay } from "../../services/common/backoff.js";
import type { AckLoadReport, AckLoadRequest, AckLoadStats } from "./ack-protocol.js";
import { decodeResponse, encodeAck, encodeHello } from "./ack-wire.js";

function flag(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index === -1 ? fallback : (process.argv[index + 1] as string);
}

const target = flag("target", "127.0.0.1:7003");
const clientCount = Number(flag("clients", "100"));
const perConnection = Math.max(1, Number(flag("per-connection", "1")));
const idPrefix = flag("id-prefix", "load");
const topic = flag("topic", "policy_data");
/** At most this many first connects in flight: a burst of thousands of SYNs overflows the listen backlog. */
const RAMP = 200;

/** Wall-clock milliseconds with sub-ms resolution, comparable across processes of one machine. */
const now = (): number => performance.timeOrigin + performance.now();

type ConnectCall = grpc.ClientDuplexStream<Buffer, Buffer>;
// Raw bytes both ways: ack-wire.ts encodes and decodes the hot path by hand.
const raw = (bytes: Buffer): Buffer => bytes;
const GrpcClient = grpc.makeGenericClientConstructor(
  { connect: { path: `/${DistributorService.typeName}/Connect`, requestStream: true, responseStream: true, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw } },
  "DistributorService",
);

/** One HTTP/2 connection shared by `perConnection` clients (a local subchannel pool keeps grpc-js from merging them). */
function newChannel(): grpc.Client {
  return new GrpcClient(target, grpc.credentials.createInsecure(), {
    "grpc.use_local_subchannel_pool": 1,
    // The real client opens a fresh connection per attempt; grpc-js's own reconnect
    // backoff (1 s, ×1.6) must not add seconds on top of the client's.
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1_000,
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
    // Retries buffer every message sent on a call; a stream that lives for the whole run has nothing to retry.
    "grpc.enable_retries": 0,
  });
}

const stats: AckLoadStats = {
  clients: clientCount,
  connections: Math.ceil(clientCount / perConnection),
  connected: 0,
  welcomes: 0,
  resumed: 0,
  fresh: 0,
  resyncs: 0,
  events: 0,
  duplicates: 0,
  lost: 0,
  clientsWithLoss: 0,
  failures: 0,
  errors: {},
  minPosition: 0,
  maxPosition: 0,
  logIds: [],
};

/** First receipts of each position, per log: when every client has it, the parent is told. */
interface Receipts {
  count: number;
  times: Float64Array;
  /** The longest a client took from its current session's Welcome to this position. */
  maxSinceWelcome: number;
  lastWelcomeAt: number;
}
const receipts = new Map<string, Map<number, Receipts>>();

function received(logId: string, position: number, at: number, welcomedAt: number): void {
  let log = receipts.get(logId);
  if (log === undefined) receipts.set(logId, (log = new Map<number, Receipts>()));
  let entry = log.get(position);
  if (entry === undefined) log.set(position, (entry = { count: 0, times: new Float64Array(clientCount), maxSinceWelcome: 0, lastWelcomeAt: 0 }));
  // A client counts once per position (it only records positions above its last), so count reaches N exactly once.
  entry.times[entry.count++] = at;
  entry.maxSinceWelcome = Math.max(entry.maxSinceWelcome, at - welcomedAt);
  entry.lastWelcomeAt = Math.max(entry.lastWelcomeAt, welcomedAt);
  if (entry.count < clientCount) return;
  log.delete(position);
  const times = entry.times.sort();
  report({
    type: "delivered",
    logId,
    position,
    firstAt: times[0] as number,
    medianAt: times[Math.floor(times.length / 2)] as number,
    lastAt: times[times.length - 1] as number,
    maxSinceWelcome: entry.maxSinceWelcome,
    lastWelcomeAt: entry.lastWelcomeAt,
  });
}

/**
 * ACKs go out at the end of this turn of the event loop, after every event that arrived
 * in it was received: still at once, but the receive times of the clients handled last
 * in a turn do not include the ACK writes of all the others.
 */
let acks: Array<[ConnectCall, Buffer]> = [];
function ackLater(call: ConnectCall, ack: Buffer): void {
  if (acks.length === 0) setImmediate(flushAcks);
  acks.push([call, ack]);
}
function flushAcks(): void {
  const batch = acks;
  acks = [];
  for (const [call, ack] of batch) call.write(ack);
}

function report(message: AckLoadReport): void {
  process.send?.(message);
}

function noteError(error: grpc.ServiceError): void {
  const key = `${grpc.status[error.code] ?? error.code}: ${error.details}`;
  stats.errors[key] = (stats.errors[key] ?? 0) + 1;
}

class AckClient {
  /** Last position received (and ACKed) within logId; -1 before the first Welcome. */
  position = -1;
  logId = "";
  /** When the current session was welcomed. */
  welcomedAt = 0;
  private lossSeen = false;
  private call: ConnectCall | undefined;
  private attempt = 0;
  private failures = 0;
  private welcomed = false;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly id: string,
    private readonly channel: () => grpc.Client,
    /** Told once, at the first Welcome or failure (the connect ramp moves on). */
    private readonly onFirstOutcome: () => void,
  ) {}

  connect(): void {
    if (this.stopped) return;
    const attempt = ++this.attempt;
    this.welcomed = false;
    const call = (this.channel() as unknown as { connect(metadata: grpc.Metadata): ConnectCall }).connect(new grpc.Metadata());
    this.call = call;
    const resuming = this.position >= 0;
    call.write(encodeHello({ clientId: this.id, topics: [topic], resumeFromPosition: resuming ? BigInt(this.position) : undefined, logId: this.logId }));
    call.on("data", (bytes: Buffer) => {
      if (attempt === this.attempt) this.onMessage(call, bytes, resuming);
    });
    const broken = (error?: grpc.ServiceError): void => {
      if (attempt !== this.attempt) return;
      this.attempt++; // later callbacks of this call are stale
      if (error !== undefined) noteError(error);
      this.broken();
    };
    call.on("error", broken);
    call.on("end", () => broken());
  }

  private onMessage(call: ConnectCall, bytes: Buffer, resuming: boolean): void {
    const incoming = decodeResponse(bytes);
    if (incoming.kind === "event") {
      stats.events++;
      const { position } = incoming;
      ackLater(call, encodeAck(position, incoming.updateId));
      if (position <= this.position) {
        stats.duplicates++;
        return;
      }
      if (position > this.position + 1) {
        stats.lost += position - this.position - 1;
        if (!this.lossSeen) stats.clientsWithLoss++;
        this.lossSeen = true;
      }
      this.position = position;
      received(this.logId, position, now(), this.welcomedAt);
      return;
    }
    const response = incoming.message;
    switch (response.message.case) {
      case "welcome": {
        const welcome = response.message.value;
        if (!this.welcomed) {
          this.welcomed = true;
          this.welcomedAt = now();
          stats.connected++;
          stats.welcomes++;
          this.onFirstOutcome();
        }
        if (resuming && welcome.logId === this.logId) stats.resumed++;
        else {
          // Fresh, or the position belongs to another log: "load the baseline" (there is none) and follow from the head.
          stats.fresh++;
          this.logId = welcome.logId;
          this.position = Number(welcome.headPosition);
        }
        return;
      }
      case "resync":
        stats.resyncs++;
        this.position = Number(response.message.value.headPosition);
        return;
      default:
        return;
    }
  }

  private broken(): void {
    if (this.welcomed) stats.connected--;
    this.onFirstOutcome();
    stats.failures++;
    this.call?.cancel();
    this.call = undefined;
    if (this.stopped) return;
    // As the real client (services/client/stream-session.ts): a session that got going resets the backoff.
    this.failures = this.welcomed ? 1 : this.failures + 1;
    this.welcomed = false;
    this.retryTimer = setTimeout(() => this.connect(), backoffDelay(this.failures, { initialMs: 100, maxMs: 10_000, jitter: 0.5 }));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.attempt++;
    this.call?.cancel();
  }
}

const channels: grpc.Client[] = [];
const clients: AckClient[] = [];
let inFlight = 0;
let next = 0;
function rampUp(): void {
  while (inFlight < RAMP && next < clients.length) {
    inFlight++;
    (clients[next++] as AckClient).connect();
  }
}
for (let index = 0; index < clientCount; index++) {
  const group = Math.floor(index / perConnection);
  let first = true;
  const firstOutcome = (): void => {
    if (!first) return;
    first = false;
    inFlight--;
    rampUp();
  };
  clients.push(new AckClient(`${idPrefix}-${index}`, () => (channels[group] ??= newChannel()), firstOutcome));
}

function snapshot(): AckLoadStats {
  let min = Number.POSITIVE_INFINITY;
  let max = 0;
  const logIds = new Set<string>();
  for (const client of clients) {
    min = Math.min(min, client.position);
    max = Math.max(max, client.position);
    if (client.logId !== "") logIds.add(client.logId);
  }
  return { ...stats, errors: { ...stats.errors }, minPosition: Number.isFinite(min) ? min : 0, maxPosition: max, logIds: [...logIds] };
}

process.on("message", (message: AckLoadRequest) => {
  if (message.type === "stats") report({ type: "stats", stats: snapshot() });
  else if (message.type === "stop") {
    for (const client of clients) client.stop();
    for (const channel of channels) channel.close();
    report({ type: "stopped", stats: snapshot() });
    setTimeout(() => process.exit(0), 100);
  }
});
process.on("disconnect", () => process.exit(0));
rampUp();
