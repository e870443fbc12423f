/**
 * The built-in traffic switch with real sockets and real router processes: zero failed
 * requests across a blue→green switch under load, streaming, WebSocket pass-through,
 * 503/502, drain timeouts, and routers that outlive (and are adopted by) the reconciler.
 *
 * Needs dist/src/switch-router/main.js: `npx tsc -p tsconfig.json` first (npm test builds).
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { builtinSwitch, ROUTER_MAIN } from '../../src/adapters/switch/builtin.js';
import type { BuiltinSwitch } from '../../src/adapters/switch/builtin.js';
import type { Color } from '../../src/adapters/runtime/types.js';
import { startRouter } from '../../src/switch-router/router.js';
import type { RouterHandle } from '../../src/switch-router/router.js';
import { freePort } from '../../src/adapters/net.js';

const MiB = 1024 * 1024;

interface Upstream {
  color: Color;
  port: number;
  server: http.Server;
  requests: number;
}

/** Answers its colour after ?delay=ms; /echo streams the request body back; /ws is a WebSocket echo. */
async function upstream(color: Color): Promise<Upstream> {
  const up: Upstream = { color, port: 0, server: http.createServer(), requests: 0 };
  up.server.on('request', (req, res) => {
    up.requests += 1;
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/echo') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-color': color });
      req.pipe(res);
      return;
    }
    if (url.pathname === '/headers') {
      res.end(JSON.stringify(req.headers));
      return;
    }
    const delay = Number(url.searchParams.get('delay') ?? 0);
    const timer = setTimeout(() => res.end(color), delay);
    res.on('close', () => clearTimeout(timer));
  });
  const wss = new WebSocket.Server({ server: up.server, path: '/ws' }) // ws 7 (node-red's): no named ESM export;
  wss.on('connection', (socket) => socket.on('message', (data) => socket.send(`${color}:${String(data)}`)));
  await new Promise<void>((resolve) => up.server.listen(0, '127.0.0.1', resolve));
  up.port = (up.server.address() as AddressInfo).port;
  return up;
}

interface Answer {
  status: number;
  body: string;
  headers: IncomingHttpHeaders;
  reusedSocket: boolean;
}

/** One request, bounded by a 10 s timeout; a network error rejects. */
function get(port: number, path: string, agent: http.Agent | false = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers, reusedSocket: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
  });
}

interface Echo {
  status: number;
  receivedBytes: number;
  sentHash: string;
  receivedHash: string;
  /** How much of the request body was sent when the first byte of the response arrived. */
  sentAtFirstByte: number;
}

/** POSTs size random bytes (chunked) to the upstream's /echo through port and reads the echo. */
function echoThrough(port: number, size: number): Promise<Echo> {
  const sent = createHash('sha256');
  const received = createHash('sha256');
  let produced = 0;
  let receivedBytes = 0;
  let sentAtFirstByte = -1;
  const body = new Readable({
    read() {
      if (produced >= size) return void this.push(null);
      const chunk = randomBytes(Math.min(64 * 1024, size - produced));
      produced += chunk.length;
      sent.update(chunk);
      this.push(chunk);
    },
  });
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/echo', agent: false, timeout: 30_000 }, (res) => {
      res.on('data', (chunk: Buffer) => {
        if (sentAtFirstByte < 0) sentAtFirstByte = produced;
        receivedBytes += chunk.length;
        received.update(chunk);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, receivedBytes, sentHash: sent.digest('hex'), receivedHash: received.digest('hex'), sentAtFirstByte }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    body.pipe(req); // no content-length: chunked both ways
  });
}

/** Polls until check() is truthy: at most timeoutMs, at most 400 tries. */
async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 400; i++) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) break;
    await sleep(25);
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}

/** Alive and not a zombie (a router orphaned by a killed parent may wait unreaped). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) * 1024;
}

let stateDir: string;
let blue: Upstream;
let green: Upstream;
const routerPids = new Set<number>();
const inProcess: RouterHandle[] = [];
const instances: { sw: BuiltinSwitch; name: string }[] = [];

/** ensure() that remembers what to clean up, even if the test fails. */
async function ensure(sw: BuiltinSwitch, name: string, port: number) {
  instances.push({ sw, name });
  const status = await sw.ensure(name, port);
  if (status.pid) routerPids.add(status.pid);
  return status;
}

