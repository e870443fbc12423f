/**
 * `tower run` as a child process for the benchmarks: started from bin/tower.js (the built
 * CLI) on an ephemeral loopback port, its JSON log lines (pino, stdout) collected, its status
 * read over HTTP, stopped by the cleanups (SIGTERM, SIGKILL after a grace period) and killed
 * when the bench process exits whatever happened.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { defer, sleep } from './procs.js';
import { stopChild } from '../../test/helpers/mosquitto.js';

const BIN = join(PACKAGE_ROOT, 'bin', 'tower.js');

/** What the benchmarks read of GET /api/v1/status. */
export interface DaemonStatus {
  fleet?: string;
  appliedRevision?: string;
  attemptedRevision?: string;
  desiredRevision?: string;
  sync: string;
  lastError?: string;
  instances: { name: string; color?: string; health: string; standby?: string }[];
  source: { error?: string; newestRevision?: string };
}

export interface LogLine {
  /** pino: epoch ms (Date.now() of the daemon: the same clock as the bench's Date.now()). */
  time: number;
  msg: string;
  revision?: string;
  instance?: string;
  phase?: string;
  ms?: number;
  [key: string]: unknown;
}

export interface StatusWait {
  status: DaemonStatus;
  /** performance.now() when the matching status was read. */
  at: number;
  polls: number;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of running) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

export class TowerDaemon {
  readonly logs: LogLine[] = [];
  private stderrText = '';

  private constructor(
    readonly child: ChildProcess,
    /** performance.now() right after spawn() returned. */
    readonly spawnedAt: number,
    readonly stop: () => Promise<void>,
  ) {}

  url = '';

  get pid(): number {
    return this.child.pid!;
  }

  stderr(): string {
    return this.stderrText;
  }

  /**
   * Spawns `node [nodeArgs] bin/tower.js run --listen 127.0.0.1:0 [args]` and waits (at most
   * timeoutMs) until it prints its status URL.
   */
  static async start(label: string, args: string[], env: NodeJS.ProcessEnv, options: { nodeArgs?: string[]; timeoutMs?: number; stopGraceMs?: number } = {}): Promise<TowerDaemon> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const child = spawn(process.execPath, [...(options.nodeArgs ?? []), BIN, 'run', '--listen', '127.0.0.1:0', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const spawnedAt = performance.now();
    running.add(child);
    child.once('exit', () => running.delete(child));
    const stop = defer(`stop tower run (${label})`, () => stopChild(child, options.stopGraceMs ?? 20_000));
    const d = new TowerDaemon(child, spawnedAt, stop);
    let buffered = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        if (!line.trim()) continue;
        try {
          d.logs.push(JSON.parse(line) as LogLine);
        } catch {
          d.logs.push({ time: Date.now(), msg: line });
        }
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      if (d.stderrText.length < 1_000_000) d.stderrText += chunk;
    });
    try {
      d.url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`tower run (${label}) did not print its URL within ${timeoutMs} ms:\n${d.stderrText}`)), timeoutMs);
        const check = () => {
          const m = /status (http:\/\/127\.0\.0\.1:\d+\/)/.exec(d.stderrText);
          if (m) {
            clearTimeout(timer);
            resolve(m[1]!);
          }
        };
        child.stderr!.on('data', check);
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          reject(new Error(`tower run (${label}) exited (${code ?? signal}):\n${d.stderrText}`));
        });
      });
    } catch (err) {
      await stop();
      throw err;
    }
    return d;
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  async status(timeoutMs = 5_000): Promise<DaemonStatus> {
    const res = await fetch(`${this.url}api/v1/status`, { signal: AbortSignal.timeout(timeoutMs) });
    if (res.status !== 200) throw new Error(`GET /api/v1/status answered ${res.status}`);
    return (await res.json()) as DaemonStatus;
  }

  async get(path: string, timeoutMs = 5_000): Promise<string> {
    const res = await fetch(`${this.url}${path.replace(/^\//, '')}`, { signal: AbortSignal.timeout(timeoutMs) });
    return res.text();
  }

  /**
   * Reads the status every everyMs (from one read's start to the next; a slow answer is not
   * followed by a burst) until check passes; bounded by timeoutMs and by count.
   */
  async waitForStatus(check: (s: DaemonStatus) => boolean, what: string, timeoutMs: number, everyMs: number): Promise<StatusWait> {
    const t0 = performance.now();
    const deadline = t0 + timeoutMs;
    const maxPolls = Math.ceil(timeoutMs / everyMs) + 1;
    let last: DaemonStatus | undefined;
    let lastError = '';
    for (let i = 0; i < maxPolls && performance.now() < deadline; i++) {
      if (this.exited) throw new Error(`tower run exited while waiting for ${what}:\n${this.stderrText.slice(-2000)}`);
      const due = t0 + i * everyMs;
      await sleep(Math.max(0, due - performance.now()));
      try {
        last = await this.status(Math.max(1_000, Math.min(5_000, deadline - performance.now())));
        const at = performance.now();
        if (check(last)) return { status: last, at, polls: i + 1 };
      } catch (err) {
        lastError = (err as Error).message;
      }
    }
    throw new Error(
      `timed out after ${timeoutMs} ms waiting for ${what}; last status: ${last ? JSON.stringify({ sync: last.sync, appliedRevision: last.appliedRevision, attemptedRevision: last.attemptedRevision, lastError: last.lastError, source: last.source }) : `none (${lastError})`}\n` +
        `last log lines:\n${this.logs.slice(-8).map((l) => JSON.stringify(l)).join('\n')}`,
    );
  }

  /** The first log line from index `from` on that matches, waiting at most timeoutMs (polled every 20 ms). */
  async waitForLog(match: (l: LogLine) => boolean, what: string, timeoutMs: number, from = 0): Promise<LogLine> {
    const deadline = performance.now() + timeoutMs;
    for (let i = 0; i < Math.ceil(timeoutMs / 20) + 1; i++) {
      const found = this.logs.slice(from).find(match);
      if (found) return found;
      if (performance.now() > deadline || this.exited) break;
      await sleep(20);
    }
    throw new Error(`no log line for ${what} within ${timeoutMs} ms; last lines:\n${this.logs.slice(-8).map((l) => JSON.stringify(l)).join('\n')}`);
  }
}

/** `tower destroy --state-dir DIR` through the CLI (bin/tower.js), bounded; its output, or why it failed. */
export function towerDestroy(stateDir: string, env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'destroy', '--state-dir', stateDir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      running.delete(child);
      reject(err);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      if (code === 0) resolve(out.trim());
      else reject(new Error(`tower destroy --state-dir ${stateDir} exited ${code ?? signal}: ${out.trim()}`));
    });
  });
}
