/**
 * nginx as the traffic switch: a private nginx (Debian package `nginx`; prefix, pid file and
 * logs in a temp dir, listening on 127.0.0.1 only) driven by nginxSwitch. Skipped when no
 * nginx binary is installed (`apt-get install nginx`).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nginxSwitch } from '../../src/adapters/switch/nginx.js';
import type { TrafficSwitch } from '../../src/adapters/switch/types.js';
import type { Color } from '../../src/adapters/runtime/types.js';
import { freePort } from '../../src/adapters/net.js';

const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));

interface Upstream {
  color: Color;
  port: number;
  server: http.Server;
}

async function upstream(color: Color): Promise<Upstream> {
  const server = http.createServer((req, res) => {
    const delay = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('delay') ?? 0);
    const timer = setTimeout(() => res.end(color), delay);
    res.on('close', () => clearTimeout(timer));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { color, server, port: (server.address() as AddressInfo).port };
}

function get(port: number, path: string): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
  });
}

// nginx comes from Debian (scripts/system-deps.sh); a missing binary is a failure, not a skip.
describe('nginx switch (private nginx)', () => {
  it('has nginx installed', () => {
    expect(NGINX, 'install nginx: bash scripts/system-deps.sh').toBeDefined();
  });

  let prefix: string;
  let nginx: ChildProcess | undefined;
  let masterPid = 0;
  let sw: TrafficSwitch;
  let blue: Upstream;
  let green: Upstream;

  beforeAll(async () => {
    prefix = mkdtempSync(join(tmpdir(), 'tower-nginx-'));
    const confDir = join(prefix, 'conf.d');
    for (const dir of ['conf.d', 'tmp']) mkdirSync(join(prefix, dir));
    const pidFile = join(prefix, 'nginx.pid');
    writeFileSync(join(prefix, 'nginx.conf'), [
      'daemon off;',
      'worker_processes 1;',
      // As root, nginx would switch its workers to `nobody`, who cannot use the temp dir.
      ...(process.getuid?.() === 0 ? ['user root;'] : []),
      `pid ${pidFile};`,
      `error_log ${join(prefix, 'error.log')} info;`,
      'worker_shutdown_timeout 10s;',
      'events { worker_connections 512; }',
      'http {',
      '  access_log off;',
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${join(prefix, 'tmp', t)};`),
      `  include ${confDir}/*.conf;`,
      '}',
      '',
    ].join('\n'));
    nginx = spawn(NGINX as string, ['-p', prefix, '-e', join(prefix, 'error.log'), '-c', join(prefix, 'nginx.conf')], { detached: true, stdio: ['ignore', 'ignore', 'inherit'] });
    masterPid = nginx.pid as number;
    for (let i = 0; i < 200 && !existsSync(pidFile); i++) await sleep(25);
    expect(Number(readFileSync(pidFile, 'utf8'))).toBe(masterPid);
    sw = nginxSwitch({ confDir, pidFile, reload: async () => void process.kill(masterPid, 'SIGHUP') });
    [blue, green] = await Promise.all([upstream('blue'), upstream('green')]);
  });

  afterAll(async () => {
    if (nginx && masterPid) {
      // Fast shutdown lets the master reap its workers; the group kill is the fallback.
      const exited = new Promise((resolve) => nginx?.once('exit', resolve));
      if (nginx.exitCode === null && nginx.signalCode === null) {
        process.kill(masterPid, 'SIGTERM');
        await Promise.race([exited, sleep(5_000)]);
      }
      try {
        process.kill(-masterPid, 'SIGKILL'); // master and workers: their own process group
      } catch {
        // already gone
      }
    }
    for (const up of [blue, green]) {
      if (!up) continue;
      up.server.closeAllConnections();
      await new Promise((resolve) => up.server.close(resolve));
    }
    if (prefix) rmSync(prefix, { recursive: true, force: true });
  });

  it('answers 503 before the first route, then routes, then 502 when the upstream is down', async () => {
    const port = await freePort();
    expect(await sw.ensure('errors', port)).toMatchObject({ instance: 'errors', listenPort: port, running: true });
    const before = await get(port, '/');
    expect(before.status).toBe(503);
    expect(before.headers['retry-after']).toBe('1');
    await sw.route('errors', { color: 'blue', port: blue.port });
    expect(await get(port, '/')).toMatchObject({ status: 200, body: 'blue' });
    const dead = await freePort();
    await sw.route('errors', { color: 'green', port: dead });
    const down = await get(port, '/');
    expect(down.status).toBe(502);
    expect(down.body).toBe(`bad gateway: upstream green (127.0.0.1:${dead}) unreachable or silent\n`);
    await sw.remove('errors');
  });

  it('switches blue→green under load with zero failed requests', async () => {
    const port = await freePort();
    await sw.ensure('load', port);
    await sw.route('load', { color: 'blue', port: blue.port });
    const COUNT = 200;
    const start = Date.now();
    let switched = 0;
    let switchMs = 0;
    const results = await Promise.all([
      ...Array.from({ length: COUNT }, async (_, i) => {
        await sleep(start + i * 20 - Date.now());
        const sentAt = Date.now();
        return get(port, '/work?delay=200').then((a) => ({ sentAt, ...a }), (err: Error) => ({ sentAt, status: 0, body: err.message }));
      }),
      (async () => {
        await sleep(2_000);
        const t = Date.now();
        await sw.route('load', { color: 'green', port: green.port });
        switched = Date.now();
        switchMs = switched - t;
        const drained = await sw.drain('load', 'blue', 10_000);
        return { sentAt: 0, status: -1, body: JSON.stringify({ drained, drainMs: Date.now() - switched }) };
      })(),
    ]);
    const drain = JSON.parse((results.pop() as { body: string }).body) as { drained: { drained: boolean }; drainMs: number };
    const failed = results.filter((r) => r.status !== 200);
    const onBlue = results.filter((r) => r.body === 'blue');
    console.log(`nginx switch under load: ${results.length} requests, ${failed.length} failed, ${onBlue.length} on blue; `
      + `route() (write + reload + confirm) ${switchMs} ms, drain ${drain.drainMs} ms`);
    expect(failed).toEqual([]);
    expect(onBlue.length).toBeGreaterThan(0);
    expect(results.filter((r) => r.sentAt > switched).every((r) => r.body === 'green')).toBe(true);
    expect(drain.drained.drained).toBe(true);
    expect(await sw.status('load')).toMatchObject({ active: { color: 'green', port: green.port }, running: true });
    await sw.remove('load');
  });

  it('refuses a taken port, lists what it serves, and remove() frees the port', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const taken = (holder.address() as AddressInfo).port;
    try {
      await expect(sw.ensure('taken', taken)).rejects.toThrow(new RegExp(`instance taken: port ${taken} .*already in use`));
    } finally {
      holder.close();
    }
    const port = await freePort();
    await sw.ensure('gone', port);
    expect((await sw.list()).map((s) => s.instance)).toContain('gone');
    await sw.remove('gone');
    await sw.remove('gone');
    expect(await sw.status('gone')).toBeUndefined();
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    await new Promise((resolve) => server.close(resolve));
  });
});
