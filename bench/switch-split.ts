/**
 * bench/switch-split — the built-in switch's weighted split and per-colour accounting.
 *
 *  (a) weight error: a router process splits new connections between two upstreams at
 *      5, 10, 25, 50 and 90 %; the share the canary answered over `--requests` requests per
 *      weight, and its error in points (goal ≤ 3).
 *  (b) accounting overhead: three router processes in front of the same upstream, one counting
 *      (outcome + latency histogram per colour), two with accounting off — the baseline, and
 *      the noise between two equal routers — in the same run. Requests one at a time on a
 *      keep-alive connection, interleaved request by request; per round the p50 and p99 of each,
 *      reported as medians over the rounds, and the difference at p99 (goal < 50 µs, or within
 *      the noise floor). Also the cost of the recording itself, timed in batches of 10,000.
 *
 *   npm run bench:switch-split [-- --requests 2000 --samples 3000 --rounds 7]
 */
import { fork, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startRouter } from '../src/switch-router/router.js';
import { Accounting } from '../src/switch-router/split.js';

const log = (line: string) => process.stdout.write(`${line}\n`);
const SELF = fileURLToPath(import.meta.url);

/** Child roles: an upstream answering its name on a port, or a router with accounting on or off. */
async function child(role: string, arg: string): Promise<void> {
  if (role === 'upstream') {
    const server = http.createServer((_req, res) => res.end(arg));
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    process.send!({ port: (server.address() as AddressInfo).port });
  } else {
    const [port, accounting] = arg.split(':');
    const router = await startRouter({ instance: 'bench', listenPort: 0, active: { color: 'blue', port: Number(port) }, accounting: accounting === 'on' });
    process.send!({ port: router.listenPort, controlPort: router.controlPort, token: router.token });
  }
  process.on('disconnect', () => process.exit(0));
}

interface Started { proc: ChildProcess; port: number; controlPort?: number; token?: string }

function start(role: string, arg: string): Promise<Started> {
  const proc = fork(SELF, ['--role', role, '--arg', arg], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    proc.once('message', (m: Omit<Started, 'proc'>) => resolve({ proc, ...m }));
    proc.once('exit', (code) => reject(new Error(`${role} exited (${code})`)));
  });
}

