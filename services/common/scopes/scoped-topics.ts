/**
 * Scopes are namespaces on the log, named as in OPAL: a scope's data topic `t` is
 * `{scope}:data:{t}` and its policy topic `policy:{dir}` is `{scope}:policy:{dir}`; a
 * scope's own notices go to `{scope}:scope`. The distributor maps a scoped client's
 * topics into its scope and strips the prefix again on the way out, so clients see plain
 * topics and an unscoped client can never name another scope's topics.
 */
export const DEFAULT_SCOPE = "default";

const SCOPE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const SCOPED = /^([A-Za-z0-9][A-Za-z0-9_.-]{0,127}):(data|policy|scope)(?::|$)/;

export function isDefaultScope(scope: string): boolean {
  return scope === "" || scope === DEFAULT_SCOPE;
}

/** Why a scope id is unusable, or undefined when it is fine. */
export function scopeIdProblem(id: string): string | undefined {
  if (!SCOPE_ID.test(id)) return "must be 1-128 letters, digits, '_', '.' or '-', starting with a letter or digit";
  if (id === "policy") return `"policy" would be read as a policy topic`;
  return undefined;
}

/** A client's topic inside its scope; the default scope leaves topics alone. */
export function scopeTopic(scope: string, topic: string): string {
  if (isDefaultScope(scope)) return topic;
  return topic.startsWith("policy:") ? `${scope}:${topic}` : `${scope}:data:${topic}`;
}

/** The topic every client of a scope receives its scope's notices on. */
export function scopeNoticeTopic(scope: string): string {
  return `${scope}:scope`;
}

/** The scope a log topic belongs to ("default" for plain topics). */
export function scopeOfTopic(topic: string): string {
  // Plain topics (the common case, asked per event and session) have no colon: no regex.
  if (!topic.includes(":") || topic.startsWith("policy:")) return DEFAULT_SCOPE;
  const match = SCOPED.exec(topic);
  return match === null ? DEFAULT_SCOPE : (match[1] as string);
}

/** True for a topic that names a scope: clients ask for a scope with Hello.scope instead. */
export function isScopedTopic(topic: string): boolean {
  return scopeOfTopic(topic) !== DEFAULT_SCOPE;
}

/** A log topic as the scope's clients know it: `a:data:t` → `t`, `a:policy:.` → `policy:.`, `a:scope` → `scope`. */
export function unscopeTopic(topic: string): string {
  const scope = scopeOfTopic(topic);
  if (scope === DEFAULT_SCOPE) return topic;
  const rest = topic.slice(scope.length + 1);
  if (rest.startsWith("data:")) return rest.slice("data:".length);
  return rest;
}
