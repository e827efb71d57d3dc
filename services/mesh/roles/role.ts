/**
 * A role is one service as a process runs it: its Connect services, its REST routes, its
 * health, and its lifecycle. A process (all-in-one, or one service alone) is a list of
 * roles behind one HTTP listener.
 */
import type { ConnectRouter } from "@connectrpc/connect";
import type { ComponentHealth } from "../../../gen/opal/mesh/v1/health_pb.js";
import type { RestRoute } from "../../common/http/rest-router.js";

export interface Role {
  readonly name: string;
  /** Registers the role's Connect services on the process's public listener. */
  register(router: ConnectRouter): void;
  readonly routes: RestRoute[];
  health(): Promise<ComponentHealth[]>;
  start(signal: AbortSignal): Promise<void>;
  stop(): Promise<void>;
  /** Facts for the start-up log line. */
  describe(): Record<string, unknown>;
}
