/**
 * The sessions live fan-out delivers to, by client id, and the clients that left lately:
 * an update is still addressed to them for a while (listed as disconnected; they may
 * resume and ACK it). It tells the observer when a client comes and when its last stream goes.
 */
import type { Event } from "../../gen/opal/mesh/v1/event_pb.js";
import { anyTopicCovered } from "../common/topics.js";
import type { DistributorObserver } from "./observer.js";
import type { ClientSession } from "./session.js";

export interface SessionRegistryOptions {
  observer?: DistributorObserver;
  /** How long a client that left is still listed among an update's clients. */
  leftClientTtlMs?: number;
}

export class SessionRegistry implements Iterable<ClientSession> {
  private readonly sessions = new Set<ClientSession>();
  /** Open sessions per client id, so a disconnect needs no scan of every session (10,000 leaving at once was O(N²)). */
  private readonly openByClient = new Map<string, Set<ClientSession>>();
  /** Clients that disconnected recently: their topics, and when they left. */
  private readonly recentlyLeft = new Map<string, { topics: readonly string[]; leftAt: number }>();

  constructor(private readonly options: SessionRegistryOptions = {}) {}

  get size(): number {
    return this.sessions.size;
  }

  [Symbol.iterator](): Iterator<ClientSession> {
    return this.sessions[Symbol.iterator]();
  }

  list(): ClientSession[] {
    return [...this.sessions];
  }

  /** The client's open sessions (one, but for the moment a new stream replaces an old one). */
  sessionsOf(clientId: string): ClientSession[] {
    return [...(this.openByClient.get(clientId) ?? [])];
  }

  /** `deliversAfter`: the position after which this session sends events (its resume point, or the head). */
  register(session: ClientSession, deliversAfter: bigint = session.sentPosition): void {
    if (this.sessions.has(session)) return;
    this.sessions.add(session);
    const open = this.openByClient.get(session.clientId) ?? new Set<ClientSession>();
    open.add(session);
    this.openByClient.set(session.clientId, open);
    this.recentlyLeft.delete(session.clientId);
    this.options.observer?.onClientConnected?.(session.clientId, deliversAfter);
  }

  unregister(session: ClientSession): void {
    if (!this.sessions.delete(session)) return;
    const open = this.openByClient.get(session.clientId);
    open?.delete(session);
    if (open !== undefined && open.size > 0) return;
    this.openByClient.delete(session.clientId);
    // An OPAL client never resumes (it reconnects as a new connection and refetches): nothing is addressed to it after it left.
    if (session.protocol === "opal-mesh") this.recentlyLeft.set(session.clientId, { topics: session.topics, leftAt: Date.now() });
    this.options.observer?.onClientDisconnected?.(session.clientId);
  }

  /** Adds the clients that left lately and would have been addressed by `event`; forgets those gone too long. */
  addLeftClients(event: Event, addressed: string[]): void {
    const ttl = this.options.leftClientTtlMs ?? 300_000;
    const now = Date.now();
    for (const [clientId, left] of this.recentlyLeft) {
      if (now - left.leftAt > ttl) this.recentlyLeft.delete(clientId);
      else if (anyTopicCovered(left.topics, event.topics)) addressed.push(clientId);
    }
  }
}
