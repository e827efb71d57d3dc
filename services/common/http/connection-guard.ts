/**
 * Per-connection deadlines Node's servers do not give: a connection must send its first
 * byte, and enough bytes to be a request (an HTTP/2 preface, a TLS ClientHello), in time;
 * an HTTP/2 session with no open stream is idle; and a connection closed after an answer
 * to an unread upload lingers, so the answer is read before the kernel resets it.
 */
import type { Http2Session } from "node:http2";
import type { Socket } from "node:net";

/** Both an HTTP/2 preface and any TLS ClientHello are at least this long. */
const REQUEST_START_BYTES = 24;

/** How long a closing connection keeps reading (and dropping) an upload the answer refused. */
export const LINGER_MS = 2_000;

/**
 * Destroys the socket when it has read nothing within `firstByteMs`, or fewer than a
 * request's first 24 bytes within `startMs` (a TLS handshake or HTTP/2 preface sent a
 * byte at a time). `bytesRead` counts at the handle, so this holds under TLS and HTTP/2,
 * which read the socket natively.
 */
export function guardConnectionStart(socket: Socket, firstByteMs: number, startMs: number): void {
  const firstByte = setTimeout(() => {
    if (socket.bytesRead === 0) socket.destroy();
  }, firstByteMs);
  const start = setTimeout(() => {
    if (socket.bytesRead < REQUEST_START_BYTES) socket.destroy();
  }, startMs);
  firstByte.unref();
  start.unref();
  socket.once("close", () => {
    clearTimeout(firstByte);
    clearTimeout(start);
  });
}

/**
 * Node's HTTP/1.1 server ends a `Connection: close` exchange with `destroySoon()`: the
 * socket is destroyed as soon as the answer is written. If the client is still uploading,
 * the kernel answers its next bytes with a reset, which can discard the answer before
 * the client reads it (a 413 becomes ECONNRESET). Here the write side is ended (FIN) and
 * what still arrives is dropped until the client closes too, or for `lingerMs`.
 */
export function lingerBeforeClose(socket: Socket, lingerMs = LINGER_MS): void {
  socket.destroySoon = function lingeringDestroySoon(this: Socket): void {
    if (this.writable) this.end();
    const timer = setTimeout(() => this.destroy(), lingerMs);
    timer.unref();
    this.once("close", () => clearTimeout(timer));
    this.once("end", () => this.destroy());
    this.resume();
  };
}

/**
 * Closes an HTTP/2 session (GOAWAY) once it has had no open stream for `idleMs`: a
 * session with a stream in flight (a long poll, a server stream) is never idle.
 */
export function closeWhenIdle(session: Http2Session, idleMs: number): void {
  let open = 0;
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    timer = setTimeout(() => {
      session.close();
      // A peer that does not read the GOAWAY keeps the session: destroy it after as long again.
      setTimeout(() => session.destroy(), idleMs).unref();
    }, idleMs);
    timer.unref();
  };
  arm();
  session.on("stream", (stream: { once(event: "close", listener: () => void): void }) => {
    open++;
    clearTimeout(timer);
    stream.once("close", () => {
      open--;
      if (open === 0 && !session.closed && !session.destroyed) arm();
    });
  });
  session.once("close", () => clearTimeout(timer));
}
