/**
 * RFC 6902 JSON Patch validation. OPAL rejects a PATCH entry whose data is not an
 * operation list with 422; we name the offending operation and field.
 */
export type JsonPatchOperation = { op: "add" | "replace"; path: string; value: unknown } | { op: "remove"; path: string };

// OPA's PATCH applies only these three; RFC 6902's move, copy and test are refused there,
// so they are refused here, at publish time, instead of failing on every client.
const OPS = new Set(["add", "remove", "replace"]);

/** Returns the first problem found, or undefined when `value` is a valid patch. */
export function jsonPatchProblem(value: unknown): string | undefined {
  if (!Array.isArray(value)) return "must be a JSON Patch list (RFC 6902) of operations";
  for (const [index, operation] of value.entries()) {
    const problem = operationProblem(operation);
    if (problem !== undefined) return `operation ${index}: ${problem}`;
  }
  return undefined;
}

function operationProblem(operation: unknown): string | undefined {
  if (typeof operation !== "object" || operation === null || Array.isArray(operation)) {
    return "must be an object like {\"op\": \"add\", \"path\": \"/x\", \"value\": 1}";
  }
  const record = operation as Record<string, unknown>;
  if (typeof record.op !== "string" || !OPS.has(record.op)) {
    return `op must be one of ${[...OPS].join(", ")} (what OPA applies), got ${JSON.stringify(record.op)}`;
  }
  const pathProblem = pointerProblem(record.path);
  if (pathProblem !== undefined) return `path ${pathProblem}`;
  if ((record.op === "add" || record.op === "replace") && !("value" in record)) {
    return `"${record.op}" requires a value`;
  }
  return undefined;
}

function pointerProblem(pointer: unknown): string | undefined {
  if (typeof pointer !== "string") return "must be a string JSON Pointer";
  if (pointer !== "" && !pointer.startsWith("/")) return `must be "" or start with "/", got ${JSON.stringify(pointer)}`;
  return undefined;
}
