/**
 * Who may call what, for every Connect/gRPC method opal-mesh serves. Peer types are
 * OPAL's (client, datasource, listener) plus `service`: the tokens opal-mesh's own
 * processes show each other in the distributed deployment.
 */
import type { MethodRules } from "../common/auth/connect-auth.js";

export const METHOD_RULES: MethodRules = {
  "opal.mesh.v1.TriggerService/PublishDataUpdate": ["datasource", "service"],
  "opal.mesh.v1.TriggerService/GetUpdateStatus": ["datasource", "service"],
  "opal.mesh.v1.TriggerService/WaitForUpdate": ["datasource", "service"],
  "opal.mesh.v1.TriggerService/PublishStream": ["datasource", "service"],
  "opal.mesh.v1.DistributorService/DiscoverStream": ["client", "service"],
  "opal.mesh.v1.DistributorService/GetDataSourcesConfig": ["client", "service"],
  "opal.mesh.v1.DistributorService/ListClients": ["datasource", "service"],
  "opal.mesh.v1.DistributorService/GetDistributorStatus": ["datasource", "service"],
  "opal.mesh.v1.DistributorService/GetDeliveryStatus": ["datasource", "service"],
  "opal.mesh.v1.PolicyService/GetBundle": ["client", "service"],
  "opal.mesh.v1.PolicyService/Refresh": ["datasource", "service"],
  "opal.mesh.v1.PolicyService/GetSourceStatus": ["datasource", "service"],
  "opal.mesh.v1.BroadcasterService/Publish": ["service"],
  "opal.mesh.v1.BroadcasterService/Subscribe": ["service"],
  "opal.mesh.v1.BroadcasterService/Head": ["service"],
  "opal.mesh.v1.BroadcasterService/ReadSnapshot": ["service"],
};
