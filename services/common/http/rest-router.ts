/**
 * Routes OPAL's REST paths; anything else falls through (to Connect's 404).
 * Paths may hold `{name}` parameters.
 */
import { type HttpRequest, HttpError, type HttpResponse, sendError } from "./json-io.js";

export interface RestContext {
  params: Record<string, string>;
  url: URL;
}

export interface RestRoute {
  method: "GET" | "POST" | "PUT" | "DELETE" | "PATCH";
  path: string;
  handle(request: HttpRequest, response: HttpResponse, context: RestContext): Promise<void> | void;
}

interface CompiledRoute extends RestRoute {
  pattern: RegExp;
  names: string[];
}

export class RestRouter {
  private readonly routes: CompiledRoute[] = [];

  add(...routes: RestRoute[]): this {
    for (const route of routes) {
      const names: string[] = [];
      const source = route.path.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{(\w+)\}/g, (_match, name: string) => {
        names.push(name);
        return "([^/]+)";
      });
      this.routes.push({ ...route, pattern: new RegExp(`^${source}$`), names });
    }
    return this;
  }

  /** Handles the request and returns true, or returns false when no route matches. */
  handle(request: HttpRequest, response: HttpResponse): boolean {
    let url: URL;
    try {
      // Prefixing the origin keeps a target like "//x" a path, not a host.
      url = new URL(`http://localhost${request.url ?? "/"}`);
    } catch {
      sendError(response, 400, "malformed request target");
      return true;
    }
    let pathMatched = false;
    for (const route of this.routes) {
      const match = route.pattern.exec(url.pathname);
      if (match === null) continue;
      pathMatched = true;
      if (route.method !== request.method) continue;
      const params: Record<string, string> = {};
      try {
        route.names.forEach((name, index) => {
          params[name] = decodeURIComponent(match[index + 1] ?? "");
        });
      } catch {
        sendError(response, 400, `malformed escape in ${url.pathname}`);
        return true;
      }
      void this.run(route, request, response, { params, url });
      return true;
    }
    if (pathMatched) {
      sendError(response, 405, `method ${request.method ?? "?"} not allowed on ${url.pathname}`);
      return true;
    }
    return false;
  }

  private async run(route: RestRoute, request: HttpRequest, response: HttpResponse, context: RestContext): Promise<void> {
    try {
      await route.handle(request, response, context);
    } catch (error) {
      if (response.headersSent) {
        response.destroy();
        return;
      }
      if (error instanceof HttpError) sendError(response, error.status, error.body ?? error.message);
      else sendError(response, 500, "internal error");
    }
  }
}
