/**
 * The instance and plan pages and the fleet page's pictures, in-process: drawings of the real
 * flows of the corpus (marks exactly the diff's, names escaped, code never shipped), the
 * bounds (a 5,000-node flow), the routes (known instances and revisions only, the CSP, the
 * renderer served from its package), the charts and the health ring. The same pages in real
 * Chromium: test/e2e/status-page-flows.test.ts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { diffFlows } from '../../src/core/diff.js';
import { parseFlowFile } from '../../src/core/flows.js';
import type { LiveInstance } from '../../src/core/live.js';
import type { FlowNode } from '../../src/core/model.js';
import type { LoadedRevision } from '../../src/engine/revisions.js';
import { createApp } from '../../src/server/app.js';
import type { PageSources } from '../../src/server/flow-views.js';
import { HealthRing } from '../../src/server/health-ring.js';
import { CHART_LIMITS, durationChart, healthStrip, waveGrid } from '../../src/server/page/charts.js';
import { renderStatusMain } from '../../src/server/page.js';
import { FLOW_PAGE_CSP } from '../../src/server/page/flow-assets.js';
import { flowSheets, SHEET_LIMITS } from '../../src/server/page/flow-svg.js';
import { DRAWING_LIMITS, drawingJson, flowDrawing } from '../../src/server/page/flows.js';
import { history, NOW, REV_A, REV_B, rollingOutStatus, statusProvider, syncedStatus } from '../helpers/status-fixture.js';

const CORPUS = join(import.meta.dirname, '../fixtures/corpus/flows');
const files = readdirSync(CORPUS).filter((f) => f.endsWith('.json')).sort();
const nodes = (f: string) => parseFlowFile(f, readFileSync(join(CORPUS, f), 'utf8')).flowFile!.nodes;
const WORDS = { added: 'added', changed: 'changed', removed: 'removed' };

const HOSTILE = ['say "hi" to \'them\'', '<script>alert(1)</script>', '<img src=x onerror=alert(2)>', '"><svg onload=alert(3)>', '</script><script>alert(4)</script>', 'Müll 🗑️ 日本語 עברית', '\u2028line\u2029sep', '&amp; &lt;', 'x'.repeat(300)];

function rename(flows: readonly FlowNode[]): FlowNode[] {
  return flows.map((n, k) => (n.type === 'tab' ? { ...n, label: HOSTILE[k % HOSTILE.length] } : { ...n, name: HOSTILE[k % HOSTILE.length] }));
}

/** Node ids drawn server-side (data-node-id on a box). */
function drawnIds(svg: string): string[] {
  return [...svg.matchAll(/<g class="node[^"]*" data-node-id="([^"]*)"/g)].map((m) => m[1]!.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&'));
}

describe('flow drawings', () => {
  it.each(files)('%s: every placed node of a drawn tab is on its sheet, and no code or settings go to the page', (file) => {
    const flows = nodes(file);
    const d = flowDrawing(flows);
    const json = drawingJson(d);
    // Only what a drawing needs: a function's code, a template, credentials, URLs never reach the page.
    const allowed = new Set(['id', 'type', 'z', 'name', 'label', 'x', 'y', 'w', 'h', 'g', 'wires', 'links', 'l', 'd', 'disabled', 'nodes', 'style', 'in', 'out']);
    for (const n of (JSON.parse(json) as { nodes: Record<string, unknown>[] }).nodes) for (const key of Object.keys(n)) expect(allowed.has(key), key).toBe(true);
    for (const n of flows) if (typeof n.func === 'string' && n.func.length > 30) expect(json).not.toContain(JSON.stringify(n.func).slice(1, -1));
    const svg = flowSheets(d, WORDS).html;
    const placed = d.nodes.filter((n) => n.type !== 'tab' && n.type !== 'subflow' && n.type !== 'group' && n.z !== undefined && n.x !== undefined && n.y !== undefined);
    const sheets = new Set([...svg.matchAll(/<figure class="sheet[^"]*" data-tab="([^"]*)"/g)].map((m) => m[1]));
    const onSheets = placed.filter((n) => [...sheets].some((z) => z === n.z?.replace(/&/g, '&amp;').replace(/"/g, '&quot;')));
    const drawn = new Set(drawnIds(svg));
    const overLimit = /over the sheet&#39;s limit/.test(svg);
    if (!overLimit) for (const n of onSheets) expect(drawn.has(n.id), n.id).toBe(true);
    expect(drawn.size).toBeLessThanOrEqual(SHEET_LIMITS.sheets * SHEET_LIMITS.nodesPerSheet);
  });

  it.each([
    ['nodes-at-home__nodered__flows__at-dc4aabe.json', 'nodes-at-home__nodered__flows.json'],
    ['DickSwart__swart-ninja-smart-home__node-red__.flows.json.backup.json', 'DickSwart__swart-ninja-smart-home__node-red__flows.json'],
  ])('revision pair %s -> %s: the marks are exactly the diff’s', (from, to) => {
    const before = nodes(from);
    const after = nodes(to);
    const d = flowDrawing(after, before);
    const diff = diffFlows(after, before);
    const expected: Record<string, string> = {};
    for (const c of diff.containers) {
      if (c.kind === 'config') continue;
      if (c.change !== 'changed') expected[c.id] = c.change;
      for (const n of c.added) expected[n.id] = 'added';
      for (const n of c.changed) expected[n.id] = 'changed';
      for (const n of c.removed) expected[n.id] = 'removed';
    }
    expect(Object.keys(expected).length).toBeGreaterThan(0);
    expect(d.marks).toEqual(expected);
    // Removed nodes come along as ghosts, so the drawing shows both sides.
    for (const [id, mark] of Object.entries(d.marks)) if (mark === 'removed') expect(d.nodes.some((n) => n.id === id)).toBe(true);
    const svg = flowSheets(d, WORDS).html;
    for (const [id, mark] of Object.entries(d.marks)) {
      const node = d.nodes.find((n) => n.id === id)!;
      if (node.type === 'tab' || node.type === 'group' || node.x === undefined || !drawnIds(svg).includes(id)) continue;
      expect(svg, id).toContain(`data-node-id="${id}" data-name=`);
      expect(svg).toMatch(new RegExp(`class="node mark-${mark}[^"]*" data-node-id="${id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"`));
    }
  });

  it('a group without its box (real exports have them) gets the box of its members; one with nothing to box is left out', () => {
    const d = flowDrawing(nodes('DickSwart__swart-ninja-smart-home__node-red__flows.json'));
    const g = d.nodes.find((n) => n.id === 'c406c797.04a108')!;
    expect([g.x, g.y, g.w, g.h].every((v) => typeof v === 'number' && Number.isFinite(v))).toBe(true);
    const members = d.nodes.filter((n) => n.g === g.id);
    expect(members.length).toBeGreaterThan(0);
    for (const m of members) expect(m.x! >= g.x! && m.x! <= g.x! + g.w! && m.y! >= g.y! && m.y! <= g.y! + g.h!, m.id).toBe(true);
    const empty = flowDrawing([{ id: 't', type: 'tab' }, { id: 'g', type: 'group', z: 't', nodes: [] }]);
    expect(empty.nodes.map((n) => n.id)).toEqual(['t']);
  });

  it('hostile names: escaped in the SVG, and the data block cannot be closed from inside', () => {
    const flows = rename(nodes('node-red__node-red__packages__node_modules__@node-red__nodes__examples__common__link__03_-_Link_call.json'));
    const d = flowDrawing(flows);
    const svg = flowSheets(d, WORDS).html;
    for (const bad of ['<script>', '<img', '<svg onload', '</script>']) expect(svg).not.toContain(bad);
    expect(svg).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(svg).toContain('Müll 🗑️ 日本語 עברית');
    const json = drawingJson(d);
    expect(json).not.toMatch(/[<>\u2028\u2029]/);
    // What the browser reads back is the names as they are (cut to DRAWING_LIMITS.nameChars).
    const back = JSON.parse(json) as { nodes: { name?: string }[] };
    expect(back.nodes.map((n) => n.name)).toContain('</script><script>alert(4)</script>');
    expect(Math.max(...back.nodes.map((n) => n.name?.length ?? 0))).toBe(DRAWING_LIMITS.nameChars);
  });

  it('a flow of 5,000 nodes: the drawing, the sheets and the page stay bounded and say what they left out', async () => {
    const big: FlowNode[] = [{ id: 'tab1', type: 'tab', label: 'big' }];
    for (let k = 0; k < 5000; k++) big.push({ id: `n${k}`, type: 'function', z: 'tab1', name: `step ${k}`, x: 100 + (k % 50) * 180, y: 40 + Math.floor(k / 50) * 60, wires: [[`n${k + 1}`]], func: 'return msg;'.repeat(20) });
    const d = flowDrawing(big);
    expect(d.total).toBe(5000);
    expect(d.nodes.length).toBe(DRAWING_LIMITS.nodes + 1);
    expect(d.leftOut).toBe(5000 - DRAWING_LIMITS.nodes);
    const svg = flowSheets(d, WORDS).html;
    expect(drawnIds(svg)).toHaveLength(SHEET_LIMITS.nodesPerSheet);
    expect(svg).toContain('3,000 nodes of 5,000 not drawn');
    expect(svg).toContain(`over the sheet&#39;s limit of ${SHEET_LIMITS.nodesPerSheet}`);

    const p = statusProvider(syncedStatus());
    const app = createApp({ ...p.deps, pages: sources({ live: [live('ingest', big)] }) });
    const res = await app.request('/instances/ingest');
    expect(res.status).toBe(200);
    const page = await res.text();
    expect(page.length).toBeLessThan(1_000_000);
    expect(page).not.toContain('return msg;');
  });
});

function live(name: string, flows: FlowNode[] | null): LiveInstance {
  return { name, colors: {}, flows, adminUp: flows !== null };
}

function revision(sha: string, instances: { name: string; flowList: FlowNode[] }[], valid = true): LoadedRevision {
  return { revision: sha, valid, repo: { instances, plans: [], diagnostics: valid ? [] : [{ severity: 'error', code: 'FlowSyntax', file: 'flows/<b>x</b>.json', line: 3, col: 7, message: 'bad <script>' }], valid } } as unknown as LoadedRevision;
}

function sources(opts: { live: LiveInstance[]; desired?: LoadedRevision; revisions?: Record<string, LoadedRevision>; loads?: string[] }): PageSources {
  return {
    observed: () => ({ live: opts.live, ...(opts.desired ? { desired: opts.desired } : {}) }),
    loadRevision: async (sha) => {
      opts.loads?.push(sha);
      const r = opts.revisions?.[sha];
      if (!r) throw new Error(`no ${sha}`);
      return r;
    },
    rolloutBase: () => undefined,
    colors: async () => [{ color: 'green', runtime: 'process', status: 'running', port: 41000, startedAt: new Date(NOW.getTime() - 3_600_000).toISOString(), usage: { cpuSeconds: 12.5, rssBytes: 80 * 1024 * 1024 }, replicas: { running: 2, total: 3 } }],
    logs: async (_name, lines) => ({ color: 'green', lines: ['Welcome to Node-RED', 'password=[redacted] <b>bold</b>'].slice(0, lines) }),
  };
}

describe('the instance and plan pages', () => {
  const flows = nodes('node-red__node-red__packages__node_modules__@node-red__nodes__examples__common__link__03_-_Link_call.json');

  it('GET /instances/<name>: facts, the live flows with the drift against Git marked, the rollouts, the log — under the strict CSP', async () => {
    const s = syncedStatus();
    s.instances.find((i) => i.name === 'ingest')!.drift = true;
    const edited = flows.map((n, k) => (k === 1 ? { ...n, name: 'changed in the editor' } : n));
    const p = statusProvider(s, history().map((r) => ({ ...r, instances: { ingest: { path: 'blue-green', outcome: 'succeeded', phases: [{ phase: 'DEPLOY', startedAt: r.startedAt, ms: 1200 }] } } })));
    const app = createApp({ ...p.deps, now: () => NOW, pages: sources({ live: [live('ingest', edited)], desired: revision(REV_A, [{ name: 'ingest', flowList: flows }]) }) });
    const res = await app.request('/instances/ingest');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toBe(FLOW_PAGE_CSP);
    expect(FLOW_PAGE_CSP).toContain("script-src 'self'");
    expect(FLOW_PAGE_CSP).not.toContain('unsafe-inline');
    expect(FLOW_PAGE_CSP).not.toContain('unsafe-eval');
    const page = await res.text();
    expect(page).not.toMatch(/<script>/); // no inline script: the CSP would refuse it
    expect(page).toContain('<script type="module" src="/assets/flows.js"></script>');
    expect(page).toContain('data-fact="uptime">1 h 0 min');
    expect(page).toContain('data-fact="memory">80.0 MiB');
    expect(page).toContain('data-fact="cpu">12.5 s');
    expect(page).toContain('(2/3 replicas)');
    expect(page).toMatch(/1 node differs/);
    expect(page).toContain(`data-node-id="${flows[1]!.id}" data-name="changed in the editor" data-mark="changed"`);
    expect(page).toContain('changed live (differs from Git)');
    expect(page).toContain('DEPLOY 1.2 s');
    expect(page).toContain(`href="/revisions/${REV_A}"`);
    expect(page).toContain('password=[redacted] &lt;b&gt;bold&lt;/b&gt;');
    expect((await app.request('/instances/nope')).status).toBe(404);
    // The live facts card alone: no document around it, and no log read for it.
    const facts = await (await app.request('/instances/ingest?fragment=facts')).text();
    expect(facts.startsWith('<section class="card" id="facts"')).toBe(true);
    expect(facts.endsWith('</section>')).toBe(true);
    expect(facts).toContain('data-fact="uptime"');
  });

  it('GET /revisions/<sha>: only revisions the daemon knows; drawn against what runs, with the changes marked', async () => {
    const loads: string[] = [];
    const added = [...flows, { id: 'new-one', type: 'debug', z: flows.find((n) => n.z)!.z, name: 'new <debug>', x: 500, y: 300, wires: [] }];
    const p = statusProvider(rollingOutStatus());
    const app = createApp({ ...p.deps, pages: sources({ live: [live('ingest', flows), live('query', flows)], loads, revisions: { [REV_B]: revision(REV_B, [{ name: 'ingest', flowList: added }, { name: 'query', flowList: flows }]) } }) });
    const unknown = await app.request('/revisions/0123456789abcdef0123456789abcdef01234567');
    expect(unknown.status).toBe(404);
    expect((await app.request('/revisions/not-a-sha')).status).toBe(404);
    expect(loads).toEqual([]); // a URL never makes the daemon check out what it does not know

    const res = await app.request(`/revisions/${REV_B.slice(0, 10)}`);
    expect(res.status).toBe(200);
    expect(loads).toEqual([REV_B]);
    // Asked again at once: the same page, not made again.
    let observed = 0;
    const counting = sources({ live: [live('ingest', flows)], revisions: { [REV_B]: revision(REV_B, [{ name: 'ingest', flowList: added }]) } });
    const app2 = createApp({ ...p.deps, pages: { ...counting, observed: () => (observed++, counting.observed()) } });
    const pages = await Promise.all(Array.from({ length: 5 }, async () => (await app2.request(`/revisions/${REV_B}`)).text()));
    expect(new Set(pages).size).toBe(1);
    expect(observed).toBe(1);
    await app2.request(`/revisions/${REV_B}`);
    expect(observed).toBe(1);
    const page = await res.text();
    expect(page).toContain('rolling out');
    expect(page).toMatch(/<section class="card plan-instance" data-instance="ingest" data-action="update"/);
    expect(page).toContain('data-node-id="new-one" data-name="new &lt;debug&gt;" data-mark="added"');
    expect(page).toContain('Flows unchanged: query.');
  });

  it('makes at most limits.instancePages instance pages at once: beyond, 503 with Retry-After; then again', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow = { ...sources({ live: [live('ingest', flows)] }), logs: async () => (await gate, { lines: ['ok'] }) };
    const app = createApp({ ...statusProvider(syncedStatus()).deps, pages: slow, limits: { instancePages: 2 } });
    const held = [app.request('/instances/ingest'), app.request('/instances/query')];
    await new Promise((r) => setTimeout(r, 50));
    const refused = await app.request('/instances/storage');
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    release();
    expect((await Promise.all(held)).map((r) => r.status)).toEqual([200, 200]);
    expect((await app.request('/instances/storage')).status).toBe(200);
  });

  it('the head of a pull request Tower planned has a plan page too; another sha does not', async () => {
    const head = 'd'.repeat(40);
    const loads: string[] = [];
    const pages = { ...sources({ live: [live('ingest', flows)], loads, revisions: { [head]: revision(head, [{ name: 'ingest', flowList: flows }]) } }), pullRequestHead: (sha: string) => (head.startsWith(sha) ? head : undefined) };
    const app = createApp({ ...statusProvider(syncedStatus()).deps, pages });
    const res = await app.request(`/revisions/${head}`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('pull request head, not rolled out');
    expect((await app.request(`/revisions/${'e'.repeat(40)}`)).status).toBe(404);
    expect(loads).toEqual([head]);
  });

  it('a rejected revision shows its diagnostics, escaped', async () => {
    const s = syncedStatus();
    s.attempted = { revision: REV_B, at: NOW.toISOString(), outcome: 'invalid', error: 'invalid: 1 error' };
    s.attemptedRevision = REV_B;
    const app = createApp({ ...statusProvider(s).deps, pages: sources({ live: [live('ingest', flows)], revisions: { [REV_B]: revision(REV_B, [{ name: 'ingest', flowList: flows }], false) } }) });
    const page = await (await app.request(`/revisions/${REV_B}`)).text();
    expect(page).toContain('rejected');
    expect(page).toContain('flows/&lt;b&gt;x&lt;/b&gt;.json:3:7');
    expect(page).not.toContain('<script>');
  });

  it('serves the renderer from its npm package and our script, same-origin, with their types', async () => {
    const app = createApp(statusProvider(syncedStatus()).deps);
    const js = await app.request('/assets/flow-renderer.js');
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(await js.text()).toContain('export default FlowRenderer');
    const css = await app.request('/assets/flow-renderer.css');
    expect(css.headers.get('content-type')).toMatch(/^text\/css/);
    expect(await css.text()).toContain('.flow-renderer');
    const ours = await (await app.request('/assets/flows.js')).text();
    expect(ours).toContain("import FlowRenderer from './flow-renderer.js'");
  });
});

describe('the fleet page pictures', () => {
  it('rollout durations stacked by phase, a grid of the current rollout, health strips', () => {
    const records = history().map((r) => ({ ...r, instances: { ingest: { path: 'blue-green', outcome: 'succeeded', phases: [{ phase: 'DRAIN', startedAt: r.startedAt, ms: 300 }, { phase: 'DEPLOY', startedAt: r.startedAt, ms: 2000 }, { phase: 'VERIFY', startedAt: r.startedAt, ms: 700 }] } } }));
    const chart = durationChart(records).html;
    expect([...chart.matchAll(/<g class="bar/g)]).toHaveLength(3);
    expect(chart).toContain('<rect class="ph ph-DEPLOY"');
    expect(chart).toContain('DEPLOY 2.0 s');
    const grid = waveGrid(rollingOutStatus().rollout!).html;
    expect(grid).toContain('data-instance="ingest" data-state="current"');
    expect(grid).toContain('data-instance="storage" data-state="pending"');
    expect(grid).toContain('<a href="/instances/ingest"><g class="cell');
    expect(chart).toContain(`<a href="/revisions/${REV_A}"><g class="bar`);
    const strip = healthStrip('ingest', [{ at: NOW.getTime() - 60_000, health: 'Healthy' }, { at: NOW.getTime() - 30_000, health: 'Degraded' }], NOW.getTime()).html;
    expect(strip).toContain('class="h-ok"');
    expect(strip).toContain('class="h-bad"');
    expect(strip).toContain('was Degraded');
  });

  it('the health ring keeps a bounded number of samples, at most one per interval unless the health changes, and forgets gone instances', () => {
    const ring = new HealthRing({ samples: 5, instances: 2, minIntervalMs: 1000 });
    const s = syncedStatus();
    for (let t = 0; t < 20_000; t += 100) ring.record(s, t);
    expect(ring.of('embeddings')).toHaveLength(5);
    expect(Object.keys(ring.all())).toHaveLength(2);
    s.instances[0]!.health = 'Degraded';
    ring.record(s, 20_050);
    expect(ring.of(s.instances[0]!.name).at(-1)).toEqual({ at: 20_050, health: 'Degraded' });
    ring.record({ instances: [s.instances[1]!] }, 21_000);
    expect(Object.keys(ring.all())).toEqual([s.instances[1]!.name]);
  });

  it('a steady instance is one span however many samples; at most CHART_LIMITS.healthStrips strips, those not healthy first', () => {
    const steady = Array.from({ length: 120 }, (_, k) => ({ at: NOW.getTime() - (120 - k) * 15_000, health: 'Healthy' }));
    expect([...healthStrip('ingest', steady, NOW.getTime()).html.matchAll(/<rect /g)]).toHaveLength(1);
    const s = syncedStatus();
    s.instances = Array.from({ length: 100 }, (_, k) => ({ ...s.instances[0]!, name: `i${k}`, health: k === 77 ? 'Degraded' : 'Healthy' }));
    const page = renderStatusMain({ ...s, history: [], version: 't' }, { now: NOW });
    expect([...page.matchAll(/<svg class="strip"/g)]).toHaveLength(CHART_LIMITS.healthStrips);
    expect(page).toContain('aria-label="i77: no samples yet"');
    expect(page).toContain(`${100 - CHART_LIMITS.healthStrips} more instances: see each instance's page.`);
  });

  it('the fleet page draws them inline and links each instance to its page', async () => {
    const p = statusProvider(rollingOutStatus());
    const page = await (await createApp(p.deps).request('/')).text();
    expect(page).toContain('<section id="pictures"');
    expect(page).toContain('<figure id="wave-grid">');
    expect(page).toContain('href="/instances/ingest"');
    expect(REV_A).toBeTruthy();
  });
});
