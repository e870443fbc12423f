/**
 * The diagram generator (src/core/mermaid.ts) on the whole corpus — clean and defective
 * files, the revision pairs, and edits of every file — with Mermaid itself as the judge
 * (parsed in Chromium, test/helpers/mermaid.ts): every diagram parses, stays within Mermaid's
 * limits, marks exactly the nodes the diff marks, draws only wires that exist, and shows
 * node names with quotes, brackets, backticks, HTML and unicode as they are.
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diffFlows, type ContainerDiff, type InstanceDiff } from '../../src/core/diff.js';
import { parseFlowFile } from '../../src/core/flows.js';
import { DIAGRAM_LIMITS, diagramFlows, tabDiagram, type TabDiagram } from '../../src/core/mermaid.js';
import type { FlowNode } from '../../src/core/model.js';
import { startMermaid, type MermaidHarness, type ParsedDiagram } from '../helpers/mermaid.js';

const CORPUS = join(import.meta.dirname, '../fixtures/corpus/flows');
const OUTPUT = join(import.meta.dirname, '../../test-output/diagrams');
const files = readdirSync(CORPUS).filter((f) => f.endsWith('.json')).sort();
const nodes = (f: string) => parseFlowFile(f, readFileSync(join(CORPUS, f), 'utf8')).flowFile!.nodes;
const pairs = (JSON.parse(readFileSync(join(import.meta.dirname, '../fixtures/corpus-diff-expected.json'), 'utf8')) as { pairs: { old: string; new: string }[] }).pairs;

/** Names real flows have, and worse. */
const HOSTILE = [
  'say "hi" to \'them\'',
  'set [msg.payload] {x} (y)',
  'run `node` ```js```',
  '<b>bold</b> <script>alert(1)</script> <img src=x onerror=alert(1)>',
  '&amp; &lt; #quot; #35; &#x41;',
  '%%{init: {"theme":"dark"}}%%',
  'a --> b; end',
  'Müll 🗑️ 日本語 עברית Ω≈ç',
  'two\nlines\tand\ttabs',
  '|pipe| \\back\\slash/',
  'click n0 call alert()',
  '\u202eevil\u202c bidi',
  'end',
  'subgraph',
  'x'.repeat(120),
  '#',
  '"',
  ';',
];

function wired(flows: readonly FlowNode[], from: string, to: string): boolean {
  const n = flows.find((x) => x.id === from);
  if (!n) return false;
  const wires = Array.isArray(n.wires) ? (n.wires as unknown[]).flat() : [];
  const links = Array.isArray(n.links) ? (n.links as unknown[]) : [];
  return wires.includes(to) || links.includes(to);
}

interface Drawn {
  c: ContainerDiff;
  d: TabDiagram;
  p: ParsedDiagram;
}

let mm: MermaidHarness;

/** Diagrams of newer against older, parsed by Mermaid, each checked against the diff. */
async function check(newer: FlowNode[], older: FlowNode[]): Promise<Drawn[]> {
  const diff = diffFlows(newer, older);
  const instance = { name: 'x', action: 'update', ...diff, config: [] } as InstanceDiff;
  const flows = diagramFlows([instance], [{ name: 'x', flowList: newer }], [{ name: 'x', flows: older }]).x;
  const drawn: { c: ContainerDiff; d: TabDiagram }[] = [];
  for (const c of diff.containers) {
    const d = flows ? tabDiagram(c, flows) : undefined;
    // Every changed tab or subflow with a node in it is drawn.
    if (c.kind !== 'config' && c.added.length + c.removed.length + c.changed.length > 0) expect(d, c.label).toBeDefined();
    if (c.kind === 'config') expect(d).toBeUndefined();
    if (d) drawn.push({ c, d });
  }
  const parsed = await mm.parse(drawn.map((x) => x.d.text));
  return drawn.map(({ c, d }, i) => {
    const p = parsed[i]!;
    expect(p.error, `${c.label}: ${p.error}\n${d.text}`).toBeUndefined();
    expect(d.text.length).toBeLessThanOrEqual(DIAGRAM_LIMITS.maxChars);
    expect(DIAGRAM_LIMITS.maxChars).toBeLessThan(50_000); // Mermaid's default maxTextSize
    expect(p.edges.length).toBeLessThanOrEqual(DIAGRAM_LIMITS.maxEdges);
    expect(DIAGRAM_LIMITS.maxEdges).toBeLessThan(500); // Mermaid's default maxEdges

    // The classes Mermaid parsed, by Node-RED id; every vertex is a node or group we drew.
    const cls = new Map<string, string[]>();
    for (const v of p.vertices) {
      expect(d.ids[v.id], `stray vertex ${v.id}`).toBeDefined();
      if (v.id.startsWith('n')) cls.set(d.ids[v.id]!, v.classes);
    }
    for (const s of p.subgraphs) cls.set(d.ids[s.id]!, s.classes);
    expect(cls.size).toBe(d.drawn);
    const marked = (kind: string) => [...cls].filter(([, c]) => c.includes(kind)).map(([id]) => id).sort();
    for (const [id, c] of cls) expect(c.length === 1 && ['added', 'removed', 'changed', 'context', 'grp'].includes(c[0]!), `${id}: ${c.join(' ')}`).toBe(true);
    // (The diff lists a duplicated id twice; a diagram draws it once.)
    const ids = (list: { id: string }[]) => [...new Set(list.map((n) => n.id))].sort();
    const want = { added: ids(c.added), removed: ids(c.removed), changed: ids(c.changed) };
    if (d.leftOutChanged === 0) {
      // Exactly the diff's nodes are marked, each with the diff's mark.
      expect(marked('added')).toEqual(want.added);
      expect(marked('removed')).toEqual(want.removed);
      expect(marked('changed')).toEqual(want.changed);
    } else {
      // A tab too big to draw every change: what is marked is the diff's, the rest is counted.
      for (const k of ['added', 'removed', 'changed'] as const) for (const id of marked(k)) expect(want[k]).toContain(id);
      const total = want.added.length + want.removed.length + want.changed.length;
      expect(marked('added').length + marked('removed').length + marked('changed').length + d.leftOutChanged).toBe(total);
    }
    // Every arrow is a wire (or a link node's link) on one side or the other.
    for (const e of p.edges) {
      const from = d.ids[e.start]!;
      const to = d.ids[e.end]!;
      expect(wired(newer, from, to) || wired(older, from, to), `${from} -> ${to}`).toBe(true);
    }
    return { c, d, p };
  });
}

