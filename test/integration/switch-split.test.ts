/**
 * The built-in switch's weighted split and per-colour accounting, with real router processes
 * (the adapter spawns them) and real upstream servers: the share each colour gets, measured
 * over at least 1,000 requests per weight; stickiness of keep-alive connections; the counters
 * and latency histogram Tower reads; a split that survives the router being killed.
 *
 * Needs dist/src/switch-router/main.js: `npx tsc -p tsconfig.json` first (npm test builds).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { builtinSwitch, ROUTER_MAIN, type BuiltinSwitch } from '../../src/adapters/switch/builtin.js';
import { freePort } from '../../src/adapters/net.js';
import type { Color } from '../../src/adapters/runtime/types.js';
import { summarize, trafficBetween } from '../../src/core/traffic.js';

interface Upstream { color: Color; port: number; server: http.Server }

/** Answers its colour; ?status=N answers N, ?delay=ms waits first. */
async function upstream(color: Color): Promise<Upstream> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const status = Number(url.searchParams.get('status') ?? 200);
    const delay = Number(url.searchParams.get('delay') ?? 0);
    const timer = setTimeout(() => {
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(color);
    }, delay);
    res.on('close', () => clearTimeout(timer));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { color, port: (server.address() as AddressInfo).port, server };
}

function get(port: number, path: string, agent: http.Agent | false = false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
  });
}

/** n requests, `concurrency` at a time, a new connection each: how many each colour answered. */
async function shares(port: number, n: number, concurrency = 16): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) {
      next += 1;
      const { status, body } = await get(port, '/');
      const key = status === 200 ? body : `HTTP ${status}`;
      counts[key] = (counts[key] ?? 0) + 1;
    }
  }));
  return counts;
}

let stateDir: string;
let blue: Upstream;
let green: Upstream;
const made: { sw: BuiltinSwitch; name: string }[] = [];

async function router(name: string): Promise<{ sw: BuiltinSwitch; port: number }> {
  const sw = builtinSwitch({ stateDir });
  const port = await freePort();
  made.push({ sw, name });
  await sw.ensure(name, port);
  await sw.route(name, { color: 'blue', port: blue.port });
  return { sw, port };
}

beforeAll(async () => {
  if (!existsSync(ROUTER_MAIN)) throw new Error(`${ROUTER_MAIN} is missing: run \`npx tsc -p tsconfig.json\` first`);
  stateDir = mkdtempSync(join(tmpdir(), 'tower-split-'));
  [blue, green] = await Promise.all([upstream('blue'), upstream('green')]);
});

afterEach(async () => {
  await Promise.allSettled(made.splice(0).map(({ sw, name }) => sw.remove(name)));
});

