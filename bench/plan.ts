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
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { diffFleet } from '../src/core/diff.js';
import { mergeInstanceFlows, parseFlowFile } from '../src/core/flows.js';
import type { FlowNode, ObservedFleet } from '../src/core/model.js';
import { buildPlan } from '../src/core/plan.js';
import { PACKAGE_ROOT } from '../src/paths.js';
import { loadDirectory } from '../src/repository.js';

const { values } = parseArgs({
  options: {
    instances: { type: 'string', default: '1000' },
    nodes: { type: 'string', default: '200' },
    runs: { type: 'string', default: '5' },
    corpus: { type: 'string', default: join(PACKAGE_ROOT, 'test', 'fixtures', 'corpus', 'flows') },
  },
});
const INSTANCES = Number(values.instances);
const NODES = Number(values.nodes);
const RUNS = Number(values.runs);

/** Clean corpus files (those that validate without errors on their own), as node lists. */
function cleanCorpus(dir: string): FlowNode[][] {
  const out: FlowNode[][] = [];
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.json')).sort()) {
    const parsed = parseFlowFile(f, readFileSync(join(dir, f), 'utf8'));
    if (!parsed.flowFile || parsed.diagnostics.length) continue;
    if (mergeInstanceFlows('x', [parsed.flowFile]).diagnostics.some((d) => d.severity === 'error')) continue;
    out.push(parsed.flowFile.nodes);
  }
  return out;
}

/** Rewrites every id (and every string equal to an id, and subflow:<id> types) with a prefix. */
function rewrite(nodes: FlowNode[], prefix: string): FlowNode[] {
  const ids = new Set(nodes.map((n) => n.id));
  const map = (v: unknown): unknown => {
    if (typeof v === 'string') return ids.has(v) ? `${prefix}${v}` : v.startsWith('subflow:') && ids.has(v.slice(8)) ? `subflow:${prefix}${v.slice(8)}` : v;
    if (Array.isArray(v)) return v.map(map);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, map(x)]));
    return v;
  };
  return nodes.map((n) => map(n) as FlowNode);
}

/** Exactly `count` nodes: whole files appended, the last one cut, references to dropped nodes removed. */
function instanceFlows(corpus: FlowNode[][], index: number, count: number): FlowNode[] {
  const list: FlowNode[] = [];
  for (let k = 0; list.length < count; k++) list.push(...rewrite(corpus[(index + k) % corpus.length]!, `i${index}.${k}.`));
  const kept = list.slice(0, count);
  const ids = new Set(kept.map((n) => n.id));
  const containers = new Set(kept.filter((n) => n.type === 'tab' || n.type === 'subflow').map((n) => n.id));
  const groups = new Set(kept.filter((n) => n.type === 'group').map((n) => n.id));
  return kept
    .filter((n) => !n.type.startsWith('subflow:') || ids.has(n.type.slice(8)))
    .map((n) => {
      const c: FlowNode = { ...n };
      if (Array.isArray(c.wires)) c.wires = c.wires.map((o) => (Array.isArray(o) ? o.filter((t) => ids.has(t as string)) : o));
      if (Array.isArray(c.links)) c.links = c.links.filter((t) => ids.has(t as string));
      if (typeof c.z === 'string' && c.z !== '' && !containers.has(c.z)) c.z = '';
      if (typeof c.g === 'string' && !groups.has(c.g)) delete c.g;
      for (const key of ['in', 'out'] as const) {
        if (c.type === 'subflow' && Array.isArray(c[key])) c[key] = (c[key] as { wires?: { id: string }[] }[]).map((p) => ({ ...p, wires: (p.wires ?? []).filter((w) => ids.has(w.id) || w.id === c.id) }));
      }
      return c;
    });
}

function generate(dir: string, corpus: FlowNode[][]): { observed: ObservedFleet; files: string[] } {
  mkdirSync(join(dir, 'flows'));
  const instances: string[] = [];
  const observed: ObservedFleet = { instances: [] };
  const files: string[] = [];
  for (let i = 0; i < INSTANCES; i++) {
    const name = `node-${String(i).padStart(4, '0')}`;
    const flows = instanceFlows(corpus, i, NODES);
    const file = `flows/${name}.json`;
    writeFileSync(join(dir, file), JSON.stringify(flows, null, 2));
    files.push(file);
    instances.push(`    - name: ${name}\n      flows: [${file}]\n      port: ${10000 + i}\n      env: { INSTANCE: "${name}" }\n`);
    const live = structuredClone(flows);
    if (i % 100 === 0) {
      const fn = live.find((n) => n.type === 'function') ?? live.find((n) => n.type !== 'tab')!;
      fn.info = 'an older revision';
    }
    observed.instances.push({ name, flows: live });
  }
  const waves = Array.from({ length: 4 }, (_, w) => instances.map((_, i) => `node-${String(i).padStart(4, '0')}`).filter((_, i) => i % 4 === w));
  writeFileSync(
    join(dir, 'fleet.yaml'),
    `apiVersion: tower.redforge.dev/v1\nkind: Fleet\nmetadata: { name: bench }\nspec:\n  defaults: { runtime: process, env: { LOG_LEVEL: info } }\n  plan: { order: waves, maxParallel: 25, waves: ${JSON.stringify(waves)} }\n  instances:\n${instances.join('')}`,
  );
  return { observed, files };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

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
  const { observed, files } = generate(dir, corpus);
  // The live fleet reports Node-RED's rev for what it runs; unchanged instances match without a node diff.
  {
    const repo = loadDirectory(dir);
    if (!repo.valid) throw new Error(`generated fleet is invalid: ${repo.diagnostics.slice(0, 3).map((d) => d.message).join('; ')}`);
    const revs = new Map(repo.instances.map((i) => [i.name, i.rev]));
    for (const o of observed.instances) if (!o.flows!.some((n) => n.info === 'an older revision')) o.rev = revs.get(o.name);
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
