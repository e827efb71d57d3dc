/**
 * Telling that a source answered JSON without parsing it: its content-type must not say
 * otherwise, and its first non-blank byte must open a JSON value. A login page, an error
 * page or XML is caught here, naming the url, instead of as a parse error from OPA.
 */
import { redactUrl } from "../../common/config/env-reader.js";
import { FetchError } from "./types.js";

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);
/** { [ " - 0-9 t f n: how every JSON text starts. */
const JSON_START = new Set([..."{[\"-0123456789tfn"].map((char) => char.charCodeAt(0)));

/** The first non-whitespace byte, undefined when the bytes are all blank. */
export function firstNonBlank(bytes: Uint8Array): number | undefined {
  for (const byte of bytes) if (!WHITESPACE.has(byte)) return byte;
  return undefined;
}

/** Media types that are certainly not JSON (sources that say nothing, or text/plain, are given the benefit of the doubt). */
function notJsonType(contentType: string): boolean {
  const type = contentType.split(";")[0]?.trim().toLowerCase() ?? "";
  if (type.includes("json")) return false;
  return type === "text/html" || type.endsWith("/xml") || type.endsWith("+xml") || type.startsWith("image/") || type.startsWith("video/") || type.startsWith("audio/");
}

export function checkContentType(contentType: string | string[] | undefined, url: string): void {
  const value = Array.isArray(contentType) ? contentType[0] : contentType;
  if (value !== undefined && notJsonType(value)) throw new FetchError(`${redactUrl(url)} did not return JSON: its content-type is ${value}`, false);
}

/** Throws unless `head` (the first bytes of the body) can start a JSON text. */
export function checkJsonStart(head: Uint8Array, url: string): void {
  const byte = firstNonBlank(head);
  if (byte !== undefined && JSON_START.has(byte)) return;
  if (byte === undefined) throw new FetchError(`${redactUrl(url)} returned an empty body`, true);
  const excerpt = Buffer.from(head.subarray(0, 200)).toString("utf8").trim().slice(0, 60);
  throw new FetchError(`${redactUrl(url)} did not return JSON: it starts with ${JSON.stringify(excerpt)}`, false);
}
