/**
 * bench/hostile-load — the attacks of issue 10 replayed against a real daemon (`tower run`, a
 * child process on a directory fleet of `--instances` instances), from raw TCP clients in this
 * process. The fleet first asks every instance for a secret that is not set (the preflight
 * failure that used to make a 2 MB status; its size now is printed), then references a
 * missing flow file from every instance, the first 150 under an 800-character path: an
 * invalid revision whose status shows 100 long diagnostics and counts the rest — the largest
 * status a fleet that runs nothing can make now, and the one the event streams below carry.
 * Then:
 *
 *  (a) slow unauthenticated webhook uploads: `--uploads` senders (default 80), each declaring
 *      a body (every other one 25 MB, the rest 1 MB) with a well-formed but wrong signature
 *      and trickling 1 KB every 200 ms; whatever answers (503, 408) or closes them, they
 *      reconnect. Meanwhile a genuine signed push every second. Goal ≤ +100 MiB RSS.
 *  (b) forged 25 MB uploads at full speed: `--forged` senders (default 16) sending the whole
 *      body with a wrong signature, again and again. No goal in the issue; the unverified
 *      byte budget (64 MiB) is what bounds it.
 *  (c) `--streams` event streams (default 2,000) opened at once and read; the status changes
 *      twice a second (signed webhook pushes trigger passes). Goal ≤ +200 MiB RSS and /healthz
 *      p99 < 100 ms.
 *  (d) `--idle` event-stream clients (default 200) that never read, with the same large,
 *      changing status, for `--idle-seconds` (default 50: the daemon drops a client that is
 *      behind for 30 s). /healthz must keep answering.
 *
 * Before, during and after each: the daemon's RSS (VmRSS of /proc/<pid>/status, every 100 ms)
 * and GET /healthz latency (from a worker thread: a new connection every 25 ms, 5 s timeout).
 * Bounded: every phase ends on time whatever the daemon does; the whole run takes about four
 * minutes.
 *
 *   npm run bench:hostile [-- --instances 2000 --uploads 80 --forged 16 --streams 2000 --idle 200]
 */
import { createHmac } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { connect, type Socket } from 'node:net';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { parseArgs } from 'node:util';
import { rssBytes } from './helpers/proc-stats.js';
import { runCleanups, sleep, tempDir } from './helpers/procs.js';
import { TowerDaemon } from './helpers/tower-daemon.js';

const { values } = parseArgs({
  options: {
    instances: { type: 'string', default: '2000' },
    uploads: { type: 'string', default: '80' },
    forged: { type: 'string', default: '16' },
    streams: { type: 'string', default: '2000' },
    idle: { type: 'string', default: '200' },
    'idle-seconds': { type: 'string', default: '50' },
  },
});
const INSTANCES = Number(values.instances);
const UPLOADS = Number(values.uploads);
const FORGED = Number(values.forged);
const STREAMS = Number(values.streams);
const IDLE = Number(values.idle);
const IDLE_SECONDS = Number(values['idle-seconds']);
const MiB = 1024 * 1024;
const SECRET = 'hostile-load-bench-secret';
const log = (line: string) => process.stdout.write(`${line}\n`);
const note = (line: string) => process.stderr.write(`${line}\n`);

/**
 * The bench's fleet, two ways: `missing-secret` — every instance asks for a secret that is not
 * set (preflight fails, nothing starts); `missing-flows` — every instance references a flow
 * file that does not exist, under a long path (an invalid revision, a long diagnostic each).
 */
function writeHostileFleet(dir: string, n: number, how: 'missing-secret' | 'missing-flows'): void {
  mkdirSync(join(dir, 'flows'), { recursive: true });
  writeFileSync(join(dir, 'flows', 'hello.json'), JSON.stringify([{ id: 'hello-tab', type: 'tab', label: 'hello' }, { id: 'hello-fn', type: 'function', z: 'hello-tab', name: 'hello', func: 'return msg;', outputs: 1, x: 100, y: 40, wires: [[]] }], null, 2));
  // fleet.yaml may have 1 MiB: the first 150 instances get the long paths (the status shows 100 diagnostics).
  const deep = Array.from({ length: 4 }, (_, i) => `${'very-long-directory-name-'.repeat(8)}${i}`).join('/');
  const lines = ['apiVersion: tower.redforge.dev/v1', 'kind: Fleet', 'metadata: { name: hostile }', 'spec:', '  plan: { order: sequential }', '  instances:'];
  for (let i = 0; i < n; i++) {
    const name = `hostile-load-instance-${String(i).padStart(5, '0')}`;
    lines.push(`    - name: ${name}`, `      port: ${20_000 + i}`);
    if (how === 'missing-secret') lines.push('      flows: [flows/hello.json]', `      env: { API_KEY: { fromEnv: HOSTILE_MISSING_KEY_${i} } }`);
    else lines.push(`      flows: [flows/${i < 150 ? `${deep}/` : ''}${name}.json]`);
  }
  writeFileSync(join(dir, 'fleet.yaml'), `${lines.join('\n')}\n`);
}

