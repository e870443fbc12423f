/**
 * The status page of a real daemon, in real Chromium: it renders the fleet, follows a
 * rollout live (no reload) through its phases, and ends in sync. Screenshots go to
 * test-output/.
 */
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { bufferIo } from '../../src/commands/io.js';
import { launchChromium } from '../helpers/browser.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';
import { writeSmallFleet } from '../helpers/fleet-fixture.js';
import { initBare, WorkClone } from '../helpers/git.js';

const OUT = join(import.meta.dirname, '..', '..', 'test-output');
let browser: Browser;
let daemon: DaemonProcess | undefined;
const dirs: string[] = [];
let state = '';

beforeAll(async () => {
  browser = await launchChromium();
  mkdirSync(OUT, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
  await daemon?.kill('SIGKILL');
  if (state) await main(['destroy', '--state-dir', state], bufferIo(process.env)).catch(() => 1);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tmp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

describe('status page of a running daemon', () => {
  it('follows a rollout live, without reloading', async () => {
    const bare = await initBare(join(tmp('tower-bare-'), 'fleet.git'));
    const clone = await WorkClone.create(bare, tmp('tower-clone-'));
    const fleet = (text: string) => [
      { name: 'ingest', text },
      { name: 'query', text, delayMs: 50 },
    ];
    const plan = '{ order: waves, waves: [[ingest], [query]] }';
    const ports = await writeSmallFleet(clone.dir, fleet('p1'), plan);
    const first = await clone.commit('first version');
    await clone.push();
    state = tmp('tower-state-');
    daemon = await startDaemon(['--repo', bare, '--state-dir', state, '--interval', '1s'], process.env);
    await daemon.waitFor((s) => s.appliedRevision === first && s.sync === 'Synced', 30_000, 'the first revision');

    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    let navigations = 0;
    page.on('framenavigated', (f) => {
      if (f === page.mainFrame()) navigations++;
    });
    await page.goto(daemon.url);
    await expect.poll(() => page.textContent('body'), { timeout: 10_000 }).toContain('Synced');
    const body = (await page.textContent('body'))!;
    expect(body).toContain('ingest');
    expect(body).toContain('query');
    expect(body).toContain(first.slice(0, 7));
    const loadedNavigations = navigations;

    // A new commit: the page shows the rollout (waves and phases) as it happens.
    await writeSmallFleet(clone.dir, fleet('p2'), plan, ports);
    const second = await clone.commit('second version: new answers');
    await clone.push();
    await expect.poll(() => page.textContent('body'), { timeout: 15_000 }).toMatch(/Rolling out|Progressing/);
    // A phase in progress is marked as the current step of its instance.
    await expect.poll(() => page.locator('[aria-current="step"]').count(), { timeout: 15_000, interval: 50 }).toBeGreaterThan(0);
    expect(await page.locator('[aria-current="step"]').first().textContent()).toMatch(/DRAIN|DEPLOY|VERIFY|RESUME|AUDIT|CLEANUP/);
    await page.screenshot({ path: join(OUT, 'status-page-rollout.png'), fullPage: true });
    await expect.poll(() => page.textContent('body'), { timeout: 30_000 }).toContain(second.slice(0, 7));
    await expect.poll(async () => (await daemon!.status()).sync, { timeout: 30_000 }).toBe('Synced');
    await expect.poll(() => page.textContent('body'), { timeout: 10_000 }).toContain('second version: new answers');
    await page.screenshot({ path: join(OUT, 'status-page.png'), fullPage: true });
    expect(navigations).toBe(loadedNavigations); // live updates, no reload
    for (const f of ['status-page.png', 'status-page-rollout.png']) expect(statSync(join(OUT, f)).size).toBeGreaterThan(20_000);
  });
});
