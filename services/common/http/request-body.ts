/**
 * Reading a request body under a byte limit. A body over the limit is refused by its
 * declared Content-Length before a byte of it is read, or else the moment the limit is
 * crossed; either way the client gets a 413 rather than a reset (see `endUnreadBody`).
 */
import http2 from "node:http2";
import type { ServerResponse } from "node:http";
import { HttpError, type HttpRequest, type HttpResponse } from "./http-error.js";

function tooLarge(maxBytes: number, declared?: number): HttpError {
  const what = declared === undefined ? "the request body" : `the declared request body of ${declared} bytes`;
  return new HttpError(413, `${what} exceeds the limit of ${maxBytes} bytes (OPAL_MESH_MAX_BODY_BYTES)`);
}

export function readBody(request: HttpRequest, maxBytes: number): Promise<Buffer> {
  const header = request.headers["content-length"];
  const declared = header === undefined ? undefined : Number(header);
  if (declared !== undefined && Number.isFinite(declared) && declared > maxBytes) return Promise.reject(tooLarge(maxBytes, declared));
  if (request.readableEnded) return Promise.resolve(Buffer.alloc(0));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (error?: HttpError): void => {
      if (settled) return;
      settled = true;
      // Without a data listener the stream keeps flowing and what still arrives is dropped.
      request.off("data", onData);
      request.off("end", onEnd);
      request.off("error", onError);
      request.off("close", onClose);
      if (error === undefined) resolve(Buffer.concat(chunks, size));
      else reject(error);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) {
        chunks.length = 0;
        settle(tooLarge(maxBytes));
      } else chunks.push(chunk);
    };
    const onEnd = (): void => settle();
    const onError = (error: Error): void => settle(new HttpError(400, `the request body could not be read: ${error.message}`));
    const onClose = (): void => settle(new HttpError(400, "the client closed the request before its body ended"));
    request.on("data", onData);
    request.once("end", onEnd);
    request.once("error", onError);
    request.once("close", onClose);
  });
}

/**
 * Before answering a request whose body was not read to its end. HTTP/1.1 cannot take
 * the next request on that connection, so the answer says `Connection: close` (and the
 * listener lingers before closing, so the answer is not lost to a reset); HTTP/2 resets
 * only the stream, with NO_ERROR, once the answer is out (RFC 9113 §8.1).
 */
export function endUnreadBody(request: HttpRequest, response: HttpResponse): void {
  if (request.complete) return;
  request.resume();
  if ("stream" in request) {
    const { stream } = request;
    response.once("finish", () => {
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
    });
    return;
  }
  const target = response as ServerResponse;
  if (!target.headersSent) target.setHeader("connection", "close");
}
