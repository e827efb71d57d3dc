/**
 * REST bodies are JSON only when they say so. A browser may send `text/plain`, a form or
 * `multipart/form-data` to any origin without a CORS preflight; parsing those as JSON
 * would let any web page an operator opens publish to a local server (FastAPI, and so
 * OPAL, refuses them for the same reason).
 */
import { HttpError, type HttpRequest } from "./http-error.js";

export const ACCEPTED_CONTENT_TYPES = "application/json (or a +json type such as application/merge-patch+json), in UTF-8";

/** Why a Content-Type header is not JSON in UTF-8, or undefined when it is. */
export function jsonContentTypeProblem(header: string | undefined): string | undefined {
  if (header === undefined || header.trim() === "") return `the request has no content type; expected ${ACCEPTED_CONTENT_TYPES}`;
  const [mediaType = "", ...parameters] = header.split(";");
  const type = mediaType.trim().toLowerCase();
  const got = JSON.stringify(header.length > 100 ? `${header.slice(0, 100)}…` : header);
  if (!/^application\/([a-z0-9!#$&^_.-]+\+)?json$/.test(type)) return `unsupported content type ${got}; expected ${ACCEPTED_CONTENT_TYPES}`;
  for (const parameter of parameters) {
    const separator = parameter.indexOf("=");
    const name = parameter.slice(0, separator === -1 ? undefined : separator).trim().toLowerCase();
    if (name !== "charset") continue;
    const charset = parameter.slice(separator + 1).trim().replace(/^"(.*)"$/, "$1").toLowerCase();
    if (charset !== "utf-8") return `unsupported charset in content type ${got}; expected ${ACCEPTED_CONTENT_TYPES}`;
  }
  return undefined;
}

/** Throws 415 naming what was sent and what is accepted. */
export function requireJsonContentType(request: HttpRequest): void {
  const header = request.headers["content-type"];
  const problem = jsonContentTypeProblem(Array.isArray(header) ? header.join(", ") : header);
  if (problem !== undefined) throw new HttpError(415, problem);
}

/** Whether a request carries a body (HTTP/1.1 says so in its headers; HTTP/2 by not ending the stream). */
export function hasBody(request: HttpRequest): boolean {
  const length = request.headers["content-length"];
  if (length !== undefined) return length.trim() !== "0";
  if (request.headers["transfer-encoding"] !== undefined) return true;
  return "stream" in request && !request.stream.endAfterHeaders;
}