/** A deterministic edit of every tab: nodes removed, renamed, rewired, added. */
function edit(flows: FlowNode[]): FlowNode[] {
  const out: FlowNode[] = [];
  flows.forEach((n, i) => {
    if (typeof n.z !== 'string' || n.z === '' || n.type === 'tab' || n.type === 'subflow') return void out.push(n);
    if (i % 13 === 5) return; // removed
    if (i % 13 === 9) return void out.push({ ...n, name: `${typeof n.name === 'string' ? n.name : ''} (edited)` });
    if (i % 17 === 7 && Array.isArray(n.wires)) return void out.push({ ...n, wires: [] });
    if (i % 11 === 3) {
      out.push({ ...n, wires: [[`${n.id}-added`]] });
      return void out.push({ id: `${n.id}-added`, type: 'debug', z: n.z, name: 'added debug', wires: [] });
    }
    out.push(n);
  });
  return out;
}

function rename(flows: FlowNode[]): FlowNode[] {
  return flows.map((n, i) => (typeof n.z === 'string' && n.z !== '' ? { ...n, name: HOSTILE[i % HOSTILE.length] } : n));
}

/** What a label shows of a name: one line, at most labelChars characters. */
function shown(name: string): string {
  // eslint-disable-next-line no-control-regex
  const flat = name.replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]+/g, ' ').replace(/\s+/g, ' ').trim();
  const chars = Array.from(flat);
  return chars.length > DIAGRAM_LIMITS.labelChars ? chars.slice(0, DIAGRAM_LIMITS.labelChars - 1).join('') + '…' : flat;
}

