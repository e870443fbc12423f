/**
 * bench/converge — how fast the daemon (`tower run`, a child process started from
 * bin/tower.js) follows a real bare Git repository, and what it costs while idle; all
 * measured in one run on this machine:
 *
 *  (1) commit → converged for a one-instance flow change: from `git push` returning until
 *      GET /api/v1/status shows appliedRevision == the new commit and sync Synced (read every
 *      20 ms), (a) triggered by a signed push webhook sent right after the push (daemon
 *      --interval 10m, so polling cannot help) and (b) found by polling (--interval 2s, no
 *      webhook). `runs` repetitions each: median and spread.
 *  (2) the bare swap of the same changes: the rollout's own duration as the daemon logs it
 *      ("rollout succeeded: …" carries ms). Goal: webhook ≤ swap + 1 s.
 *  (3) the daemon managing `instances` hello instances (process runtime) with the default
 *      --interval 30s: time from spawn to the first Synced, then — the daemon process only,
 *      not Node-RED, not the switches — CPU % over an idle window (utime + stime of
 *      /proc/<pid>/stat) and VmRSS (sampled every second: mean, max). Goals < 1 % CPU and
 *      < 150 MiB.
 *
 *   npm run bench:converge [-- --runs 5 --poll-interval 2s --instances 20 --idle 60]
 *   (more options in bench/README.md: --only, --cpu-prof, --verbose)
 *
 * Loopback only, ephemeral ports; every daemon is stopped, every fleet removed with
 * `tower destroy --state-dir …`, every temporary directory deleted, also when something fails.
 */
import { createHmac } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { freePorts, helloFlow, writeFleet, type FleetSpec } from './helpers/fleets.js';
import { GitRemote } from './helpers/git-remote.js';
import { sampleIdle, type IdleSample } from './helpers/proc-stats.js';
import { defer, runCleanups, sleep, tempDir } from './helpers/procs.js';
import { TowerDaemon, towerDestroy, type DaemonStatus, type LogLine } from './helpers/tower-daemon.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    'poll-interval': { type: 'string', default: '2s' },
    'status-every': { type: 'string', default: '20' },
    instances: { type: 'string', default: '20' },
    'max-parallel': { type: 'string', default: '4' },
    idle: { type: 'string', default: '60' },
    settle: { type: 'string', default: '5' },
    interval: { type: 'string', default: '30s' },
    'cpu-prof': { type: 'string' },
    only: { type: 'string', default: 'converge,idle' },
    verbose: { type: 'boolean', default: false },
  },
});
const RUNS = Number(values.runs);
const POLL_INTERVAL = values['poll-interval'];
const POLL_INTERVAL_MS = durationMs(POLL_INTERVAL);
const STATUS_EVERY_MS = Number(values['status-every']);
const INSTANCES = Number(values.instances);
const MAX_PARALLEL = Number(values['max-parallel']);
const IDLE_MS = Number(values.idle) * 1000;
const SETTLE_MS = Number(values.settle) * 1000;
const IDLE_INTERVAL = values.interval;
const ONLY = new Set(values.only.split(',').map((x) => x.trim()));
const SECRET = `bench-secret-${Math.random().toString(36).slice(2)}`;
/** fleet.yaml defaults of every bench fleet (as bench/rollout). */
const DEFAULTS = '{ keepWarm: 1m, drainTimeout: 10s }';
/** Every wait is bounded. */
const CONVERGE_TIMEOUT_MS = 60_000;
const STARTUP_TIMEOUT_MS = 5 * 60_000;
const GOAL_WEBHOOK_OVER_SWAP_MS = 1_000;
const GOAL_CPU_PERCENT = 1;
const GOAL_RSS_MIB = 150;

const started = performance.now();
const log = (line: string): void => void process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);
const verbose = (line: string): void => (values.verbose ? log(line) : undefined);
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const fmtMs = (ms: number): string => `${ms.toFixed(0)} ms`;
const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
const spread = (xs: number[]): string => `min ${Math.min(...xs).toFixed(0)} / max ${Math.max(...xs).toFixed(0)}  [${xs.map((x) => x.toFixed(0)).join(', ')}]`;

