/**
 * A scope's data sources, for GetDataSourcesConfig and GET /scopes/{id}/data. Unlike OPAL
 * there is no fall-back to the server's own sources: an unknown scope is "not found", so a
 * tenant's client never loads data meant for the default scope by mistake; it keeps
 * asking, and loads the scope's sources once the scope is created (ScopeChanged).
 */
import { create } from "@bufbuild/protobuf";
import { type DataSourcesConfig, DataSourcesConfigSchema } from "../../gen/opal/mesh/v1/data_pb.js";
import type { ScopeStore } from "../common/scopes/scope-store.js";

export class ScopeLookupError extends Error {
  override readonly name = "ScopeLookupError";
  constructor(
    readonly kind: "disabled" | "not_found",
    message: string,
  ) {
    super(message);
  }
}

export function scopeDataSources(scopes: ScopeStore | undefined, scope: string): DataSourcesConfig {
  if (scopes === undefined) throw new ScopeLookupError("disabled", `scope ${JSON.stringify(scope)} asked for, but this server does not serve scopes (OPAL_SCOPES=false)`);
  const record = scopes.get(scope);
  if (record === undefined) throw new ScopeLookupError("not_found", `scope ${JSON.stringify(scope)} is not defined (create it with PUT /scopes)`);
  return record.data ?? create(DataSourcesConfigSchema, { entries: [] });
}
