/**
 * The drawings of the status page, in real Chromium against a real daemon and real Node-RED:
 * the fleet page mid-rollout (the wave grid), the plan page of the revision rolling out (its
 * changes marked), and an instance page — drawn by FlowFuse's renderer under the page's CSP,
 * its drawn nodes exactly the instance's nodes; and, with JavaScript off, the server's SVG.
 * Screenshots go to test-output/ (copies of them are in docs/).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { bufferIo } from '../../src/commands/io.js';
import { launchChromium } from '../helpers/browser.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';
import { helloFlow, writeSmallFleet } from '../helpers/fleet-fixture.js';
import { initBare, WorkClone } from '../helpers/git.js';
import { NodeRedAdmin } from '../../src/adapters/nodered/admin.js';
import type { FlowNode } from '../../src/core/model.js';

const OUT = join(import.meta.dirname, '..', '..', 'test-output');
let browser: Browser;
let daemon: DaemonProcess | undefined;
const dirs: string[] = [];
const daemons: DaemonProcess[] = [];
const states: string[] = [];
let state = '';

beforeAll(async () => {
  browser = await launchChromium();
  mkdirSync(OUT, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
  await daemon?.kill('SIGKILL');
  for (const d of daemons) await d.kill('SIGKILL');
  for (const st of [state, ...states].filter(Boolean)) await main(['destroy', '--state-dir', st], bufferIo(process.env)).catch(() => 1);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tmp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

/** The hello flow, and around it what real flows have: a group, a link pair, a change node, and names with quotes, HTML and unicode. */
function richFlow(prefix: string, text: string, version: number): Record<string, unknown>[] {
  const tab = `${prefix}-tab`;
  const nodes = helloFlow(prefix, text) as Record<string, unknown>[];
  nodes.push(
    { id: `${prefix}-inject`, type: 'inject', z: tab, g: `${prefix}-grp`, name: 'tick "every" <b>minute</b>', props: [{ p: 'payload' }], repeat: '60', once: false, topic: '', payload: '', payloadType: 'date', x: 140, y: 140, wires: [[`${prefix}-change`]] },
    { id: `${prefix}-change`, type: 'change', z: tab, g: `${prefix}-grp`, name: 'Müll → 日本語', rules: [{ t: 'set', p: 'topic', pt: 'msg', to: 'tick', tot: 'str' }], x: 360, y: 140, wires: [[`${prefix}-lout`]] },
    { id: `${prefix}-lout`, type: 'link out', z: tab, g: `${prefix}-grp`, name: 'to log', mode: 'link', links: [`${prefix}-lin`], x: 515, y: 140, wires: [] },
    { id: `${prefix}-grp`, type: 'group', z: tab, name: 'clock </script>', style: { label: true, stroke: '#3f93cf' }, nodes: [`${prefix}-inject`, `${prefix}-change`, `${prefix}-lout`], x: 34, y: 99, w: 522, h: 82 },
    { id: `${prefix}-lin`, type: 'link in', z: tab, name: 'log', links: [`${prefix}-lout`], x: 175, y: 240, wires: [[`${prefix}-debug`]] },
    { id: `${prefix}-debug`, type: 'debug', z: tab, name: version > 1 ? "log it 'quietly'" : 'log it', active: false, tosidebar: true, console: false, complete: 'payload', targetType: 'msg', x: 380, y: 240, wires: [] },
  );
  if (version > 1) nodes.push({ id: `${prefix}-note`, type: 'comment', z: tab, name: 'new in v2 <i>note</i>', info: '', x: 640, y: 240, wires: [] });
  return nodes;
}

async function drawnByRenderer(page: Page, figure: string): Promise<{ ids: string[]; texts: Record<string, string>; marks: Record<string, string> }> {
  await page.waitForSelector(`${figure}[data-renderer="ok"] .flow-renderer .flow_nodes g[data-node-id]`, { timeout: 15_000 });
  const found = await page.$$eval(`${figure} .flow-renderer .flow_nodes g[data-node-id]`, (gs) => gs.map((g) => ({ id: g.getAttribute('data-node-id')!, text: g.textContent ?? '', classes: g.getAttribute('class') ?? '' })));
  const marks: Record<string, string> = {};
  for (const f of found) {
    const m = f.classes.split(' ').find((c: string) => c.startsWith('tower-'));
    if (m) marks[f.id] = m.slice('tower-'.length);
  }
  return { ids: found.map((f) => f.id), texts: Object.fromEntries(found.map((f) => [f.id, f.text])), marks };
}

