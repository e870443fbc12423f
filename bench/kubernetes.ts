/**
 * bench/kubernetes — Tower on the stand-in API server (in a child process: bench/helpers/
 * kube-standin-child.ts) with `instances` instances of runtime: kubernetes whose pods are ready
 * without starting Node-RED (each pod IP answers the Admin API calls from its ConfigMap):
 *
 *  (1) the rollout from nothing (`tower apply`, in this process): wall time and API requests;
 *  (2) an idle pass (`tower apply` on the converged fleet: observe, decide, nothing to do):
 *      API requests by verb — the goal is a constant number of list requests, not one per
 *      instance; wall time and Tower's CPU (this process; the API server is the child);
 *  (3) observe + plan (observeFleet, then the daemon's decide): median wall time and CPU of
 *      `runs` runs, goal ≤ 2 s for 1,000 instances. Baseline, measured in the same run: the
 *      I/O any observer must do — the three lists (Deployments, pods, Services) and one GET
 *      /flows per routed pod through the pod proxy, all at once — and the ratio to it.
 *
 *   npm run bench:kubernetes [-- --instances 1000 --parallel 64 --runs 3]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { main as towerMain } from '../src/cli.js';
import { bufferIo } from '../src/commands/io.js';
import { decide } from '../src/core/decide.js';
import { observeFleet } from '../src/engine/observe.js';
import { loadDirectory } from '../src/repository.js';
import { openRuntime } from '../src/runtime.js';
import { helloFlow } from './helpers/fleets.js';
import { median } from './helpers/large-fleet.js';
import { defer, runCleanups, tempDir } from './helpers/procs.js';

const { values } = parseArgs({ options: { instances: { type: 'string', default: '1000' }, parallel: { type: 'string', default: '64' }, runs: { type: 'string', default: '3' } } });
const N = Number(values.instances);
const PARALLEL = Number(values.parallel);
const RUNS = Number(values.runs);
const NS = 'bench';
const FLEET = 'kb';
const log = (line: string) => process.stdout.write(`${line}\n`);

interface Child {
  info: { url: string; token: string; caFile: string; kubeconfig: string };
  /** The requests the API server served since the last call, by "verb resource". */
  requests(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

async function startChild(): Promise<Child> {
  const child: ChildProcess = spawn(process.execPath, [resolve('dist/bench/helpers/kube-standin-child.js'), NS], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async (): Promise<string> => {
    const r = await lines.next();
    if (r.done) throw new Error('the stand-in child ended');
    return r.value as string;
  };
  const info = JSON.parse(await next()) as Child['info'];
  return {
    info,
    async requests() {
      child.stdin!.write('requests\n');
      return JSON.parse(await next()) as Record<string, number>;
    },
    async stop() {
      child.stdin!.write('stop\n');
      await new Promise((done) => child.once('exit', done));
    },
  };
}

function writeKubeFleet(dir: string): void {
  mkdirSync(join(dir, 'flows'), { recursive: true });
  const names = Array.from({ length: N }, (_, i) => `i${String(i + 1).padStart(4, '0')}`);
  const lines = ['apiVersion: tower.redforge.dev/v1', 'kind: Fleet', `metadata: { name: ${FLEET} }`, 'spec:', `  kubernetes: { namespace: ${NS}, access: kubeconfig }`, '  defaults: { runtime: kubernetes, keepWarm: 0s, drainTimeout: 1s, nodeRedVersion: "4.1" }', `  plan: { order: waves, waves: [[${names.join(', ')}]], maxParallel: ${PARALLEL} }`, '  limits: { instances: 5000 }', '  instances:'];
  names.forEach((name, i) => {
    writeFileSync(join(dir, 'flows', `${name}.json`), JSON.stringify(helloFlow(name, 'v1', 0)));
    lines.push(`    - { name: ${name}, flows: [flows/${name}.json], port: ${20_000 + i} }`);
  });
  writeFileSync(join(dir, 'fleet.yaml'), lines.join('\n') + '\n');
}

function summarize(requests: Record<string, number>): { total: number; list: number; proxy: number; text: string } {
  const entries = Object.entries(requests).sort((a, b) => b[1] - a[1]);
  const sum = (f: (k: string) => boolean) => entries.filter(([k]) => f(k)).reduce((a, [, v]) => a + v, 0);
  return { total: sum(() => true), list: sum((k) => k.startsWith('list ')), proxy: sum((k) => k.includes('/proxy')), text: entries.map(([k, v]) => `${k} ${v}`).join(', ') };
}

function get(child: Child, path: string, agent: https.Agent): Promise<void> {
  return new Promise((done, fail) => {
    const req = https.get(`${child.info.url}${path}`, { agent, headers: { Authorization: `Bearer ${child.info.token}` } }, (res) => {
      res.resume();
      res.once('end', () => (res.statusCode === 200 ? done() : fail(new Error(`${path}: HTTP ${res.statusCode}`))));
    });
    req.once('error', fail);
  });
}

async function main(): Promise<number> {
  log(`bench/kubernetes — ${N} instances, ${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const child = await startChild();
  defer('stop the stand-in', () => child.stop());
  const dir = tempDir('tower-bench-kube-fleet-');
  const state = tempDir('tower-bench-kube-state-');
  writeKubeFleet(dir);
  const env = { ...process.env, KUBECONFIG: child.info.kubeconfig, KUBERNETES_SERVICE_HOST: '' };
  const tower = async (...args: string[]) => {
    const io = bufferIo(env);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const code = await towerMain(args, io);
    const cpu = process.cpuUsage(cpu0);
    return { code, out: io.out, err: io.err, ms: performance.now() - t0, cpuMs: (cpu.user + cpu.system) / 1000 };
  };
  // Nothing to destroy: the stand-in's cluster (and every object Tower made there) goes with it.

  // (1) from nothing
  await child.requests();
  const first = await tower('apply', dir, '--state-dir', state);
  if (first.code !== 0) throw new Error(`tower apply failed (${first.code}): ${first.err.slice(0, 3000)}`);
  const r1 = summarize(await child.requests());
  log(`(1) rollout from nothing: ${(first.ms / 1000).toFixed(1)} s wall, ${(first.cpuMs / 1000).toFixed(1)} s CPU, ${r1.total} API requests (${(r1.total / N).toFixed(1)} per instance; ${r1.list} lists)`);

  // (2) an idle pass
  const idle = await tower('apply', dir, '--state-dir', state);
  if (idle.code !== 0) throw new Error(`idle tower apply failed (${idle.code}): ${idle.err.slice(-2000)}`);
  const r2 = summarize(await child.requests());
  log(`(2) idle pass: ${idle.ms.toFixed(0)} ms wall, ${idle.cpuMs.toFixed(0)} ms CPU; ${r2.total} API requests: ${r2.list} lists (goal: constant, not ${N}), ${r2.proxy} proxied Admin API calls (one flows read per instance)`);
  log(`    ${r2.text}`);

  // (3) observe + plan, against the baseline I/O
  const rt = await openRuntime({ stateDir: state, env });
  defer('close the runtime', () => rt.close());
  const repo = loadDirectory(dir);
  rt.useCluster!(FLEET, repo.fleet!.kubernetes);
  const agent = new https.Agent({ ca: readFileSync(child.info.caFile), keepAlive: true, maxSockets: 256 });
  defer('close the agent', () => agent.destroy());
  const base: number[] = [];
  const ours: number[] = [];
  const oursCpu: number[] = [];
  let perRun = summarize({});
  let changes = -1;
  for (let run = 0; run < RUNS; run++) {
    const t0 = performance.now();
    const lists = ['/apis/apps/v1/namespaces/bench/deployments', '/api/v1/namespaces/bench/pods', '/api/v1/namespaces/bench/services'].map((p) => `${p}?labelSelector=${encodeURIComponent(`tower.redforge.dev/fleet=${FLEET}`)}`);
    await Promise.all(lists.map((p) => get(child, p, agent)));
    const pods = (rt.registry.read(), await rt.driverFor('kubernetes').list(FLEET)).filter((c) => c.status === 'running');
    await Promise.all(pods.map((c) => get(child, `${new URL(c.url).pathname.replace(/\/$/, '')}/flows`, agent)));
    base.push(performance.now() - t0);
    await child.requests();

    const cpu0 = process.cpuUsage();
    const t1 = performance.now();
    const live = await observeFleet(rt, FLEET);
    const decision = decide({ desired: { fleet: repo.fleet!, instances: repo.instances }, mode: 'rollout', canPlan: true, live, restarts: {}, now: Date.now() });
    ours.push(performance.now() - t1);
    const cpu = process.cpuUsage(cpu0);
    oursCpu.push((cpu.user + cpu.system) / 1000);
    changes = decision.plan.waves.reduce((a, w) => a + w.steps.length, 0);
    perRun = summarize(await child.requests());
  }
  const m = median(ours);
  log(`(3) observe + plan of ${N}: median ${m.toFixed(0)} ms wall (runs: ${ours.map((x) => x.toFixed(0)).join(', ')}), ${median(oursCpu).toFixed(0)} ms CPU; goal ≤ 2000 ms — ${m <= 2000 ? 'met' : 'NOT met'}; changes planned: ${changes} (0 expected)`);
  log(`    baseline I/O (3 lists + ${N} flows reads): median ${median(base).toFixed(0)} ms; observe + plan / baseline = ${(m / median(base)).toFixed(2)}×`);
  log(`    requests of one observe: ${perRun.text}`);
  return 0;
}

main()
  .then(async (code) => {
    await runCleanups(log);
    process.exit(code);
  })
  .catch(async (err: Error) => {
    log(`bench/kubernetes failed: ${err.stack ?? err.message}`);
    await runCleanups(log);
    process.exit(1);
  });