describe('flow diagrams, judged by Mermaid', () => {
  beforeAll(async () => {
    mm = await startMermaid();
    mkdirSync(OUTPUT, { recursive: true });
  }, 120_000);
  afterAll(async () => {
    await mm?.close();
  });

  it('has the corpus', () => {
    expect(files).toHaveLength(60);
  });

  it.each(files)('%s: drawn as new, as removed, edited and with hostile names', async (file) => {
    const flows = nodes(file);
    const added = await check(flows, []);
    const removed = await check([], flows);
    expect(added.length).toBe(removed.length);
    const edited = await check(edit(flows), flows);
    // A big tab shows the neighbourhood of its changes; a small one all of it.
    for (const { d } of edited) {
      expect(d.neighbourhood).toBe(d.total > DIAGRAM_LIMITS.wholeTab);
      if (!d.neighbourhood && d.leftOutChanged === 0) expect(d.drawn).toBe(d.total);
    }
    await check(rename(flows), flows);
  });

  it.each(pairs.flatMap((p) => [[p.old, p.new] as const, [p.new, p.old] as const]))('revision pair %s -> %s', async (from, to) => {
    const drawn = await check(nodes(to), nodes(from));
    expect(drawn.length).toBeGreaterThan(0);
    for (const { d } of drawn) expect(d.leftOutChanged).toBe(0);
  });

  it('a big tab draws its changes and their neighbours one wire away, and counts the rest', async () => {
    const from = nodes('nodes-at-home__nodered__flows__at-dc4aabe.json');
    const [only] = await check(nodes('nodes-at-home__nodered__flows.json'), from);
    expect(only!.d.neighbourhood).toBe(true);
    expect(only!.d.total).toBeGreaterThan(240);
    expect(only!.d.drawn).toBeLessThan(40);
    const drawnIds = new Set(Object.values(only!.d.ids));
    const changed = new Set([...only!.c.added, ...only!.c.removed, ...only!.c.changed].map((n) => n.id));
    // Every context node drawn is wired to (or from) a changed node.
    for (const id of drawnIds) {
      if (changed.has(id)) continue;
      const to = nodes('nodes-at-home__nodered__flows.json');
      expect([...changed].some((c) => wired(to, c, id) || wired(to, id, c) || wired(from, c, id) || wired(from, id, c)), id).toBe(true);
    }
  });

  it('names with quotes, brackets, backticks, HTML and unicode are drawn as they are', async () => {
    const flows = nodes('node-red__node-red__packages__node_modules__@node-red__nodes__examples__common__link__03_-_Link_call.json');
    const renamed = rename(flows);
    const [drawn] = await check(renamed, flows);
    const r = await mm.render(drawn!.d.text);
    expect(r.error).toBeUndefined();
    // No injected markup: the only elements in the labels are Mermaid's own.
    expect(r.svg).not.toMatch(/<script|onerror|<b>bold/i);
    let seen = 0;
    for (const [mid, id] of Object.entries(drawn!.d.ids)) {
      const node = renamed.find((n) => n.id === id)!;
      const text = mid.startsWith('g') ? r.titles[mid] : r.labels[mid];
      expect(text, `${mid} has no label`).toBeDefined();
      const first = text!.split('\n')[0]!.replace(/^[~+−] /, '');
      const want = shown(String(node.name));
      expect(first, JSON.stringify(node.name)).toBe(want === '' ? node.type : want);
      seen++;
    }
    expect(seen).toBeGreaterThanOrEqual(HOSTILE.length / 2);
    await (await mm.page.$('#out svg'))!.screenshot({ path: join(OUTPUT, 'hostile-names.png') });
  });

  it('a changed node says what changed; groups are boxes; a revision pair renders', async () => {
    const older = nodes('nodes-at-home__nodered__flows__at-dc4aabe.json');
    const [drawn] = await check(nodes('nodes-at-home__nodered__flows.json'), older);
    expect(drawn!.d.text).toContain('changed: wires');
    const r = await mm.render(drawn!.d.text);
    expect(r.error).toBeUndefined();
    await (await mm.page.$('#out svg'))!.screenshot({ path: join(OUTPUT, 'revision-pair.png') });

    const grouped = nodes('TotallyInformation__node-red-contrib-uibuilder__examples__Client-side_code__Easy_UI_Updates.json');
    const [g] = await check(edit(grouped), grouped);
    expect(g!.p.subgraphs.length).toBeGreaterThan(0);
    const rg = await mm.render(g!.d.text);
    expect(rg.error).toBeUndefined();
    await (await mm.page.$('#out svg'))!.screenshot({ path: join(OUTPUT, 'groups.png') });
  });

  it('defective input: groups in a cycle, wires to nowhere, junk fields — still a diagram Mermaid takes', async () => {
    const junk: FlowNode[] = [
      { id: 't', type: 'tab', label: 'junk' },
      { id: 'g1', type: 'group', z: 't', g: 'g2', name: 'one' },
      { id: 'g2', type: 'group', z: 't', g: 'g1', name: 'two' },
      { id: 'g3', type: 'group', z: 't', g: 'g3' },
      { id: 'a', type: 'inject', z: 't', g: 'g1', wires: [['b', 'nowhere', 7, null], 'x'] as unknown as string[][] },
      { id: 'b', type: '', z: 't', g: 'g3', name: 42, wires: [['a', 'b']], links: ['a'] },
      { id: 'c', type: 'link out', z: 't', links: ['d', 'g1'], wires: 'no' as unknown as string[][] },
      { id: 'd', type: 'link in', z: 't', wires: [['g2']] },
      { id: 'a', type: 'debug', z: 't', name: 'a duplicate id' },
    ];
    const drawn = await check(junk, []);
    expect(drawn).toHaveLength(1);
    expect(drawn[0]!.p.subgraphs).toHaveLength(3);
    expect((await mm.render(drawn[0]!.d.text)).error).toBeUndefined();
  });

  it('stays within the limits when names are long and every node of a 300-node tab changed', async () => {
    const tab: FlowNode[] = [{ id: 't', type: 'tab', label: 'big' }];
    for (let i = 0; i < 300; i++) tab.push({ id: `n${i}`, type: 'function', z: 't', name: `<"${'&#'.repeat(40)}"> ${i}`, wires: [[`n${(i + 1) % 300}`, `n${(i + 7) % 300}`], [`n${(i + 13) % 300}`]] });
    const [drawn] = await check(tab, tab.map((n) => ({ ...n, func: 'changed' })));
    expect(drawn!.d.leftOutChanged).toBeGreaterThan(0);
    expect(drawn!.d.drawn).toBeLessThanOrEqual(DIAGRAM_LIMITS.maxNodes);
  });
});
