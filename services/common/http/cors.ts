/**
 * CORS, closed unless OPAL_ALLOWED_ORIGINS names origins: without it no response carries
 * `Access-Control-Allow-*`, so a browser lets no other origin read an answer or send a
 * preflighted request (a JSON body, an Authorization header). Simple requests a browser
 * sends without asking (text/plain, forms) are refused by the REST routes' 415.
 */
import type { ServerResponse } from "node:http";
import type { RequestHandler } from "./listener.js";

const METHODS = "GET, POST, PUT, PATCH, DELETE";
/** What Connect and gRPC-web clients read besides the body. */
const EXPOSED = "grpc-status, grpc-message, grpc-status-details-bin, connect-protocol-version, etag";

export function withCors(allowedOrigins: readonly string[], handler: RequestHandler): RequestHandler {
  if (allowedOrigins.length === 0) return handler;
  const anyOrigin = allowedOrigins.includes("*");
  const origins = new Set(allowedOrigins);
  return (request, response) => {
    const origin = request.headers.origin;
    if (origin === undefined || (!anyOrigin && !origins.has(origin))) return handler(request, response);
    response.setHeader("access-control-allow-origin", anyOrigin ? "*" : origin);
    response.setHeader("vary", "Origin");
    const preflight = request.method === "OPTIONS" && request.headers["access-control-request-method"] !== undefined;
    if (!preflight) {
      response.setHeader("access-control-expose-headers", EXPOSED);
      return handler(request, response);
    }
    response.setHeader("access-control-allow-methods", METHODS);
    const asked = request.headers["access-control-request-headers"];
    if (asked !== undefined) response.setHeader("access-control-allow-headers", asked);
    response.setHeader("access-control-max-age", "600");
    // The two response types share this shape but not one overload set.
    (response as ServerResponse).writeHead(204).end();
  };
}