beforeAll(async () => {
  if (!existsSync(ROUTER_MAIN)) throw new Error(`${ROUTER_MAIN} is missing: run \`npx tsc -p tsconfig.json\` first`);
  stateDir = mkdtempSync(join(tmpdir(), 'tower-switch-'));
  [blue, green] = await Promise.all([upstream('blue'), upstream('green')]);
});

afterEach(async () => {
  await Promise.allSettled(inProcess.splice(0).map((router) => router.close(0)));
  await Promise.allSettled(instances.splice(0).map(({ sw, name }) => sw.remove(name)));
  for (const pid of routerPids) if (alive(pid)) process.kill(pid, 'SIGKILL');
  routerPids.clear();
});

afterAll(async () => {
  for (const up of [blue, green]) {
    if (!up) continue;
    up.server.closeAllConnections();
    await new Promise((resolve) => up.server.close(resolve));
  }
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

describe('built-in switch: blue→green under load', () => {
  it('switches mid-load and drains blue with zero failed requests; new requests land on green', async () => {
    const sw = builtinSwitch({ stateDir });
    const port = await freePort();
    await ensure(sw, 'load', port);
    await sw.route('load', { color: 'blue', port: blue.port });

    // Open loop: 50 requests/s for 4 s, each held 200 ms upstream, over keep-alive connections.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    const RATE_MS = 20;
    const COUNT = 200;
    const start = Date.now();
    let switchStarted = 0;
    let switched = 0;
    let blueInflightAtSwitch = 0;
    const results = await Promise.all([
      ...Array.from({ length: COUNT }, async (_, i) => {
        await sleep(start + i * RATE_MS - Date.now());
        const sentAt = Date.now();
        try {
          return { sentAt, answer: await get(port, '/work?delay=200', agent) };
        } catch (err) {
          return { sentAt, error: (err as Error).message };
        }
      }),
      (async () => {
        await sleep(2_000);
        blueInflightAtSwitch = (await sw.status('load'))?.inflight.blue ?? 0;
        switchStarted = Date.now();
        await sw.route('load', { color: 'green', port: green.port });
        switched = Date.now();
        const drainStarted = Date.now();
        const drained = await sw.drain('load', 'blue', 10_000);
        return { drained, drainMs: Date.now() - drainStarted };
      })(),
    ]);
    agent.destroy();
    const drain = results.pop() as { drained: { drained: boolean; inflight: number }; drainMs: number };
    const requests = results as { sentAt: number; answer?: Answer; error?: string }[];

    const failed = requests.filter((r) => r.error !== undefined || r.answer?.status !== 200);
    const afterSwitch = requests.filter((r) => r.sentAt > switched);
    const onBlue = requests.filter((r) => r.answer?.body === 'blue');
    console.log(`switch under load: ${requests.length} requests, ${failed.length} failed, ${onBlue.length} on blue, `
      + `${requests.length - onBlue.length} on green; ${blueInflightAtSwitch} in flight on blue at the switch; `
      + `route() took ${switched - switchStarted} ms, drain ${drain.drainMs} ms`);

    expect(failed).toEqual([]);
    expect(requests).toHaveLength(COUNT);
    expect(blueInflightAtSwitch).toBeGreaterThan(0); // the drain had something to wait for
    expect(onBlue.length).toBeGreaterThan(0);
    expect(afterSwitch.length).toBeGreaterThan(50);
    expect(afterSwitch.every((r) => r.answer?.body === 'green')).toBe(true);
    expect(onBlue.every((r) => r.sentAt <= switched)).toBe(true);
    // Routing is per request: connections opened before the switch carried green requests after it.
    expect(afterSwitch.some((r) => r.answer?.reusedSocket)).toBe(true);
    expect(drain.drained).toEqual({ drained: true, inflight: 0, websockets: 0 });
    expect(drain.drainMs).toBeGreaterThan(0);
    const status = await sw.status('load');
    expect(status?.inflight).toEqual({ blue: 0, green: 0 });
    expect(status?.active).toEqual({ color: 'green', port: green.port });
  });
});

describe('built-in switch: what passes through', () => {
  it('streams a 20 MiB request body and a 20 MiB response body without buffering them', async () => {
    const sw = builtinSwitch({ stateDir });
    const port = await freePort();
    const { pid } = await ensure(sw, 'stream', port);
    await sw.route('stream', { color: 'blue', port: blue.port });
    await get(port, '/warm-up');
    const rssBefore = rssBytes(pid as number);
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssBytes(pid as number))), 20);
    try {
      const small = await echoThrough(port, 20 * MiB);
      expect(small.status).toBe(200);
      expect(small.receivedBytes).toBe(20 * MiB);
      expect(small.receivedHash).toBe(small.sentHash);
      // A body larger than every socket buffer on the way: the echo came back while the upload was
      // still going (streamed both ways), and the router's RSS does not follow the body size — it
      // levels off where V8 gets round to collecting spent buffers (~40 MiB above idle here).
      const large = await echoThrough(port, 200 * MiB);
      expect(large.receivedBytes).toBe(200 * MiB);
      expect(large.receivedHash).toBe(large.sentHash);
      expect(large.sentAtFirstByte).toBeLessThan(50 * MiB);
      console.log(`streaming: 20 MiB and 200 MiB echoed (first byte back after ${(large.sentAtFirstByte / MiB).toFixed(1)} MiB sent); `
        + `router RSS ${(rssBefore / MiB).toFixed(1)} MiB before, peak ${(rssPeak / MiB).toFixed(1)} MiB`);
      expect(rssPeak - rssBefore).toBeLessThan(100 * MiB);
    } finally {
      clearInterval(sampler);
    }
  });

  it('passes WebSocket upgrades through, counts them, and closes them when a drain times out', async () => {
    const sw = builtinSwitch({ stateDir });
    const port = await freePort();
    await ensure(sw, 'ws', port);
    await sw.route('ws', { color: 'blue', port: blue.port });

    const client = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    const closed = new Promise<void>((resolve) => client.on('close', () => resolve()));
    try {
      await new Promise<void>((resolve, reject) => {
        client.once('open', () => resolve());
        client.once('error', reject);
      });
      const reply = new Promise<string>((resolve) => client.once('message', (data) => resolve(String(data))));
      client.send('hello');
      expect(await reply).toBe('blue:hello');
      expect((await sw.status('ws'))?.websockets).toEqual({ blue: 1, green: 0 });

      await sw.route('ws', { color: 'green', port: green.port });
      expect(await get(port, '/')).toMatchObject({ status: 200, body: 'green' }); // HTTP moved on; the WebSocket stays on blue
      const drain = await sw.drain('ws', 'blue', 300);
      expect(drain).toEqual({ drained: false, inflight: 0, websockets: 1 });
      await closed;
      expect((await sw.status('ws'))?.websockets).toEqual({ blue: 0, green: 0 });
    } finally {
      client.terminate();
    }
  });

  it('adds X-Forwarded-* and strips hop-by-hop headers', async () => {
    const router = await startRouter({ instance: 'headers', listenPort: 0, active: { color: 'blue', port: blue.port } });
    inProcess.push(router);
    const answer = await new Promise<Answer>((resolve, reject) => {
      const req = http.get({
        host: '127.0.0.1', port: router.listenPort, path: '/headers', agent: false,
        headers: { 'x-forwarded-for': '10.0.0.1', 'x-custom': 'kept', 'x-drop-me': 'gone', connection: 'x-drop-me', 'proxy-authorization': 'secret' },
      }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers, reusedSocket: false }));
      });
      req.on('error', reject);
    });
    const seen = JSON.parse(answer.body) as Record<string, string>;
    expect(seen['x-forwarded-for']).toBe('10.0.0.1, 127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen['x-forwarded-host']).toBe(`127.0.0.1:${router.listenPort}`);
    expect(seen['x-custom']).toBe('kept');
    expect(seen['x-drop-me']).toBeUndefined();
    expect(seen['proxy-authorization']).toBeUndefined();
  });
});

