/**
 * bench/plan — how long Tower takes to load, validate, diff and plan a large fleet,
 * against just parsing the same files (JSON.parse + YAML.parse), measured in the same run.
 *
 * The fleet: 1,000 instances × 200 nodes, built from the clean corpus flows with every id
 * rewritten per instance. The observed fleet is the same, except that 1 % of the instances
 * run an older version of one function node (so diff does real work there).
 *
 *   npm run bench:plan [-- --instances 1000 --nodes 200 --runs 5]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { diffFleet } from '../src/core/diff.js';
import { buildPlan } from '../src/core/plan.js';
import { loadDirectory } from '../src/repository.js';
import { cleanCorpus, CORPUS_DIR, isChangedInstance, median, writeLargeFleet } from './helpers/large-fleet.js';

const { values } = parseArgs({
  options: {
    instances: { type: 'string', default: '1000' },
    nodes: { type: 'string', default: '200' },
    runs: { type: 'string', default: '5' },
    corpus: { type: 'string', default: CORPUS_DIR },
  },
});
const INSTANCES = Number(values.instances);
const NODES = Number(values.nodes);
const RUNS = Number(values.runs);

function time(fn: () => void): number {
  (globalThis as { gc?: () => void }).gc?.(); // start each measurement from a collected heap
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

const dir = mkdtempSync(join(tmpdir(), 'tower-bench-plan-'));
try {
  const corpus = cleanCorpus(values.corpus);
  process.stderr.write(`generating ${INSTANCES} instances × ${NODES} nodes from ${corpus.length} clean corpus files in ${dir} …\n`);
  const { observed, files } = writeLargeFleet(dir, { instances: INSTANCES, nodes: NODES, corpus });
  // The live fleet reports Node-RED's rev for what it runs; unchanged instances match without a node diff.
  {
    const repo = loadDirectory(dir);
    if (!repo.valid) throw new Error(`generated fleet is invalid: ${repo.diagnostics.slice(0, 3).map((d) => d.message).join('; ')}`);
    const revs = new Map(repo.instances.map((i) => [i.name, i.rev]));
    for (const o of observed.instances) if (!isChangedInstance(o)) o.rev = revs.get(o.name);
  }

  let planned = 0;
  const baseline: number[] = [];
  const tower: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    baseline.push(
      time(() => {
        YAML.parse(readFileSync(join(dir, 'fleet.yaml'), 'utf8'));
        for (const f of files) JSON.parse(readFileSync(join(dir, f), 'utf8'));
      }),
    );
    tower.push(
      time(() => {
        const repo = loadDirectory(dir);
        const diffs = diffFleet(repo.instances, observed);
        const plan = buildPlan(repo.fleet!, diffs);
        planned = plan.waves.reduce((n, w) => n + w.steps.length, 0);
      }),
    );
  }
  const b = median(baseline);
  const t = median(tower);
  const rssMiB = process.resourceUsage().maxRSS / 1024;
  const nodes = INSTANCES * NODES;
  console.log(`bench/plan: ${INSTANCES} instances × ${NODES} nodes = ${nodes} nodes, ${RUNS} runs (median)`);
  console.log(`  baseline  JSON.parse + YAML.parse of the same files   ${b.toFixed(0).padStart(7)} ms`);
  console.log(`  tower     load + validate + diff + plan              ${t.toFixed(0).padStart(7)} ms   (${planned} instances to change)`);
  console.log(`  ratio     tower / baseline                           ${(t / b).toFixed(2).padStart(7)}     (goal <= 3)`);
  console.log(`  peak RSS                                             ${rssMiB.toFixed(0).padStart(7)} MiB`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
