/**
 * A private redis-server for one test file: its own loopback port (never 6379, where a system
 * Redis may run), no persistence, its working directory in a temporary directory, stopped in
 * afterAll. Tracked, so that a crashed test run still kills it on exit.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, stopChild, track, waitForPort } from './mosquitto.js';

export interface RedisServer {
  port: number;
  url: string;
  pid: number;
  /** What the server printed so far, for a failing test's message. */
  log(): string;
  stop(): Promise<void>;
}

const REDIS_SERVER = '/usr/bin/redis-server';

/** port: to start a server again where a stopped one was (a Redis restart). */
export async function startRedis(options: { port?: number } = {}): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tower-redis-'));
  const port = options.port ?? (await freePort());
  if (port === 6379) throw new Error('refusing port 6379: the system Redis owns it');
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', dir, '--loglevel', 'notice'];
  const child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  track(child);
  try {
    await waitForPort(port, 5_000, () => child.exitCode !== null);
  } catch (err) {
    await stopChild(child);
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`redis-server did not start on port ${port}: ${(err as Error).message}\n${out}`);
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid!,
    log: () => out,
    async stop() {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