describe('built-in switch: errors', () => {
  it('answers 503 with Retry-After before the first route and 502 when the upstream is down', async () => {
    const router = await startRouter({ instance: 'errors', listenPort: 0 });
    inProcess.push(router);
    const before = await get(router.listenPort, '/');
    expect(before.status).toBe(503);
    expect(before.headers['retry-after']).toBe('1');

    const deadPort = await freePort();
    router.route({ color: 'blue', port: deadPort });
    const down = await get(router.listenPort, '/');
    expect(down.status).toBe(502);
    expect(down.body).toMatch(new RegExp(`bad gateway: upstream blue \\(127\\.0\\.0\\.1:${deadPort}\\): ECONNREFUSED`));
    expect(router.state().inflight).toEqual({ blue: 0, green: 0 });
  });

  it('cuts off an upstream that stays silent past the idle timeout with 504', async () => {
    const router = await startRouter({ instance: 'idle', listenPort: 0, idleTimeoutMs: 300, active: { color: 'blue', port: blue.port } });
    inProcess.push(router);
    const answer = await get(router.listenPort, '/slow?delay=3000');
    expect(answer.status).toBe(504);
    expect(router.state().inflight.blue).toBe(0);
  });

  it('ends a drain at its timeout with the request still in flight, which then finishes on blue', async () => {
    const router = await startRouter({ instance: 'drain-timeout', listenPort: 0, active: { color: 'blue', port: blue.port } });
    inProcess.push(router);
    const slow = get(router.listenPort, '/slow?delay=1500');
    await eventually(() => router.state().inflight.blue === 1);
    router.route({ color: 'green', port: green.port });
    expect(await router.drain('blue', 300)).toEqual({ drained: false, inflight: 1, websockets: 0 });
    expect(await slow).toMatchObject({ status: 200, body: 'blue' });
    expect(router.state().inflight).toEqual({ blue: 0, green: 0 });
  });

  it('drain times out through the adapter too: drained=false, inflight=1', async () => {
    const sw = builtinSwitch({ stateDir });
    const port = await freePort();
    await ensure(sw, 'drain-adapter', port);
    await sw.route('drain-adapter', { color: 'blue', port: blue.port });
    const slow = get(port, '/slow?delay=1500');
    await eventually(async () => (await sw.status('drain-adapter'))?.inflight.blue === 1);
    await sw.route('drain-adapter', { color: 'green', port: green.port });
    expect(await sw.drain('drain-adapter', 'blue', 300)).toMatchObject({ drained: false, inflight: 1 });
    expect(await slow).toMatchObject({ status: 200, body: 'blue' });
  });

  it('refuses a port that something else holds, naming the port and the instance', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as AddressInfo).port;
    try {
      const sw = builtinSwitch({ stateDir });
      instances.push({ sw, name: 'taken' });
      await expect(sw.ensure('taken', port)).rejects.toThrow(new RegExp(`instance taken: port ${port} .*already in use`));
    } finally {
      holder.close();
    }
  });

  it('guards the control channel with the token and never puts it in errors', async () => {
    const sw = builtinSwitch({ stateDir });
    const port = await freePort();
    await ensure(sw, 'control', port);
    const file = join(stateDir, 'switch', 'control.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const record = JSON.parse(readFileSync(file, 'utf8')) as { controlPort: number; token: string };
    expect(await get(record.controlPort, '/state')).toMatchObject({ status: 401 });

    const error = await sw.drain('control', 'red' as Color, 10).catch((err: Error) => err);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/400 drain needs/);
    expect((error as Error).message).not.toContain(record.token);
    await expect(sw.route('nobody', { color: 'blue', port: blue.port })).rejects.toThrow(/instance nobody is not running; call ensure\(\) first/);
  });
});

