/**
 * The baseline clients load on (re)connect: OPAL_DATA_CONFIG_SOURCES, or OPAL's default
 * of one "all data" source.
 */
import { create } from "@bufbuild/protobuf";
import { type DataSourcesConfig, DataSourcesConfigSchema, SaveMethod } from "../../gen/opal/mesh/v1/data_pb.js";

export interface DataSourcesOptions {
  configured: DataSourcesConfig | undefined;
  /** OPAL_ALL_DATA_URL: with no configured sources, clients load this one URL at the root. */
  allDataUrl: string | undefined;
  allDataTopic: string;
}

export function resolveDataSources(options: DataSourcesOptions): DataSourcesConfig {
  if (options.configured !== undefined) return options.configured;
  // OPAL's default points at its own /policy-data route, which serves {} and so writes an
  // empty document over OPA's whole data tree. We load nothing instead (see README).
  if (options.allDataUrl === undefined) return create(DataSourcesConfigSchema, { entries: [] });
  return create(DataSourcesConfigSchema, {
    entries: [{ url: options.allDataUrl, topics: [options.allDataTopic], dstPath: "/", saveMethod: SaveMethod.PUT }],
  });
}