function durationMs(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text.trim());
  if (!m) throw new Error(`not a duration: ${text} (e.g. 2s, 500ms, 1m)`);
  return Number(m[1]) * { ms: 1, s: 1_000, m: 60_000 }[m[2] as 'ms' | 's' | 'm'];
}

/** The daemon sees none of the caller's Tower, broker, database, Redis or Git credentials settings. */
function baseEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) {
    if (k.startsWith('TOWER_') || ['MQTT_URL', 'REDIS_URL', 'DATABASE_URL', 'DOCKER_HOST', 'GITHUB_WEBHOOK_SECRET', 'GIT_TOKEN', 'GIT_TOKEN_FILE', 'GIT_SSH_KEY_FILE'].includes(k)) delete env[k];
  }
  return env;
}

/**
 * A state directory whose fleet is removed with `tower destroy`: by destroy(), or by the
 * cleanups (which stop the daemons registered after it first).
 */
function stateDir(label: string): { dir: string; destroy: () => Promise<void> } {
  const dir = tempDir(`tower-bench-${label}-state-`);
  const destroy = defer(`tower destroy --state-dir ${dir}`, async () => {
    const out = await towerDestroy(dir, baseEnv());
    log(`tower destroy (${label}): ${out || 'done'}`);
  });
  return { dir, destroy };
}

const converged = (revision: string) => (s: DaemonStatus) => s.appliedRevision === revision && s.sync === 'Synced';

