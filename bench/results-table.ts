/** What a recorded benchmark run holds, and RESULTS.md made from the recorded runs. */
import { execFile } from "node:child_process";
import os from "node:os";
import { promisify } from "node:util";
import { opaBinary } from "../test/helpers/opa.js";
import { judgedOn, met, type Metric, type ScenarioResult } from "./scenario.js";

export interface Machine {
  cpuModel: string;
  cpus: number;
  memoryGiB: number;
  os: string;
  node: string;
  opa: string;
}

export interface RecordedResult extends ScenarioResult {
  date: string;
  durationS: number;
  smoke: boolean;
  machine: Machine;
}

export async function machine(): Promise<Machine> {
  const { stdout } = await promisify(execFile)(await opaBinary(), ["version"]);
  return {
    cpuModel: os.cpus()[0]?.model.trim() ?? "unknown",
    cpus: os.availableParallelism(),
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    opa: /^Version:\s*(\S+)/m.exec(stdout)?.[1] ?? "unknown",
  };
}

function number(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  return abs >= 100 ? Math.round(value).toLocaleString("en-US") : abs >= 10 ? value.toFixed(1) : value.toFixed(2);
}

function targetCell(metric: Metric): string {
  if (metric.target === undefined) return "";
  const verdict = met(metric) === true ? "✅ met" : "❌ missed";
  const judged = judgedOn(metric.target);
  return `${judged} ${metric.target.op} ${number(metric.target.value)} ${metric.unit}: ${verdict}`;
}

export function resultsMarkdown(results: readonly RecordedResult[]): string {
  const lines = [
    "# opal-mesh benchmark results",
    "",
    "Written by `npm run bench` (all scenarios) or `npm run bench -- <scenario>` (one; the others keep their last run).",
    "Every number is a median or p99 over repeated runs (n says how many samples); targets are the ones the issues state, judged on p99 for upper bounds and on the median for lower bounds unless the target names the median.",
    "Load generators run in their own processes, apart from the system under test.",
    "",
  ];
  const targeted = results.flatMap((result) => result.metrics.filter((metric) => metric.target !== undefined).map((metric) => ({ scenario: result.scenario, metric })));
  if (targeted.length > 0) {
    // Every target in one place, each with the scenario that measured it (its section below has the notes).
    lines.push("## Targets", "", "| scenario | measurement | median | p99 | target |", "|---|---|---:|---:|---|");
    for (const { scenario, metric } of targeted) lines.push(`| ${scenario} | ${metric.name} | ${number(metric.median)} | ${number(metric.p99)} | ${targetCell(metric)} |`);
    lines.push("");
  }
  for (const result of results) {
    const m = result.machine;
    lines.push(`## ${result.scenario}`, "", result.description, "");
    lines.push(`Run ${result.date.slice(0, 16).replace("T", " ")} UTC${result.smoke ? " (smoke sizes)" : ""}, ${result.durationS} s; ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, ${m.os}; Node ${m.node}; OPA ${m.opa}.`, "");
    lines.push("| measurement | unit | median | p99 | n | target |", "|---|---|---:|---:|---:|---|");
    for (const metric of result.metrics) lines.push(`| ${metric.name} | ${metric.unit} | ${number(metric.median)} | ${number(metric.p99)} | ${metric.n} | ${targetCell(metric)} |`);
    if (result.notes.length > 0) lines.push("", ...result.notes.map((note) => `- ${note}`));
    lines.push("");
  }
  return `${lines.join("\n")}\n`;
}
