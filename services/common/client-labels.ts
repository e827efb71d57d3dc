/**
 * Client labels (OPAL_MESH_CLIENT_LABELS, Hello.labels): what staged rollout picks
 * canaries by. Kubernetes label syntax, so the selectors people already write carry over;
 * checked on both ends: by the client's config at start-up and by the distributor on
 * every Hello (a client is not trusted to have checked).
 */

export const MAX_LABELS = 64;
const MAX_NAME = 63;
const MAX_PREFIX = 253;
const NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
// A DNS subdomain (RFC 1123), as Kubernetes allows before the "/".
const PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export type ClientLabels = Readonly<Record<string, string>>;

/** What is wrong with a label key (`[prefix/]name`), or undefined. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf("/");
  const prefix = slash < 0 ? undefined : key.slice(0, slash);
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (prefix !== undefined) {
    if (prefix.length === 0 || prefix.length > MAX_PREFIX || !PREFIX.test(prefix)) return `key ${JSON.stringify(key)}: the prefix before "/" must be a lowercase DNS subdomain of at most ${MAX_PREFIX} characters`;
  }
  if (name.length === 0) return `key ${JSON.stringify(key)}: the name is empty`;
  if (name.length > MAX_NAME) return `key ${JSON.stringify(key)}: the name is ${name.length} characters, at most ${MAX_NAME}`;
  if (!NAME.test(name)) return `key ${JSON.stringify(key)}: the name must be letters, digits, "-", "_" or ".", beginning and ending with a letter or digit`;
  return undefined;
}

/** What is wrong with a label value (empty is allowed), or undefined. */
export function labelValueProblem(key: string, value: string): string | undefined {
  if (value === "") return undefined;
  if (value.length > MAX_NAME) return `label ${JSON.stringify(key)}: the value is ${value.length} characters, at most ${MAX_NAME}`;
  if (!NAME.test(value)) return `label ${JSON.stringify(key)}: the value ${JSON.stringify(value)} must be letters, digits, "-", "_" or ".", beginning and ending with a letter or digit`;
  return undefined;
}

/** The first problem of a whole label set (count, then each key and value), or undefined. */
export function labelsProblem(labels: ClientLabels): string | undefined {
  const entries = Object.entries(labels);
  if (entries.length > MAX_LABELS) return `${entries.length} labels, at most ${MAX_LABELS}`;
  for (const [key, value] of entries) {
    const problem = labelKeyProblem(key) ?? labelValueProblem(key, value);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

/** `key=value` pairs sorted by key: how labels are shown and logged. */
export function formatLabels(labels: ClientLabels): string {
  return Object.keys(labels)
    .sort()
    .map((key) => `${key}=${labels[key]}`)
    .join(",");
}