async function helloBody(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/hello`, { signal: AbortSignal.timeout(5_000) });
  return (await res.text()).trim();
}

// ---------------------------------------------------------------- (1) + (2) commit → converged
interface ConvergeRun {
  version: string;
  revision: string;
  /** git push returned → status Synced on the revision. */
  convergeMs: number;
  /** The rollout as the daemon logs it ("rollout succeeded", ms). */
  swapMs: number;
  /** git push returned → "rollout started" logged (detection, fetch, checkout, load, observe, diff, plan). */
  toRolloutStartMs: number;
  /** "rollout succeeded" logged → Synced read (the confirming pass + status read granularity). */
  afterRolloutMs: number;
  /** The webhook POST's round trip (webhook runs only). */
  webhookMs?: number;
  phases: string;
  statusPolls: number;
}

interface ConvergeScenario {
  webhook: ConvergeRun[];
  polling: ConvergeRun[];
}

/** Fills `out` run by run, so that what was measured before a failure is still reported. */
async function convergeScenario(out: ConvergeScenario): Promise<void> {
  const remote = await GitRemote.create('converge');
  const { dir: state, destroy } = stateDir('converge');
  const [port] = await freePorts(1);
  const spec = (v: string): FleetSpec => ({
    name: 'benchconverge',
    defaults: DEFAULTS,
    plan: '{ order: sequential }',
    instances: [{ name: 'web', port: port!, flows: ['flows/web.json'], files: { 'flows/web.json': helloFlow('web', v, 0) }, smoke: [`{ name: says hello, http: { path: /hello, expect: { status: 200, bodyContains: "${v} " } } }`] }],
  });
  writeFleet(remote.dir, spec('v0'));
  let head = await remote.commit('web says v0');
  await remote.push();

  let version = 0;
  const oneChange = async (d: TowerDaemon, mode: 'webhook' | 'polling', i: number): Promise<ConvergeRun> => {
    // A random pause, as wide as the poll interval: the push lands at a random phase of the poll timer.
    await sleep(500 + Math.random() * POLL_INTERVAL_MS);
    const v = `v${++version}`;
    writeFleet(remote.dir, spec(v));
    const before = head;
    const revision = await remote.commit(`web says ${v}`);
    head = revision;
    const mark = d.logs.length;
    await remote.push();
    const t0 = performance.now();
    const pushedAt = Date.now();
    let webhookMs: number | undefined;
    if (mode === 'webhook') {
      const payload = JSON.stringify({ ref: 'refs/heads/main', before, after: revision, repository: { full_name: 'bench/fleet' }, pusher: { name: 'bench' }, head_commit: { message: `web says ${v}` }, deleted: false, forced: false });
      const signature = 'sha256=' + createHmac('sha256', SECRET).update(payload).digest('hex');
      const res = await fetch(`${d.url}hooks/github`, {
        method: 'POST',
        body: payload,
        headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': `bench-${mode}-${i}-${revision.slice(0, 8)}`, 'x-hub-signature-256': signature },
        signal: AbortSignal.timeout(5_000),
      });
      const body = await res.text();
      webhookMs = performance.now() - t0;
      if (res.status !== 202 || !body.includes('"queued":true')) throw new Error(`the webhook answered ${res.status} ${body}`);
    }
    const wait = await d.waitForStatus(converged(revision), `${v} (${revision.slice(0, 12)}) to converge`, CONVERGE_TIMEOUT_MS, STATUS_EVERY_MS);
    const convergeMs = wait.at - t0;
    const short = revision.slice(0, 12);
    const ofThis = (l: LogLine) => l.revision === short;
    const succeeded = await d.waitForLog((l) => ofThis(l) && l.msg.startsWith('rollout succeeded'), `rollout succeeded of ${short}`, 5_000, mark);
    const rolloutStarted = d.logs.slice(mark).find((l) => ofThis(l) && l.msg === 'rollout started');
    // Each phase from its log line to the next one (the last until "rollout succeeded"); repeats merged.
    const phaseLines = d.logs.slice(mark).filter((l) => ofThis(l) && l.instance === 'web' && typeof l.phase === 'string');
    const phaseMs: [string, number][] = [];
    phaseLines.forEach((l, k) => {
      const ms = (phaseLines[k + 1]?.time ?? succeeded.time) - l.time;
      const last = phaseMs.at(-1);
      if (last && last[0] === l.phase) last[1] += ms;
      else phaseMs.push([l.phase!, ms]);
    });
    const phases = phaseMs.map(([p, ms]) => `${p} ${ms}`).join(', ');
    const body = await helloBody(port!);
    if (!body.startsWith(`${v} `)) throw new Error(`after ${v} converged the stable address answers "${body}"`);
    const run: ConvergeRun = {
      version: v,
      revision,
      convergeMs,
      swapMs: Number(succeeded.ms),
      toRolloutStartMs: rolloutStarted ? rolloutStarted.time - pushedAt : NaN,
      afterRolloutMs: convergeMs - (succeeded.time - pushedAt),
      ...(webhookMs !== undefined ? { webhookMs } : {}),
      phases,
      statusPolls: wait.polls,
    };
    log(
      `(1${mode === 'webhook' ? 'a' : 'b'}) run ${i + 1}: ${v} converged ${fmtMs(run.convergeMs)} after the push (rollout started +${fmtMs(run.toRolloutStartMs)}, swap ${fmtMs(run.swapMs)}, Synced ${fmtMs(run.afterRolloutMs)} after it` +
        `${webhookMs !== undefined ? `; webhook answered in ${fmtMs(webhookMs)}` : ''}); phases: ${phases}`,
    );
    return run;
  };

  // (a) webhook: --interval 10m, so only the webhook can trigger the pass.
  try {
    const hooked = await TowerDaemon.start('webhook', ['--repo', remote.bare, '--state-dir', state, '--interval', '10m'], { ...baseEnv(), TOWER_WEBHOOK_SECRET: SECRET });
    try {
      log(`(1a) tower run --interval 10m (pid ${hooked.pid}) on ${hooked.url}; waiting for the first revision`);
      const first = await hooked.waitForStatus(converged(head), 'the first revision', STARTUP_TIMEOUT_MS, 100);
      log(`(1a) first revision Synced ${fmtMs(first.at - hooked.spawnedAt)} after spawn; ${RUNS} changes, each pushed then announced by a signed webhook`);
      for (let i = 0; i < RUNS; i++) out.webhook.push(await oneChange(hooked, 'webhook', i));
    } finally {
      await hooked.stop();
    }

    // (b) polling: --interval 2s, no webhook secret; the same state dir (it adopts the running fleet).
    const polled = await TowerDaemon.start('polling', ['--repo', remote.bare, '--state-dir', state, '--interval', POLL_INTERVAL], baseEnv());
    try {
      log(`(1b) tower run --interval ${POLL_INTERVAL} (pid ${polled.pid}), no webhook; waiting until it has adopted the fleet`);
      await polled.waitForStatus(converged(head), 'the adopted revision', STARTUP_TIMEOUT_MS, 100);
      for (let i = 0; i < RUNS; i++) out.polling.push(await oneChange(polled, 'polling', i));
    } finally {
      await polled.stop();
    }
  } finally {
    await destroy();
  }
}

// ---------------------------------------------------------------- (3) idle daemon, N instances
interface IdleScenario {
  startupMs: number;
  urlMs: number;
  rolloutMs: number;
  waves: number;
  sample: IdleSample;
  passes: number;
  passSeconds: number;
  pid: number;
}

/** tower_reconcile_duration_seconds: count and sum over all results. */
function reconcileTotals(metrics: string): { count: number; sum: number } {
  let count = 0;
  let sum = 0;
  for (const line of metrics.split('\n')) {
    const m = /^tower_reconcile_duration_seconds_(count|sum)(?:\{[^}]*\})?\s+([0-9.eE+-]+)$/.exec(line);
    if (!m) continue;
    if (m[1] === 'count') count += Number(m[2]);
    else sum += Number(m[2]);
  }
  return { count, sum };
}

async function idleScenario(): Promise<IdleScenario> {
  const remote = await GitRemote.create('idle');
  const { dir: state, destroy } = stateDir('idle');
  const names = Array.from({ length: INSTANCES }, (_, i) => `n${String(i + 1).padStart(2, '0')}`);
  const ports = await freePorts(INSTANCES);
  const waves: string[][] = [];
  for (let i = 0; i < names.length; i += MAX_PARALLEL) waves.push(names.slice(i, i + MAX_PARALLEL));
  const spec: FleetSpec = {
    name: 'benchidle',
    defaults: DEFAULTS,
    plan: `{ order: waves, waves: ${JSON.stringify(waves)}, maxParallel: ${MAX_PARALLEL} }`,
    instances: names.map((name, i) => ({
      name,
      port: ports[i]!,
      flows: [`flows/${name}.json`],
      files: { [`flows/${name}.json`]: helloFlow(name, 'idle', 0) },
      smoke: ['{ name: says hello, http: { path: /hello, expect: { status: 200, bodyContains: "idle " } } }'],
    })),
  };
  writeFleet(remote.dir, spec);
  const revision = await remote.commit(`${INSTANCES} hello instances`);
  await remote.push();

  const profDir = values['cpu-prof'] ? resolve(values['cpu-prof']) : undefined;
  const d = await TowerDaemon.start('idle', ['--repo', remote.bare, '--state-dir', state, '--interval', IDLE_INTERVAL], baseEnv(), profDir ? { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profDir] } : {});
  const urlMs = performance.now() - d.spawnedAt;
  try {
    log(`(3) tower run --interval ${IDLE_INTERVAL} (pid ${d.pid}) with ${INSTANCES} instances in ${waves.length} waves of ≤ ${MAX_PARALLEL}; waiting for the first Synced (at most ${STARTUP_TIMEOUT_MS / 1000} s)`);
    const healthy = (s: DaemonStatus) => converged(revision)(s) && s.instances.length === INSTANCES && s.instances.every((x) => x.health === 'Healthy');
    const first = await d.waitForStatus(healthy, `${INSTANCES} instances Synced`, STARTUP_TIMEOUT_MS, 100);
    const startupMs = first.at - d.spawnedAt;
    const succeeded = d.logs.find((l) => l.revision === revision.slice(0, 12) && l.msg.startsWith('rollout succeeded'));
    log(`(3) Synced ${(startupMs / 1000).toFixed(1)} s after spawn (status URL after ${fmtMs(urlMs)}, rollout ${fmtMs(Number(succeeded?.ms ?? NaN))}); settling ${SETTLE_MS / 1000} s, then measuring the idle daemon for ${IDLE_MS / 1000} s`);
    const bodies = await Promise.all(ports.map((p) => helloBody(p).catch((e: Error) => e.message)));
    const wrong = bodies.filter((b) => !b.startsWith('idle '));
    if (wrong.length) throw new Error(`${wrong.length} instance(s) do not answer: ${wrong.slice(0, 3).join('; ')}`);
    await sleep(SETTLE_MS);
    // The metrics are read outside the window, so the reads cost the window nothing.
    const m0 = reconcileTotals(await d.get('/metrics'));
    const sample = await sampleIdle(d.pid, IDLE_MS);
    const m1 = reconcileTotals(await d.get('/metrics'));
    const after = await d.status();
    if (!converged(revision)(after)) throw new Error(`the fleet left Synced during the idle window: ${after.sync}, ${after.lastError ?? ''}`);
    const passes = m1.count - m0.count;
    log(
      `(3) idle: CPU ${sample.cpuSeconds.toFixed(2)} s over ${(sample.windowMs / 1000).toFixed(1)} s = ${sample.cpuPercent.toFixed(2)} %; ${passes} pass(es) taking ${(m1.sum - m0.sum).toFixed(2)} s wall; ` +
        `RSS mean ${mib(sample.rssMeanBytes)}, max ${mib(sample.rssMaxBytes)} (${sample.rssSamples} samples)`,
    );
    verbose(`(3) CPU % per second: ${sample.perSecondPercent.map((x) => x.toFixed(1)).join(' ')}`);
    return { startupMs, urlMs, rolloutMs: Number(succeeded?.ms ?? NaN), waves: waves.length, sample, passes, passSeconds: m1.sum - m0.sum, pid: d.pid };
  } finally {
    await d.stop();
    if (profDir) log(`(3) CPU profile of the daemon written to ${profDir}`);
    await destroy();
  }
}

// ---------------------------------------------------------------- the run
function row(cells: string[], widths: number[]): string {
  return cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
}

function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  console.log(row(rows[0]!, widths));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows.slice(1)) console.log(row(r, widths));
}

const met = (b: boolean): string => (b ? 'met' : 'NOT MET');

interface Results {
  converge?: ConvergeScenario;
  idle?: IdleScenario;
  errors: string[];
}

async function attempt<T>(what: string, results: Results, work: () => Promise<T>): Promise<T | undefined> {
  try {
    return await work();
  } catch (err) {
    results.errors.push(`${what}: ${(err as Error).message}`);
    log(`${what} FAILED: ${(err as Error).stack ?? String(err)}`);
    return undefined;
  }
}

function report(r: Results): void {
  const rows: string[][] = [['measure', 'result', 'goal', 'met']];
  const missing = (what: string, goal = ''): string[] => [what, r.errors.length ? 'ERROR (see below)' : 'not run', goal, goal ? 'NOT MET' : ''];
  if (ONLY.has('converge')) {
    const c = r.converge;
    const w = c?.webhook ?? [];
    const p = c?.polling ?? [];
    const swaps = w.map((x) => x.swapMs);
    if (w.length) {
      const wm = median(w.map((x) => x.convergeMs));
      const sm = median(swaps);
      rows.push(
        [`(1a) commit → converged, webhook (--interval 10m), median of ${w.length}`, `${fmtMs(wm)}  (${spread(w.map((x) => x.convergeMs))})`, '', ''],
        ['     push → rollout started; rollout → Synced (medians)', `${fmtMs(median(w.map((x) => x.toRolloutStartMs)))}; ${fmtMs(median(w.map((x) => x.afterRolloutMs)))}`, '', ''],
        [`(2)  swap: the same rollouts as the daemon logs them, median of ${w.length}`, `${fmtMs(sm)}  (${spread(swaps)})`, '', ''],
        ['(1a) vs (2): webhook median − swap median', `${fmtMs(wm - sm)}  (per change: ${w.map((x) => (x.convergeMs - x.swapMs).toFixed(0)).join(', ')})`, `webhook ≤ swap + 1 s`, met(wm <= sm + GOAL_WEBHOOK_OVER_SWAP_MS)],
      );
    } else rows.push(missing('(1a)/(2) webhook vs swap', 'webhook ≤ swap + 1 s'));
    if (p.length) {
      rows.push(
        [`(1b) commit → converged, polling --interval ${POLL_INTERVAL}, median of ${p.length}`, `${fmtMs(median(p.map((x) => x.convergeMs)))}  (${spread(p.map((x) => x.convergeMs))})`, `(no goal; ≈ swap + U(0, ${POLL_INTERVAL}·1.1))`, '-'],
        ['     push → rollout started; swap; rollout → Synced (medians)', `${fmtMs(median(p.map((x) => x.toRolloutStartMs)))}; ${fmtMs(median(p.map((x) => x.swapMs)))}; ${fmtMs(median(p.map((x) => x.afterRolloutMs)))}`, '', ''],
      );
    } else rows.push(missing(`(1b) polling --interval ${POLL_INTERVAL}`));
  }
  if (ONLY.has('idle')) {
    const i = r.idle;
    if (i) {
      rows.push(
        [`(3) startup: spawn → first Synced, ${INSTANCES} instances (${i.waves} waves ≤ ${MAX_PARALLEL})`, `${(i.startupMs / 1000).toFixed(1)} s  (status URL ${fmtMs(i.urlMs)}, rollout ${(i.rolloutMs / 1000).toFixed(1)} s)`, '(no goal set)', '-'],
        [`(3) idle CPU of the daemon, ${(i.sample.windowMs / 1000).toFixed(0)} s window, --interval ${IDLE_INTERVAL}`, `${i.sample.cpuPercent.toFixed(2)} %  (${i.sample.cpuSeconds.toFixed(2)} s CPU; ${i.passes} pass(es), ${i.passSeconds.toFixed(2)} s wall)`, `< ${GOAL_CPU_PERCENT} %`, met(i.sample.cpuPercent < GOAL_CPU_PERCENT)],
        [`(3) idle RSS of the daemon (VmRSS, ${i.sample.rssSamples} samples)`, `mean ${mib(i.sample.rssMeanBytes)}, max ${mib(i.sample.rssMaxBytes)}`, `< ${GOAL_RSS_MIB} MiB`, met(i.sample.rssMaxBytes < GOAL_RSS_MIB * 1024 * 1024)],
      );
    } else {
      rows.push(missing(`(3) idle CPU, ${INSTANCES} instances`, `< ${GOAL_CPU_PERCENT} %`), missing(`(3) idle RSS, ${INSTANCES} instances`, `< ${GOAL_RSS_MIB} MiB`));
    }
  }
  console.log('');
  console.log(
    `bench/converge — Node ${process.version}, ${cpus().length} CPUs, load average now ${loadavg().map((l) => l.toFixed(2)).join(' ')}; all in one run. ` +
      `Daemon: bin/tower.js run on a bare Git repository; status read every ${STATUS_EVERY_MS} ms; ${RUNS} changes per trigger.`,
  );
  console.log('');
  printTable(rows);
  const c = r.converge;
  if (c?.webhook.length || c?.polling.length) {
    console.log('');
    for (const [label, runs] of [['(1a) webhook', c.webhook], ['(1b) polling', c.polling]] as const) {
      for (const x of runs) console.log(`${label} ${x.version} ${x.revision.slice(0, 12)}: converged ${x.convergeMs.toFixed(0)} = rollout started +${x.toRolloutStartMs.toFixed(0)}, swap ${x.swapMs.toFixed(0)} (${x.phases}), Synced +${x.afterRolloutMs.toFixed(0)}`);
    }
  }
  for (const e of r.errors) console.log(`ERROR ${e}`);
}

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true;
    log(`${signal}: cleaning up`);
    void runCleanups(log).finally(() => process.exit(130));
  });
}

let failed = false;
try {
  const results: Results = { errors: [] };
  log(`bench/converge: node ${process.version}; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} on ${cpus().length} CPUs; scenarios ${[...ONLY].join(',')}`);
  if (ONLY.has('converge')) {
    results.converge = { webhook: [], polling: [] };
    await attempt('(1)/(2) commit → converged', results, () => convergeScenario(results.converge!));
  }
  if (ONLY.has('idle')) results.idle = await attempt(`(3) idle daemon with ${INSTANCES} instances`, results, () => idleScenario());
  report(results);
  failed = results.errors.length > 0;
} catch (err) {
  failed = true;
  log(`bench failed: ${(err as Error).stack ?? String(err)}`);
} finally {
  if (!interrupted) {
    log('cleaning up');
    await runCleanups(log);
    log('done');
  }
}
process.exitCode = failed ? 1 : 0;