function request(port: number, agent: http.Agent | false, options: { method?: string; path?: string; body?: string; headers?: Record<string, string> } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, agent, method: options.method ?? 'GET', path: options.path ?? '/', headers: options.headers ?? {}, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(options.body);
  });
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { requests: { type: 'string', default: '2000' }, samples: { type: 'string', default: '3000' }, rounds: { type: 'string', default: '7' }, role: { type: 'string' }, arg: { type: 'string' } } });
  if (values.role) return child(values.role, values.arg ?? '').then(() => -1);
  const N = Number(values.requests);
  const SAMPLES = Number(values.samples);
  const ROUNDS = Number(values.rounds);
  log(`bench/switch-split — ${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const children: ChildProcess[] = [];
  try {
    const [blue, green] = await Promise.all([start('upstream', 'blue'), start('upstream', 'green')]);
    children.push(blue.proc, green.proc);
    const [counting, plain, plainToo] = await Promise.all([start('router', `${blue.port}:on`), start('router', `${blue.port}:off`), start('router', `${blue.port}:off`)]);
    children.push(counting.proc, plain.proc, plainToo.proc);

    log(`\n(a) weight error: ${N} requests per weight, a new connection each, 16 at a time`);
    log('    weight   canary answered   measured   error (goal ≤ 3 points)');
    let worst = 0;
    for (const weight of [5, 10, 25, 50, 90]) {
      const split = JSON.stringify({ upstreams: [{ color: 'blue', port: blue.port, weight: 100 - weight }, { color: 'green', port: green.port, weight }] });
      await request(counting.controlPort!, false, { method: 'POST', path: '/split', body: split, headers: { authorization: `Bearer ${counting.token}`, 'content-type': 'application/json' } });
      let next = 0;
      let greens = 0;
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (next < N) {
          next += 1;
          if ((await request(counting.port, false)) === 'green') greens += 1;
        }
      }));
      const measured = (100 * greens) / N;
      worst = Math.max(worst, Math.abs(measured - weight));
      log(`    ${String(weight).padStart(4)} %   ${String(greens).padStart(6)}/${N}       ${measured.toFixed(2).padStart(6)} %   ${Math.abs(measured - weight).toFixed(2)}`);
    }
    await request(counting.controlPort!, false, { method: 'POST', path: '/split', body: '{"upstreams":null}', headers: { authorization: `Bearer ${counting.token}`, 'content-type': 'application/json' } });

    log(`\n(b) accounting overhead: ${ROUNDS} rounds of ${SAMPLES} requests through each of three routers, one request at a time, keep-alive, interleaved`);
    const routers = [counting, plain, plainToo];
    const agents = routers.map(() => new http.Agent({ keepAlive: true, maxSockets: 1 }));
    for (let i = 0; i < 600; i++) await request(routers[i % 3]!.port, agents[i % 3]!); // warm-up
    const rounds: { on: number[]; off: number[]; offToo: number[] }[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const times: number[][] = [[], [], []];
      for (let i = 0; i < SAMPLES * 3; i++) {
        const which = (i + round) % 3; // the order rotates, so no router always goes first
        const t0 = performance.now();
        await request(routers[which]!.port, agents[which]!);
        times[which]!.push((performance.now() - t0) * 1000);
      }
      const [on, off, offToo] = times.map((t) => [...t].sort((a, b) => a - b)) as [number[], number[], number[]];
      rounds.push({ on, off, offToo });
    }
    agents.forEach((a) => a.destroy());
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const p99 = (k: 'on' | 'off' | 'offToo') => med(rounds.map((r) => quantile(r[k], 0.99)));
    const p50 = (k: 'on' | 'off' | 'offToo') => med(rounds.map((r) => quantile(r[k], 0.5)));
    log('                                       p50 µs   p99 µs   (medians over the rounds)');
    log(`    accounting off                    ${p50('off').toFixed(0).padStart(6)}   ${p99('off').toFixed(0).padStart(6)}   (baseline)`);
    log(`    accounting off, a second router   ${p50('offToo').toFixed(0).padStart(6)}   ${p99('offToo').toFixed(0).padStart(6)}   (the noise between two equal routers)`);
    log(`    accounting on                     ${p50('on').toFixed(0).padStart(6)}   ${p99('on').toFixed(0).padStart(6)}`);
    const addedP99 = med(rounds.map((r) => quantile(r.on, 0.99) - quantile(r.off, 0.99)));
    const noiseP99 = med(rounds.map((r) => Math.abs(quantile(r.offToo, 0.99) - quantile(r.off, 0.99))));
    log(`    added at p99: ${addedP99.toFixed(1)} µs (goal < 50 µs), median over rounds; two routers without accounting differ by ${noiseP99.toFixed(1)} µs at p99 (the noise floor)`);
    log(`    added at p50: ${med(rounds.map((r) => quantile(r.on, 0.5) - quantile(r.off, 0.5))).toFixed(1)} µs`);

    const accounting = new Accounting('bench');
    const perCall: number[] = [];
    for (let batch = 0; batch < 200; batch++) {
      const t0 = performance.now();
      for (let i = 0; i < 10_000; i++) {
        const started = performance.now();
        accounting.record(i % 2 ? 'blue' : 'green', { status: i % 50 ? 200 : 500 }, performance.now() - started + (i % 100));
      }
      perCall.push(((performance.now() - t0) * 1000) / 10_000);
    }
    perCall.sort((a, b) => a - b);
    log(`    the recording itself (two clock reads + one histogram update): ${quantile(perCall, 0.5).toFixed(3)} µs per request at p50 of 200 batches, ${quantile(perCall, 0.99).toFixed(3)} µs at p99`);
    // An end-to-end difference inside the noise between two equal routers cannot be told from zero.
    const ok = worst <= 3 && (addedP99 < 50 || addedP99 <= noiseP99);
    log(`\n${ok ? 'OK' : 'MISSED'}: worst weight error ${worst.toFixed(2)} points; accounting adds ${addedP99.toFixed(1)} µs at p99 (noise floor ${noiseP99.toFixed(1)} µs); the recording itself ${quantile(perCall, 0.99).toFixed(2)} µs at p99`);
    return ok ? 0 : 1;
  } finally {
    for (const c of children) c.kill('SIGTERM');
  }
}

main().then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: Error) => {
    process.stderr.write(`${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
