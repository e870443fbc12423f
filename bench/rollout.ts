/**
 * bench/rollout — what a rollout costs the traffic and how long it takes, on real Node-RED
 * processes, all measured in one run on this machine:
 *
 *  (a) HTTP, open loop: `rate` requests/s, each held `hold` ms in a function node, for a fixed
 *      window; a flow change is rolled out (1) by Tower (applyFleet, process driver, blue-green
 *      behind the built-in switch) and (2) in place by Node-RED itself (POST /flows with
 *      Node-RED-Deployment-Type: full on a plain Node-RED). Sent / ok / failed for each.
 *  (b) MQTT QoS 1 at `mqtt-rate` messages/s through the deploy gate (shared subscription on
 *      the gate's consumer broker) while Tower swaps the consumer: published / processed /
 *      lost / duplicated.
 *  (c) Tower's blue-green rollout of one instance (apply start to converged) against a bare
 *      Node-RED cold start (spawn red.js, until GET /settings answers), median of `runs`.
 *  (d) A fleet of `fleet` instances in `waves` waves (maxParallel `max-parallel`): apply from
 *      nothing, then a flow change to all of them; wall time and instances per minute.
 *
 *   npm run bench:rollout [-- --rate 100 --hold 200 --window 10 --runs 5 --fleet 12]
 *   (more options in bench/README.md: --keep-warm, --mqtt-hold, --keep-alive, --only, --verbose)
 *
 * Loopback only, ephemeral ports, private mosquitto; every process and temporary directory
 * is removed at the end (tower destroy for the fleets), also when something fails.
 */
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { NodeRedAdmin } from '../src/adapters/nodered/admin.js';
import type { RolloutEvent } from '../src/engine/events.js';
import type { RolloutResult } from '../src/engine/executor.js';
import { freePorts, helloFlow, TowerFleet, workerFlow, type ApplyRun, type FleetSpec } from './helpers/fleets.js';
import { openLoopHttp, openLoopMqtt, type HttpLoadResult, type MqttLoadResult } from './helpers/load.js';
import { httpStatus, runCleanups, sleep, startMosquitto, startPlainNodeRed, type Broker } from './helpers/procs.js';

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '100' },
    hold: { type: 'string', default: '200' },
    window: { type: 'string', default: '10' },
    'deploy-at': { type: 'string', default: '2' },
    timeout: { type: 'string', default: '5000' },
    'mqtt-rate': { type: 'string', default: '200' },
    'mqtt-window': { type: 'string', default: '10' },
    'mqtt-hold': { type: 'string', default: '0' },
    'keep-warm': { type: 'string', default: '1m' },
    runs: { type: 'string', default: '5' },
    fleet: { type: 'string', default: '12' },
    waves: { type: 'string', default: '3' },
    'max-parallel': { type: 'string', default: '4' },
    'keep-alive': { type: 'boolean', default: false },
    only: { type: 'string', default: 'a,b,c,d' },
    verbose: { type: 'boolean', default: false },
  },
});
const RATE = Number(values.rate);
const HOLD_MS = Number(values.hold);
const WINDOW_MS = Number(values.window) * 1000;
const DEPLOY_AT_MS = Number(values['deploy-at']) * 1000;
const TIMEOUT_MS = Number(values.timeout);
const MQTT_RATE = Number(values['mqtt-rate']);
const MQTT_WINDOW_MS = Number(values['mqtt-window']) * 1000;
const MQTT_HOLD_MS = Number(values['mqtt-hold']);
/** fleet.yaml defaults of every bench fleet. */
const DEFAULTS = `{ keepWarm: ${values['keep-warm']}, drainTimeout: 10s }`;
const RUNS = Number(values.runs);
const FLEET = Number(values.fleet);
const WAVES = Number(values.waves);
const MAX_PARALLEL = Number(values['max-parallel']);
const KEEP_ALIVE = values['keep-alive'];
const ONLY = new Set(values.only.split(',').map((x) => x.trim()));

const started = performance.now();
const log = (line: string): void => void process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const baseEnv = (): NodeJS.ProcessEnv => {
  const env = { ...process.env };
  delete env.MQTT_URL;
  return env;
};

