/**
 * Garbage collection in another Node process, through its inspector (started with
 * `--inspect=127.0.0.1:<port>`): so that what its memory metrics say after it is what
 * the process still holds, not garbage waiting for the collector.
 */
import { request } from "undici";

interface Reply {
  id: number;
  result?: Record<string, unknown>;
  error?: { message: string };
}

export class InspectedProcess {
  private socket: WebSocket | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, (reply: Reply) => void>();

  constructor(private readonly inspectorPort: number) {}

  /** A full collection: of the heap, and of the buffers (external memory) only garbage refers to. */
  async collectGarbage(): Promise<void> {
    await this.send("HeapProfiler.collectGarbage");
  }

  close(): void {
    this.socket?.close();
    this.socket = undefined;
  }

  private async connect(): Promise<WebSocket> {
    if (this.socket !== undefined) return this.socket;
    const response = await request(`http://127.0.0.1:${this.inspectorPort}/json/list`);
    const [target] = (await response.body.json()) as Array<{ webSocketDebuggerUrl: string }>;
    if (target === undefined) throw new Error(`no inspector target on port ${this.inspectorPort}`);
    const socket = new WebSocket(target.webSocketDebuggerUrl);
    await new Promise<void>((resolve, reject) => {
      socket.addEventListener("open", () => resolve(), { once: true });
      socket.addEventListener("error", () => reject(new Error(`inspector on port ${this.inspectorPort} refused the connection`)), { once: true });
    });
    socket.addEventListener("message", (message: { data: unknown }) => {
      const reply = JSON.parse(String(message.data)) as Reply;
      this.pending.get(reply.id)?.(reply);
      this.pending.delete(reply.id);
    });
    this.socket = socket;
    return socket;
  }

  private async send(method: string): Promise<Record<string, unknown>> {
    const socket = await this.connect();
    const id = this.nextId++;
    const reply = await new Promise<Reply>((resolve) => {
      this.pending.set(id, resolve);
      socket.send(JSON.stringify({ id, method }));
    });
    if (reply.error !== undefined) throw new Error(`${method}: ${reply.error.message}`);
    return reply.result ?? {};
  }
}
