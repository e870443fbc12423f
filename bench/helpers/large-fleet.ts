/**
 * A large fleet repository for the planning benchmarks: N instances × M nodes built from the
 * clean corpus flows (test/fixtures/corpus/flows) with every id rewritten per instance, one
 * flow file per instance, a waves plan; and the observed fleet that matches it, except that
 * 1 % of the instances run an older version of one function node (so diff does real work).
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mergeInstanceFlows, parseFlowFile } from '../../src/core/flows.js';
import type { FlowNode, ObservedFleet } from '../../src/core/model.js';
import { PACKAGE_ROOT } from '../../src/paths.js';

export const CORPUS_DIR = join(PACKAGE_ROOT, 'test', 'fixtures', 'corpus', 'flows');

/** Clean corpus files (those that validate without errors on their own), as node lists. */
export function cleanCorpus(dir: string = CORPUS_DIR): FlowNode[][] {
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

export interface LargeFleet {
  /** The same flows as the repository, 1 % of the instances with one node changed; no revs. */
  observed: ObservedFleet;
  /** Repository-relative paths of the flow files, one per instance. */
  files: string[];
}

/** Writes fleet.yaml and flows/<instance>.json into dir (which must exist and be empty). */
export function writeLargeFleet(dir: string, options: { instances: number; nodes: number; corpus?: FlowNode[][] }): LargeFleet {
  const corpus = options.corpus ?? cleanCorpus();
  mkdirSync(join(dir, 'flows'));
  const instances: string[] = [];
  const observed: ObservedFleet = { instances: [] };
  const files: string[] = [];
  for (let i = 0; i < options.instances; i++) {
    const name = `node-${String(i).padStart(4, '0')}`;
    const flows = instanceFlows(corpus, i, options.nodes);
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

/** Whether an observed instance is one of those the generator changed. */
export function isChangedInstance(o: ObservedFleet['instances'][number]): boolean {
  return (o.flows ?? []).some((n) => n.info === 'an older revision');
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
