/**
 * The drawings of real flows from the corpus in real Chromium (the app in-process on a private
 * port; the runtime side is a stand-in, the drawing is not): every tab of a whole-instance dump
 * drawn by FlowFuse's renderer with exactly its nodes, hostile names drawn as text (no element,
 * no script from a name), and a revision pair's marks where the diff says. Screenshots in
 * test-output/.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFlowFile } from '../../src/core/flows.js';
import type { FlowNode } from '../../src/core/model.js';
import type { LoadedRevision } from '../../src/engine/revisions.js';
import { createApp } from '../../src/server/app.js';
import { listen, type Listening } from '../../src/server/listen.js';
import { flowDrawing } from '../../src/server/page/flows.js';
import { launchChromium } from '../helpers/browser.js';
import { statusProvider, syncedStatus } from '../helpers/status-fixture.js';

const CORPUS = join(import.meta.dirname, '../fixtures/corpus/flows');
const OUT = join(import.meta.dirname, '..', '..', 'test-output');
const nodes = (f: string) => parseFlowFile(f, readFileSync(join(CORPUS, f), 'utf8')).flowFile!.nodes;

const HOSTILE = ['say "hi" to \'them\'', '<img src=x onerror="window.__xss=1">', '<script>window.__xss=2</script>', '"><svg onload="window.__xss=3">', 'Müll 🗑️ עברית Ω≈ç', '&amp; &lt; #35;', '{{constructor.constructor("window.__xss=4")()}}', '${window.__xss=5}'];

let browser: Browser;
let server: Listening | undefined;
let flowsOf: Record<string, FlowNode[]> = {};
let gitOf: Record<string, FlowNode[]> = {};
const errors: string[] = [];

beforeAll(async () => {
  browser = await launchChromium();
  mkdirSync(OUT, { recursive: true });
  const status = syncedStatus();
  status.instances.find((i) => i.name === 'storage')!.drift = true;
  const app = createApp({
    ...statusProvider(status).deps,
    pages: {
      observed: () => ({ live: Object.entries(flowsOf).map(([name, flows]) => ({ name, colors: {}, flows, adminUp: true })), desired: { revision: 'a'.repeat(40), valid: true, repo: { instances: Object.entries(gitOf).map(([name, flowList]) => ({ name, flowList })), plans: [], diagnostics: [], valid: true } } as unknown as LoadedRevision }),
      loadRevision: async () => {
        throw new Error('not in this test');
      },
      rolloutBase: () => undefined,
    },
  });
  server = await listen(app.fetch, '127.0.0.1', 0);
});

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

async function open(path: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('console', (m) => void (m.type() === 'error' && errors.push(m.text())));
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`http://127.0.0.1:${server!.port}${path}`);
  await page.waitForSelector('#live-flows[data-renderer="ok"]', { timeout: 15_000 });
  return page;
}

/** What the renderer has drawn now (one tab at a time): node ids, their text, their marks. */
async function drawn(page: Page): Promise<{ id: string; text: string; classes: string }[]> {
  return page.$$eval('#live-flows .flow-renderer .flow_nodes g[data-node-id]', (gs) => gs.map((g) => ({ id: g.getAttribute('data-node-id')!, text: g.textContent ?? '', classes: g.getAttribute('class') ?? '' })));
}

/** The tabs the renderer offers, clicked one by one: what each draws. */
async function everyTab(page: Page): Promise<Map<string, { id: string; text: string; classes: string }[]>> {
  const tabs = await page.$$eval('#live-flows .red-ui-tab[data-flow-id]', (els) => els.map((e) => e.getAttribute('data-flow-id')!));
  const out = new Map<string, { id: string; text: string; classes: string }[]>();
  for (const tab of tabs) {
    await page.click(`#live-flows .red-ui-tab[data-flow-id="${tab}"]`);
    await page.waitForTimeout(50);
    out.set(tab, await drawn(page));
  }
  return out;
}

