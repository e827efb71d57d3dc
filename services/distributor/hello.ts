/** What a client's Hello asks for: checked before any credentials are, and turned into its subscription. */
import type { Hello } from "../../gen/opal/mesh/v1/distributor_pb.js";
import { labelsProblem } from "../common/client-labels.js";
import { DEFAULT_SCOPE, isDefaultScope, isScopedTopic, scopeIdProblem, scopeNoticeTopic, scopeTopic } from "../common/scopes/scoped-topics.js";

/** What makes a Hello unusable; `scopes` is OPAL_SCOPES (whether a scope other than the default may be joined). */
export function helloProblem(hello: Hello, scopes: boolean): string | undefined {
  const labels = labelsProblem(hello.labels);
  if (labels !== undefined) return `Hello.labels: ${labels}`;
  return scopeProblem(hello, scopes);
}

function scopeProblem(hello: Hello, scopes: boolean): string | undefined {
  if (isDefaultScope(hello.scope)) {
    const scoped = hello.topics.filter(isScopedTopic);
    if (scoped.length > 0) return `topic(s) ${scoped.join(", ")} belong to a scope: join the scope with Hello.scope (OPAL_SCOPE_ID) and plain topics`;
    return undefined;
  }
  if (!scopes) return `scope ${JSON.stringify(hello.scope)} asked for, but this server does not serve scopes (OPAL_SCOPES=false)`;
  const problem = scopeIdProblem(hello.scope);
  if (problem !== undefined) return `scope ${JSON.stringify(hello.scope)}: ${problem}`;
  const scoped = hello.topics.filter(isScopedTopic);
  if (scoped.length > 0) return `topic(s) ${scoped.join(", ")} name a scope: a scoped client names plain topics`;
  return undefined;
}

/** The client's scope, and its topics inside it (OPAL's `{scope}:data:{t}`, plus the scope's notices). */
export function subscriptionOf(hello: Hello): { scope: string; topics: string[] } {
  const scope = isDefaultScope(hello.scope) ? DEFAULT_SCOPE : hello.scope;
  const plain = hello.topics.filter((topic) => topic !== "");
  const topics = scope === DEFAULT_SCOPE ? plain : [...plain.map((topic) => scopeTopic(scope, topic)), scopeNoticeTopic(scope)];
  return { scope, topics };
}
