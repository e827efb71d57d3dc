/**
 * OPA's `system` namespace (data.system) belongs to OPA (`system.authz` decides who may
 * call OPA at all) and to the client (its status at data.system.opal, its own records at
 * data.system.opal_mesh). No publisher writes there, unless the operator opened a part of
 * it (OPAL_MESH_WRITABLE_SYSTEM_PATHS); the client's own documents are never writable.
 * A path is judged in every spelling something on its way might resolve it to: as given,
 * and percent-decoded (once, twice: OPA's router decodes the URL it is sent), each with
 * `.`, `..`, empty segments and a missing leading slash resolved. The server checks at
 * publish and the client again before it writes, with the same code.
 */

const SYSTEM = "system";

/** The client's own documents: never writable, whatever the configuration says. */
export const CLIENT_OWN_PATHS: readonly string[] = ["/system/opal", "/system/opal_mesh"];

const decodeRounds = 4;

/** Percent-decodes byte by byte, leaving malformed escapes as they are (unlike decodeURIComponent). */
function percentDecode(text: string): string {
  return text.replace(/%([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}

/** The path as given, and each further percent-decoding of it, until nothing changes. */
function spellings(path: string): string[] {
  const forms = [path];
  let current = path;
  for (let round = 0; round < decodeRounds; round++) {
    const decoded = percentDecode(current);
    if (decoded === current) break;
    forms.push(decoded);
    current = decoded;
  }
  return forms;
}

/** Segments as a URL router resolves them: empty and "." segments dropped, ".." climbing (never above the root). */
export function resolveSegments(path: string): string[] {
  const resolved: string[] = [];
  for (const segment of path.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") resolved.pop();
    else resolved.push(segment);
  }
  return resolved;
}

/** A JSON Pointer's segments as a path (RFC 6901: "~1" is "/", "~0" is "~"), so "/a~1..~1system" is judged too. */
function pointerAsPath(pointer: string): string {
  return pointer.replaceAll("~1", "/").replaceAll("~0", "~");
}

/** Whether a path lands at the data root in some spelling ("", "/", "//", "/a/..", "%2F"). */
export function landsAtRoot(path: string): boolean {
  return spellings(path).some((spelling) => resolveSegments(spelling).length === 0);
}

function isUnder(segments: readonly string[], prefix: readonly string[]): boolean {
  return prefix.length <= segments.length && prefix.every((part, index) => segments[index] === part);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export class ReservedPaths {
  /** Nothing in data.system is writable: the default. */
  static readonly NONE = new ReservedPaths([]);
  private readonly writable: string[][];

  /** `writable`: prefixes already accepted by `ReservedPaths.problem` (the config checks them at start-up). */
  constructor(readonly writablePrefixes: readonly string[]) {
    this.writable = writablePrefixes.map(resolveSegments);
  }

  /** What is wrong with an OPAL_MESH_WRITABLE_SYSTEM_PATHS entry, or undefined. */
  static problem(prefix: string): string | undefined {
    const segments = resolveSegments(prefix);
    if (!prefix.startsWith("/") || /%|\/\/|(^|\/)\.\.?(\/|$)/.test(prefix)) {
      return `${JSON.stringify(prefix)} must be a plain absolute path like "/system/authz" (no "%", ".", ".." or empty segments)`;
    }
    if (segments[0] !== SYSTEM) return `${JSON.stringify(prefix)} is not under /system (only OPA's system namespace is reserved)`;
    if (segments.length === 1) return `${JSON.stringify(prefix)} would open all of data.system, including the client's own documents (${CLIENT_OWN_PATHS.join(", ")}); name the parts you manage, e.g. "/system/authz"`;
    const own = CLIENT_OWN_PATHS.find((path) => isUnder(segments, resolveSegments(path)));
    if (own !== undefined) return `${JSON.stringify(prefix)} is the client's own document (${own}), which is never writable`;
    return undefined;
  }

  /** Why a write (PUT, PATCH or DELETE) at this data path is refused, or undefined; `field` names the path in the message ("" for none). */
  pathProblem(path: string, field = "dst_path"): string | undefined {
    const subject = `${field === "" ? "" : `${field} `}${JSON.stringify(path)}`;
    for (const spelling of spellings(path)) {
      const segments = resolveSegments(spelling);
      if (segments[0] !== SYSTEM) continue;
      if (segments.length === 1) return `${subject} is OPA's reserved system namespace (data.system) itself, which holds OPA's configuration and the client's own documents`;
      const own = CLIENT_OWN_PATHS.find((ownPath) => isUnder(segments, resolveSegments(ownPath)));
      if (own !== undefined) return `${subject} is the client's own document ${own}, which is never writable`;
      if (this.writable.some((prefix) => isUnder(segments, prefix))) continue;
      return `${subject} is in OPA's reserved system namespace (data.system); list the part you manage in OPAL_MESH_WRITABLE_SYSTEM_PATHS to write there`;
    }
    return undefined;
  }

  /** A document written at the root replaces data.system with its `system` key: refused when it has one (in any spelling). */
  rootDocumentProblem(path: string, document: unknown): string | undefined {
    if (!landsAtRoot(path) || !isObject(document)) return undefined;
    for (const key of Object.keys(document)) {
      if (this.pathProblem(`/${key}`) !== undefined) return `a document written at the data root (dst_path ${JSON.stringify(path)}) has the key ${JSON.stringify(key)}, which would replace OPA's reserved system namespace (data.system)`;
    }
    return undefined;
  }

  /** Each JSON Patch operation's path (and `from`), joined to the entry's dst_path, and each value written at the root. */
  patchProblem(path: string, operations: unknown): string | undefined {
    if (!Array.isArray(operations)) return undefined;
    for (const [index, operation] of operations.entries()) {
      if (!isObject(operation)) continue;
      for (const key of ["path", "from"] as const) {
        const pointer = operation[key];
        if (typeof pointer !== "string") continue;
        const relative = pointerAsPath(pointer);
        const target = `${path.replace(/\/+$/, "")}${relative.startsWith("/") ? "" : "/"}${relative}`;
        const problem = this.pathProblem(target, `operation ${index} ${key} (joined with dst_path ${JSON.stringify(path)})`);
        if (problem !== undefined) return problem;
        if (key === "path") {
          const atRoot = this.rootDocumentProblem(target, operation.value);
          if (atRoot !== undefined) return `operation ${index}: ${atRoot}`;
        }
      }
    }
    return undefined;
  }

  /** Everything that can be told about a write before (or after) its data is fetched. */
  writeProblem(write: { path: string; method: "PUT" | "PATCH" | "DELETE"; data?: unknown }): string | undefined {
    const problem = this.pathProblem(write.path);
    if (problem !== undefined || write.data === undefined) return problem;
    return write.method === "PATCH" ? this.patchProblem(write.path, write.data) : write.method === "PUT" ? this.rootDocumentProblem(write.path, write.data) : undefined;
  }
}