/** One line per phase change and the end of each instance, when --verbose. */
function progress(label: string): (e: RolloutEvent, at: number) => void {
  return (e, at) => {
    if (!values.verbose) return;
    if (e.type === 'phase') log(`  ${label} +${at.toFixed(0)} ms ${e.instance}: ${e.phase} (${e.path})`);
    else if (e.type === 'instance-end') log(`  ${label} +${at.toFixed(0)} ms ${e.instance}: ${e.outcome}${e.error ? ` — ${e.error}` : ''}`);
    else if (e.type === 'warning') log(`  ${label} warning: ${e.message}`);
  };
}

function describeRollout(r: RolloutResult | undefined): string {
  if (!r) return 'no changes';
  if (r.ok) return 'converged';
  return `FAILED: ${r.failure?.instance}${r.failure?.phase ? ` in ${r.failure.phase}` : ''}: ${r.failure?.error}`;
}

function phases(run: ApplyRun): string {
  const inst = run.result?.instances[0];
  return inst ? inst.phases.map((p) => `${p.phase} ${p.ms}`).join(', ') : '';
}

/** When (ms after the load started) the switch moved to the new colour: the end of RESUME. */
function switchedAt(run: ApplyRun, applyStartedAt: number): number | undefined {
  const audit = run.events.find((e) => e.event.type === 'phase' && e.event.phase === 'AUDIT');
  return audit ? applyStartedAt + audit.at : undefined;
}

function summarizeFailures(r: HttpLoadResult): string {
  const reasons = Object.entries(r.reasons).map(([k, v]) => `${k} ×${v}`).join(', ');
  if (!r.failedAtMs.length) return 'none';
  return `${reasons}; fired between ${Math.min(...r.failedAtMs)} and ${Math.max(...r.failedAtMs)} ms`;
}

interface HttpScenario {
  load: HttpLoadResult;
  deployAtMs: number;
  deployMs: number;
  note: string;
}

// ---------------------------------------------------------------- (a) HTTP, Tower
async function httpTower(fleet: TowerFleet, port: number, spec: (v: string) => FleetSpec): Promise<HttpScenario> {
  fleet.write(spec('v1'));
  const first = await fleet.apply(progress('create'));
  if (!first.result?.ok) throw new Error(`creating the HTTP fleet failed: ${describeRollout(first.result)}`);
  log(`(a) Tower: web created in ${first.ms.toFixed(0)} ms; load ${RATE}/s × ${WINDOW_MS / 1000} s, hold ${HOLD_MS} ms; blue-green to v2 at ${DEPLOY_AT_MS / 1000} s`);
  await waitFor200(port, '/hello');
  const load = openLoopHttp({ port, path: '/hello', ratePerSec: RATE, windowMs: WINDOW_MS, timeoutMs: TIMEOUT_MS, keepAlive: KEEP_ALIVE, accept: (b) => /^v[12] (blue|green)$/.test(b) });
  await sleep(Math.max(0, load.t0 + DEPLOY_AT_MS - performance.now()));
  const deployAt = performance.now() - load.t0;
  fleet.write(spec('v2'));
  const run = await fleet.apply(progress('v1->v2'));
  const result = await load.done;
  const sw = switchedAt(run, deployAt);
  log(`(a) Tower: rollout ${describeRollout(run.result)} in ${run.ms.toFixed(0)} ms (${phases(run)}); switched at ${sw?.toFixed(0)} ms into the load`);
  if (!run.result?.ok) throw new Error(`the rollout under load failed: ${describeRollout(run.result)}`);
  return { load: result, deployAtMs: deployAt, deployMs: run.ms, note: `switched at ${sw?.toFixed(0) ?? '?'} ms` };
}

