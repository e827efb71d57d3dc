/**
 * The large-data scenario's data source, in a process of its own: an HTTP server answering
 * GET /users.json with a deterministic JSON object of N user records keyed by id, about
 * 115 bytes each (1.3 M records ≈ 150 MB). The body is generated as it is sent, a batch of
 * records at a time with backpressure, never built as one string, so this process stays
 * small and its cost is not the client's. Every record has the same length, so the
 * content-length is known up front, as a real file server would send it.
 *
 *   node --import tsx bench/load/big-source.ts <records>
 *
 * Prints {"url", "bytes", "records"} as one JSON line once listening; with an IPC channel
 * it also sends {event: "request" | "sent", at} (Date.now()) as each response starts and ends.
 */
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";

const ROLES = ["reader", "writer", "admins"] as const;
const BATCH = 1_000;

export function userId(index: number): string {
  return `u${String(index).padStart(7, "0")}`;
}

/** Record `index` as a JS value (what OPA must hold at data.<dst>["<id>"]). */
export function userRecord(index: number): Record<string, unknown> {
  const id = userId(index);
  return {
    id,
    email: `${id}@example.com`,
    role: ROLES[index % ROLES.length],
    team: `t${String(index % 1000).padStart(3, "0")}`,
    active: index % 7 === 0 ? 0 : 1,
    quota: index % 10_000,
  };
}

function entryText(index: number): string {
  // quota is padded by hand: a fixed record length keeps content-length a product.
  const text = JSON.stringify(userRecord(index));
  return `${JSON.stringify(userId(index))}:${text.slice(0, -1)}${" ".repeat(4 - String(index % 10_000).length)}}`;
}

export function documentBytes(records: number): number {
  if (records === 0) return 2;
  return 2 + records * Buffer.byteLength(entryText(0)) + (records - 1);
}

function drained(response: ServerResponse): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = (): void => {
      response.off("close", onClose);
      resolve();
    };
    const onClose = (): void => {
      response.off("drain", onDrain);
      reject(new Error("the client went away"));
    };
    response.once("drain", onDrain).once("close", onClose);
  });
}

async function send(response: ServerResponse, records: number): Promise<void> {
  response.write("{");
  for (let start = 0; start < records; start += BATCH) {
    const parts: string[] = [];
    for (let index = start; index < Math.min(records, start + BATCH); index++) parts.push(entryText(index));
    const chunk = `${start === 0 ? "" : ","}${parts.join(",")}`;
    if (!response.write(chunk)) await drained(response);
  }
  response.end("}");
}

function main(): void {
  const records = Number(process.argv[2] ?? "1300000");
  if (!Number.isInteger(records) || records < 0) throw new Error("usage: big-source.ts <records>");
  const bytes = documentBytes(records);
  const server = createServer((request, response) => {
    if (request.method !== "GET" || request.url !== "/users.json") {
      response.writeHead(404, { "content-type": "application/json" }).end('{"detail":"not found"}');
      return;
    }
    process.send?.({ event: "request", at: Date.now() });
    response.writeHead(200, { "content-type": "application/json", "content-length": bytes });
    send(response, records).then(
      () => process.send?.({ event: "sent", at: Date.now() }),
      () => undefined,
    );
  });
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as AddressInfo;
    process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}/users.json`, bytes, records })}\n`);
  });
  process.on("SIGTERM", () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
  // The scenario's process is our parent: when it goes, so do we.
  process.on("disconnect", () => process.exit(0));
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) main();