describe('status page drawings of a running daemon', () => {
  it('draws the fleet mid-rollout, the plan of the revision rolling out, and an instance’s flows', async () => {
    const bare = await initBare(join(tmp('tower-bare-'), 'fleet.git'));
    const clone = await WorkClone.create(bare, tmp('tower-clone-'));
    const plan = '{ order: waves, waves: [[ingest], [query], [storage]] }';
    const fleet = (text: string) => [
      { name: 'ingest', text },
      { name: 'query', text, delayMs: 50 },
      { name: 'storage', text, delayMs: 50 },
    ];
    const ports = await writeSmallFleet(clone.dir, fleet('v1'), plan);
    writeFileSync(join(clone.dir, 'flows', 'ingest.json'), JSON.stringify(richFlow('ingest', 'v1', 1), null, 2));
    const first = await clone.commit('first version');
    await clone.push();
    state = tmp('tower-state-');
    daemon = await startDaemon(['--repo', bare, '--state-dir', state, '--interval', '1s'], process.env);
    await daemon.waitFor((s) => s.appliedRevision === first && s.sync === 'Synced', 60_000, 'the first revision');

    const errors: string[] = [];
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.on('console', (m) => void (m.type() === 'error' && errors.push(m.text())));
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(daemon.url);
    await expect.poll(() => page.textContent('body'), { timeout: 10_000 }).toContain('Synced');

    // A second version: ingest gains a node and renames one; the others answer differently.
    await writeSmallFleet(clone.dir, fleet('v2'), plan, ports);
    const v2 = richFlow('ingest', 'v2', 2);
    writeFileSync(join(clone.dir, 'flows', 'ingest.json'), JSON.stringify(v2, null, 2));
    const second = await clone.commit('second version: a note and a quieter log');
    await clone.push();

    // The fleet page, live, mid-rollout: the wave grid.
    await page.waitForSelector('#wave-grid [data-instance="ingest"]', { timeout: 30_000 });
    await page.screenshot({ path: join(OUT, 'status-page-fleet-rollout.png'), fullPage: true });
    expect(await page.locator('#wave-grid [data-instance]').count()).toBe(3);
    expect(await page.locator('#durations').count()).toBe(1);
    expect(await page.locator('#health-strips svg').count()).toBe(3);

    // The plan page of the revision rolling out: ingest's flows, its changes marked.
    const planPage = await context.newPage();
    planPage.on('console', (m) => void (m.type() === 'error' && errors.push(m.text())));
    planPage.on('pageerror', (e) => errors.push(e.message));
    await planPage.goto(`${daemon.url}revisions/${second}`);
    const planned = await drawnByRenderer(planPage, '[data-instance="ingest"] figure.drawing');
    expect(planned.marks).toEqual({ 'ingest-note': 'added', 'ingest-debug': 'changed', 'ingest-fn': 'changed' }); // the function answers v2
    expect(planned.texts['ingest-note']).toContain('new in v2 <i>note</i>');
    expect(await planPage.locator('[data-instance="query"][data-action="update"]').count()).toBe(1);
    await planPage.screenshot({ path: join(OUT, 'status-page-plan.png'), fullPage: true });

    // The instance page, once ingest runs v2: the drawn nodes are exactly its nodes, named as they are.
    await daemon.waitFor((s) => s.appliedRevision === second && s.sync === 'Synced', 90_000, 'the second revision');
    const inst = await context.newPage();
    inst.on('console', (m) => void (m.type() === 'error' && errors.push(m.text())));
    inst.on('pageerror', (e) => errors.push(e.message));
    await inst.goto(`${daemon.url}instances/ingest`);
    const drawn = await drawnByRenderer(inst, '#live-flows');
    const expected = v2.filter((n) => n.type !== 'tab' && n.type !== 'group').map((n) => String(n.id));
    expect(drawn.ids.sort()).toEqual(expected.sort());
    for (const n of v2) {
      // Link nodes are drawn without their label, as in the editor.
      if (n.type === 'tab' || n.type === 'group' || n.type === 'link in' || n.type === 'link out' || !n.name) continue;
      expect(drawn.texts[String(n.id)], String(n.id)).toContain(String(n.name));
    }
    expect(drawn.marks).toEqual({});
    expect(await inst.textContent('#inst-title')).toBe('ingest');
    expect(await inst.locator('[data-fact="uptime"]').textContent()).not.toBe('—');
    expect(await inst.locator('pre.logs').textContent()).toMatch(/Node-RED version/);
    await inst.screenshot({ path: join(OUT, 'status-page-instance.png'), fullPage: true });

    // With JavaScript off: the server's SVG, the same nodes.
    const plain = await browser.newContext({ viewport: { width: 1280, height: 900 }, javaScriptEnabled: false });
    const noJs = await plain.newPage();
    await noJs.goto(`${daemon.url}instances/ingest`);
    const staticIds = await noJs.$$eval('#live-flows .flow-static g.node[data-node-id]', (gs) => gs.map((g) => g.getAttribute('data-node-id')!));
    expect(staticIds.sort()).toEqual(expected.sort());
    expect(await noJs.locator('#live-flows .flow-renderer').isHidden()).toBe(true);
    await noJs.screenshot({ path: join(OUT, 'status-page-instance-nojs.png'), fullPage: true });
    await plain.close();
    await context.close();

    // Nothing was refused by the CSP, nothing threw.
    expect(errors).toEqual([]);
    for (const f of ['status-page-fleet-rollout.png', 'status-page-plan.png', 'status-page-instance.png', 'status-page-instance-nojs.png']) expect(statSync(join(OUT, f)).size).toBeGreaterThan(20_000);
  });

  it('marks what drifted from Git on the instance page, and shows its log with the secret redacted', async () => {
    const API_KEY = 'pages-e2e-4f9a1c7d2b';
    const bare = await initBare(join(tmp('tower-bare-'), 'fleet.git'));
    const clone = await WorkClone.create(bare, tmp('tower-clone-'));
    const ports = await writeSmallFleet(clone.dir, [{ name: 'web', text: 'git', extraYaml: '      env: { API_KEY: { fromEnv: TOWER_PAGES_E2E_API_KEY } }' }], '{ order: sequential }');
    const leak = [
      ...(helloFlow('web', 'git') as Record<string, unknown>[]),
      { id: 'web-tick', type: 'inject', z: 'web-tab', name: 'once', props: [{ p: 'payload' }], repeat: '', crontab: '', once: true, onceDelay: 0.1, topic: '', payload: '', payloadType: 'date', x: 120, y: 120, wires: [['web-leak']] },
      { id: 'web-leak', type: 'function', z: 'web-tab', name: 'leak', func: "node.warn('api key is ' + env.get('API_KEY'));\nreturn null;", outputs: 1, timeout: 0, noerr: 0, initialize: '', finalize: '', libs: [], x: 300, y: 120, wires: [[]] },
    ];
    writeFileSync(join(clone.dir, 'flows', 'web.json'), JSON.stringify(leak, null, 2));
    const first = await clone.commit('fleet');
    await clone.push();
    const st = tmp('tower-state-');
    states.push(st);
    const d = await startDaemon(['--repo', bare, '--state-dir', st, '--interval', '1s'], { ...process.env, TOWER_PAGES_E2E_API_KEY: API_KEY });
    daemons.push(d);
    await d.waitFor((s) => s.appliedRevision === first && s.sync === 'Synced', 60_000, 'the first revision');

    // Someone deploys from the editor: the function answers something else.
    const credentials = JSON.parse(readFileSync(join(st, 'admin.json'), 'utf8')) as { username: string; password: string };
    const admin = new NodeRedAdmin({ baseUrl: `http://127.0.0.1:${ports.web}`, credentials });
    const { rev, flows } = await admin.getFlows();
    await admin.setFlows(flows.map((n: FlowNode) => (n.id === 'web-fn' ? { ...n, name: 'edited live', func: 'msg.payload = "live";\nreturn msg;' } : n)), { rev, type: 'nodes' });
    await d.waitFor((s) => s.drift.includes('web'), 30_000, 'the drift');

    const errors: string[] = [];
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('console', (m) => void (m.type() === 'error' && errors.push(m.text())));
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${d.url}instances/web`);
    // Node-RED writes its log as it goes: the page is read again until the line is there.
    await expect.poll(async () => (await page.reload(), (await page.locator('pre.logs').textContent()) ?? ''), { timeout: 15_000 }).toContain('api key is [redacted]');
    const drawn = await drawnByRenderer(page, '#live-flows');
    expect(drawn.marks).toEqual({ 'web-fn': 'changed' });
    expect(drawn.texts['web-fn']).toContain('edited live');
    expect(await page.textContent('#flows')).toContain('1 node differs');
    expect(await page.textContent('body')).not.toContain(API_KEY);
    await page.screenshot({ path: join(OUT, 'status-page-instance-drift.png'), fullPage: true });
    expect(errors).toEqual([]);
  });
});