describe('built-in switch: the router outlives the reconciler', () => {
  it('survives a SIGKILLed reconciler, is adopted by a new one, and resumes its route after its own SIGKILL', async () => {
    const port = await freePort();
    const name = 'detached';
    instances.push({ sw: builtinSwitch({ stateDir }), name });

    // A reconciler in its own process group: ensure + route, then SIGKILL itself.
    const adapter = join(ROUTER_MAIN, '..', '..', 'adapters', 'switch', 'builtin.js');
    const script = `
      const { builtinSwitch } = await import(${JSON.stringify(adapter)});
      const sw = builtinSwitch({ stateDir: ${JSON.stringify(stateDir)} });
      await sw.ensure(${JSON.stringify(name)}, ${port});
      const status = await sw.route(${JSON.stringify(name)}, { color: 'blue', port: ${blue.port} });
      process.stdout.write(JSON.stringify(status) + '\\n', () => process.kill(process.pid, 'SIGKILL'));`;
    const reconciler = spawn(process.execPath, ['--input-type=module', '-e', script], { detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    reconciler.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const ended = await Promise.race([
      new Promise<NodeJS.Signals | null>((resolve) => reconciler.on('exit', (_code, signal) => resolve(signal))),
      sleep(15_000).then(() => 'timeout' as const),
    ]);
    if (ended === 'timeout' && reconciler.pid) process.kill(-reconciler.pid, 'SIGKILL');
    expect(ended).toBe('SIGKILL');
    const first = JSON.parse(out) as { pid: number; active: unknown };
    routerPids.add(first.pid);
    expect(first.active).toEqual({ color: 'blue', port: blue.port });
    expect(alive(first.pid)).toBe(true);
    expect(await get(port, '/')).toMatchObject({ status: 200, body: 'blue' });

    // Requests keep flowing while a new reconciler adopts the router and switches it.
    const agent = new http.Agent({ keepAlive: true });
    let loadRunning = true;
    const load = (async () => {
      const answers: string[] = [];
      const deadline = Date.now() + 10_000;
      for (let i = 0; i < 500 && loadRunning && Date.now() < deadline; i++) {
        answers.push(await get(port, '/', agent).then((a) => `${a.status} ${a.body}`, (err: Error) => err.message));
        await sleep(10);
      }
      return answers;
    })();
    await sleep(200);
    const sw = builtinSwitch({ stateDir });
    const adopted = await sw.ensure(name, port);
    expect(adopted.pid).toBe(first.pid);
    expect(adopted.active).toEqual({ color: 'blue', port: blue.port });
    await sw.route(name, { color: 'green', port: green.port });
    expect((await sw.drain(name, 'blue', 5_000)).drained).toBe(true);
    await sleep(200);
    loadRunning = false;
    const answers = await load;
    agent.destroy();
    expect(answers.length).toBeGreaterThan(10);
    expect(answers.filter((a) => a !== '200 blue' && a !== '200 green')).toEqual([]);
    expect(answers.at(-1)).toBe('200 green');
    expect((await sw.list()).map((s) => s.instance)).toContain(name);

    // The router itself is SIGKILLed: ensure() starts a new one on the persisted route.
    process.kill(first.pid, 'SIGKILL');
    await eventually(() => !alive(first.pid));
    expect(await sw.status(name)).toMatchObject({ running: false, active: { color: 'green', port: green.port } });
    const restarted = await sw.ensure(name, port);
    if (restarted.pid) routerPids.add(restarted.pid);
    expect(restarted.pid).not.toBe(first.pid);
    expect(restarted.active).toEqual({ color: 'green', port: green.port });
    expect(await get(port, '/')).toMatchObject({ status: 200, body: 'green' });
  });

  it('remove() lets requests in flight finish, stops the router, frees the port and forgets the instance', async () => {
    const sw = builtinSwitch({ stateDir });
    const port = await freePort();
    const { pid } = await ensure(sw, 'removed', port);
    await sw.route('removed', { color: 'blue', port: blue.port });
    const slow = get(port, '/slow?delay=800');
    await eventually(async () => (await sw.status('removed'))?.inflight.blue === 1);
    const removing = sw.remove('removed'); // SIGTERM: stop accepting, finish what is in flight, exit
    await eventually(async () => (await get(port, '/').then(() => 'open', (err: Error) => err.message)).includes('ECONNREFUSED'));
    expect(await slow).toMatchObject({ status: 200, body: 'blue' });
    await removing;
    expect(alive(pid as number)).toBe(false);
    expect(existsSync(join(stateDir, 'switch', 'removed.json'))).toBe(false);
    expect(await sw.status('removed')).toBeUndefined();
    await sw.remove('removed');
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    await new Promise((resolve) => server.close(resolve));
  });
});
