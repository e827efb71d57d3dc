/**
 * OPAL's client-facing scope routes: GET /scopes/{id}/policy (the scope's bundle, OPAL's
 * PolicyBundle JSON) and GET /scopes/{id}/data (its data sources), and GET /policy (the
 * default scope's bundle). Any peer whose token lists the scope in allowed_scopes may read
 * them, as in OPAL.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { GetBundleRequestSchema, type PolicyBundle, PolicyBundleSchema } from "../../gen/opal/mesh/v1/policy_pb.js";
import type { Principal } from "../common/auth/tokens.js";
import { dataSourcesConfigToJson } from "../common/data-entries.js";
import { HttpError, type HttpResponse, sendJson } from "../common/http/json-io.js";
import type { RestRoute } from "../common/http/rest-router.js";
import type { ScopeStore } from "../common/scopes/scope-store.js";
import { isDefaultScope, isScopedTopic, scopeTopic } from "../common/scopes/scoped-topics.js";
import { scopeDataSources, ScopeLookupError } from "./scope-data.js";
import type { BundleCache } from "./bundle-cache.js";

export interface ScopeRestOptions {
  scopes: ScopeStore | undefined;
  bundles: BundleCache;
  authorizeScope: (principal: Principal | undefined, scope: string) => Promise<void>;
}

const READERS = ["client", "datasource", "listener", "service"] as const;
const decoder = new TextDecoder();
const HTTP_STATUS: Partial<Record<Code, number>> = { [Code.NotFound]: 404, [Code.Unavailable]: 503, [Code.FailedPrecondition]: 409, [Code.PermissionDenied]: 403, [Code.DeadlineExceeded]: 504 };

export function bundleToJson(bundle: PolicyBundle): Record<string, unknown> {
  return {
    manifest: bundle.manifest,
    hash: bundle.hash,
    old_hash: bundle.oldHash === "" ? null : bundle.oldHash,
    data_modules: bundle.dataModules.map((module) => ({ path: module.path, data: decoder.decode(module.dataJson) })),
    policy_modules: bundle.policyModules.map((module) => ({ path: module.path, package_name: module.packageName, rego: module.rego })),
    deleted_files: bundle.deletedFiles === undefined ? null : { policy_modules: bundle.deletedFiles.policyModules, data_modules: bundle.deletedFiles.dataModules },
  };
}

/**
 * A scope's entries with their topics as the scope's clients subscribe to them
 * (`{scope}:data:{topic}`). OPAL serves them as stored, and its scoped client then skips
 * every entry (it keeps only entries whose topics match its own, scoped ones), so a scope's
 * data sources never load; opal-mesh's own client reads them over gRPC with plain topics.
 */
function scopedTopicsJson(config: Record<string, unknown>, scope: string): Record<string, unknown> {
  if (isDefaultScope(scope)) return config;
  const entries = (config.entries as Array<Record<string, unknown>>).map((entry) => ({ ...entry, topics: (entry.topics as string[]).map((topic) => (isScopedTopic(topic) ? topic : scopeTopic(scope, topic))) }));
  return { ...config, entries };
}

export function scopeClientRoutes(options: ScopeRestOptions): RestRoute[] {
  const lookup = (id: string): void => {
    try {
      scopeDataSources(options.scopes, id);
    } catch (error) {
      if (error instanceof ScopeLookupError) throw new HttpError(error.kind === "disabled" ? 409 : 404, error.message);
      throw error;
    }
  };
  return [
    {
      method: "GET",
      path: "/scopes/{id}/data",
      auth: READERS,
      async handle(_request, response, context) {
        const id = context.params.id ?? "";
        await options.authorizeScope(context.principal, id);
        lookup(id);
        sendJson(response, 200, scopedTopicsJson(dataSourcesConfigToJson(scopeDataSources(options.scopes, id)), id));
      },
    },
    {
      method: "GET",
      path: "/scopes/{id}/policy",
      auth: READERS,
      async handle(_request, response, context) {
        const id = context.params.id ?? "";
        await options.authorizeScope(context.principal, id);
        lookup(id);
        await sendBundle(options.bundles, id, response, context.url);
      },
    },
    {
      // OPAL's own policy route, which an OPAL client of the default scope fetches on every
      // connect and policy notification (full, or a diff from base_hash).
      method: "GET",
      path: "/policy",
      auth: READERS,
      async handle(_request, response, context) {
        await options.authorizeScope(context.principal, "default");
        await sendBundle(options.bundles, "", response, context.url);
      },
    },
  ];
}

async function sendBundle(bundles: BundleCache, scope: string, response: HttpResponse, url: URL): Promise<void> {
  const controller = new AbortController();
  response.once("close", () => controller.abort());
  const query = url.searchParams;
  const answer = await bundles.get(create(GetBundleRequestSchema, { scope, baseHash: query.get("base_hash") ?? "", paths: query.getAll("path") }), controller.signal).catch((error: unknown) => {
    const connect = ConnectError.from(error);
    throw new HttpError(HTTP_STATUS[connect.code] ?? 502, connect.rawMessage);
  });
  sendJson(response, 200, bundleToJson(answer.bundle ?? create(PolicyBundleSchema)));
}
