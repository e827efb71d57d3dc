/**
 * `npm run bench` runs every scenario; `npm run bench -- <scenario>...` the ones named.
 * Each result goes to bench/results/<scenario>.json and bench/RESULTS.md is rewritten from
 * all of them, so running one scenario refreshes its section and keeps the others.
 *
 *   npm run bench [-- latency fanout ...] [--smoke] [--out <dir>] [--list]
 *
 * --smoke runs tiny sizes (what `npm test` runs: correctness only) and writes to --out (a
 * temporary directory by default), never to bench/results.
 */
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { machine, resultsMarkdown, type RecordedResult } from "./results-table.js";
import { root } from "./lib.js";
import type { Scenario } from "./scenario.js";
import { SCENARIO_NAMES as SCENARIOS } from "./scenario-names.js";

async function load(name: string): Promise<Scenario> {
  const module = (await import(`./scenarios/${name}.ts`)) as { scenario: Scenario };
  return module.scenario;
}

function parse(argv: string[]): { names: string[]; smoke: boolean; out: string | undefined; list: boolean } {
  const names: string[] = [];
  let smoke = false;
  let list = false;
  let out: string | undefined;
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index] as string;
    if (arg === "--smoke") smoke = true;
    else if (arg === "--list") list = true;
    else if (arg === "--out") {
      out = argv[++index];
      if (out === undefined) throw new Error("--out needs a directory");
    } else if (arg.startsWith("-")) throw new Error(`unknown option ${arg} (options: --smoke, --out <dir>, --list)`);
    else if (!(SCENARIOS as readonly string[]).includes(arg)) throw new Error(`unknown scenario "${arg}"; the scenarios are: ${SCENARIOS.join(", ")}`);
    else names.push(arg);
  }
  return { names: names.length === 0 ? [...SCENARIOS] : names, smoke, out, list };
}

async function main(): Promise<void> {
  let options: ReturnType<typeof parse>;
  try {
    options = parse(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`npm run bench: ${(error as Error).message}\n`);
    process.exitCode = 64;
    return;
  }
  if (options.list) {
    for (const name of SCENARIOS) console.log(`${name.padEnd(16)} ${(await load(name)).about}`);
    return;
  }
  const outDir = options.out ?? (options.smoke ? await mkdtemp(join(tmpdir(), "opal-mesh-bench-smoke-")) : join(root, "bench", "results"));
  await mkdir(outDir, { recursive: true });
  const about = await machine();
  const log = (message: string): void => void process.stderr.write(`[bench] ${message}\n`);
  log(`${about.cpus} × ${about.cpuModel}, Node ${about.node}, OPA ${about.opa}; results in ${outDir}`);
  let failed = 0;
  for (const name of options.names) {
    const scenario = await load(name);
    const started = performance.now();
    log(`${name}: ${scenario.about}`);
    try {
      const result = await scenario.run({ smoke: options.smoke, log: (message) => log(`${name}: ${message}`) });
      const recorded: RecordedResult = { ...result, date: new Date().toISOString(), durationS: Math.round((performance.now() - started) / 100) / 10, smoke: options.smoke, machine: about };
      await writeFile(join(outDir, `${name}.json`), `${JSON.stringify(recorded, null, 2)}\n`);
      log(`${name}: done in ${recorded.durationS} s`);
    } catch (error) {
      failed++;
      log(`${name}: FAILED: ${(error as Error).stack ?? String(error)}`);
    }
  }
  const recorded: RecordedResult[] = [];
  for (const name of SCENARIOS) {
    try {
      recorded.push(JSON.parse(await readFile(join(outDir, `${name}.json`), "utf8")) as RecordedResult);
    } catch {
      // Not run yet in this directory.
    }
  }
  const markdown = resultsMarkdown(recorded);
  // The default run refreshes bench/RESULTS.md; any other directory gets its own copy.
  const defaultRun = options.out === undefined && !options.smoke;
  await writeFile(defaultRun ? join(root, "bench", "RESULTS.md") : join(outDir, "RESULTS.md"), markdown);
  process.stdout.write(markdown);
  if (failed > 0) {
    log(`${failed} scenario(s) failed`);
    process.exitCode = 1;
  }
}

await main();
