/** Small helpers for OPAL's JSON REST routes. */
import type { ServerResponse } from "node:http";
import { jsonDepth } from "../json-depth.js";
import { requireJsonContentType } from "./content-type.js";
import { HttpError, type HttpRequest, type HttpResponse } from "./http-error.js";
import { readBody } from "./request-body.js";

export { HttpError, type HttpRequest, type HttpResponse } from "./http-error.js";
export { readBody } from "./request-body.js";

/** The body as JSON: 415 unless it says it is JSON in UTF-8, 413 past `maxBytes`, 400/422 when it is not (deep) JSON. */
export async function readJson(request: HttpRequest, maxBytes: number, maxDepth = 64): Promise<unknown> {
  requireJsonContentType(request);
  const body = await readBody(request, maxBytes);
  if (body.length === 0) throw new HttpError(422, "the request body is empty; expected JSON");
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8")) as unknown;
  } catch (error) {
    if (error instanceof RangeError) throw new HttpError(422, `the request body nests deeper than ${maxDepth} levels`);
    throw new HttpError(400, `the request body is not valid JSON: ${(error as Error).message}`);
  }
  if (jsonDepth(value, maxDepth) > maxDepth) throw new HttpError(422, `the request body nests deeper than ${maxDepth} levels`);
  return value;
}

export function sendJson(response: HttpResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = JSON.stringify(body);
  // The two response types share this shape but not one overload set.
  const target = response as ServerResponse;
  target.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(payload), ...headers });
  target.end(payload);
}

/** A status without a body (OPAL's 201 for PUT /scopes, 204 for DELETE). */
export function sendEmpty(response: HttpResponse, status: number): void {
  const target = response as ServerResponse;
  target.writeHead(status, status === 204 ? {} : { "content-length": 0 });
  target.end();
}

/** FastAPI's error shape, which OPAL clients parse: {"detail": ...}. */
export function sendError(response: HttpResponse, status: number, detail: unknown): void {
  sendJson(response, status, { detail });
}

export function sendRedirect(response: HttpResponse, location: string, status = 307): void {
  const target = response as ServerResponse;
  target.writeHead(status, { location });
  target.end();
}
