export { ChangeFeed, type ChangeFeedOptions } from "./change-feed.js";
export { dashboardRoutes, type DashboardRoutesOptions } from "./routes.js";
export { dashboardState, type DashboardState } from "./state.js";
