/**
 * A defensive reader for the policy bundles (tar.gz) that bundle servers hand out: ustar,
 * GNU ('L' long names) and pax ('x' path/size records) headers, regular files only. What a
 * bundle server sends is untrusted input, so every entry that could escape the bundle's
 * root, alias another file or exhaust memory is refused rather than skipped.
 */
import { constants as bufferConstants } from "node:buffer";
import { gunzipSync } from "node:zlib";

export interface TarLimits {
  /** Upper bound of the regular files' total size, in bytes. */
  maxBytes: number;
  /** Upper bound of the archive's entries (files and directories). */
  maxFiles: number;
}

/** A bundle that is refused: unsafe paths or entry types, over a limit, empty, truncated or corrupt. */
export class UnsafeBundleError extends Error {
  override readonly name = "UnsafeBundleError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

const BLOCK = 512;
/** Headers, pax records, long names and padding allowed per entry, beyond file content. */
const METADATA_PER_ENTRY = 8 * BLOCK;
/** GNU tar pads archives to 10 KiB records. */
const RECORD = 20 * BLOCK;

const utf8 = new TextDecoder("utf-8", { fatal: false });

interface Header {
  name: string;
  size: number;
  type: string;
}

/** Entries that describe the next entry (long names, pax records), and what they set. */
interface PendingOverrides {
  path?: string;
  size?: number;
}

function decodeString(block: Uint8Array, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const end = field.indexOf(0);
  return utf8.decode(end === -1 ? field : field.subarray(0, end));
}

/** An octal field, or GNU's base-256 form (high bit set) used for sizes of 8 GiB and more. */
function decodeNumber(block: Uint8Array, start: number, length: number, what: string): number {
  const field = block.subarray(start, start + length);
  if (((field[0] ?? 0) & 0x80) !== 0) {
    if (((field[0] ?? 0) & 0x40) !== 0) throw new UnsafeBundleError(`tar header has a negative ${what}`);
    let value = (field[0] ?? 0) & 0x3f;
    for (const byte of field.subarray(1)) value = value * 256 + byte;
    return value;
  }
  const text = utf8.decode(field).replace(/[\0 ]+$/, "").replace(/^ +/, "");
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw new UnsafeBundleError(`tar header has a malformed ${what} field ${JSON.stringify(text)}`);
  return parseInt(text, 8);
}

function checksumMatches(block: Uint8Array): boolean {
  const stored = decodeNumber(block, 148, 8, "checksum");
  let unsigned = 0;
  let signed = 0;
  for (let index = 0; index < BLOCK; index++) {
    // The checksum field itself counts as eight spaces.
    const byte = index >= 148 && index < 156 ? 0x20 : (block[index] ?? 0);
    unsigned += byte;
    signed += byte >= 0x80 ? byte - 0x100 : byte;
  }
  // Some old writers summed signed bytes; readers (GNU tar, Go) accept either.
  return stored === unsigned || stored === signed;
}

function isZeroBlock(block: Uint8Array): boolean {
  return block.every((byte) => byte === 0);
}

function parseHeader(block: Uint8Array): Header {
  if (!checksumMatches(block)) throw new UnsafeBundleError("tar header checksum does not match (corrupt archive)");
  let name = decodeString(block, 0, 100);
  // Only POSIX ustar ("ustar\0" + "00") has a prefix field; GNU keeps timestamps there.
  const magic = decodeString(block, 257, 6);
  const version = utf8.decode(block.subarray(263, 265));
  if (magic === "ustar" && version === "00") {
    const prefix = decodeString(block, 345, 155);
    if (prefix !== "") name = `${prefix}/${name}`;
  }
  const typeByte = block[156] ?? 0;
  return { name, size: decodeNumber(block, 124, 12, "size"), type: typeByte === 0 ? "0" : String.fromCharCode(typeByte) };
}

/** Pax extended header records: "<length> <key>=<value>\n", the length counting the whole record. */
function parsePaxRecords(data: Uint8Array): Map<string, string> {
  const records = new Map<string, string>();
  let offset = 0;
  while (offset < data.length) {
    if (data[offset] === 0) break;
    const space = data.indexOf(0x20, offset);
    const length = space === -1 ? NaN : Number(utf8.decode(data.subarray(offset, space)));
    if (!Number.isInteger(length) || length <= 0 || offset + length > data.length || data[offset + length - 1] !== 0x0a) {
      throw new UnsafeBundleError("malformed pax extended header");
    }
    const record = utf8.decode(data.subarray(space + 1, offset + length - 1));
    const equals = record.indexOf("=");
    if (equals === -1) throw new UnsafeBundleError("malformed pax extended header record");
    records.set(record.slice(0, equals), record.slice(equals + 1));
    offset += length;
  }
  return records;
}

/**
 * The entry's repo-relative path ("rbac/policy.rego"): "." and empty segments dropped, so
 * "./rbac//policy.rego" is "rbac/policy.rego". A leading "/" is the bundle's root, as
 * `opa build` writes every entry ("/data.json"); nothing is extracted to disk, so it
 * names no file outside the bundle. Drive letters, ".." segments and backslashes (a
 * traversal on Windows) are refused.
 */
export function normaliseEntryPath(name: string): string {
  if (/^[A-Za-z]:/.test(name)) throw new UnsafeBundleError(`bundle entry ${JSON.stringify(name)} has an absolute path`);
  if (name.includes("\\")) throw new UnsafeBundleError(`bundle entry ${JSON.stringify(name)} contains a backslash`);
  const segments = name.split("/").filter((segment) => segment !== "" && segment !== ".");
  if (segments.includes("..")) throw new UnsafeBundleError(`bundle entry ${JSON.stringify(name)} contains a ".." segment`);
  return segments.join("/");
}

function gunzip(bytes: Uint8Array, limits: TarLimits): Buffer {
  const maxOutputLength = Math.min(bufferConstants.MAX_LENGTH, limits.maxBytes + (limits.maxFiles + 1) * METADATA_PER_ENTRY + RECORD);
  try {
    return gunzipSync(bytes, { maxOutputLength });
  } catch (error) {
    if ((error as { code?: unknown }).code === "ERR_BUFFER_TOO_LARGE") {
      throw new UnsafeBundleError(`bundle decompresses to more than ${maxOutputLength} bytes (limit ${limits.maxBytes} bytes of files)`, { cause: error });
    }
    throw new UnsafeBundleError(`bundle is not a readable gzip stream: ${(error as Error).message}`, { cause: error });
  }
}

function checkLimits(limits: TarLimits): void {
  for (const key of ["maxBytes", "maxFiles"] as const) {
    if (!Number.isSafeInteger(limits[key]) || limits[key] < 0) throw new RangeError(`${key} must be a non-negative integer, got ${limits[key]}`);
  }
}

/**
 * The regular files of a tar.gz archive, keyed by normalised repo-relative path; later
 * entries with the same path replace earlier ones, as when tar extracts. Directories are
 * skipped. Throws UnsafeBundleError for drive-letter or ".." paths, links, devices and other
 * special entries, archives over the limits, and truncated or corrupt archives.
 */
export function extractTarGz(bytes: Uint8Array, limits: TarLimits): Map<string, Uint8Array> {
  checkLimits(limits);
  const archive = gunzip(bytes, limits);
  const files = new Map<string, Uint8Array>();
  let pending: PendingOverrides = {};
  let entries = 0;
  let totalBytes = 0;
  let offset = 0;

  for (;;) {
    if (offset + BLOCK > archive.length) throw new UnsafeBundleError("archive is truncated: it ends without an end-of-archive block");
    const block = archive.subarray(offset, offset + BLOCK);
    if (isZeroBlock(block)) {
      if (pending.path !== undefined || pending.size !== undefined) throw new UnsafeBundleError("archive is truncated: an extended header has no entry");
      break;
    }
    const header = parseHeader(block);
    const size = header.type === "x" || header.type === "g" || header.type === "L" || header.type === "K" ? header.size : (pending.size ?? header.size);
    const dataStart = offset + BLOCK;
    const label = JSON.stringify(pending.path ?? header.name);
    if (dataStart + size > archive.length) throw new UnsafeBundleError(`archive is truncated: entry ${label} needs ${size} bytes`);
    const data = archive.subarray(dataStart, dataStart + size);
    offset = dataStart + Math.ceil(size / BLOCK) * BLOCK;

    switch (header.type) {
      case "x": {
        const records = parsePaxRecords(data);
        const path = records.get("path");
        if (path !== undefined) pending.path = path;
        const paxSize = records.get("size");
        if (paxSize !== undefined) {
          if (!/^\d+$/.test(paxSize)) throw new UnsafeBundleError(`pax header has a malformed size ${JSON.stringify(paxSize)}`);
          pending.size = Number(paxSize);
        }
        continue;
      }
      case "g":
        // Global pax defaults (mtime, charset, comment) do not change which files a bundle holds.
        continue;
      case "L":
        pending.path = decodeString(data, 0, data.length);
        continue;
      case "K":
        // A long link target: the link it belongs to is refused below.
        continue;
    }

    entries++;
    if (entries > limits.maxFiles) throw new UnsafeBundleError(`bundle has more than ${limits.maxFiles} entries (at ${label})`);
    const name = pending.path ?? header.name;
    pending = {};
    const path = normaliseEntryPath(name);

    switch (header.type) {
      case "0":
      case "7": {
        // Pre-POSIX archives mark directories only by the trailing slash.
        if (name.endsWith("/") && size === 0) break;
        if (path === "") throw new UnsafeBundleError(`bundle entry ${JSON.stringify(name)} is a file without a name`);
        totalBytes += size;
        if (totalBytes > limits.maxBytes) throw new UnsafeBundleError(`bundle files exceed ${limits.maxBytes} bytes (at ${JSON.stringify(name)})`);
        // A copy, so the decompressed archive can be freed.
        files.set(path, new Uint8Array(data));
        break;
      }
      case "5":
        break;
      case "1":
        throw new UnsafeBundleError(`bundle entry ${JSON.stringify(name)} is a hard link`);
      case "2":
        throw new UnsafeBundleError(`bundle entry ${JSON.stringify(name)} is a symbolic link`);
      default:
        throw new UnsafeBundleError(`bundle entry ${JSON.stringify(name)} has unsupported tar type ${JSON.stringify(header.type)} (only files and directories are allowed)`);
    }
  }
  return files;
}
