/** OPAL_MESH_WRITABLE_SYSTEM_PATHS: the parts of OPA's data.system publishers may write (none by default). */
import { ReservedPaths } from "../reserved-paths.js";
import type { EnvReader } from "./env-reader.js";

/** Comma-separated path prefixes such as "/system/authz"; /system itself and the client's own documents are refused. */
export function readWritableSystemPaths(env: EnvReader): string[] {
  const prefixes = env.list("OPAL_MESH_WRITABLE_SYSTEM_PATHS", []).map((prefix) => prefix.replace(/\/+$/, ""));
  for (const prefix of prefixes) {
    const problem = ReservedPaths.problem(prefix);
    if (problem !== undefined) env.problem("OPAL_MESH_WRITABLE_SYSTEM_PATHS", problem);
  }
  return prefixes;
}
