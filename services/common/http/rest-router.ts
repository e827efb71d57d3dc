/**
 * Routes OPAL's REST paths; anything else falls through (to Connect's 404).
 * Paths may hold `{name}` parameters (one segment) and a last `{name...}` (the rest).
 */
import type { Security } from "../auth/security.js";
import { AuthError, type PeerType, type Principal } from "../auth/tokens.js";
import { hasBody, requireJsonContentType } from "./content-type.js";
import { type HttpRequest, HttpError, type HttpResponse, sendError } from "./json-io.js";
import { endUnreadBody } from "./request-body.js";
import { ValidationError, validationDetail } from "../validation-error.js";

export interface RestContext {
  params: Record<string, string>;
  url: URL;
  /** The caller, for routes that authenticate. */
  principal?: Principal;
  /** Aborts when the client goes away before the answer is sent (a route waiting on something stops). */
  signal: AbortSignal;
}

export interface RestRoute {
  method: "GET" | "POST" | "PUT" | "DELETE" | "PATCH";
  path: string;
  /**
   * Who may call: "open" (health, JWKS, OPAL's placeholder source), "self" (the route
   * checks credentials itself: master token, webhook signature), or the peer types whose
   * JWT it accepts. Required, so no route is open by accident.
   */
  auth: "open" | "self" | readonly PeerType[];
  handle(request: HttpRequest, response: HttpResponse, context: RestContext): Promise<void> | void;
}

interface CompiledRoute extends RestRoute {
  pattern: RegExp;
  names: string[];
}

export class RestRouter {
  private readonly routes: CompiledRoute[] = [];

  /** Without security every authenticated route is open (as in dev mode). */
  constructor(private readonly security?: Security) {}

  add(...routes: RestRoute[]): this {
    for (const route of routes) {
      const names: string[] = [];
      // `{name}` is one segment; `{name...}` the rest of the path, slashes included (may be empty).
      const source = route.path.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{(\w+)((?:\\\.){3})?\}/g, (_match, name: string, rest: string | undefined) => {
        names.push(name);
        return rest === undefined ? "([^/]+)" : "(.*)";
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
      void this.run(route, request, response, { params, url, signal: disconnectSignal(response) });
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
      if (Array.isArray(route.auth) && this.security !== undefined) {
        context.principal = await (await this.security.authenticator()).authenticate(request.headers.authorization, route.auth as readonly PeerType[]);
      }
      // Every REST body is JSON, whether or not the route reads it (webhooks included).
      if (route.method !== "GET" && route.method !== "DELETE" && hasBody(request)) requireJsonContentType(request);
      await route.handle(request, response, context);
    } catch (error) {
      if (response.headersSent) {
        response.destroy();
        return;
      }
      endUnreadBody(request, response);
      if (error instanceof AuthError) sendError(response, error.status, error.message);
      else if (error instanceof HttpError) sendError(response, error.status, error.body ?? error.message);
      else if (error instanceof ValidationError) sendError(response, 422, validationDetail(error));
      else sendError(response, 500, "internal error");
    }
  }
}

/** Aborts once the connection closes before the response has been sent in full. */
function disconnectSignal(response: HttpResponse): AbortSignal {
  const controller = new AbortController();
  response.once("close", () => {
    if (!response.writableFinished) controller.abort(new Error("the client closed the connection before the answer"));
  });
  return controller.signal;
}
