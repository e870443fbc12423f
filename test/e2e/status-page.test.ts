/**
 * The status page in a real browser (Debian Chromium via playwright-core), served over a real
 * socket by @hono/node-server. A status object the test mutates stands in for the daemon,
 * and the test fires the daemon's 'status' event by hand.
 *
 * Proves: the fleet renders; a change reaches an open page without a reload (server-sent
 * event -> fragment fetch -> swap); the page reconnects after the stream breaks and catches
 * up; the strict CSP lets the inline script and style run; with JavaScript off everything is
 * still there.
 */
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { Server } from 'node:http';
import { serve, type ServerType } from '@hono/node-server';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/server/app.js';
import { launchChromium } from '../helpers/browser.js';
import { history, rollingOutStatus, statusProvider, syncedStatus, until } from '../helpers/status-fixture.js';

const OUT = 'test-output';
const WAIT = 5_000;

describe('status page in Chromium', () => {
  // Times relative to the real clock, so the screenshot reads "2 min ago", not a date.
  const provider = statusProvider(syncedStatus(new Date()), history(new Date()));
  let server: ServerType | undefined;
  let base = '';
  let browser: Browser | undefined;
  let context: BrowserContext;
  let page: Page;
  const problems: string[] = [];
  let navigations = 0;

  beforeAll(async () => {
    const app = createApp(provider.deps);
    const port = await new Promise<number>((resolve, reject) => {
      server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, (info) => resolve(info.port));
      server.once('error', reject);
    });
    base = `http://127.0.0.1:${port}`;
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
    page = await context.newPage();
    page.setDefaultTimeout(WAIT);
    // A CSP violation or a script error shows up here.
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  });

  afterAll(async () => {
    await browser?.close();
    if (server instanceof Server) server.closeAllConnections(); // open event streams would keep close() waiting
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });

  it('renders the fleet: instances with their health, and goes live', async () => {
    const res = await page.goto(base, { waitUntil: 'load' });
    expect(res?.status()).toBe(200);
    page.on('framenavigated', (frame) => {
      if (frame === page.mainFrame()) navigations++;
    });
    await expect(page.title()).resolves.toBe('redforge — Synced — RedForge Tower');
    expect(await page.locator('#instances tbody tr[data-instance]').count()).toBe(5);
    expect(await page.locator('#instances tr[data-instance="ingest"] td').nth(2).innerText()).toContain('Healthy');
    expect(await page.locator('#overview [data-sync]').innerText()).toContain('Synced');
    await page.locator('#live[data-state="live"]').waitFor();
    expect(await page.locator('#live').innerText()).toBe('Live');
    expect(await page.locator('#rollout').count()).toBe(0);
    await until(() => provider.listeners.size === 1, WAIT, 'the page subscribed to the event stream');
    // Marks this document: a reload would lose it.
    await page.evaluate("document.documentElement.setAttribute('data-test-marker', 'same-document')");
  });

  it('shows a rollout as it starts and advances, without a reload', async () => {
    provider.status = rollingOutStatus(new Date());
    provider.emit();
    const verify = page.locator('#rollout li[data-instance="ingest"] [data-phase="VERIFY"]');
    await verify.waitFor();
    expect(await verify.getAttribute('data-state')).toBe('current');
    expect(await page.locator('#rollout [data-progress]').innerText()).toBe('Wave 1 of 3, 1 of 5 instances done');
    expect(await page.locator('#overview [data-sync]').innerText()).toContain('Progressing');
    expect(await page.locator('#announce').innerText()).toContain('Rolling out b2c3d4e: wave 1 of 3');
    expect(await page.title()).toBe('redforge — Rolling out — RedForge Tower');

    // The next phase: a second event, a second swap.
    const next = rollingOutStatus(new Date());
    next.rollout!.instances.ingest!.phase = 'RESUME';
    next.rollout!.instances.errors = { wave: 0, phase: 'CLEANUP', path: 'in-place', outcome: 'awaiting-cleanup' };
    provider.status = next;
    provider.emit();
    await page.locator('#rollout li[data-instance="ingest"] [data-phase="RESUME"][data-state="current"]').waitFor();
    expect(await verify.getAttribute('data-state')).toBe('done');
    await page.locator('#rollout [data-progress]', { hasText: '2 of 5 instances done' }).waitFor();

    expect(navigations).toBe(0);
    expect(await page.locator('html').getAttribute('data-test-marker')).toBe('same-document');
  });

  it('reconnects after the stream breaks and catches up with what changed meanwhile', async () => {
    (server as Server).closeAllConnections();
    await page.locator('#live[data-state="reconnecting"]').waitFor();
    // Changed while the page was disconnected: nobody is subscribed to hear it.
    const next = rollingOutStatus(new Date());
    next.rollout!.waves[0]!.state = 'healthy';
    next.rollout!.waves[1]!.state = 'running';
    for (const name of ['ingest', 'embeddings', 'errors']) next.rollout!.instances[name] = { wave: 0, phase: 'CLEANUP', path: 'blue-green', outcome: 'awaiting-cleanup' };
    next.rollout!.instances.storage = { wave: 1, phase: 'DEPLOY', path: 'blue-green' };
    provider.status = next;
    provider.emit();
    // EventSource retries after 3 s (the stream's retry:); the first event on the new stream resyncs.
    await page.locator('#rollout [data-progress]', { hasText: 'Wave 2 of 3, 3 of 5 instances done' }).waitFor({ timeout: 10_000 });
    await page.locator('#live[data-state="live"]').waitFor();
    expect(await page.locator('#rollout li[data-instance="storage"] [data-phase="DEPLOY"]').getAttribute('data-state')).toBe('current');
    expect(navigations).toBe(0);
    expect(await page.locator('html').getAttribute('data-test-marker')).toBe('same-document');
  });

  it('takes a screenshot (test-output/status-page.png)', async () => {
    mkdirSync(OUT, { recursive: true });
    const file = `${OUT}/status-page.png`;
    await page.screenshot({ path: file, fullPage: true });
    const png = readFileSync(file);
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    // IHDR: width and height, big-endian, at bytes 16..24.
    expect(png.readUInt32BE(16)).toBe(1280);
    expect(png.readUInt32BE(20)).toBeGreaterThan(900);
    expect(statSync(file).size).toBeGreaterThan(30_000);

    // And on a phone: the same page, narrow.
    const phone = await browser!.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    try {
      const p = await phone.newPage();
      await p.goto(base);
      await p.screenshot({ path: `${OUT}/status-page-phone.png`, fullPage: true });
      // Nothing but the scrollable tables may be wider than the screen.
      const overflow = await p.evaluate<number>('document.documentElement.scrollWidth');
      expect(overflow).toBeLessThanOrEqual(390);
    } finally {
      await phone.close();
    }
  });

  it('shows the instances and the rollout with JavaScript disabled', async () => {
    // Only the main page's stream (the phone's closes asynchronously with its socket).
    await until(() => provider.listeners.size === 1, WAIT, 'one event stream open');
    const noJs = await browser!.newContext({ javaScriptEnabled: false });
    try {
      const p = await noJs.newPage();
      p.setDefaultTimeout(WAIT);
      await p.goto(base);
      expect(await p.locator('#instances tbody tr[data-instance]').count()).toBe(5);
      expect(await p.locator('#instances tr[data-instance="storage"]').innerText()).toContain('Healthy');
      expect(await p.locator('#rollout [data-progress]').innerText()).toBe('Wave 2 of 3, 3 of 5 instances done');
      expect(await p.locator('#rollout li[data-instance="storage"] [data-phase="DEPLOY"]').getAttribute('data-state')).toBe('current');
      expect(await p.locator('#history tbody tr').count()).toBe(3);
      expect(await p.locator('#live').isVisible()).toBe(false); // no live indicator without the script
      expect(await p.locator('meta[http-equiv="refresh"]').count()).toBe(0);
      expect(await p.locator('noscript').count()).toBe(0);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(provider.listeners.size).toBe(1); // no event stream from this page
    } finally {
      await noJs.close();
    }
  });

  it('logged no script errors and no CSP violations', () => {
    // The broken stream in the reconnect test is expected to be reported by Chromium; nothing else.
    const unexpected = problems.filter((p) => !/net::ERR_(EMPTY_RESPONSE|CONNECTION_RESET|INCOMPLETE_CHUNKED_ENCODING)/.test(p));
    expect(unexpected).toEqual([]);
  });
});
