import { describe, expect, it } from 'vitest';
import { diffFleet } from '../../src/core/diff.js';
import { loadRepository } from '../../src/core/load.js';
import type { FlowNode } from '../../src/core/model.js';
import { buildPlan } from '../../src/core/plan.js';
import { MARKDOWN_NODES_PER_LIST, planJson, planMarkdown, planText, type PlanReport } from '../../src/core/render.js';
import { memoryReader } from '../helpers/memory-repo.js';

function tab(id: string, nodes: number, func = 'return msg;'): FlowNode[] {
  return [
    { id, type: 'tab', label: `Tab ${id}` },
    ...Array.from({ length: nodes }, (_, i) => ({ id: `${id}.n${i}`, type: 'function', z: id, name: `step ${i}`, func, x: i, y: 0, wires: [] })),
  ];
}

function report(desired: Record<string, FlowNode[]>, live?: Record<string, FlowNode[]>): PlanReport {
  const names = Object.keys(desired);
  const files: Record<string, string> = {
    'fleet.yaml': `apiVersion: tower.redforge.dev/v1\nkind: Fleet\nmetadata: { name: demo }\nspec:\n  plan: { order: waves, waves: [[${names.join(', ')}]] }\n  instances:\n${names
      .map((n, i) => `    - name: ${n}\n      flows: [flows/${n}.json]\n      port: ${3000 + i}\n`)
      .join('')}`,
  };
  for (const n of names) files[`flows/${n}.json`] = JSON.stringify(desired[n]);
  const repo = loadRepository(memoryReader(files));
  expect(repo.diagnostics).toEqual([]);
  const instances = diffFleet(repo.instances, live ? { instances: Object.entries(live).map(([name, flows]) => ({ name, flows })) } : undefined);
  return { fleet: 'demo', revision: '0123456789abcdef0123', valid: true, plan: buildPlan(repo.fleet!, instances), instances, diagnostics: [] };
}

describe('plan rendering', () => {
  const r = report({ ingest: tab('a', 2, 'return 1;'), query: tab('q', 1) }, { ingest: tab('a', 3), query: tab('q', 1) });

  it('text', () => {
    expect(planText(r)).toMatchInlineSnapshot(`
      "Fleet demo at 0123456789ab
      Plan inline (waves, maxParallel 4, on failure rollback-all) from fleet.yaml (inline)

      Wave 1:
        ~ ingest: update (blue-green) — 0 added, 1 removed, 2 changed nodes, 1 tab  (first wave)
            tab Tab a — 0 added, 1 removed, 2 changed
              - function "step 2" (a.n2)
              ~ function "step 0" (a.n0): func
              ~ function "step 1" (a.n1): func

      Unchanged: query

      1 instance to change in 1 wave.
      "
    `);
  });

  it('json carries the public contract', () => {
    const j = planJson(r) as { waves: { index: number; steps: { instance: string; action: string }[] }[]; unchanged: string[]; hasChanges: boolean };
    expect(j.waves).toMatchObject([{ index: 0, steps: [{ instance: 'ingest', action: 'update' }] }]);
    expect(j.unchanged).toEqual(['query']);
    expect(j.hasChanges).toBe(true);
  });

  it('markdown: a summary table, then per instance and per tab in collapsible sections', () => {
    const md = planMarkdown(r);
    expect(md).toContain('| 1 | `ingest` | ~ update (blue-green) | 0 / 1 / 2 | first wave |');
    expect(md).toContain('<details><summary><b>ingest</b>');
    expect(md).toContain('<details><summary>tab Tab a — 0 added, 1 removed, 2 changed</summary>');
    expect(md).toContain('- function "step 0" (a.n0): func');
    expect(md.match(/<details>/g)!.length).toBe(md.match(/<\/details>/g)!.length);
  });

  it('markdown stays readable for a 1,000-node change', () => {
    const big = report({ ingest: tab('a', 1000, 'return 2;') }, { ingest: tab('a', 1000) });
    const md = planMarkdown(big);
    expect(big.instances[0]!.counts.changed).toBe(1000);
    expect(md).toContain(`… and ${1000 - MARKDOWN_NODES_PER_LIST} more`);
    expect(md.length).toBeLessThan(10_000);
    expect(md.split('\n').filter((l) => l.startsWith('- ')).length).toBe(MARKDOWN_NODES_PER_LIST + 1);
  });

  it('markdown of an invalid revision lists the errors with file:line', () => {
    const md = planMarkdown({
      fleet: 'demo',
      valid: false,
      instances: [],
      diagnostics: [{ severity: 'error', code: 'DanglingWire', file: 'flows/a.json', line: 3, col: 5, message: 'inject "n1" output 1 is wired to node "zz" | which does not exist', hint: 'remove the wire' }],
    });
    expect(md).toContain(':x: **1 validation error**');
    expect(md).toContain('| `flows/a.json:3:5` | inject "n1" output 1 is wired to node "zz" \\| which does not exist<br>_remove the wire_ |');
  });
});
