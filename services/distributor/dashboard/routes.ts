/**
 * The dashboard's routes: the page (open: it holds no data), the state as JSON and the
 * change feed (both for datasource and service tokens, like OPAL's other operator routes;
 * open in dev mode).
 */
import { createHash } from "node:crypto";
import type { ServerResponse } from "node:http";
import type { PolicyRollout } from "../../../gen/opal/mesh/v1/event_pb.js";
import type { Principal } from "../../common/auth/tokens.js";
import { DEFAULT_SCOPE } from "../../common/scopes/scoped-topics.js";
import type { Snapshot } from "../../common/snapshot/types.js";
import { AuthError } from "../../common/auth/tokens.js";
import { type HttpResponse, sendJson } from "../../common/http/json-io.js";
import type { RestRoute } from "../../common/http/rest-router.js";
import type { DeliveryTracker } from "../delivery-tracker.js";
import type { Fanout } from "../fanout.js";
import type { ChangeFeed } from "./change-feed.js";
import { DASHBOARD_PAGE, DASHBOARD_SCRIPT, DASHBOARD_STYLE } from "./page.js";
import { dashboardState } from "./state.js";

export interface DashboardRoutesOptions {
  fanout: Pick<Fanout, "listSessions" | "head" | "logId"> & Partial<Pick<Fanout, "snapshot" | "snapshotProblem">>;
  delivery: DeliveryTracker;
  feed: ChangeFeed;
  startedAt: number;
  /** OPAL_MESH_TRACE_UI_URL. */
  traceUiUrl: string | undefined;
  /** Throws AuthError when the caller may not see a scope (a tenant's token sees its own). */
  authorizeScope: (principal: Principal | undefined, scope: string) => Promise<void>;
  maxUpdates?: number;
  maxClients?: number;
}

const OPERATORS = ["datasource", "service"] as const;

function cspHash(source: string): string {
  return `'sha256-${createHash("sha256").update(source).digest("base64")}'`;
}

// Only the page's own inline script and style run; it talks to this origin only; no
// Referer (which could carry ?token=) goes to a trace viewer.
const PAGE_HEADERS = {
  "content-type": "text/html; charset=utf-8",
  "cache-control": "no-store",
  "content-security-policy": `default-src 'none'; script-src ${cspHash(DASHBOARD_SCRIPT)}; style-src ${cspHash(DASHBOARD_STYLE)}; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
  "referrer-policy": "no-referrer",
  "x-content-type-options": "nosniff",
};

async function visibleScopes(options: DashboardRoutesOptions, principal: Principal | undefined, scopes: Iterable<string>): Promise<Set<string>> {
  const visible = new Set<string>();
  for (const scope of new Set(scopes)) {
    try {
      await options.authorizeScope(principal, scope);
      visible.add(scope);
    } catch (error) {
      // Not allowed to see this scope: it is left out of what this viewer gets.
      if (!(error instanceof AuthError)) throw error;
    }
  }
  return visible;
}

export function dashboardRoutes(options: DashboardRoutesOptions): RestRoute[] {
  const maxUpdates = options.maxUpdates ?? 50;
  return [
    {
      method: "GET",
      path: "/dashboard",
      auth: "open",
      handle(_request, response: HttpResponse) {
        const target = response as ServerResponse;
        target.writeHead(200, { ...PAGE_HEADERS, "content-length": Buffer.byteLength(DASHBOARD_PAGE) });
        target.end(DASHBOARD_PAGE);
      },
    },
    {
      method: "GET",
      path: "/dashboard/api/state",
      auth: OPERATORS,
      async handle(_request, response, context) {
        const sessions = options.fanout.listSessions();
        const updates = options.delivery.recent(maxUpdates);
        const visible = await visibleScopes(options, context.principal, [...sessions.map((session) => session.scope), ...updates.flatMap((update) => update.scopes)]);
        const state = dashboardState({
          headPosition: options.fanout.head,
          logId: options.fanout.logId,
          ...(options.fanout.snapshot === undefined ? {} : { snapshot: { ...options.fanout.snapshot.stats, incomplete: options.fanout.snapshotProblem } }),
          startedAt: options.startedAt,
          now: Date.now(),
          sessions,
          updates,
          traceUiUrl: options.traceUiUrl,
          canSee: (scope) => visible.has(scope),
          maxClients: options.maxClients ?? 1_000,
          maxClientsPerUpdate: 100,
          rollout: rolloutOf(options.fanout.snapshot),
        });
        sendJson(response, 200, state, { "cache-control": "no-store" });
      },
    },
    {
      method: "GET",
      path: "/dashboard/api/events",
      // The page reads this with fetch() and an Authorization header rather than with
      // EventSource, which cannot send headers: a token in the URL would end up in access
      // logs, proxies and the browser's history.
      auth: OPERATORS,
      handle(request, response) {
        options.feed.open(request, response);
      },
    },
  ];
}

/** The default scope's canary stage, when one is under way: every client's policy column says who holds which. */
function rolloutOf(snapshot: Snapshot | undefined): { candidate: string; rollout: PolicyRollout } | undefined {
  const policy = snapshot?.policyOf(DEFAULT_SCOPE);
  return policy?.rollout === undefined ? undefined : { candidate: policy.policyHash, rollout: policy.rollout };
}
