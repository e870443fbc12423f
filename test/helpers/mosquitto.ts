/**
 * A private mosquitto for one test file: its own loopback port (never 1883, where a system
 * broker may run), its own config and log in a temporary directory, stopped in afterAll.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Mosquitto {
  port: number;
  url: string;
  pid: number;
  /** The broker's log so far, for a failing test's message. */
  log(): string;
  stop(): Promise<void>;
}

const MOSQUITTO = '/usr/sbin/mosquitto';

import { freePort } from '../../src/adapters/net.js';

export { freePort };

export interface MosquittoOptions {
  /** Settings of the listener (they follow its line): cafile, certfile, keyfile, require_certificate… With certfile, url is mqtts://. */
  listener?: string[];
  /** More global settings, e.g. password_file; with one, anonymous clients are refused. */
  config?: string[];
}

export async function startMosquitto(options: MosquittoOptions = {}): Promise<Mosquitto> {
  const dir = mkdtempSync(join(tmpdir(), 'tower-mosquitto-'));
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  const logFile = join(dir, 'mosquitto.log');
  const login = (options.config ?? []).some((l) => l.startsWith('password_file '));
  const tls = (options.listener ?? []).some((l) => l.startsWith('certfile '));
  const lines = [
    ...(options.config ?? []),
    `listener ${port} 127.0.0.1`,
    ...(options.listener ?? []),
    `allow_anonymous ${login ? 'false' : 'true'}`,
    'persistence false',
    `log_dest file ${logFile}`,
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
  ];
  // mosquitto drops privileges to "mosquitto" when started as root unless told otherwise.
  if (process.getuid?.() === 0) lines.push('user root');
  writeFileSync(conf, lines.join('\n') + '\n');
  const child = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  track(child);
  const log = () => {
    let text = stderr;
    try {
      text += readFileSync(logFile, 'utf8');
    } catch {
      // not written yet
    }
    return text;
  };
  try {
    await waitForPort(port, 5000, () => child.exitCode !== null);
  } catch (err) {
    await stopChild(child);
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`mosquitto did not start on port ${port}: ${(err as Error).message}\n${log()}`);
  }
  return {
    port,
    url: `${tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`,
    pid: child.pid!,
    log,
    async stop() {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Poll a TCP connect until it succeeds; bounded in time. */
export async function waitForPort(port: number, timeoutMs: number, gaveUp: () => boolean = () => false): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; attempt < 1000 && Date.now() < deadline; attempt++) {
    if (gaveUp()) throw new Error('the process exited');
    const ok = await new Promise<boolean>((resolve) => {
      const s = createConnection({ port, host: '127.0.0.1' });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

// Every child a helper starts, so that a crashed test run still kills them on exit.
const children = new Set<ChildProcess>();

export function track(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

process.once('exit', () => {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** SIGTERM, then SIGKILL if it has not exited within graceMs. Resolves when it has exited. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}
