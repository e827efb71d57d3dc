/**
 * Which clients still have a stream that can deliver an update, as delivery status needs
 * it: an update not acknowledged by a client whose stream ended is *disconnected*, not
 * pending, and nobody waits on it. A client that comes back resumes after some position;
 * updates after it are pending again (its new stream delivers them), those before it stay
 * disconnected (that stream will not).
 *
 * A client never heard of counts as connected: the tracker is told of the clients an
 * update is addressed to at dispatch, and those are connected by definition.
 */

interface Presence {
  connected: boolean;
  /** The client's current stream delivers the events after this position. */
  deliversAfter: bigint;
}

export class ClientPresence {
  private readonly clients = new Map<string, Presence>();

  /** At most this many clients are remembered (the least recently changed are forgotten first). */
  constructor(private readonly maxClients = 100_000) {}

  /** Whether an update at `position`, not yet acknowledged by the client, may still reach it. */
  reaches(clientId: string, position: bigint): boolean {
    const presence = this.clients.get(clientId);
    return presence === undefined || (presence.connected && presence.deliversAfter < position);
  }

  connected(clientId: string, deliversAfter: bigint): void {
    this.set(clientId, { connected: true, deliversAfter });
  }

  disconnected(clientId: string): void {
    this.set(clientId, { connected: false, deliversAfter: this.clients.get(clientId)?.deliversAfter ?? 0n });
  }

  private set(clientId: string, presence: Presence): void {
    // Delete first so the map's order is the order of change: the oldest are forgotten first.
    this.clients.delete(clientId);
    this.clients.set(clientId, presence);
    while (this.clients.size > this.maxClients) this.clients.delete(this.clients.keys().next().value as string);
  }
}
