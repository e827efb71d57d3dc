/**
 * Where scopes (tenants) live. Every process that needs them holds a ScopeStore: the
 * embedded server a JSON file, processes sharing a Kafka log a compacted topic they all
 * read, so each replica sees every change and a restart finds them all.
 */
import type { Scope } from "../../../gen/opal/mesh/v1/scope_pb.js";
import type { Component } from "../lifecycle.js";

export type ScopeListener = (id: string, scope: Scope | undefined, previous: Scope | undefined) => void;

export interface ScopeStore extends Component {
  /** For logs and health: "file <path>" or "kafka topic <name>"; never holds secrets. */
  readonly description: string;
  /** Resolves once every scope persisted before the call is loaded. */
  start(signal: AbortSignal): Promise<void>;
  list(): Scope[];
  get(id: string): Scope | undefined;
  /** Persists a scope, resolving once this process sees it; returns the record it replaced. */
  put(scope: Scope): Promise<Scope | undefined>;
  /** Deletes a scope, resolving once this process sees it; returns what was deleted. */
  delete(id: string): Promise<Scope | undefined>;
  /** Told of every change, this process's own and other replicas' alike. */
  onChange(listener: ScopeListener): void;
}
