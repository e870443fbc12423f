/**
 * The status page: the pure renderer with crafted statuses, then the routes in-process
 * (app.request, no socket) — the page, its fragment, the read-only rule and the event stream.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { FleetStatus } from '../../src/core/status.js';
import { createApp } from '../../src/server/app.js';
import { formatDuration, phaseStates, relativeTime, renderStatusMain, renderStatusPage, STATUS_PAGE_CSP } from '../../src/server/page.js';
import { SseReader } from '../helpers/sse-reader.js';
import { history, invalidStatus, NOW, REV_A, REV_B, rollingOutStatus, statusProvider, syncedStatus, until } from '../helpers/status-fixture.js';

const render = (s: FleetStatus, records = history()) => renderStatusPage({ ...s, history: records, version: '0.1.0' }, { now: NOW });

/** phase -> state of one instance's steps in the deploy panel. */
function steps(page: string, instance: string): Record<string, string> {
  const start = page.indexOf(`<li class="ri" data-instance="${instance}">`);
  expect(start, `deploy panel entry of ${instance}`).toBeGreaterThanOrEqual(0);
  const block = page.slice(start, page.indexOf('</ol>', start));
  return Object.fromEntries([...block.matchAll(/data-phase="(\w+)" data-state="(\w+)"/g)].map((m) => [m[1], m[2]]));
}

function section(page: string, id: string): string {
  const start = page.indexOf(`<section id="${id}"`);
  return start < 0 ? '' : page.slice(start, page.indexOf('</section>', start));
}

