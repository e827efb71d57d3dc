/**
 * Delivery status across every distributor: each knows its own clients' ACKs; a client
 * that moved between distributors counts once, with its best outcome.
 */
import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { type ClientDelivery, DeliveryState, type UpdateStatus, UpdateStatusSchema } from "../../gen/opal/mesh/v1/delivery_pb.js";
import type { DistributorService } from "../../gen/opal/mesh/v1/distributor_pb.js";

export const DEFAULT_WAIT_MS = 30_000;

// A client disconnected from one distributor and connected to another counts as the latter says.
const RANK: Record<DeliveryState, number> = {
  [DeliveryState.UNSPECIFIED]: 0,
  [DeliveryState.DISCONNECTED]: 1,
  [DeliveryState.SENT_UNCONFIRMED]: 2,
  [DeliveryState.PENDING]: 3,
  [DeliveryState.FAILED]: 4,
  [DeliveryState.APPLIED]: 5,
};

export function mergeStatuses(updateId: string, statuses: readonly UpdateStatus[]): UpdateStatus {
  const clients = new Map<string, ClientDelivery>();
  let position = 0n;
  let known = false;
  let traceId = "";
  let publishedAt = 0n;
  for (const status of statuses) {
    if (!status.known) continue;
    known = true;
    if (status.position > position) position = status.position;
    traceId ||= status.traceId;
    // The earliest dispatch any distributor saw is when it was published.
    if (status.publishedAtUnixMs > 0n && (publishedAt === 0n || status.publishedAtUnixMs < publishedAt)) publishedAt = status.publishedAtUnixMs;
    for (const client of status.clients) {
      const seen = clients.get(client.clientId);
      if (seen === undefined || RANK[client.state] > RANK[seen.state]) clients.set(client.clientId, client);
    }
  }
  const merged = [...clients.values()].sort((a, b) => a.clientId.localeCompare(b.clientId));
  const count = (state: DeliveryState): number => merged.filter((client) => client.state === state).length;
  const pending = count(DeliveryState.PENDING);
  return create(UpdateStatusSchema, {
    updateId,
    position,
    known,
    clients: merged,
    applied: count(DeliveryState.APPLIED),
    failed: count(DeliveryState.FAILED),
    pending,
    disconnected: count(DeliveryState.DISCONNECTED),
    unconfirmed: count(DeliveryState.SENT_UNCONFIRMED),
    complete: known && pending === 0,
    traceId,
    publishedAtUnixMs: publishedAt,
  });
}

export class DeliveryStatusReader {
  constructor(private readonly distributors: () => ReadonlyArray<Client<typeof DistributorService>>) {}

  async status(updateId: string, options: { position?: bigint; wait: boolean; timeoutMs?: number }, signal?: AbortSignal): Promise<UpdateStatus> {
    const timeoutMs = options.timeoutMs === undefined || options.timeoutMs <= 0 ? DEFAULT_WAIT_MS : options.timeoutMs;
    const answers = await Promise.allSettled(
      this.distributors().map((distributor) =>
        distributor.getDeliveryStatus({ updateId, position: options.position ?? 0n, wait: options.wait, timeoutMs }, { signal, timeoutMs: timeoutMs + 5_000 }),
      ),
    );
    const statuses = answers.flatMap((answer) => (answer.status === "fulfilled" && answer.value.status !== undefined ? [answer.value.status] : []));
    return mergeStatuses(updateId, statuses);
  }
}