// ---------------------------------------------------------------- (a) HTTP, Node-RED full deploy
async function httpNative(): Promise<HttpScenario> {
  const nr = await startPlainNodeRed(helloFlow('web', 'v1', HOLD_MS));
  try {
    await waitFor200(nr.port, '/hello');
    log(`(a) Node-RED: plain Node-RED on ${nr.port}; load ${RATE}/s × ${WINDOW_MS / 1000} s; full deploy of v2 at ${DEPLOY_AT_MS / 1000} s`);
    const admin = new NodeRedAdmin({ baseUrl: nr.url, timeoutMs: 10_000 });
    const load = openLoopHttp({ port: nr.port, path: '/hello', ratePerSec: RATE, windowMs: WINDOW_MS, timeoutMs: TIMEOUT_MS, keepAlive: KEEP_ALIVE, accept: (b) => /^v[12] plain$/.test(b) });
    await sleep(Math.max(0, load.t0 + DEPLOY_AT_MS - performance.now()));
    const deployAt = performance.now() - load.t0;
    const t = performance.now();
    await admin.setFlows(helloFlow('web', 'v2', HOLD_MS), { type: 'full' });
    const deployMs = performance.now() - t;
    const result = await load.done;
    log(`(a) Node-RED: POST /flows (full) answered in ${deployMs.toFixed(0)} ms`);
    return { load: result, deployAtMs: deployAt, deployMs, note: 'POST /flows full' };
  } finally {
    await nr.stop();
  }
}

async function waitFor200(port: number, path: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if ((await httpStatus(port, path, 2_000)) === 200) return;
    await sleep(50);
  }
  throw new Error(`GET ${path} on ${port} never answered 200`);
}

// ---------------------------------------------------------------- (c) swap vs cold start
interface SwapScenario {
  coldMs: number[];
  swapMs: number[];
  swapPhases: string[];
}

async function swapVsColdStart(fleet: TowerFleet, port: number, spec: (v: string) => FleetSpec): Promise<SwapScenario> {
  const out: SwapScenario = { coldMs: [], swapMs: [], swapPhases: [] };
  for (let i = 0; i < RUNS; i++) {
    await sleep(500); // let the machine settle between measurements
    const nr = await startPlainNodeRed(helloFlow('cold', 'cold', 0));
    out.coldMs.push(nr.readyMs);
    await nr.stop();
    await sleep(500);
    const version = `v${3 + i}`;
    fleet.write(spec(version));
    const run = await fleet.apply(progress(`swap ${i + 1}`));
    if (!run.result?.ok) throw new Error(`swap ${i + 1} failed: ${describeRollout(run.result)}`);
    const body = await getBody(port, '/hello');
    if (!body.startsWith(`${version} `)) throw new Error(`after swap ${i + 1} the stable address answers "${body}", expected ${version}`);
    out.swapMs.push(run.ms);
    out.swapPhases.push(phases(run));
    log(`(c) run ${i + 1}: cold start ${nr.readyMs.toFixed(0)} ms; swap to ${version} ${run.ms.toFixed(0)} ms (${phases(run)})`);
  }
  return out;
}

async function getBody(port: number, path: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5_000) });
  return (await res.text()).trim();
}

// ---------------------------------------------------------------- (b) MQTT through the gate
interface MqttScenario {
  load: MqttLoadResult;
  deployMs: number;
  note: string;
}

async function mqttSwap(broker: Broker): Promise<MqttScenario> {
  const fleet = await TowerFleet.open('mqtt', { ...baseEnv(), MQTT_URL: broker.url });
  try {
    const [port] = await freePorts(1);
    const spec = (v: string): FleetSpec => ({
      name: 'benchmqtt',
      defaults: DEFAULTS,
      plan: '{ order: sequential }',
      instances: [{ name: 'worker', port: port!, flows: ['lib:deploy-gate', 'flows/worker.json'], files: { 'flows/worker.json': workerFlow(v, 'bench', 'bench/work', 'bench/processed', MQTT_HOLD_MS) } }],
    });
    fleet.write(spec('v1'));
    const first = await fleet.apply(progress('mqtt create'));
    if (!first.result?.ok) throw new Error(`creating the MQTT worker failed: ${describeRollout(first.result)}`);
    log(`(b) worker created in ${first.ms.toFixed(0)} ms; QoS 1 at ${MQTT_RATE}/s × ${MQTT_WINDOW_MS / 1000} s; blue-green to v2 at ${DEPLOY_AT_MS / 1000} s`);
    const load = await openLoopMqtt({ url: broker.url, topic: 'bench/work', resultsTopic: 'bench/processed', ratePerSec: MQTT_RATE, windowMs: MQTT_WINDOW_MS }, log);
    await sleep(Math.max(0, load.t0 + DEPLOY_AT_MS - performance.now()));
    fleet.write(spec('v2'));
    const run = await fleet.apply(progress('mqtt v1->v2'));
    const result = await load.done;
    log(`(b) rollout ${describeRollout(run.result)} in ${run.ms.toFixed(0)} ms (${phases(run)}); processed by colour: ${JSON.stringify(result.byColor)}`);
    if (!run.result?.ok) throw new Error(`the MQTT rollout failed: ${describeRollout(run.result)}`);
    return { load: result, deployMs: run.ms, note: `by colour ${Object.entries(result.byColor).map(([c, n]) => `${c} ${n}`).join(', ')}` };
  } finally {
    await fleet.destroy();
  }
}

