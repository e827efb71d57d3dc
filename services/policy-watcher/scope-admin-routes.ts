/**
 * OPAL's scopes API for administrators (datasource tokens): PUT/GET/DELETE /scopes and
 * refresh. A scope whose data sources change, or that is deleted, is announced on the log
 * (ScopeChanged) so its connected clients reload at once (OPAL #779).
 */
import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import type { BroadcasterService } from "../../gen/opal/mesh/v1/broadcaster_pb.js";
import { EventSchema } from "../../gen/opal/mesh/v1/event_pb.js";
import type { Scope } from "../../gen/opal/mesh/v1/scope_pb.js";
import type { Principal } from "../common/auth/tokens.js";
import type { Limits } from "../common/config/limits-config.js";
import { HttpError, readJson, sendEmpty, sendJson } from "../common/http/json-io.js";
import type { RestRoute } from "../common/http/rest-router.js";
import type { Logger } from "../common/logger.js";
import { parseScope, sameDataConfig, scopeToJson } from "../common/scopes/scope-json.js";
import type { ScopeStore } from "../common/scopes/scope-store.js";
import { DEFAULT_SCOPE, scopeIdProblem, scopeNoticeTopic } from "../common/scopes/scoped-topics.js";
import type { UrlAllowlist } from "../common/url-allowlist.js";
import { ValidationError, validationDetail } from "../common/validation-error.js";

export interface ScopeRoutesOptions {
  store: ScopeStore;
  broadcaster: Client<typeof BroadcasterService>;
  /** Asks the policy-watcher (the elected publisher) to look at a scope's repository now. */
  refresh: (request: { scope?: string; allScopes?: boolean }) => Promise<void>;
  authorizeScope: (principal: Principal | undefined, scope: string) => Promise<void>;
  allowlist: UrlAllowlist;
  limits: Limits;
  logger: Logger;
}

const ADMIN = ["datasource", "service"] as const;

export function scopeAdminRoutes(options: ScopeRoutesOptions): RestRoute[] {
  const { store, logger } = options;
  const existing = (id: string): Scope => {
    const scope = store.get(id);
    if (scope === undefined) throw new HttpError(404, `no such scope: ${id}`);
    return scope;
  };
  const announce = async (id: string, deleted: boolean): Promise<void> => {
    await options.broadcaster.publish({ events: [create(EventSchema, { topics: [scopeNoticeTopic(id)], payload: { case: "scopeChanged", value: { scopeId: id, deleted } } })] });
  };
  return [
    {
      method: "PUT",
      path: "/scopes",
      auth: ADMIN,
      async handle(request, response, context) {
        const scope = parse(await readJson(request, options.limits.maxBodyBytes, options.limits.maxJsonDepth), options.allowlist);
        await options.authorizeScope(context.principal, scope.scopeId);
        const previous = await store.put(scope);
        logger.info({ scope: scope.scopeId, created: previous === undefined }, "scope stored");
        if (previous === undefined || !sameDataConfig(previous, scope)) await announce(scope.scopeId, false);
        if (context.url.searchParams.get("force_fetch") === "true") {
          await options.refresh({ scope: scope.scopeId }).catch((error: unknown) => logger.warn({ scope: scope.scopeId, err: (error as Error).message }, "force_fetch: the refresh failed"));
        }
        sendEmpty(response, 201);
      },
    },
    {
      method: "GET",
      path: "/scopes",
      auth: ADMIN,
      handle(_request, response, context) {
        // A token limited to some scopes sees only those.
        const allowed = context.principal?.allowedScopes;
        const scopes = store.list().filter((scope) => allowed === undefined || allowed.includes(scope.scopeId));
        sendJson(response, 200, scopes.map((scope) => scopeToJson(scope, { includeSecrets: false })));
      },
    },
    {
      method: "GET",
      path: "/scopes/{id}",
      auth: ADMIN,
      async handle(_request, response, context) {
        const id = context.params.id ?? "";
        await options.authorizeScope(context.principal, id);
        sendJson(response, 200, scopeToJson(existing(id), { includeSecrets: false }));
      },
    },
    {
      method: "DELETE",
      path: "/scopes/{id}",
      auth: ADMIN,
      async handle(_request, response, context) {
        const id = context.params.id ?? "";
        await options.authorizeScope(context.principal, id);
        existing(id);
        await store.delete(id);
        logger.info({ scope: id }, "scope deleted");
        await announce(id, true);
        sendEmpty(response, 204);
      },
    },
    {
      method: "POST",
      path: "/scopes/refresh",
      auth: ADMIN,
      async handle(_request, response) {
        await options.refresh({ allScopes: true });
        sendJson(response, 200, { status: "ok" });
      },
    },
    {
      method: "POST",
      path: "/scopes/{id}/refresh",
      auth: ADMIN,
      async handle(_request, response, context) {
        const id = context.params.id ?? "";
        await options.authorizeScope(context.principal, id);
        existing(id);
        await options.refresh({ scope: id });
        sendJson(response, 200, { status: "ok" });
      },
    },
  ];
}

function parse(body: unknown, allowlist: UrlAllowlist): Scope {
  let scope: Scope;
  try {
    scope = parseScope(body);
    if (scope.scopeId === DEFAULT_SCOPE) {
      throw new ValidationError("scope_id", `"default" is the server's own configuration (OPAL_POLICY_REPO_URL, OPAL_DATA_CONFIG_SOURCES); it cannot be set through the API`);
    }
    const problem = scopeIdProblem(scope.scopeId);
    if (problem !== undefined) throw new ValidationError("scope_id", problem);
    const auth = scope.policy?.auth?.kind;
    if (auth?.case === "ssh" && !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(auth.value.privateKey)) {
      throw new ValidationError("policy.auth.private_key", "is not a PEM or OpenSSH private key");
    }
    scope.data?.entries.forEach((entry, index) => {
      if (entry.url !== "" && entry.dataJson === undefined && !allowlist.allows(entry.url)) throw new ValidationError(`data.config.entries[${index}].url`, "is not allowed by OPAL_FETCH_URL_ALLOWLIST");
    });
    if (scope.data !== undefined && scope.data.externalSourceUrl !== "" && !allowlist.allows(scope.data.externalSourceUrl)) {
      throw new ValidationError("data.external_source_url", "is not allowed by OPAL_FETCH_URL_ALLOWLIST");
    }
  } catch (error) {
    if (error instanceof ValidationError) throw new HttpError(422, error.message, validationDetail(error));
    throw error;
  }
  return scope;
}
