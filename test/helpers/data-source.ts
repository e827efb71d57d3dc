/** A real local HTTP server standing in for a service that owns data. */
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface Route {
  status?: number;
  body: unknown;
  headers?: Record<string, string>;
  /** The answer waits for this (a source that is slow until the test says so). */
  gate?: Promise<void>;
}

export class DataSource {
  readonly routes = new Map<string, Route>();
  readonly hits = new Map<string, number>();
  readonly requests: Array<{ method: string; path: string; headers: http.IncomingHttpHeaders; body: string }> = [];
  private readonly server = http.createServer((request, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => (body += chunk.toString()));
    request.on("end", () => {
      const path = request.url ?? "/";
      this.requests.push({ method: request.method ?? "GET", path, headers: request.headers, body });
      this.hits.set(path, (this.hits.get(path) ?? 0) + 1);
      const route = this.routes.get(path);
      if (route === undefined) {
        response.writeHead(404, { "content-type": "application/json" }).end('{"detail":"not found"}');
        return;
      }
      const payload = typeof route.body === "string" ? route.body : JSON.stringify(route.body);
      const answer = (): void => void response.writeHead(route.status ?? 200, { "content-type": "application/json", ...route.headers }).end(payload);
      if (route.gate === undefined) answer();
      else void route.gate.then(answer);
    });
  });

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return this;
  }

  url(path: string): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}${path}`;
  }

  set(path: string, body: unknown, status = 200): void {
    this.routes.set(path, { body, status });
  }

  /** Serves `body` at `path` only once the returned function is called. */
  setGated(path: string, body: unknown): () => void {
    let open = (): void => undefined;
    const gate = new Promise<void>((resolve) => (open = resolve));
    this.routes.set(path, { body, gate });
    return () => open();
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
