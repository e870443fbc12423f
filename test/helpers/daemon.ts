/**
 * `tower run` as a real child process for end-to-end tests: started from bin/tower.js (the
 * built CLI), its JSON log lines collected, its status read over HTTP.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import axios from 'axios';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'tower.js');

export interface DaemonProcess {
  child: ChildProcess;
  url: string;
  /** Every JSON log line so far. */
  logs: Record<string, unknown>[];
  stderr(): string;
  status(): Promise<Status>;
  /** Resolves with the first log line matching (from line index `from` on), or rejects after timeoutMs. */
  waitForLog(match: (line: Record<string, unknown>) => boolean, timeoutMs: number, from?: number): Promise<Record<string, unknown>>;
  waitFor(check: (s: Status) => boolean, timeoutMs: number, what: string): Promise<Status>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface Status {
  fleet?: string;
  appliedRevision?: string;
  attemptedRevision?: string;
  attempted?: { revision: string; outcome: string; error?: string };
  sync: string;
  reason: string;
  message: string;
  leader: boolean;
  lastError?: string;
  source: { error?: string; newestRevision?: string };
  validation: { file: string; line: number; col: number; message: string; severity: string }[];
  instances: { name: string; color?: string; health: string; healthMessage: string; condition: string; restarts: number; rev?: string; port?: number; drift: boolean; standby?: string }[];
  rollout: unknown;
  drift: string[];
  history: { id: string; revision?: string; outcome: string; error?: string }[];
}

export async function startDaemon(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 20_000): Promise<DaemonProcess> {
  const child = spawn(process.execPath, [BIN, 'run', '--listen', '127.0.0.1:0', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Record<string, unknown>[] = [];
  const waiters: { match: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = [];
  let err = '';
  let buffered = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      if (!line.trim()) continue;
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(line) as Record<string, unknown>;
      } catch {
        parsed = { msg: line };
      }
      logs.push(parsed);
      for (const w of [...waiters]) {
        if (w.match(parsed)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(parsed);
        }
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tower run did not print its URL within ${timeoutMs} ms:\n${err}`)), timeoutMs);
    const check = () => {
      const m = /status (http:\/\/127\.0\.0\.1:\d+\/)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    child.stderr!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`tower run exited with ${code}:\n${err}`));
    });
  });

  const status = async (): Promise<Status> => (await axios.get<Status>(`${url}api/v1/status`, { timeout: 5_000 })).data;
  return {
    child,
    url,
    logs,
    stderr: () => err,
    status,
    waitForLog(match, timeout, from = 0) {
      const found = logs.slice(from).find(match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const w = { match, resolve };
        waiters.push(w);
        setTimeout(() => {
          if (waiters.includes(w)) {
            waiters.splice(waiters.indexOf(w), 1);
            reject(new Error(`no matching log line within ${timeout} ms; last lines:\n${logs.slice(-10).map((l) => JSON.stringify(l)).join('\n')}`));
          }
        }, timeout);
      });
    },
    async waitFor(check, timeout, what) {
      const deadline = Date.now() + timeout;
      let last: Status | undefined;
      while (Date.now() < deadline) {
        try {
          last = await status();
          if (check(last)) return last;
        } catch {
          // not answering yet
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`timed out after ${timeout} ms waiting for ${what}; last status: ${JSON.stringify(last, null, 1)?.slice(0, 3000)}\nlogs: ${logs.slice(-8).map((l) => JSON.stringify(l)).join('\n')}`);
    },
    async kill(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