describe('corpus flows drawn in Chromium', () => {
  it('a whole-instance dump: every tab and subflow drawn with exactly its nodes', async () => {
    const flows = nodes('DickSwart__swart-ninja-smart-home__node-red__flows.json');
    flowsOf = { ingest: flows };
    const page = await open('/instances/ingest');
    const byTab = await everyTab(page);
    const containers = flows.filter((n) => n.type === 'tab' || n.type === 'subflow');
    expect(byTab.size).toBe(containers.length);
    const projected = flowDrawing(flows).nodes;
    for (const c of containers) {
      const expected = projected.filter((n) => n.z === c.id && n.type !== 'group' && n.type !== 'tab' && n.type !== 'subflow').map((n) => n.id).sort();
      expect((byTab.get(c.id) ?? []).map((d) => d.id).sort(), `tab ${c.id}`).toEqual(expected);
    }
    await page.click(`#live-flows .red-ui-tab[data-flow-id="${containers[0]!.id}"]`);
    await page.screenshot({ path: join(OUT, 'corpus-dump-instance.png'), fullPage: true });
    await page.close();
    expect(errors).toEqual([]);
  });

  it('hostile names are drawn as text: no element and no script comes from a name, and each reads as written', async () => {
    const flows = nodes('TotallyInformation__node-red-contrib-uibuilder__examples__Client-side_code__Easy_UI_Updates.json').map((n, k) => (n.type === 'tab' ? { ...n, label: HOSTILE[k % HOSTILE.length] } : n.type === 'subflow' ? n : { ...n, name: HOSTILE[k % HOSTILE.length] }));
    flowsOf = { ingest: flows };
    const page = await open('/instances/ingest');
    const byTab = await everyTab(page);
    expect(await page.evaluate('typeof window.__xss')).toBe('undefined');
    expect(await page.locator('#live-flows .flow-renderer img, #live-flows .flow-renderer script, #live-flows .flow-renderer foreignObject, #live-flows .flow-static img, #live-flows .flow-static script').count()).toBe(0);
    const all = [...byTab.values()].flat();
    expect(all.length).toBeGreaterThan(10);
    for (const d of all) {
      const n = flows.find((x) => x.id === d.id)!;
      // Labelled nodes show their name (the renderer may wrap a long one over lines).
      if (typeof n.name === 'string' && n.type !== 'link in' && n.type !== 'link out' && n.type !== 'junction' && n.l !== false) expect(d.text.replace(/\s+/g, ''), d.id).toContain(n.name.replace(/\s+/g, ''));
    }
    const tabNames = await page.$$eval('#live-flows .red-ui-tab', (els) => els.map((e) => e.textContent ?? ''));
    expect(tabNames.some((t) => HOSTILE.includes(t.trim()))).toBe(true);
    await page.screenshot({ path: join(OUT, 'hostile-names-instance.png'), fullPage: true });
    await page.close();
    expect(errors).toEqual([]);
  });

  it('a drifted dump: the marks drawn on each tab are exactly the diff’s nodes of that tab', async () => {
    const git = nodes('DickSwart__swart-ninja-smart-home__node-red__.flows.json.backup.json');
    const now = nodes('DickSwart__swart-ninja-smart-home__node-red__flows.json');
    flowsOf = { storage: now };
    gitOf = { storage: git };
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${server!.port}/instances/storage`);
    await page.waitForSelector('#live-flows[data-renderer="ok"]', { timeout: 15_000 });
    const expected = flowDrawing(now, git).marks;
    expect(Object.keys(expected).length).toBeGreaterThan(0);
    const byTab = await everyTab(page);
    const seen: Record<string, string> = {};
    for (const list of byTab.values()) for (const d of list) {
      const m = d.classes.split(' ').find((c: string) => c.startsWith('tower-'));
      if (m) seen[d.id] = m.slice('tower-'.length);
    }
    const drawnIds = new Set([...byTab.values()].flat().map((d) => d.id));
    const expectedDrawn = Object.fromEntries(Object.entries(expected).filter(([id]) => drawnIds.has(id)));
    expect(seen).toEqual(expectedDrawn);
    expect(Object.keys(seen).length).toBeGreaterThan(0);
    await page.close();
    expect(errors).toEqual([]);
  });
});
