export { createDistributorService, type DistributorServiceOptions } from "./service.js";
export { distributorRestRoutes, type DistributorRestOptions } from "./rest.js";
export { Fanout } from "./fanout.js";
export { StreamServer, type StreamServerOptions } from "./stream-server.js";
export type { DataSourcesOptions } from "./data-sources.js";
export { BundleCache } from "./bundle-cache.js";
export { DeliveryTracker } from "./delivery-tracker.js";
export { ChangeFeed, dashboardRoutes } from "./dashboard/index.js";
