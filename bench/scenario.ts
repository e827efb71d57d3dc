/**
 * The contract between `npm run bench` and its scenarios. A scenario starts the system
 * under test in processes of its own (never in the load generator's), measures repeated
 * runs, and returns medians and p99s — never single numbers — each next to its target
 * when the issue states one. With `smoke`, it runs tiny sizes for `npm test`: the same
 * code paths, checked for correctness, with no timing asserted.
 */
export interface Target {
  /** The comparison that must hold for the target to be met. */
  op: "<" | "<=" | ">=" | ">";
  value: number;
  /** Which statistic the issue bounds; by default p99 for "less than" targets, the median for "at least" ones. */
  on?: "median" | "p99";
}

export function judgedOn(target: Target): "median" | "p99" {
  return target.on ?? (target.op === "<" || target.op === "<=" ? "p99" : "median");
}

export interface Metric {
  /** What was measured, e.g. "trigger → applied, 10 clients, inline data, embedded". */
  name: string;
  unit: string;
  median: number;
  p99: number;
  /** How many samples the median and p99 are of. */
  n: number;
  target?: Target;
}

export interface ScenarioResult {
  scenario: string;
  description: string;
  metrics: Metric[];
  /** What was found and done where a target was missed; anything a reader must know. */
  notes: string[];
}

export interface ScenarioOptions {
  smoke: boolean;
  /** Progress lines for the person running it (stderr). */
  log: (message: string) => void;
}

export interface Scenario {
  name: string;
  /** One line for `npm run bench -- --list` and RESULTS.md. */
  about: string;
  run(options: ScenarioOptions): Promise<ScenarioResult>;
}

export function met(metric: Metric): boolean | undefined {
  const target = metric.target;
  if (target === undefined) return undefined;
  const value = judgedOn(target) === "p99" ? metric.p99 : metric.median;
  switch (target.op) {
    case "<":
      return value < target.value;
    case "<=":
      return value <= target.value;
    case ">=":
      return value >= target.value;
    default:
      return value > target.value;
  }
}