afterAll(async () => {
  for (const up of [blue, green]) {
    up?.server.closeAllConnections();
    await new Promise((resolve) => up?.server.close(resolve));
  }
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

describe('built-in switch: weighted split', () => {
  it('gives the canary its weight of new connections, within ±3 points over 1,000+ requests per weight', async () => {
    const { sw, port } = await router('split');
    const N = 1_200;
    for (const weight of [5, 10, 25, 50, 90]) {
      await sw.split('split', [{ color: 'blue', port: blue.port, weight: 100 - weight }, { color: 'green', port: green.port, weight }]);
      const before = await sw.stats('split');
      const counts = await shares(port, N);
      const after = await sw.stats('split');
      expect((counts.blue ?? 0) + (counts.green ?? 0)).toBe(N); // every request answered by a colour
      const measured = (100 * (counts.green ?? 0)) / N;
      console.log(`weight ${weight}%: green answered ${counts.green ?? 0}/${N} = ${measured.toFixed(2)}%`);
      expect(Math.abs(measured - weight)).toBeLessThanOrEqual(3);
      // The switch counted the same requests, per colour.
      expect(trafficBetween(before.colors.green, after.colors.green).requests).toBe(counts.green ?? 0);
      expect(trafficBetween(before.colors.blue, after.colors.blue).requests).toBe(counts.blue ?? 0);
    }
    // A route ends the split: everything goes to the routed colour.
    const routed = await sw.route('split', { color: 'green', port: green.port });
    expect(routed.split).toBeUndefined();
    expect(await shares(port, 50)).toEqual({ green: 50 });
  });

  it('keeps a keep-alive connection on one colour until the weights change, then draws again', async () => {
    const { sw, port } = await router('sticky');
    await sw.split('sticky', [{ color: 'blue', port: blue.port, weight: 50 }, { color: 'green', port: green.port, weight: 50 }]);
    const seen: Set<string>[] = [];
    for (let c = 0; c < 20; c++) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const colours = new Set<string>();
      for (let i = 0; i < 10; i++) colours.add((await get(port, '/', agent)).body);
      seen.push(colours);
      agent.destroy();
    }
    expect(seen.every((s) => s.size === 1)).toBe(true); // each connection saw one colour
    const greens = seen.filter((s) => s.has('green')).length;
    expect(greens).toBeGreaterThan(0);
    expect(greens).toBeLessThan(20);

    // Weight 0/100: a connection that sat on blue moves to green at its next request.
    let keep = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      let body = (await get(port, '/', keep)).body;
      for (let i = 0; i < 40 && body !== 'blue'; i++) {
        keep.destroy();
        keep = new http.Agent({ keepAlive: true, maxSockets: 1 });
        body = (await get(port, '/', keep)).body;
      }
      expect(body).toBe('blue');
      expect((await get(port, '/', keep)).body).toBe('blue'); // still sticky
      await sw.split('sticky', [{ color: 'blue', port: blue.port, weight: 0 }, { color: 'green', port: green.port, weight: 100 }]);
      expect((await get(port, '/', keep)).body).toBe('green');
    } finally {
      keep.destroy();
    }
  });

  it('refuses a split without the routed colour, or whose weights do not add up to 100', async () => {
    const { sw } = await router('refuse');
    await expect(sw.split('refuse', [{ color: 'blue', port: green.port, weight: 50 }, { color: 'green', port: green.port, weight: 50 }])).rejects.toThrow(/routed colour blue/);
    await expect(sw.split('refuse', [{ color: 'blue', port: blue.port, weight: 50 }, { color: 'green', port: green.port, weight: 60 }])).rejects.toThrow(/add up to 100/);
    expect((await sw.status('refuse'))?.split).toBeUndefined();
  });

  it('resumes its split after the router is killed', async () => {
    const { sw, port } = await router('resume');
    const split = [{ color: 'blue' as const, port: blue.port, weight: 70 }, { color: 'green' as const, port: green.port, weight: 30 }];
    await sw.split('resume', split);
    const { pid } = (await sw.status('resume'))!;
    process.kill(pid!, 'SIGKILL');
    for (let i = 0; i < 100 && (await sw.status('resume'))?.running; i++) await sleep(20);
    const again = await sw.ensure('resume', port);
    expect(again.pid).not.toBe(pid);
    expect(again.split).toEqual(split);
    const counts = await shares(port, 200);
    expect(counts.green).toBe(60); // the deck: exactly 30 of every 100 new connections
  });
});

describe('built-in switch: accounting per colour', () => {
  it('counts outcomes and latency per colour, from which Tower reads a window', async () => {
    const { sw, port } = await router('count');
    await sw.split('count', [{ color: 'blue', port: blue.port, weight: 50 }, { color: 'green', port: green.port, weight: 50 }]);
    const before = await sw.stats('count');
    // 200 fast, 20 slow (80 ms), 10 answered 500 and 10 answered 404 — spread over both colours.
    const answers: { status: number; body: string }[] = [];
    for (let i = 0; i < 25; i++) answers.push(...(await Promise.all(Array.from({ length: 8 }, () => get(port, '/')))));
    const rest = [...Array<string>(20).fill('/?delay=80'), ...Array<string>(10).fill('/?status=500'), ...Array<string>(10).fill('/?status=404')];
    answers.push(...(await Promise.all(rest.map((p) => get(port, p)))));
    const after = await sw.stats('count');
    const both = (['blue', 'green'] as const).map((c) => trafficBetween(before.colors[c], after.colors[c]));
    const sum = (k: 'requests' | 'ok' | 'serverErrors' | 'clientErrors' | 'failed') => both.reduce((s, t) => s + t[k], 0);
    expect(sum('requests')).toBe(240);
    expect(sum('ok')).toBe(220);
    expect(sum('serverErrors')).toBe(10);
    expect(sum('clientErrors')).toBe(10);
    expect(sum('failed')).toBe(0);
    for (const [i, c] of (['blue', 'green'] as const).entries()) {
      const served = answers.filter((a) => a.body === c).length;
      expect(both[i]!.requests).toBe(served);
    }
    const all = summarize({ ...both[0]!, requests: sum('requests'), ok: sum('ok'), latency: both[0]!.latency.map((n, i) => n + both[1]!.latency[i]!) });
    expect(all.p99Ms!).toBeGreaterThanOrEqual(80); // the slow ones are the top 8 %
    expect(all.p50Ms!).toBeLessThan(80);
    expect(all.successRate).toBeCloseTo(220 / 240, 5);
  });

  it('counts a colour that does not answer as failed (the switch answered 502 for it)', async () => {
    const { sw, port } = await router('down');
    const deadPort = await freePort();
    await sw.route('down', { color: 'blue', port: deadPort });
    const before = await sw.stats('down');
    for (let i = 0; i < 5; i++) expect((await get(port, '/')).status).toBe(502);
    const t = trafficBetween(before.colors.blue, (await sw.stats('down')).colors.blue);
    expect(t).toMatchObject({ requests: 5, failed: 5, ok: 0, serverErrors: 0 });
  });
});
