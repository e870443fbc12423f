/**
 * The diagrams where people see them: `tower plan --format markdown` (the text of the pull
 * request's sticky comment), the comment split into parts of at most 65,536 characters, and
 * the check run's output of at most 65,535 — every ```mermaid block in them whole, and parsed
 * by Mermaid itself (Chromium, test/helpers/mermaid.ts). The JSON contract does not change.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planCommentBodies } from '../../src/adapters/github/comment.js';
import { CHECK_OUTPUT_LIMIT, fitOutput, startedOutput } from '../../src/adapters/github/render.js';
import { COMMENT_LIMIT, splitComment } from '../../src/adapters/github/split.js';
import { bufferIo } from '../../src/commands/io.js';
import { planCommand, planReport } from '../../src/commands/plan.js';
import { decide } from '../../src/core/decide.js';
import { loadRepository } from '../../src/core/load.js';
import { DIAGRAM_LIMITS, diagramFlows } from '../../src/core/mermaid.js';
import type { FlowNode, ObservedFleet } from '../../src/core/model.js';
import { liveFromObserved } from '../../src/core/observed.js';
import { MARKDOWN_DIAGRAMS, planJson, planMarkdown, type PlanReport } from '../../src/core/render.js';
import { loadDirectory } from '../../src/repository.js';
import { memoryReader } from '../helpers/memory-repo.js';
import { startMermaid, type MermaidHarness } from '../helpers/mermaid.js';

const EXAMPLE = join(import.meta.dirname, '../../fleet-example');
const CORPUS = join(import.meta.dirname, '../fixtures/corpus/flows');
const expected = JSON.parse(readFileSync(join(import.meta.dirname, '../fixtures/corpus-expected.json'), 'utf8')) as { files: Record<string, { clean: boolean }> };
const clean = Object.keys(expected.files).filter((f) => expected.files[f]!.clean).sort();

/** The ```mermaid blocks of a Markdown text, without their fences. */
function diagrams(markdown: string): string[] {
  return [...markdown.matchAll(/^```mermaid\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

/** Every fence opened in the text is closed, and no ```mermaid block is left open. */
function fencesBalanced(markdown: string): boolean {
  return (markdown.match(/^```/gm) ?? []).length % 2 === 0;
}

/** Older versions of a fleet's flows: some nodes gone, some renamed, some new. */
function older(flows: readonly FlowNode[]): FlowNode[] {
  const out: FlowNode[] = [];
  flows.forEach((n, i) => {
    if (typeof n.z !== 'string' || n.type === 'tab') return void out.push(n);
    if (i % 7 === 2) return; // added by the change
    out.push(i % 7 === 4 ? { ...n, name: `old "${String(n.name ?? '')}" <v1>` } : n);
    if (i % 9 === 1) out.push({ id: `${n.id}-gone`, type: 'debug', z: n.z, name: 'removed by the change', wires: [] });
  });
  return out;
}

function exampleObserved(): ObservedFleet {
  const repo = loadDirectory(EXAMPLE);
  return { instances: repo.instances.map((i, k) => ({ name: i.name, flows: k < 2 ? older(i.flowList) : i.flowList, rev: k < 2 ? 'stale' : i.rev, config: i.config })) };
}

/** A fleet with one instance per clean corpus file, each running an older version. */
function corpusReport(): PlanReport {
  const files: Record<string, string> = {};
  const names = clean.map((_, i) => `i${i}`);
  files['fleet.yaml'] = [
    'apiVersion: tower.redforge.dev/v1',
    'kind: Fleet',
    'metadata: { name: corpus }',
    'spec:',
    '  instances:',
    ...clean.map((f, i) => `    - { name: ${names[i]}, port: ${3000 + i}, flows: [${JSON.stringify(`flows/${f}`)}] }`),
    '',
  ].join('\n');
  for (const f of clean) files[`flows/${f}`] = readFileSync(join(CORPUS, f), 'utf8');
  const repo = loadRepository(memoryReader(files));
  expect(repo.valid).toBe(true);
  const observed = { instances: repo.instances.map((i) => ({ name: i.name, flows: older(i.flowList) })) };
  const decision = decide({ desired: { fleet: repo.fleet!, instances: repo.instances }, mode: 'rollout', canPlan: true, live: liveFromObserved(observed), restarts: {}, now: 0 });
  return { fleet: 'corpus', revision: 'c0ffee'.repeat(7).slice(0, 40), valid: true, plan: decision.plan, instances: decision.diffs, diagnostics: [], flows: diagramFlows(decision.diffs, repo.instances, observed.instances) };
}

let mm: MermaidHarness;
let dir: string;

async function expectAllParse(texts: readonly string[]): Promise<void> {
  const parsed = await mm.parse(texts);
  parsed.forEach((p, i) => expect(p.error, `${p.error}\n${texts[i]}`).toBeUndefined());
}

describe('plans with diagrams', () => {
  beforeAll(async () => {
    mm = await startMermaid();
    dir = mkdtempSync(join(tmpdir(), 'tower-diagrams-'));
  }, 120_000);
  afterAll(async () => {
    await mm?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('tower plan --format markdown draws every changed tab; --format json does not change', async () => {
    const observed = exampleObserved();
    writeFileSync(join(dir, 'observed.json'), JSON.stringify(observed));
    const io = bufferIo();
    expect(planCommand(EXAMPLE, { observed: join(dir, 'observed.json'), format: 'markdown' }, io)).toBe(2);
    const md = io.out;
    const report = planReport(EXAMPLE, observed);
    const tabs = report.instances.filter((d) => d.action !== 'unchanged').flatMap((d) => d.containers.filter((c) => c.kind !== 'config'));
    expect(tabs.length).toBeGreaterThan(1);
    const blocks = diagrams(md);
    expect(blocks).toHaveLength(tabs.length);
    await expectAllParse(blocks);
    expect(md).toContain('🟩 added');
    // Each tab's section opens with its diagram.
    for (const c of tabs) expect(md).toContain(`<details open><summary>tab ${c.label}`);
    writeFileSync(join(dir, 'plan.md'), md);

    // The JSON contract is what it was: the diagrams' flows are not in it.
    const json = planJson(report);
    expect(Object.keys(json)).not.toContain('flows');
    expect(json).toEqual(planJson({ ...report, flows: undefined }));
    const jio = bufferIo();
    planCommand(EXAMPLE, { observed: join(dir, 'observed.json'), format: 'json' }, jio);
    expect(jio.out).not.toContain('mermaid');
    expect(JSON.parse(jio.out)).toEqual(JSON.parse(JSON.stringify(json)));
  });

  it("the README's example diagram is one Tower draws, and Mermaid takes it", async () => {
    const readme = diagrams(readFileSync(join(import.meta.dirname, '../../README.md'), 'utf8'));
    expect(readme.length).toBeGreaterThan(0);
    await expectAllParse(readme);
  });

  it('a plan without flows (an older report) still lists the nodes, and draws nothing', () => {
    const report = planReport(EXAMPLE, exampleObserved());
    const md = planMarkdown({ ...report, flows: undefined });
    expect(diagrams(md)).toEqual([]);
    expect(md).not.toContain('<details open>');
    expect(md).toMatch(/\*\*Changed\*\* \(\d+\)/);
  });

  it('a big plan: its diagrams within the budget, each whole in one comment part, each parses', async () => {
    const report = corpusReport();
    const md = planMarkdown(report);
    const blocks = diagrams(md);
    expect(blocks.length).toBe(MARKDOWN_DIAGRAMS.max);
    expect(md).toContain(`_No diagram: this plan already draws ${MARKDOWN_DIAGRAMS.max} tabs`);
    expect(blocks.reduce((n, b) => n + b.length, 0)).toBeLessThanOrEqual(MARKDOWN_DIAGRAMS.chars);
    for (const b of blocks) expect(b.length).toBeLessThanOrEqual(DIAGRAM_LIMITS.maxChars);
    expect(md.length).toBeGreaterThan(2 * COMMENT_LIMIT);
    await expectAllParse(blocks);

    const bodies = planCommentBodies('corpus', md, 'c0ffee'.repeat(7).slice(0, 40));
    expect(bodies.length).toBeGreaterThan(2);
    for (const b of bodies) {
      expect(b.length).toBeLessThanOrEqual(COMMENT_LIMIT);
      expect(fencesBalanced(b)).toBe(true);
    }
    // Not one diagram cut: the parts carry the same blocks, in order.
    expect(bodies.flatMap(diagrams)).toEqual(blocks);

    // The check run: cut to 65,535 characters before a diagram that does not fit, never inside one.
    const out = startedOutput('corpus', { revision: report.revision!, plan: report }).text;
    expect(out.length).toBeLessThanOrEqual(CHECK_OUTPUT_LIMIT);
    expect(fencesBalanced(out)).toBe(true);
    const kept = diagrams(out);
    expect(kept.length).toBeGreaterThan(0);
    expect(kept).toEqual(blocks.slice(0, kept.length));
    expect(out).toContain('**Truncated:**');
  });

  it('the split never cuts inside a ```mermaid block; a diagram larger than a part becomes a note', () => {
    const block = (n: number) => ['```mermaid', 'flowchart LR', ...Array.from({ length: n }, (_, i) => `  n${i}("node ${i}") --> n${i + 1}`), '```'].join('\n');
    const text = ['<details open><summary>tab a</summary>', '', 'intro', '', block(20), '', block(30), 'between', block(10), '', '</details>', ''].join('\n');
    expect(text.length).toBeGreaterThan(1500);
    for (const limit of [1000, 1200, 1400]) {
      const parts = splitComment(text, limit);
      expect(parts.length).toBeGreaterThan(1);
      for (const p of parts) {
        expect(p.length).toBeLessThanOrEqual(limit);
        expect(fencesBalanced(p)).toBe(true);
      }
      expect(parts.flatMap(diagrams)).toEqual(diagrams(text));
    }
    const huge = ['before', block(200), 'after', ''].join('\n');
    const parts = splitComment(huge, 2000);
    expect(parts.flatMap(diagrams)).toEqual([]);
    expect(parts.join('')).toMatch(/> A diagram of [\d,]+ characters did not fit in one comment/);
    expect(parts.join('')).toContain('after');
    // The check output: a diagram that does not fit is left out whole.
    const fitted = fitOutput(['intro', block(5), 'x'.repeat(CHECK_OUTPUT_LIMIT - 500), block(40), ''].join('\n'));
    expect(fitted.length).toBeLessThanOrEqual(CHECK_OUTPUT_LIMIT);
    expect(diagrams(fitted)).toEqual([diagrams(block(5))[0]]);
  });
});