// ---------------------------------------------------------------- (d) a fleet in waves
interface WavesScenario {
  createMs: number;
  changeMs: number;
  waves: number;
}

async function fleetInWaves(): Promise<WavesScenario> {
  const fleet = await TowerFleet.open('waves', baseEnv());
  try {
    const names = Array.from({ length: FLEET }, (_, i) => `n${String(i + 1).padStart(2, '0')}`);
    const ports = await freePorts(FLEET);
    const perWave = Math.ceil(FLEET / WAVES);
    const waves = Array.from({ length: WAVES }, (_, w) => names.slice(w * perWave, (w + 1) * perWave)).filter((w) => w.length);
    const spec = (v: string): FleetSpec => ({
      name: 'benchwaves',
      defaults: DEFAULTS,
      plan: `{ order: waves, waves: ${JSON.stringify(waves)}, maxParallel: ${MAX_PARALLEL} }`,
      instances: names.map((name, i) => ({
        name,
        port: ports[i]!,
        flows: [`flows/${name}.json`],
        files: { [`flows/${name}.json`]: helloFlow(name, v, 0) },
        smoke: [`{ name: says hello, http: { path: /hello, expect: { status: 200, bodyContains: "${v}" } } }`],
      })),
    });
    fleet.write(spec('v1'));
    log(`(d) ${FLEET} instances in ${waves.length} waves, maxParallel ${MAX_PARALLEL}: apply from nothing`);
    const create = await fleet.apply(progress('fleet create'));
    if (!create.result?.ok) throw new Error(`creating the fleet failed: ${describeRollout(create.result)}`);
    const wavesRun = create.events.filter((e) => e.event.type === 'wave-start').length;
    log(`(d) created in ${create.ms.toFixed(0)} ms (${wavesRun} waves)`);
    await sleep(500);
    fleet.write(spec('v2'));
    const change = await fleet.apply(progress('fleet v1->v2'));
    if (!change.result?.ok) throw new Error(`the fleet-wide change failed: ${describeRollout(change.result)}`);
    log(`(d) changed in ${change.ms.toFixed(0)} ms`);
    const bodies = await Promise.all(ports.map((p) => getBody(p, '/hello')));
    const wrong = bodies.filter((b) => !b.startsWith('v2 '));
    if (wrong.length) throw new Error(`after the change ${wrong.length} instance(s) do not answer v2: ${wrong.join(', ')}`);
    return { createMs: create.ms, changeMs: change.ms, waves: wavesRun };
  } finally {
    await fleet.destroy();
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

const yes = (b: boolean): string => (b ? 'yes' : 'NO');

interface Results {
  tower?: HttpScenario;
  native?: HttpScenario;
  mqtt?: MqttScenario;
  swaps?: SwapScenario;
  waves?: WavesScenario;
  errors: string[];
}

/** Runs one scenario; a failure is reported and recorded, and the other scenarios still run. */
async function attempt<T>(what: string, results: Results, work: () => Promise<T>): Promise<T | undefined> {
  try {
    return await work();
  } catch (err) {
    results.errors.push(`${what}: ${(err as Error).message}`);
    log(`${what} FAILED: ${(err as Error).stack ?? String(err)}`);
    return undefined;
  }
}

async function run(): Promise<Results> {
  const results: Results = { errors: [] };
  const broker = await startMosquitto();
  log(`mosquitto on ${broker.url}; scenarios ${[...ONLY].join(',')}; ${RUNS} runs for (c); node ${process.version}; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} on ${cpus().length} CPUs`);

  if (ONLY.has('a') || ONLY.has('c')) {
    // (a) and (c) share one Tower fleet: a single instance `web` behind its switch.
    const web = await TowerFleet.open('http', baseEnv());
    const [webPort] = await freePorts(1);
    const webSpec = (v: string, hold: number): FleetSpec => ({
      name: 'benchhttp',
      defaults: DEFAULTS,
      plan: '{ order: sequential }',
      instances: [{ name: 'web', port: webPort!, flows: ['flows/web.json'], files: { 'flows/web.json': helloFlow('web', v, hold) }, smoke: [`{ name: says hello, http: { path: /hello, expect: { status: 200, bodyContains: "${v}" } } }`] }],
    });
    try {
      if (ONLY.has('a')) {
        results.tower = await attempt('(a) Tower', results, () => httpTower(web, webPort!, (v) => webSpec(v, HOLD_MS)));
        const t = results.tower?.load;
        if (t) log(`(a) Tower: sent ${t.sent}, ok ${t.ok}, failed ${t.failed} (${summarizeFailures(t)}); answers ${JSON.stringify(t.bodies)}; latency p50 ${t.latencyMs.p50.toFixed(0)} p99 ${t.latencyMs.p99.toFixed(0)} max ${t.latencyMs.max.toFixed(0)} ms; max timer lag ${t.maxScheduleLagMs.toFixed(0)} ms`);
      }
      if (ONLY.has('c')) results.swaps = await attempt('(c) swap vs cold start', results, () => swapVsColdStart(web, webPort!, (v) => webSpec(v, 0)));
    } finally {
      await web.destroy();
    }
  }
  if (ONLY.has('a')) {
    results.native = await attempt('(a) Node-RED', results, () => httpNative());
    const n = results.native?.load;
    if (n) log(`(a) Node-RED: sent ${n.sent}, ok ${n.ok}, failed ${n.failed} (${summarizeFailures(n)}); answers ${JSON.stringify(n.bodies)}; latency p50 ${n.latencyMs.p50.toFixed(0)} p99 ${n.latencyMs.p99.toFixed(0)} max ${n.latencyMs.max.toFixed(0)} ms; max timer lag ${n.maxScheduleLagMs.toFixed(0)} ms`);
  }
  if (ONLY.has('b')) {
    results.mqtt = await attempt('(b) MQTT', results, () => mqttSwap(broker));
    const m = results.mqtt?.load;
    if (m) log(`(b) published ${m.published}, processed ${m.processed}, lost ${m.lost}, duplicated ${m.duplicated}, unacknowledged ${m.unacknowledged}; max timer lag ${m.maxScheduleLagMs.toFixed(0)} ms`);
  }
  if (ONLY.has('d')) results.waves = await attempt('(d) fleet in waves', results, () => fleetInWaves());
  await broker.stop();
  return results;
}

function report(r: Results): void {
  const inflight = Math.round((RATE * HOLD_MS) / 1000);
  const perMin = (ms: number) => (FLEET / (ms / 60_000)).toFixed(1);
  const rssMiB = process.resourceUsage().maxRSS / 1024;
  const fmtLoad = (l: HttpLoadResult) => `sent ${l.sent} / ok ${l.ok} / failed ${l.failed}`;
  const missing = (what: string): string[] => [what, r.errors.length ? 'ERROR (see above)' : 'not run', '', 'NO'];
  const rows: string[][] = [['measure', 'result', 'goal', 'met']];
  if (ONLY.has('a')) {
    const t = r.tower;
    rows.push(t ? ['(a) HTTP, Tower blue-green (applyFleet)', fmtLoad(t.load), '0 failed', yes(t.load.failed === 0 && t.load.sent === t.load.planned)] : missing('(a) HTTP, Tower blue-green (applyFleet)'));
    if (t) rows.push(['    rollout wall; switch', `${t.deployMs.toFixed(0)} ms, rollout started at ${t.deployAtMs.toFixed(0)} ms; ${t.note}`, '', '']);
    const n = r.native;
    rows.push(n ? ['(a) HTTP, Node-RED in place (POST /flows full)', fmtLoad(n.load), `~${inflight} failed (all in flight)`, yes(n.load.failed >= inflight / 2 && n.load.failed <= inflight * 2)] : missing('(a) HTTP, Node-RED in place (POST /flows full)'));
    if (n) rows.push(['    failures', summarizeFailures(n.load), '', '']);
  }
  if (ONLY.has('b')) {
    const m = r.mqtt;
    rows.push(
      m
        ? [`(b) MQTT QoS 1 ${MQTT_RATE}/s through the gate, Tower swap`, `published ${m.load.published} / processed ${m.load.processed} / lost ${m.load.lost} / duplicated ${m.load.duplicated}`, '0 lost', yes(m.load.lost === 0 && m.load.unacknowledged === 0)]
        : missing(`(b) MQTT QoS 1 ${MQTT_RATE}/s through the gate, Tower swap`),
    );
    if (m) rows.push(['    rollout wall; consumers', `${m.deployMs.toFixed(0)} ms; ${m.note}`, '', '']);
  }
  if (ONLY.has('c')) {
    const c = r.swaps;
    if (c && c.swapMs.length) {
      const swapMedian = median(c.swapMs);
      const coldMedian = median(c.coldMs);
      const ratio = swapMedian / coldMedian;
      rows.push(
        [`(c) swap wall, blue-green of 1 instance (median of ${c.swapMs.length})`, `${swapMedian.toFixed(0)} ms  [${c.swapMs.map((x) => x.toFixed(0)).join(', ')}]`, '', ''],
        [`(c) bare Node-RED cold start (median of ${c.coldMs.length})`, `${coldMedian.toFixed(0)} ms  [${c.coldMs.map((x) => x.toFixed(0)).join(', ')}]`, '', ''],
        ['(c) ratio swap / cold start (medians)', `${ratio.toFixed(2)}  (pairs: ${c.swapMs.map((x, i) => (x / c.coldMs[i]!).toFixed(2)).join(', ')})`, '<= 1.3', yes(ratio <= 1.3)],
      );
    } else rows.push(missing('(c) ratio swap / cold start'));
  }
  if (ONLY.has('d')) {
    const w = r.waves;
    if (w) {
      rows.push(
        [`(d) ${FLEET} instances, ${w.waves} waves, maxParallel ${MAX_PARALLEL}: from nothing`, `${(w.createMs / 1000).toFixed(1)} s = ${perMin(w.createMs)} instances/min`, '(no goal set)', '-'],
        [`(d) flow change to all ${FLEET} (blue-green)`, `${(w.changeMs / 1000).toFixed(1)} s = ${perMin(w.changeMs)} instances/min`, '(no goal set)', '-'],
      );
    } else rows.push(missing(`(d) ${FLEET} instances in waves`));
  }
  rows.push(['peak RSS of the bench process', `${rssMiB.toFixed(0)} MiB`, '', '']);

  console.log('');
  console.log(
    `bench/rollout — Node ${process.version}, ${cpus().length} CPUs, load average now ${loadavg().map((l) => l.toFixed(2)).join(' ')}; all in one run. ` +
      `HTTP: ${RATE} req/s open loop, held ${HOLD_MS} ms, ${WINDOW_MS / 1000} s, client timeout ${TIMEOUT_MS / 1000} s${KEEP_ALIVE ? ', keep-alive' : ''}; change at ${DEPLOY_AT_MS / 1000} s. keepWarm ${values['keep-warm']}.`,
  );
  console.log('');
  printTable(rows);
  if (r.swaps?.swapPhases.length) {
    console.log('');
    console.log(`(c) phases of each swap (ms): ${r.swaps.swapPhases.map((p, i) => `#${i + 1} ${p}`).join(' | ')}`);
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
  const results = await run();
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
