/** The benchmark scenarios, in the order `npm run bench` runs them and RESULTS.md lists them. */
export const SCENARIO_NAMES = ["latency", "budget", "fanout", "throughput", "reconnect-storm", "large-data", "policy", "snapshot"] as const;
