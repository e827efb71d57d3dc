/** OPAL's client-facing REST routes: GET /data/config and the default /policy-data source. */
import { dataSourcesConfigToJson } from "../common/data-entries.js";
import { sendJson, sendRedirect } from "../common/http/json-io.js";
import type { RestRoute } from "../common/http/rest-router.js";
import type { Principal } from "../common/auth/tokens.js";
import type { Logger } from "../common/logger.js";
import { type DataSourcesOptions, resolveDataSources } from "./data-sources.js";

export interface DistributorRestOptions {
  dataSources: DataSourcesOptions;
  dataConfigRoute: string;
  allDataRoute: string;
  logger: Logger;
  /** The default scope's sources are not for a token limited to other scopes. */
  authorizeScope: (principal: Principal | undefined, scope: string) => Promise<void>;
}

export function distributorRestRoutes(options: DistributorRestOptions): RestRoute[] {
  return [
    {
      method: "GET",
      auth: ["client", "service"],
      path: options.dataConfigRoute,
      async handle(request, response, context) {
        await options.authorizeScope(context.principal, "default");
        const config = resolveDataSources(options.dataSources);
        if (config.externalSourceUrl !== "") {
          // As OPAL: send the client to the external source with its own token, so that
          // service can return per-client entries.
          const target = new URL(config.externalSourceUrl);
          const authorization = request.headers.authorization;
          const token = typeof authorization === "string" ? authorization.replace(/^Bearer\s+/i, "") : "";
          if (token !== "") target.searchParams.set("token", token);
          sendRedirect(response, target.toString());
          return;
        }
        sendJson(response, 200, dataSourcesConfigToJson(config));
      },
    },
    {
      method: "GET",
      // OPAL's placeholder source: it serves {} to anyone.
      auth: "open",
      path: options.allDataRoute,
      handle(_request, response) {
        options.logger.warn("a client fetched the placeholder data source at %s: configure OPAL_DATA_CONFIG_SOURCES", options.allDataRoute);
        sendJson(response, 200, {});
      },
    },
  ];
}