describe('renderStatusPage', () => {
  it('renders a fleet in sync: header, revisions, commit, instances, history — a complete document without external assets', () => {
    const page = render(syncedStatus());
    expect(page.startsWith('<!doctype html>\n<html lang="en">')).toBe(true);
    expect(page).toContain('<meta name="viewport"');
    expect(page.trimEnd().endsWith('</html>')).toBe(true);
    // Only inline assets: no src= at all, hrefs relative or data:.
    expect(page).not.toMatch(/\ssrc=/);
    for (const [, href] of page.matchAll(/href="([^"]*)"/g)) expect(href).toMatch(/^(\/|data:)/);
    expect(page.match(/<script/g)).toHaveLength(1);

    const head = section(page, 'overview');
    expect(head).toContain('<h1 id="fleet-title">redforge</h1>');
    expect(head).toMatch(/data-sync="Synced"><span class="badge tone-ok"><span class="icon" aria-hidden="true">✓<\/span>Synced<\/span>/);
    expect(head).toContain('Leader');
    expect(head).toContain(`<code class="rev" title="${REV_A}">a1b2c3d</code>`);
    expect(head).toContain('Raise the chunk size to 400');
    expect(head).toContain('Longer chunks embed better.'); // the body behind a disclosure
    expect(head).toContain('by Ada Lovelace');
    expect(head).toContain('https://git.example.com/redforge/fleet.git#main');
    expect(head).toContain('30 s ago'); // last fetch, 11:59:30 vs 12:00:00
    expect(page).toContain('Synced: the fleet runs a1b2c3d.');

    const table = section(page, 'instances');
    for (const name of ['embeddings', 'errors', 'ingest', 'query', 'storage']) expect(table).toContain(`<tr data-instance="${name}" data-health="Healthy">`);
    expect(table).toContain('<th scope="col">Health</th>');
    expect(table).toContain('<th scope="row"><a class="inst-link" href="/instances/ingest">ingest</a>');
    expect(table).toContain('colour-green');
    expect(table).toContain('1881');
    expect(table).toContain('4.1.8');
    expect(table).toContain('9f86d08'); // flows rev, short
    expect(table).toContain('<time datetime="2025-06-01T11:42:00.000Z" title="2025-06-01 11:42:00 UTC">18 min ago</time>');
    expect(table).toContain('warm');

    expect(section(page, 'rollout')).toBe('');
    expect(section(page, 'validation')).toBe('');
    expect(page).toContain('role="status" aria-live="polite"');
  });

  it('shows the rollout in progress as waves of instances with six phase steps each', () => {
    const page = render(rollingOutStatus());
    const panel = section(page, 'rollout');
    expect(panel).toContain('Wave 1 of 3, 1 of 5 instances done');
    expect(panel).toContain('<progress max="5" value="1"');
    expect(panel).toContain('data-wave="1"');
    expect(panel).toContain('data-wave="3"');
    // blue-green, in VERIFY
    expect(steps(page, 'ingest')).toEqual({ DRAIN: 'done', DEPLOY: 'done', VERIFY: 'current', RESUME: 'pending', AUDIT: 'pending', CLEANUP: 'pending' });
    // a swap back to the warm colour skips DRAIN and DEPLOY; it serves and waits for cleanup
    expect(steps(page, 'embeddings')).toEqual({ DRAIN: 'skipped', DEPLOY: 'skipped', VERIFY: 'done', RESUME: 'done', AUDIT: 'done', CLEANUP: 'pending' });
    // a cosmetic change in place skips DRAIN and RESUME
    expect(steps(page, 'errors')).toEqual({ DRAIN: 'skipped', DEPLOY: 'current', VERIFY: 'pending', RESUME: 'skipped', AUDIT: 'pending', CLEANUP: 'pending' });
    expect(steps(page, 'storage')).toEqual({ DRAIN: 'pending', DEPLOY: 'pending', VERIFY: 'pending', RESUME: 'pending', AUDIT: 'pending', CLEANUP: 'pending' });
    expect(panel.match(/aria-current="step"/g)).toHaveLength(2);
    // the state is in words too, not only in colour
    expect(panel).toContain('VERIFY<span class="vh"> (current)</span>');
    expect(panel).toContain('serving the new version');
    expect(panel).toContain('waiting');
    expect(page).toContain('Rolling out b2c3d4e: wave 1 of 3, 1 of 5 instances done.');
    expect(page).toContain('data-sync="Progressing"');
  });

  it('shows where an instance failed and that its wave failed', () => {
    const s = rollingOutStatus();
    s.rollout!.waves[0]!.state = 'failed';
    s.rollout!.instances.ingest = { wave: 0, phase: 'VERIFY', path: 'blue-green', outcome: 'rolled-back', error: 'smoke green: "converts text": expected status 200, got 500' };
    const page = render(s);
    expect(steps(page, 'ingest')).toMatchObject({ DEPLOY: 'done', VERIFY: 'failed', RESUME: 'pending' });
    expect(section(page, 'rollout')).toContain('Wave 1 of 3 failed, 1 of 5 instances done');
    expect(section(page, 'rollout')).toContain('rolled back');
    expect(section(page, 'rollout')).toContain('expected status 200, got 500');
  });

  it('phaseStates: from the last reported phase, path and outcome', () => {
    expect(Object.values(phaseStates(undefined))).toEqual(['pending', 'pending', 'pending', 'pending', 'pending', 'pending']);
    expect(phaseStates({ phase: 'DRAIN', path: 'delete' })).toEqual({ DRAIN: 'current', DEPLOY: 'skipped', VERIFY: 'skipped', RESUME: 'skipped', AUDIT: 'skipped', CLEANUP: 'pending' });
    expect(phaseStates({ phase: 'CLEANUP', path: 'delete', outcome: 'succeeded' })).toMatchObject({ DRAIN: 'done', CLEANUP: 'done', VERIFY: 'skipped' });
    expect(phaseStates({ phase: 'DEPLOY', path: 'create', outcome: 'failed' })).toMatchObject({ DRAIN: 'done', DEPLOY: 'failed', VERIFY: 'pending' });
    expect(phaseStates({ phase: 'AUDIT', path: 'some-future-path' })).toMatchObject({ RESUME: 'done', AUDIT: 'current', CLEANUP: 'pending' });
  });

  it('shows a rejected revision: validation errors with file:line:col and hints, the fleet staying on the last good one', () => {
    const page = render(invalidStatus());
    const v = section(page, 'validation');
    expect(v).toContain('Validation: 2 errors, 1 warning in <code class="rev"');
    expect(v).toContain('c3d4e5f');
    expect(v).toContain('<code class="loc">flows/text-chunker.json:14:7</code>');
    expect(v).toContain('wire to missing node &quot;n9&quot;');
    expect(v).toContain('Export the node n9 too, or remove the wire.');
    expect(v).toContain('DanglingWire');
    expect(v).toContain('(ingest)');
    expect(v).toContain('fleet.yaml:9:13');
    expect(v).toContain('warning');
    const head = section(page, 'overview');
    expect(head).toContain('invalid');
    expect(head).toContain('The fleet keeps running');
    expect(head).toContain('Newest on source');
    // lastError repeats the attempt's error: shown once
    expect(head.match(/wire to missing node/g)).toHaveLength(1);
  });

  it('counts the diagnostics the status left out: "and N more", and the totals in the heading', () => {
    const s = invalidStatus();
    s.validationOmitted = { errors: 3_998, warnings: 1_000 };
    const v = section(render(s), 'validation');
    expect(v).toContain('Validation: 4,000 errors, 1,001 warnings in');
    expect(v).toContain('… and 4,998 more: run <code>tower validate</code> to see them all.');
    expect(section(render(invalidStatus()), 'validation')).not.toContain('more: run');
  });

  it('lists the history newest first, with outcome, duration and error', () => {
    const page = render(syncedStatus());
    const h = section(page, 'history');
    expect([...h.matchAll(/data-rollout="([^"]+)"/g)].map((m) => m[1])).toEqual(['r-1', 'r-0', 'r-00']);
    expect(h).toContain('9.0 s');
    expect(h).toContain('succeeded');
    expect(h).toContain('rolled back');
    expect(h).toContain('expected status 200, got 500');
    expect(h).toContain('<th scope="col">Outcome</th>');
  });

  it('renders a daemon that knows nothing yet', () => {
    const page = render({ source: { kind: 'directory', location: '/srv/fleet' }, sync: 'Unknown', reason: 'NoRevision', message: 'no revision has been read yet', leader: false, instances: [], rollout: null, validation: [], drift: [] }, []);
    expect(page).toContain('data-sync="Unknown"');
    expect(page).toContain('Standby');
    expect(page).toContain('No instances yet.');
    expect(page).toContain('No rollouts yet.');
    expect(page).toContain('Status unknown');
  });

  it('marks drift clearly', () => {
    const s = syncedStatus();
    s.sync = 'OutOfSync';
    s.instances[3]!.drift = true;
    s.drift = ['query'];
    const page = render(s);
    expect(page).toContain('<tr data-instance="query" data-health="Healthy" class="drifted">');
    expect(section(page, 'instances')).toContain('Drifted');
    expect(page).toContain('Out of sync: drift on query.');
  });

  it('escapes every string that comes from users', () => {
    const s = rollingOutStatus();
    const xss = '<script>alert(1)</script>';
    const img = '<img src=x onerror=alert(2)>';
    const attr = '"><svg onload=alert(3)>';
    s.fleet = `fleet${attr}`;
    s.commit = { revision: `${REV_B}${attr}`, author: `Mallory ${img}`, email: `m@example.com${attr}`, message: `fix ${xss}\n\nbody ${img}`, date: `2025-06-01T11:00:00Z${attr}` };
    s.lastError = `boom ${img}`;
    s.source.error = `unreachable ${xss}`;
    s.source.location = `https://example.com/${attr}`;
    s.instances[0]!.healthMessage = `sick ${xss}`;
    s.instances[0]!.name = `evil${attr}`;
    s.rollout!.instances.ingest!.error = `failed ${img}`;
    s.validation = [{ severity: 'error', code: 'FlowSyntax', file: `flows/${attr}.json`, line: 1, col: 1, message: `bad ${xss}`, hint: `hint ${img}` }];
    const records = history();
    records[0]!.message = `msg ${xss}`;
    records[0]!.error = `err ${img}`;
    records[0]!.author = `author ${attr}`;
    const page = render(s, records);
    expect(page).not.toContain(xss);
    expect(page).not.toContain(img);
    expect(page).not.toContain(attr);
    expect(page).not.toContain('<svg onload');
    expect(page).not.toContain('<img');
    expect(page).toContain('href="/instances/evil%22%3E%3Csvg%20onload%3Dalert(3)%3E"');
    expect(page.match(/<script/g)).toHaveLength(1); // ours only
    expect(page).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(page).toContain('&quot;&gt;&lt;svg onload=alert(3)&gt;');
    expect(page).toContain('<title>fleet&quot;&gt;&lt;svg onload=alert(3)&gt; — Rolling out — RedForge Tower</title>');
  });

  it('the CSP admits exactly the inline style and script', () => {
    const page = render(syncedStatus());
    const hash = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
    const script = page.slice(page.indexOf('<script>') + 8, page.indexOf('</script>'));
    const style = page.slice(page.indexOf('<style>') + 7, page.indexOf('</style>'));
    expect(STATUS_PAGE_CSP).toContain(`script-src ${hash(script)}`);
    expect(STATUS_PAGE_CSP).toContain(`style-src ${hash(style)}`);
    expect(STATUS_PAGE_CSP).toContain("default-src 'none'");
    expect(page).not.toMatch(/\sstyle="/); // inline style attributes would be blocked
  });

  it('the fragment is the <main> of the page, nothing else', () => {
    const model = { ...syncedStatus(), history: history(), version: '0.1.0' };
    const main = renderStatusMain(model, { now: NOW });
    expect(main.startsWith('<main id="status"')).toBe(true);
    expect(main.endsWith('</main>')).toBe(true);
    expect(renderStatusPage(model, { now: NOW })).toContain(main);
  });

  it('formats times and durations', () => {
    expect(relativeTime(new Date('2025-06-01T11:59:58Z'), NOW)).toBe('just now');
    expect(relativeTime(new Date('2025-06-01T11:57:00Z'), NOW)).toBe('3 min ago');
    expect(relativeTime(new Date('2025-05-30T12:00:00Z'), NOW)).toBe('2 d ago');
    expect(relativeTime(new Date('2025-06-01T13:00:00Z'), NOW)).toBe('in 1 h');
    expect(formatDuration(420)).toBe('420 ms');
    expect(formatDuration(1400)).toBe('1.4 s');
    expect(formatDuration(125_000)).toBe('2 min 5 s');
  });
});

describe('createApp: the page and the event stream', () => {
  it('GET / serves the server-rendered page with the instances', async () => {
    const p = statusProvider(syncedStatus());
    const res = await createApp(p.deps).request('/');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html; charset=utf-8/i);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('content-security-policy')).toBe(STATUS_PAGE_CSP);
    const body = await res.text();
    expect(body.startsWith('<!doctype html>')).toBe(true);
    for (const name of ['embeddings', 'errors', 'ingest', 'query', 'storage']) expect(body).toContain(`data-instance="${name}"`);
    expect(body).toContain('Tower 0.1.0-test');
    expect(body).toContain('data-rollout="r-1"');
  });

  it('GET /?fragment=1 serves only <main>', async () => {
    const p = statusProvider(rollingOutStatus());
    const res = await createApp(p.deps).request('/?fragment=1');
    expect(res.status).toBe(200);
    const body = await res.text();
    expect(body).toMatch(/^<main id="status" data-sync="Progressing" data-title="redforge — Rolling out — RedForge Tower">/);
    expect(body).not.toContain('<!doctype');
    expect(body).toContain('data-phase="VERIFY" data-state="current"');
  });

  it('still renders when the history store fails', async () => {
    const p = statusProvider(syncedStatus());
    const app = createApp({ ...p.deps, history: () => Promise.reject(new Error('store down')) });
    const res = await app.request('/');
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('No rollouts yet.');
  });

  it('is read-only: anything but GET answers 405, on the page and the event stream too', async () => {
    const app = createApp(statusProvider(syncedStatus()).deps);
    const drawn = ['/instances/ingest', `/revisions/${REV_A}`, '/assets/flows.js', '/assets/flow-renderer.js', '/assets/flow-renderer.css'];
    const others = drawn.flatMap((path) => (['POST', 'PUT', 'DELETE', 'PATCH'] as const).map((method) => [method, path] as const));
    for (const [method, path] of [['POST', '/'], ['PUT', '/api/v1/status'], ['DELETE', '/'], ['POST', '/api/v1/events'], ['PATCH', '/?fragment=1'], ...others] as const) {
      const res = await app.request(path, { method });
      expect(res.status, `${method} ${path}`).toBe(405);
      expect(res.headers.get('allow')).toBe('GET, HEAD');
    }
    expect((await app.request('/api/v1/status')).status).toBe(200);
    expect((await app.request('/healthz')).status).toBe(200);
    expect((await app.request('/nope')).status).toBe(404);
  });

  it('GET /api/v1/events sends the status at once and again after each change, then lets go when the client leaves', async () => {
    const p = statusProvider(syncedStatus());
    const res = await createApp(p.deps).request('/api/v1/events');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const events = new SseReader(res.body!);
    try {
      const first = await events.nextEvent(2_000);
      expect(first.event).toBe('status');
      expect(first.retry).toBe(3000);
      const initial = JSON.parse(first.data!) as { sync: string; version: string; history: unknown[]; instances: unknown[] };
      expect(initial).toMatchObject({ sync: 'Synced', version: '0.1.0-test' });
      expect(initial.history).toHaveLength(3);
      expect(p.listeners.size).toBe(1);

      p.status = rollingOutStatus();
      p.emit();
      const next = await events.nextEvent(2_000);
      expect(next.event).toBe('status');
      const changed = JSON.parse(next.data!) as FleetStatus;
      expect(changed.sync).toBe('Progressing');
      expect(changed.rollout?.instances.ingest?.phase).toBe('VERIFY');
    } finally {
      await events.cancel();
    }
    await until(() => p.listeners.size === 0, 2_000, 'the stream unsubscribes when the client goes away');
  });

  it('HEAD /api/v1/events answers without opening a stream', async () => {
    const p = statusProvider(syncedStatus());
    const res = await createApp(p.deps).request('/api/v1/events', { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    expect(p.listeners.size).toBe(0);
  });
});