// ---- measuring ------------------------------------------------------------------------------

interface Sample {
  at: number;
  value: number;
}

/** Epoch milliseconds, sub-millisecond: the same clock in the main thread and the probe's worker. */
const now = () => performance.timeOrigin + performance.now();

/**
 * GET /healthz back to back (one every 25 ms at most, a new connection each), in a worker
 * thread of its own: the attackers' sockets in the main thread must not delay the probe and
 * count as the daemon's latency.
 */
const HEALTHZ_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const now = () => performance.timeOrigin + performance.now();
let running = true;
parentPort.on('message', (m) => { if (m === 'stop') running = false; });
const once = () => new Promise((resolve) => {
  const req = http.get({ host: '127.0.0.1', port: workerData.port, path: '/healthz', agent: false, timeout: 5000 }, (res) => {
    res.resume();
    res.on('end', () => resolve(res.statusCode === 200));
    res.on('error', () => resolve(false));
  });
  req.on('timeout', () => req.destroy());
  req.on('error', () => resolve(false));
});
(async () => {
  while (running) {
    const at = now();
    const ok = await once();
    const ms = now() - at;
    parentPort.postMessage({ at, value: ms, ok });
    await new Promise((r) => setTimeout(r, Math.max(0, 25 - ms)));
  }
  parentPort.postMessage('done');
})();
`;

/** Samples the daemon's RSS every 100 ms and /healthz (in a worker) until stopped. */
class Probe {
  readonly rss: Sample[] = [];
  readonly healthz: (Sample & { ok: boolean })[] = [];
  private running = true;
  private readonly rssLoop: Promise<void>;
  private readonly worker: Worker;
  private readonly workerDone: Promise<void>;

  constructor(pid: number, port: number) {
    this.rssLoop = (async () => {
      while (this.running) {
        try {
          this.rss.push({ at: now(), value: rssBytes(pid) });
        } catch {
          return; // the daemon is gone
        }
        await sleep(100);
      }
    })();
    this.worker = new Worker(HEALTHZ_WORKER, { eval: true, workerData: { port } });
    this.workerDone = new Promise((resolve) => {
      this.worker.on('message', (m: (Sample & { ok: boolean }) | 'done') => (m === 'done' ? resolve() : this.healthz.push(m)));
      this.worker.once('error', () => resolve());
      this.worker.once('exit', () => resolve());
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    this.worker.postMessage('stop');
    await Promise.race([this.workerDone, sleep(6_000)]);
    await this.worker.terminate();
    await this.rssLoop;
  }

  window(from: number, to: number): { rssMax: number; rssMedian: number; p50: number; p99: number; max: number; n: number; failed: number } {
    const rss = this.rss.filter((s) => s.at >= from && s.at <= to).map((s) => s.value);
    const h = this.healthz.filter((s) => s.at >= from && s.at <= to);
    const ms = h.map((s) => s.value).sort((a, b) => a - b);
    const q = (p: number) => ms[Math.min(ms.length - 1, Math.floor(ms.length * p))] ?? NaN;
    return { rssMax: Math.max(...rss), rssMedian: quantile(rss, 0.5), p50: q(0.5), p99: q(0.99), max: ms.at(-1) ?? NaN, n: h.length, failed: h.filter((s) => !s.ok).length };
  }
}

function quantile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))] ?? NaN;
}

// ---- attackers ------------------------------------------------------------------------------

const sockets = new Set<Socket>();
function open(port: number): Socket {
  const s = connect(port, '127.0.0.1');
  sockets.add(s);
  s.on('error', () => {});
  s.on('close', () => sockets.delete(s));
  return s;
}

/** The status code of the first response line that arrives on s (undefined if it closes first). */
function statusOf(s: Socket, onStatus: (code: number | undefined) => void): void {
  let head = '';
  let done = false;
  const finish = (code: number | undefined) => {
    if (done) return;
    done = true;
    onStatus(code);
  };
  s.on('data', (chunk: Buffer) => {
    if (done || head.length > 200) return;
    head += chunk.toString('latin1');
    const m = /^HTTP\/1\.1 (\d{3})/.exec(head);
    if (m) finish(Number(m[1]));
  });
  s.on('close', () => finish(undefined));
}

const FAKE_SIGNATURE = `sha256=${'0'.repeat(64)}`;
const webhookHead = (port: number, length: number) => `POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\nX-GitHub-Event: push\r\nX-Hub-Signature-256: ${FAKE_SIGNATURE}\r\n\r\n`;

/** Senders that keep a webhook upload trickling (or, forged, streaming at full speed) until stopped; counts the answers. */
function uploaders(port: number, n: number, mode: 'slow' | 'forged'): { stop(): void; answers: Map<string, number> } {
  const answers = new Map<string, number>();
  let running = true;
  const chunk = Buffer.alloc(mode === 'slow' ? 1024 : 256 * 1024, 0x7b);
  const one = (i: number) => {
    if (!running) return;
    // Slow senders declare 25 MB (every other one) or 1 MB: the byte budget stops the first, the count the second.
    const BODY = mode === 'slow' && i % 2 ? 1000 * 1000 : 25 * 1000 * 1000;
    const s = open(port);
    let sent = 0;
    let timer: NodeJS.Timeout | undefined;
    statusOf(s, (code) => {
      answers.set(String(code ?? 'closed'), (answers.get(String(code ?? 'closed')) ?? 0) + 1);
      clearInterval(timer);
      s.destroy();
      setTimeout(() => one(i), 100);
    });
    s.once('connect', () => {
      s.write(webhookHead(port, BODY));
      if (mode === 'slow') {
        timer = setInterval(() => {
          if (s.destroyed || sent >= BODY) return clearInterval(timer);
          s.write(chunk);
          sent += chunk.length;
        }, 200);
      } else {
        const pump = () => {
          while (!s.destroyed && sent < BODY) {
            const n = Math.min(chunk.length, BODY - sent);
            sent += n;
            if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void s.once('drain', pump);
          }
        };
        pump();
      }
    });
  };
  for (let i = 0; i < n; i++) one(i);
  return {
    answers,
    stop: () => {
      running = false;
    },
  };
}

/** Opens n event streams in batches; each is read (and discarded) unless `read` is false. */
async function eventStreams(port: number, n: number, read: boolean): Promise<{ open: Socket[]; refused: number; other: number }> {
  const out = { open: [] as Socket[], refused: 0, other: 0 };
  const pending: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    const s = open(port);
    pending.push(
      new Promise<void>((resolve) => {
        statusOf(s, (code) => {
          if (code === 200) {
            out.open.push(s);
            if (!read) s.pause();
          } else {
            if (code === 503) out.refused++;
            else out.other++;
            s.destroy();
          }
          resolve();
        });
        if (read) s.on('data', () => {});
        s.once('connect', () => s.write(`GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`));
        setTimeout(() => {
          if (!out.open.includes(s)) s.destroy();
        }, 15_000);
      }),
    );
    if (i % 100 === 99) await sleep(50); // the listen backlog is 511
  }
  await Promise.all(pending);
  return out;
}

/** A signed push: the daemon runs a pass (and the status changes). */
function signedPush(port: number): Promise<number | undefined> {
  const body = JSON.stringify({ ref: 'refs/heads/main', before: '0'.repeat(40), after: 'a'.repeat(40), repository: { full_name: 'bench/hostile' }, deleted: false, forced: false });
  const signature = `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`;
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/hooks/github', method: 'POST', agent: false, timeout: 5_000, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-github-event': 'push', 'x-hub-signature-256': signature } }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
    req.end(body);
  });
}

/** Pushes every everyMs until stopped; counts the answers. */
function pusher(port: number, everyMs: number): { stop(): void; answers: Map<string, number> } {
  const answers = new Map<string, number>();
  let running = true;
  void (async () => {
    while (running) {
      const code = await signedPush(port);
      answers.set(String(code ?? 'failed'), (answers.get(String(code ?? 'failed')) ?? 0) + 1);
      await sleep(everyMs);
    }
  })();
  return {
    answers,
    stop: () => {
      running = false;
    },
  };
}

// ---- the run --------------------------------------------------------------------------------

interface PhaseResult {
  name: string;
  before: ReturnType<Probe['window']>;
  during: ReturnType<Probe['window']>;
  after: ReturnType<Probe['window']>;
  detail: string;
  rssGoalMiB?: number;
  p99GoalMs?: number;
}

async function phase(probe: Probe, name: string, seconds: number, run: (signal: { stopAt: number }) => Promise<string>): Promise<PhaseResult> {
  note(`\n== ${name}`);
  const b0 = now();
  await sleep(4_000);
  const d0 = now();
  const detail = await run({ stopAt: d0 + seconds * 1000 });
  const d1 = now();
  await sleep(6_000);
  const a1 = now();
  const r = { name, before: probe.window(b0, d0), during: probe.window(d0, d1), after: probe.window(d1 + 1_000, a1), detail };
  note(`   ${detail}`);
  return r;
}

const mib = (b: number) => `${(b / MiB).toFixed(0)} MiB`;
const ms = (x: number) => (Number.isFinite(x) ? `${x.toFixed(1)} ms` : '—');

async function main(): Promise<number> {
  log(`bench/hostile-load — ${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}; ${INSTANCES} instances, ${UPLOADS} slow uploads, ${FORGED} forged uploads, ${STREAMS} event streams, ${IDLE} idle readers for ${IDLE_SECONDS} s`);
  const dir = tempDir('tower-bench-hostile-');
  const stateDir = tempDir('tower-bench-hostile-state-');
  writeHostileFleet(dir, INSTANCES, 'missing-secret');
  const daemon = await TowerDaemon.start('hostile', ['--repo', dir, '--state-dir', stateDir, '--interval', '1h'], { ...process.env, TOWER_WEBHOOK_SECRET: SECRET }, { timeoutMs: 60_000 });
  const port = Number(new URL(daemon.url).port);
  const failed = await daemon.waitForStatus((s) => Boolean(s.lastError?.includes('HOSTILE_MISSING_KEY')), `the preflight failure of ${INSTANCES} instances`, 120_000, 500);
  const failedBytes = Buffer.byteLength(await daemon.get('/api/v1/status', 30_000));
  log(`daemon pid ${daemon.pid}; ${INSTANCES} instances missing a secret: status ${(failedBytes / 1024).toFixed(1)} KiB (lastError ${failed.status.lastError!.length} characters, ${failed.status.lastError!.split('\n').length} lines)`);
  writeHostileFleet(dir, INSTANCES, 'missing-flows');
  await daemon.waitForStatus((s) => (s as { reason?: string }).reason === 'InvalidRevision', 'the invalid revision', 120_000, 500);
  const statusBytes = Buffer.byteLength(await daemon.get('/api/v1/status', 30_000));
  log(`${INSTANCES} instances referencing missing flow files: status ${(statusBytes / 1024).toFixed(1)} KiB (the first 100 of ${INSTANCES} diagnostics) — the status the event streams carry`);

  const probe = new Probe(daemon.pid, port);
  const results: PhaseResult[] = [];
  try {
    results.push(
      await phase(probe, `(a) ${UPLOADS} slow unauthenticated webhook uploads, 25 s`, 25, async ({ stopAt }) => {
        const up = uploaders(port, UPLOADS, 'slow');
        const legit = pusher(port, 1_000);
        await sleep(stopAt - now());
        up.stop();
        legit.stop();
        for (const s of sockets) s.destroy();
        return `answers to the uploads: ${fmtCounts(up.answers)}; signed pushes meanwhile: ${fmtCounts(legit.answers)}`;
      }),
    );
    results[0]!.rssGoalMiB = 100;
    results.push(
      await phase(probe, `(b) ${FORGED} forged 25 MB uploads at full speed, 15 s`, 15, async ({ stopAt }) => {
        const up = uploaders(port, FORGED, 'forged');
        await sleep(stopAt - now());
        up.stop();
        for (const s of sockets) s.destroy();
        return `answers: ${fmtCounts(up.answers)}`;
      }),
    );
    results.push(
      await phase(probe, `(c) ${STREAMS} event streams, read, the status changing twice a second, 20 s`, 20, async ({ stopAt }) => {
        const changes = pusher(port, 500);
        const s = await eventStreams(port, STREAMS, true);
        await sleep(stopAt - now());
        changes.stop();
        const open = s.open.filter((x) => !x.destroyed).length;
        for (const x of s.open) x.destroy();
        return `streams: ${s.open.length} opened, ${s.refused} refused (503), ${s.other} other; ${open} still open at the end; pushes: ${fmtCounts(changes.answers)}`;
      }),
    );
    results[2]!.rssGoalMiB = 200;
    results[2]!.p99GoalMs = 100;
    results.push(
      await phase(probe, `(d) ${IDLE} event-stream clients that never read, the status changing twice a second, ${IDLE_SECONDS} s`, IDLE_SECONDS, async ({ stopAt }) => {
        const changes = pusher(port, 500);
        const s = await eventStreams(port, IDLE, false);
        await sleep(stopAt - now());
        changes.stop();
        // A dropped client finds the end of its stream once it reads again; one still served does not.
        let closed = 0;
        await Promise.all(
          s.open.map(
            (x) =>
              new Promise<void>((resolve) => {
                if (x.destroyed) return resolve();
                const t = setTimeout(() => resolve(), 8_000);
                x.once('close', () => {
                  closed++;
                  clearTimeout(t);
                  resolve();
                });
                x.on('data', () => {});
                x.resume();
              }),
          ),
        );
        for (const x of s.open) x.destroy();
        return `clients: ${s.open.length} opened, ${s.refused} refused; dropped by the daemon: ${closed} of ${s.open.length}; pushes: ${fmtCounts(changes.answers)}`;
      }),
    );
    results[3]!.p99GoalMs = 100;
  } finally {
    for (const s of sockets) s.destroy();
    await probe.stop();
  }

  const peak = Math.max(...probe.rss.map((s) => s.value));
  log('');
  log(`${'phase'.padEnd(80)} ${'RSS before'.padStart(11)} ${'peak'.padStart(9)} ${'+peak'.padStart(9)} ${'after'.padStart(9)}   ${'/healthz p99 before / during / after (max during; failed)'.padEnd(58)} goal`);
  let missed = 0;
  for (const r of results) {
    const grow = r.during.rssMax - r.before.rssMedian;
    const goals: string[] = [];
    if (r.rssGoalMiB !== undefined) {
      const ok = grow <= r.rssGoalMiB * MiB;
      if (!ok) missed++;
      goals.push(`+peak ≤ ${r.rssGoalMiB} MiB ${ok ? 'met' : 'MISSED'}`);
    }
    if (r.p99GoalMs !== undefined) {
      const ok = r.during.p99 < r.p99GoalMs && r.during.failed === 0;
      if (!ok) missed++;
      goals.push(`p99 < ${r.p99GoalMs} ms ${ok ? 'met' : 'MISSED'}`);
    }
    const h = `${ms(r.before.p99)} / ${ms(r.during.p99)} / ${ms(r.after.p99)} (${ms(r.during.max)}; ${r.during.failed} of ${r.during.n})`;
    log(`${r.name.padEnd(80)} ${mib(r.before.rssMedian).padStart(11)} ${mib(r.during.rssMax).padStart(9)} ${`+${mib(grow)}`.padStart(9)} ${mib(r.after.rssMedian).padStart(9)}   ${h.padEnd(58)} ${goals.join('; ') || '—'}`);
  }
  log(`peak RSS of the daemon over the run: ${mib(peak)}`);
  for (const r of results) log(`${r.name}: ${r.detail}`);
  if (daemon.exited) {
    log(`the daemon exited during the run:\n${daemon.stderr().slice(-2000)}`);
    return 1;
  }
  return missed ? 1 : 0;
}

function fmtCounts(m: Map<string, number>): string {
  return [...m.entries()].sort().map(([k, v]) => `${v}× ${k}`).join(', ') || 'none';
}

let code = 1;
try {
  code = await main();
} catch (err) {
  log(`bench/hostile-load failed: ${(err as Error).stack ?? err}`);
} finally {
  for (const s of sockets) s.destroy();
  await runCleanups(log);
}
process.exit(code);
