export { createPolicyService } from "./service.js";
export { PolicyWatcher, type PolicyChange, type PolicyWatcherOptions } from "./watcher.js";
export { GitSource, type GitSourceOptions } from "./git-source.js";
export { BundleBuilder, DEFAULT_FILTERS, type BundleFilters } from "./bundle/bundle-builder.js";
export type { PolicySource, PolicyTree, TreeChanges } from "./types.js";
