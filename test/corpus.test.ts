/**
 * The whole corpus of real flow exports (../shared/corpus) as a test. Expected findings come
 * from test/fixtures/corpus-expected.json, computed independently of this code base.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { diffFlows } from '../src/core/diff.js';
import { parseFlowFile } from '../src/core/flows.js';
import { loadRepository } from '../src/core/load.js';
import type { FlowNode } from '../src/core/model.js';
import { memoryReader, oneInstanceFleet } from './helpers/memory-repo.js';

const CORPUS = join(import.meta.dirname, 'fixtures/corpus/flows');
const expected = JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures/corpus-expected.json'), 'utf8')) as {
  files: Record<string, { clean: boolean; findings: { code: string; nodeId: string; ref: string | null }[] }>;
};
const expectedDiffs = JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures/corpus-diff-expected.json'), 'utf8')) as {
  pairs: {
    old: string;
    new: string;
    added: { id: string }[];
    removed: { id: string }[];
    changed: { id: string; properties: string[] }[];
  }[];
};

const files = readdirSync(CORPUS).filter((f) => f.endsWith('.json')).sort();
const read = (f: string) => readFileSync(join(CORPUS, f), 'utf8');
const nodes = (f: string) => parseFlowFile(f, read(f)).flowFile!.nodes;

describe('corpus', () => {
  it('has the 60 files the fixtures describe', () => {
    expect(files).toHaveLength(60);
    expect(Object.keys(expected.files).sort()).toEqual(files);
  });

  it.each(files)('%s validates as a one-instance fleet exactly as expected', (file) => {
    const repo = loadRepository(memoryReader(oneInstanceFleet({ [`flows/${file}`]: read(file) })));
    const want = expected.files[file]!;
    const errors = repo.diagnostics.filter((d) => d.severity === 'error');
    expect(errors.every((d) => d.file === `flows/${file}` && d.line > 0 && d.col > 0)).toBe(true);
    expect(repo.valid).toBe(want.clean);
    // Each expected finding is reported with its node id and the missing reference in the message.
    const got = errors.map((d) => ({ code: d.code, nodeId: d.nodeId })).sort((a, b) => `${a.code}${a.nodeId}`.localeCompare(`${b.code}${b.nodeId}`));
    const wanted = want.findings.map((f) => ({ code: f.code, nodeId: f.nodeId })).sort((a, b) => `${a.code}${a.nodeId}`.localeCompare(`${b.code}${b.nodeId}`));
    expect(got).toEqual(wanted);
    for (const f of want.findings) {
      expect(errors.some((d) => d.nodeId === f.nodeId && (f.ref === null || d.message.includes(f.ref)))).toBe(true);
    }
    if (want.clean) expect(repo.instances[0]!.flowList).toHaveLength(nodes(file).length);
  });

  it.each(files)('%s diffed against itself has no changes', (file) => {
    const a = nodes(file);
    const b = JSON.parse(JSON.stringify(a)) as FlowNode[];
    expect(diffFlows(a, b).change).toBe('none');
    // Reordering nodes and keys changes nothing either.
    const shuffled = b.reverse().map((n) => Object.fromEntries(Object.entries(n).reverse()) as FlowNode);
    expect(diffFlows(a, shuffled).change).toBe('none');
  });

  it.each(expectedDiffs.pairs.map((p) => [p.old, p.new, p] as const))('%s -> %s gives the real node-level differences', (oldFile, newFile, pair) => {
    const diff = diffFlows(nodes(newFile), nodes(oldFile));
    const all = diff.containers;
    const added = all.flatMap((c) => c.added.map((n) => n.id)).sort();
    const removed = all.flatMap((c) => c.removed.map((n) => n.id)).sort();
    const changed = all.flatMap((c) => c.changed.map((n) => ({ id: n.id, properties: n.properties }))).sort((a, b) => a.id.localeCompare(b.id));
    expect(added).toEqual(pair.added.map((n) => n.id).sort());
    expect(removed).toEqual(pair.removed.map((n) => n.id).sort());
    expect(changed).toEqual(pair.changed.map((n) => ({ id: n.id, properties: [...n.properties].sort() })).sort((a, b) => a.id.localeCompare(b.id)));
    expect(diff.change).toBe('functional');
  });
});
