/**
 * bench/repair — how long the stable address of an instance is down after `kill -9` of the
 * Node-RED colour that serves it, with the daemon (`tower run`, a child process, --interval
 * 1h so that no poll helps: the driver notices the exit) repairing it. Measured from the
 * kill until GET /hello through the stable address answers 200 (polled every 10 ms):
 *
 *  (a) no warm standby — the colour is started again from what it ran. Baseline, in the same
 *      run: a bare Node-RED's cold start (spawn → GET /settings 200). Goal ≤ cold start + 1 s.
 *  (b) a warm standby on the same rev and config (parked, running) — the switch routes to it
 *      at once and the dead colour is started again as the new standby. Goal ≤ 2 s.
 *      The standby is made by Tower's own code (InstanceActions.startColor + park, the
 *      engine's action handlers), as a failover leaves one.
 *
 * Each kill is an instance's first (no restart backoff yet): `--instances N` per case (default 3).
 *
 *   npm run bench:repair [-- --instances 3]
 */
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { InstanceActions } from '../src/engine/actions.js';
import { observeFleet } from '../src/engine/observe.js';
import { loadDirectory } from '../src/repository.js';
import { openRuntime } from '../src/runtime.js';
import { freePorts, helloFlow, writeFleet } from './helpers/fleets.js';
import { median } from './helpers/large-fleet.js';
import { defer, httpStatus, runCleanups, sleep, startPlainNodeRed, tempDir } from './helpers/procs.js';
import { TowerDaemon, towerDestroy } from './helpers/tower-daemon.js';

const { values } = parseArgs({ options: { instances: { type: 'string', default: '3' } } });
const N = Number(values.instances);
const log = (line: string) => process.stdout.write(`${line}\n`);

async function untilServing(port: number, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    if ((await httpStatus(port, '/hello', 1_000)) === 200) return performance.now() - t0;
    await sleep(10);
  }
  throw new Error(`127.0.0.1:${port} did not answer within ${timeoutMs} ms`);
}

function pidOf(stateDir: string, instance: string, color: string): number {
  return (JSON.parse(readFileSync(join(stateDir, 'instances', instance, color, 'colour.json'), 'utf8')) as { pid: number }).pid;
}

async function main(): Promise<number> {
  log(`bench/repair — ${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const cold: number[] = [];
  for (let i = 0; i < N; i++) {
    const nr = await startPlainNodeRed(helloFlow('base', 'base', 0));
    cold.push(nr.readyMs);
    await nr.stop();
  }

  const dir = tempDir('tower-bench-repair-');
  const stateDir = tempDir('tower-bench-repair-state-');
  const names = [...Array.from({ length: N }, (_, i) => `plain-${i + 1}`), ...Array.from({ length: N }, (_, i) => `spare-${i + 1}`)];
  const ports = await freePorts(names.length);
  writeFleet(dir, {
    name: 'repair',
    defaults: '{ keepWarm: 10m, drainTimeout: 2s }',
    plan: '{ order: waves, waves: [[' + names.join(', ') + ']], maxParallel: 2 }',
    instances: names.map((name, i) => ({ name, port: ports[i]!, flows: [`flows/${name}.json`], files: { [`flows/${name}.json`]: helloFlow(name, name, 0) } })),
  });
  defer('tower destroy', () => towerDestroy(stateDir, process.env).then(() => undefined));
  const daemon = await TowerDaemon.start('repair', ['--repo', dir, '--state-dir', stateDir, '--interval', '1h'], process.env);
  await daemon.waitForStatus((s) => s.sync === 'Synced' && s.instances.length === names.length, 'the fleet to converge', 180_000, 100);

  // Warm standbys on the same rev for the spare-* instances, made by the engine's own handlers.
  const rt = await openRuntime({ stateDir, env: process.env });
  defer('close the runtime', () => rt.close());
  const repo = loadDirectory(dir);
  const live = await observeFleet(rt, 'repair');
  for (const name of names.filter((n) => n.startsWith('spare-'))) {
    const l = live.find((x) => x.name === name)!;
    const other = l.switch!.routed === 'blue' ? 'green' : 'blue';
    const actions = new InstanceActions(name, repo.instances.find((d) => d.name === name), l, { fleet: 'repair', desiredFleet: repo.fleet!, runtime: rt, secretsEnv: process.env, now: () => new Date(), onEvent: () => {} }, other);
    await actions.startColor(other);
    actions.park(other, Date.now() + 10 * 60_000);
  }

  const measure = async (name: string): Promise<number> => {
    const s = await daemon.status();
    const color = s.instances.find((i) => i.name === name)!.color!;
    const port = ports[names.indexOf(name)]!;
    process.kill(pidOf(stateDir, name, color), 'SIGKILL');
    const ms = await untilServing(port, 60_000);
    // Repaired and idle again: for a failover, the dead colour runs again as the new standby.
    const spare = name.startsWith('spare-');
    await daemon.waitForStatus((x) => x.sync === 'Synced' && (!spare || Boolean(x.instances.find((i) => i.name === name)?.standby)), `${name} to be repaired`, 60_000, 100);
    await sleep(500);
    return ms;
  };
  const plain: number[] = [];
  const spare: number[] = [];
  for (const name of names) (name.startsWith('plain-') ? plain : spare).push(await measure(name));
  const failovers = daemon.logs.filter((l) => l.msg.startsWith('repaired spare-') && l.repair === 'failover').length;

  const coldMs = median(cold);
  const rows: [string, string, string, string][] = [
    ['bare Node-RED cold start (baseline)', fmt(cold), '—', ''],
    ['kill -9 → serving, no standby (restart)', fmt(plain), `≤ cold + 1 s = ${(coldMs + 1000).toFixed(0)} ms`, median(plain) <= coldMs + 1000 ? 'met' : 'MISSED'],
    ['kill -9 → serving, warm standby same rev', fmt(spare), '≤ 2000 ms', median(spare) <= 2000 ? 'met' : 'MISSED'],
  ];
  log('');
  for (const [what, figure, goal, verdict] of rows) log(`${what.padEnd(44)} ${figure.padEnd(34)} ${goal.padEnd(26)} ${verdict}`);
  log(`ratio to the cold start: restart ${(median(plain) / coldMs).toFixed(2)}×, failover ${(median(spare) / coldMs).toFixed(2)}×; failovers logged: ${failovers} of ${N}`);
  return failovers === N ? 0 : 1;
}

function fmt(xs: number[]): string {
  return `median ${median(xs).toFixed(0)} ms (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  log(`bench/repair failed: ${(err as Error).stack ?? err}`);
} finally {
  await runCleanups(log);
}
process.exit(code);
