/** Raw TCP connections, for attacks an HTTP client will not make: slow headers, silence, lying lengths. */
import net from "node:net";

export interface RawConnection {
  socket: net.Socket;
  /** Everything the server sent so far. */
  text(): string;
  /** Resolves when the connection closed: what the server sent and any socket error. */
  closed: Promise<{ text: string; error: string | undefined }>;
  /** Whether the server closed the connection within `ms` (and destroys it if not). */
  closedWithin(ms: number): Promise<boolean>;
}

export function rawConnect(url: string): Promise<RawConnection> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    let received = "";
    let error: string | undefined;
    socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
    socket.on("error", (problem: NodeJS.ErrnoException) => (error = problem.code ?? problem.message));
    const closed = new Promise<{ text: string; error: string | undefined }>((done) => socket.once("close", () => done({ text: received, error })));
    const closedWithin = async (ms: number): Promise<boolean> => {
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([closed.then(() => true), new Promise<false>((done) => (timer = setTimeout(() => done(false), ms)))]);
      clearTimeout(timer);
      if (!outcome) socket.destroy();
      return outcome;
    };
    socket.once("connect", () => {
      socket.off("error", reject);
      resolve({ socket, text: () => received, closed, closedWithin });
    });
    socket.once("error", reject);
  });
}

/** Writes `text` one byte every `intervalMs` until done or the connection closes. */
export function drip(connection: RawConnection, text: string, intervalMs: number): () => number {
  let sent = 0;
  const timer = setInterval(() => {
    if (sent >= text.length || connection.socket.destroyed) return clearInterval(timer);
    connection.socket.write(text[sent++] ?? "");
  }, intervalMs);
  void connection.closed.then(() => clearInterval(timer));
  return () => sent;
}
