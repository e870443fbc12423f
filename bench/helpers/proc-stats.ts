/**
 * CPU time and resident memory of one process (not its children) from procfs: utime + stime
 * of /proc/<pid>/stat (in clock ticks) and VmRSS of /proc/<pid>/status. Reading them costs
 * the measured process nothing.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { sleep } from './procs.js';

let ticks: number | undefined;
/** Clock ticks per second (getconf CLK_TCK; 100 on Linux when it cannot be asked). */
export function clockTicks(): number {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5_000 }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/** utime + stime of the process itself, in clock ticks (children are not counted). */
export function cpuTicks(pid: number): number {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The name (field 2) may hold spaces and parentheses: count fields after its last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): utime is field 14, stime field 15.
  return Number(fields[11]) + Number(fields[12]);
}

/** VmRSS in bytes. */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

export interface IdleSample {
  windowMs: number;
  cpuSeconds: number;
  /** CPU time / wall time, in percent of one core. */
  cpuPercent: number;
  rssMeanBytes: number;
  rssMaxBytes: number;
  rssSamples: number;
  /** CPU % of each second of the window, to tell a steady cost from a periodic burst. */
  perSecondPercent: number[];
}

/**
 * Samples the process over a fixed window: CPU from the utime + stime delta over the wall
 * time, and VmRSS (plus the per-second CPU) every sampleMs. Bounded: the window ends on time
 * whatever happens; a process that exits in the window is an error.
 */
export async function sampleIdle(pid: number, windowMs: number, sampleMs = 1_000): Promise<IdleSample> {
  const hz = clockTicks();
  const t0 = performance.now();
  const c0 = cpuTicks(pid);
  const rss: number[] = [rssBytes(pid)];
  const perSecond: number[] = [];
  let lastTicks = c0;
  let lastAt = t0;
  const maxSamples = Math.ceil(windowMs / sampleMs) + 1;
  for (let i = 0; i < maxSamples; i++) {
    const due = t0 + (i + 1) * sampleMs;
    const end = t0 + windowMs;
    await sleep(Math.max(0, Math.min(due, end) - performance.now()));
    const now = performance.now();
    const c = cpuTicks(pid);
    rss.push(rssBytes(pid));
    perSecond.push(((c - lastTicks) / hz / ((now - lastAt) / 1000)) * 100);
    lastTicks = c;
    lastAt = now;
    if (now >= end) break;
  }
  const wallMs = performance.now() - t0;
  const cpuSeconds = (lastTicks - c0) / hz;
  return {
    windowMs: wallMs,
    cpuSeconds,
    cpuPercent: (cpuSeconds / (wallMs / 1000)) * 100,
    rssMeanBytes: rss.reduce((a, b) => a + b, 0) / rss.length,
    rssMaxBytes: Math.max(...rss),
    rssSamples: rss.length,
    perSecondPercent: perSecond,
  };
}
