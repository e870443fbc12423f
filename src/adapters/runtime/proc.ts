/**
 * What the process driver reads from /proc and how it signals: a process is known by its
 * pid *and* its start time, so that a recycled pid is never mistaken for our Node-RED.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import type { ResourceUsage } from './types.js';

export interface ProcStat {
  state: string;
  utime: number;
  stime: number;
  /** Threads left in the process (a zombie leader counts itself until the last one ends). */
  threads: number;
  startTime: number;
}

export async function procStat(pid: number): Promise<ProcStat | undefined> {
  const text = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return text === undefined ? undefined : parseStat(text);
}

/** The process name (field 2) may hold spaces and parentheses: fields are counted after its last ')'. */
function parseStat(text: string): ProcStat | undefined {
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so field n is fields[n - 3].
  const [state, utime, stime, threads, startTime] = [fields[0], Number(fields[11]), Number(fields[12]), Number(fields[17]), Number(fields[19])];
  if (!state || !Number.isFinite(startTime)) return undefined;
  return { state, utime, stime, threads, startTime };
}

function procStatSync(pid: number): ProcStat | undefined {
  try {
    // Sync on purpose: one small read from procfs; callers (list, the exit poll) stay simple.
    return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** The process still runs: the pid exists, is not a zombie, and started when recorded. */
export function runs(pid: number, startTime: number | null): boolean {
  const stat = procStatSync(pid);
  return stat !== undefined && stat.state !== 'Z' && stat.state !== 'X' && stat.startTime === startTime;
}

/**
 * Ended for good, sockets closed: gone, or another process under the pid, or a zombie with no
 * thread left but itself. The main thread of a Node process turns zombie while its other
 * threads still exit — its listening socket stays open those few milliseconds, and a
 * connection then is reset rather than refused (measured with Node-RED 4.1: Z with 2 threads,
 * still listening).
 */
function ended(pid: number, startTime: number | null): boolean {
  const stat = procStatSync(pid);
  if (stat === undefined || stat.startTime !== startTime) return true;
  return (stat.state === 'Z' || stat.state === 'X') && stat.threads <= 1;
}

export async function waitForExit(pid: number, startTime: number | null, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!ended(pid, startTime)) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

/** The whole group (Node-RED and whatever its exec nodes started); the pid alone if there is no group. */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 2_000 }).trim()) || 100;
    } catch {
      clockTicks = 100; // USER_HZ on every Linux Tower runs on
    }
  }
  return clockTicks;
}

export async function processUsage(pid: number): Promise<ResourceUsage | undefined> {
  const stat = await procStat(pid);
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined);
  if (!stat || status === undefined) return undefined;
  const rssKb = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? 0);
  return { cpuSeconds: (stat.utime + stat.stime) / ticksPerSecond(), rssBytes: rssKb * 1024 };
}
