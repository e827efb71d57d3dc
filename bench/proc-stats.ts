/**
 * Resource use of another process, read from /proc: resident memory (now and peak) and
 * CPU time. Benchmarks measure the system under test from outside, never their own
 * process, so the load generator's cost is not counted against it.
 */
import { readFileSync } from "node:fs";

const TICKS_PER_SECOND = 100; // USER_HZ on Linux
const PAGE_KB = 4;

export interface ProcStats {
  /** Resident set now, bytes. */
  rss: number;
  /** Peak resident set since the process started (VmHWM), bytes. */
  peakRss: number;
  /** User + system CPU time since the process started, milliseconds. */
  cpuMs: number;
}

export function procStats(pid: number): ProcStats {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN);
  // Fields after the command name (which may hold spaces) are space-separated; utime and
  // stime are the 14th and 15th fields of the whole line.
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return { rss: kb("VmRSS") * 1024, peakRss: kb("VmHWM") * 1024, cpuMs: (ticks * 1000) / TICKS_PER_SECOND };
}

/** Resident set in bytes from /proc/<pid>/statm, cheaper than status for frequent sampling. */
export function rssOf(pid: number): number {
  const [, resident] = readFileSync(`/proc/${pid}/statm`, "utf8").split(" ");
  return Number(resident) * PAGE_KB * 1024;
}

/** The direct children of a process (e.g. the inline OPAs of a client host). */
export function childPids(pid: number): number[] {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim();
  return children === "" ? [] : children.split(" ").map(Number);
}
