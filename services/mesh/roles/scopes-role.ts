/**
 * The scope records as a process holds them: loaded before the roles that use them start
 * (so a restart serves every scope at once), shown in health. Where the admin API is
 * served (the embedded server, the policy-watcher), its routes come with it.
 */
import { create } from "@bufbuild/protobuf";
import { ComponentHealthSchema, HealthState } from "../../../gen/opal/mesh/v1/health_pb.js";
import type { RestRoute } from "../../common/http/rest-router.js";
import type { ScopeStore } from "../../common/scopes/scope-store.js";
import type { Role } from "./role.js";

export class ScopesRole implements Role {
  readonly name = "scopes";
  private loaded = false;

  constructor(
    readonly store: ScopeStore,
    readonly routes: RestRoute[] = [],
  ) {}

  register(): void {}

  health() {
    const message = this.loaded ? `${this.store.list().length} scope(s) in ${this.store.description}` : `loading scopes from ${this.store.description}`;
    return Promise.resolve([create(ComponentHealthSchema, { component: "scopes", state: this.loaded ? HealthState.OK : HealthState.NOT_READY, message })]);
  }

  async start(signal: AbortSignal): Promise<void> {
    await this.store.start(signal);
    this.loaded = true;
  }

  stop(): Promise<void> {
    return this.store.stop();
  }

  get closed() {
    return this.store.closed;
  }

  describe() {
    return { scopes: this.store.list().length };
  }
}
