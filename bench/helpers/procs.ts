/**
 * Processes and temporary directories for the benchmarks: a cleanup registry that runs
 * last-in first-out even when a bench throws or is interrupted, a private mosquitto and a
 * bare Node-RED (red.js with a settings file) on free loopback ports.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { freePort } from '../../src/adapters/net.js';
import { startMosquitto as startTestMosquitto, stopChild, track } from '../../test/helpers/mosquitto.js';
import { installedNodeRed } from '../../src/adapters/runtime/process.js';

export { freePort, stopChild };

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Task {
  what: string;
  run: () => Promise<void> | void;
}
const tasks: Task[] = [];

/** Registers a cleanup; the returned function runs it now (once) and forgets it. */
export function defer(what: string, run: () => Promise<void> | void): () => Promise<void> {
  const task: Task = { what, run };
  tasks.push(task);
  return async () => {
    const at = tasks.indexOf(task);
    if (at < 0) return;
    tasks.splice(at, 1);
    await bounded(Promise.resolve().then(task.run), 60_000, `cleanup "${what}" took over 60 s`);
  };
}

/** Runs every registered cleanup, newest first; a failing one is reported, the others still run. */
export async function runCleanups(log: (line: string) => void): Promise<void> {
  while (tasks.length) {
    const task = tasks.pop()!;
    try {
      await bounded(Promise.resolve().then(task.run), 60_000, `cleanup "${task.what}" took over 60 s`);
    } catch (err) {
      log(`cleanup "${task.what}" failed: ${(err as Error).message}`);
    }
  }
}

export function bounded<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  defer(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A private mosquitto on a free loopback port, stopped by the cleanups (the tests' own). */
export async function startMosquitto(): Promise<Broker> {
  const broker = await startTestMosquitto();
  const stop = defer('stop mosquitto', () => broker.stop());
  return { port: broker.port, url: broker.url, stop };
}

export interface Broker {
  port: number;
  url: string;
  stop(): Promise<void>;
}

/** One GET on loopback: the status, or undefined when nothing answered within timeoutMs. */
export function httpStatus(port: number, path: string, timeoutMs: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
      res.on('error', () => resolve(undefined));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}

export interface PlainNodeRed {
  port: number;
  url: string;
  /** From spawn to the first GET /settings 200 (polled every 10 ms). */
  readyMs: number;
  stop(): Promise<void>;
}

/**
 * A bare Node-RED: red.js with a minimal settings file (loopback, no adminAuth), its own
 * userDir and flows. Resolves once GET /settings answers 200.
 */
export async function startPlainNodeRed(flows: object[], env: Record<string, string> = {}): Promise<PlainNodeRed> {
  const dir = mkdtempSync(join(tmpdir(), 'tower-bench-nodered-'));
  const removeDir = defer(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const settings = {
    uiHost: '127.0.0.1',
    uiPort: port,
    userDir: dir,
    flowFile: 'flows.json',
    credentialSecret: false,
    logging: { console: { level: 'info', metrics: false, audit: false } },
    telemetry: { enabled: false },
    diagnostics: { enabled: false, ui: false },
    editorTheme: { tours: false },
  };
  writeFileSync(join(dir, 'settings.js'), `module.exports = ${JSON.stringify(settings, null, 2)};\n`);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'node-red-project', version: '0.0.1', private: true }));
  writeFileSync(join(dir, 'flows.json'), JSON.stringify(flows));
  const out = openSync(join(dir, 'node-red.log'), 'a');
  const t0 = performance.now();
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [installedNodeRed().redJs, '--userDir', dir, '--settings', join(dir, 'settings.js')], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, NODE_ENV: 'production', ...env },
      stdio: ['ignore', out, out],
    });
  } finally {
    closeSync(out);
  }
  track(child);
  const stopProcess = defer(`stop Node-RED on ${port}`, () => stopChild(child));
  const stop = async () => {
    await stopProcess();
    await removeDir();
  };
  const deadline = Date.now() + 30_000;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`Node-RED exited (${child.exitCode}) before it answered GET /settings`);
    }
    if ((await httpStatus(port, '/settings', 1_000)) === 200) break;
    if (Date.now() > deadline || i > 5_000) {
      await stop();
      throw new Error('Node-RED did not answer GET /settings within 30 s');
    }
    await sleep(10);
  }
  const readyMs = performance.now() - t0;
  return { port, url: `http://127.0.0.1:${port}`, readyMs, stop };
}
