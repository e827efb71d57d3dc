/**
 * A role is one service as a process runs it: its Connect services, its REST routes, its
 * health, and its lifecycle. A process (all-in-one, or one service alone) is a list of
 * roles behind one HTTP listener, each a Component under the process's Supervisor.
 */
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import type { ComponentHealth } from "../../../gen/opal/mesh/v1/health_pb.js";
import type { UpgradeHandler } from "../../common/http/listener.js";
import type { RestRoute } from "../../common/http/rest-router.js";
import { type Closed, type Component, component } from "../../common/lifecycle.js";

export interface Role {
  readonly name: string;
  /** Registers the role's Connect services on the process's public listener. */
  register(router: ConnectRouter): void;
  /** Interceptors for the role's Connect services (each acts only on its own), inside authentication. */
  readonly interceptors?: readonly Interceptor[];
  readonly routes: RestRoute[];
  /** Websocket endpoints on the public listener, by path (OPAL's pub/sub at /ws). */
  readonly upgrades?: ReadonlyMap<string, UpgradeHandler>;
  health(): Promise<ComponentHealth[]>;
  start(signal: AbortSignal): Promise<void>;
  stop(): Promise<void>;
  /** Settles when the role has ended (see Component); a role without it ends only when stopped. */
  readonly closed?: Promise<Closed>;
  /** Facts for the start-up log line. */
  describe(): Record<string, unknown>;
}

/**
 * The role as the Supervisor runs it: `stop` once, and `closed` that also says when one of
 * the role's own parts failed (the Supervisor then takes the process down).
 */
export function roleComponent(role: Role): Component {
  const part = component(role.name, { start: (signal) => role.start(signal), stop: () => role.stop() });
  void role.closed?.then((closed) => {
    if (closed.reason === "failed") part.fail(closed.error);
  });
  return part;
}
