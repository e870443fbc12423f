/**
 * bench/cli — how fast the tower command starts and plans, each against its baseline,
 * measured in the same run, as separate processes (process start included on both sides):
 *
 *   - `tower --version` (bin/tower.js) against `node -e 0`: the floor of any Node CLI.
 *     Goal: ≤ 3×. Every command module is loaded lazily, so this is commander and paths.js.
 *   - `tower plan DIR` of a generated fleet (1,000 instances × 200 nodes; against an empty
 *     live fleet, so every instance is created and every tab listed; stdout to /dev/null)
 *     against a Node process that only parses the same files: YAML.parse of fleet.yaml and
 *     JSON.parse of every flow file (bench/helpers/bare-parse.ts). Goal: ≤ 2×.
 *
 * Runs are interleaved (baseline, tower, baseline, …) so that both sides see the same
 * machine; medians are printed, with the spread.
 *
 *   npm run bench:cli [-- --instances 1000 --nodes 200 --runs 7 --start-runs 21]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { PACKAGE_ROOT } from '../src/paths.js';
import { median, writeLargeFleet } from './helpers/large-fleet.js';

const { values } = parseArgs({
  options: {
    instances: { type: 'string', default: '1000' },
    nodes: { type: 'string', default: '200' },
    runs: { type: 'string', default: '7' },
    'start-runs': { type: 'string', default: '21' },
  },
});
const INSTANCES = Number(values.instances);
const NODES = Number(values.nodes);
const RUNS = Number(values.runs);
const START_RUNS = Number(values['start-runs']);
const GOAL_START = 3;
const GOAL_PLAN = 2;

const BIN = join(PACKAGE_ROOT, 'bin', 'tower.js');
const BARE = join(PACKAGE_ROOT, 'dist', 'bench', 'helpers', 'bare-parse.js');
const log = (line: string) => process.stderr.write(`${line}\n`);

interface Run {
  ms: number;
  status: number | null;
  stdout: string;
  stderr: string;
}

/** One process, start to exit. stdout is captured only when asked (a plan's output goes to /dev/null). */
function run(args: string[], captureStdout = true): Run {
  const t = performance.now();
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', captureStdout ? 'pipe' : 'ignore', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
  const ms = performance.now() - t;
  if (r.error) throw r.error;
  return { ms, status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

function expectStatus(what: string, r: Run, status: number): void {
  if (r.status !== status) throw new Error(`${what}: exit ${r.status}, expected ${status}\n${r.stderr.slice(0, 2000)}`);
}

/** Interleaved runs of two commands; returns the times of each. */
function pair(runs: number, a: () => Run, b: () => Run): { a: number[]; b: number[] } {
  const out = { a: [] as number[], b: [] as number[] };
  for (let i = 0; i < runs; i++) {
    out.a.push(a().ms);
    out.b.push(b().ms);
  }
  return out;
}

const fmt = (ms: number) => `${ms.toFixed(0).padStart(6)} ms`;
const spread = (xs: number[]) => `(${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`;
const met = (ok: boolean) => (ok ? 'met' : 'NOT MET');

const dir = mkdtempSync(join(tmpdir(), 'tower-bench-cli-'));
let failed = false;
try {
  log(`bench/cli: node ${process.version}; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} on ${cpus().length} CPUs`);

  // Start-up: node -e 0 against tower --version (and --help, no goal).
  const version = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const v = run([BIN, '--version']);
  expectStatus('tower --version', v, 0);
  if (v.stdout.trim() !== version) throw new Error(`tower --version printed ${JSON.stringify(v.stdout)}, expected ${version}`);
  expectStatus('tower --help', run([BIN, '--help']), 0);
  run(['-e', '0']); // warm the file cache for both sides
  const start = pair(START_RUNS, () => run(['-e', '0']), () => run([BIN, '--version']));
  const help = Array.from({ length: Math.max(3, Math.floor(START_RUNS / 3)) }, () => run([BIN, '--help']).ms);

  // Planning: bare parse against tower plan, on the same generated fleet.
  log(`generating ${INSTANCES} instances × ${NODES} nodes in ${dir} …`);
  writeLargeFleet(dir, { instances: INSTANCES, nodes: NODES });
  const counted = run([BARE, dir, '--count']);
  expectStatus('bare parse', counted, 0);
  if (Number(counted.stdout.trim()) !== INSTANCES * NODES) throw new Error(`bare parse counted ${counted.stdout.trim()} nodes, expected ${INSTANCES * NODES}`);
  const check = run([BIN, 'plan', dir]);
  expectStatus('tower plan', check, 2); // 2: changes (every instance is created)
  if (!check.stdout.includes(`+ node-${String(INSTANCES - 1).padStart(4, '0')}: create`)) throw new Error('tower plan did not plan the last instance');
  log(`timing ${RUNS} runs of each …`);
  const plan = pair(
    RUNS,
    () => run([BARE, dir], false),
    () => {
      const r = run([BIN, 'plan', dir], false);
      expectStatus('tower plan', r, 2);
      return r;
    },
  );

  const node0 = median(start.a);
  const towerV = median(start.b);
  const bare = median(plan.a);
  const towerPlan = median(plan.b);
  console.log(`bench/cli — Node ${process.version}, ${cpus().length} CPUs, load average now ${loadavg().map((l) => l.toFixed(2)).join(' ')}; medians, (min–max); all in one run`);
  console.log('');
  console.log(`start-up, ${START_RUNS} runs each`);
  console.log(`  node -e 0                                  ${fmt(node0)}  ${spread(start.a)}`);
  console.log(`  tower --version                            ${fmt(towerV)}  ${spread(start.b)}`);
  console.log(`  ratio                                      ${(towerV / node0).toFixed(2).padStart(6)} ×    goal <= ${GOAL_START}: ${met(towerV / node0 <= GOAL_START)}`);
  console.log(`  tower --help                               ${fmt(median(help))}  ${spread(help)}  (no goal)`);
  console.log('');
  console.log(`plan, ${INSTANCES} instances × ${NODES} nodes = ${INSTANCES * NODES} nodes, ${RUNS} runs each`);
  console.log(`  bare parse (YAML.parse + JSON.parse)       ${fmt(bare)}  ${spread(plan.a)}`);
  console.log(`  tower plan (against an empty live fleet)   ${fmt(towerPlan)}  ${spread(plan.b)}`);
  console.log(`  ratio                                      ${(towerPlan / bare).toFixed(2).padStart(6)} ×    goal <= ${GOAL_PLAN}: ${met(towerPlan / bare <= GOAL_PLAN)}`);
} catch (err) {
  failed = true;
  log(`bench failed: ${(err as Error).stack ?? String(err)}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exitCode = failed ? 1 : 0;
