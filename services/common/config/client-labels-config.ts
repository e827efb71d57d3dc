/**
 * OPAL_MESH_CLIENT_LABELS: the client's labels as comma-separated `key=value` pairs
 * (`zone=eu,canary=true`), sent in every Hello. The syntax rules are shared with the
 * distributor, which checks them again (../client-labels.ts).
 */
import { labelKeyProblem, labelValueProblem, MAX_LABELS } from "../client-labels.js";
import type { EnvReader } from "./env-reader.js";

/** `zone=eu,canary=true` into labels; throws naming the bad pair. Blank entries (a trailing comma) are skipped. */
export function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let count = 0;
  for (const raw of text.split(",")) {
    const pair = raw.trim();
    if (pair === "") continue;
    const equals = pair.indexOf("=");
    if (equals < 0) throw new Error(`${JSON.stringify(pair)} is not key=value`);
    const key = pair.slice(0, equals).trim();
    const value = pair.slice(equals + 1).trim();
    const problem = labelKeyProblem(key) ?? labelValueProblem(key, value);
    if (problem !== undefined) throw new Error(`${JSON.stringify(pair)}: ${problem}`);
    if (Object.hasOwn(labels, key)) throw new Error(`${JSON.stringify(pair)}: key ${JSON.stringify(key)} is given twice`);
    labels[key] = value;
    count++;
  }
  if (count > MAX_LABELS) throw new Error(`${count} labels, at most ${MAX_LABELS}`);
  return labels;
}

/** The client's labels; none by default. A bad pair is a start-up problem naming the variable and the pair. */
export function readClientLabels(env: EnvReader): Record<string, string> {
  const text = env.optionalString("OPAL_MESH_CLIENT_LABELS");
  if (text === undefined) return {};
  try {
    return parseLabels(text);
  } catch (error) {
    env.problem("OPAL_MESH_CLIENT_LABELS", (error as Error).message);
    return {};
  }
}
