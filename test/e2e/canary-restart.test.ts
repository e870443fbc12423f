/**
 * A canary survives the daemon: `tower run` is SIGKILLed while the switch sends 50 % of new
 * connections to the canary; the switch (a detached router) keeps splitting, and the next
 * daemon resumes the canary at the weight the switch reports — no new colour, the 50 % step
 * analysed again, then promoted — with open-loop load through the stable port all along and
 * no request failing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { bufferIo } from '../../src/commands/io.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';
import { writeSmallFleet } from '../helpers/fleet-fixture.js';
import { tallyLoad } from '../helpers/tally-load.js';

const dirs: string[] = [];
const daemons: DaemonProcess[] = [];
let state: string | undefined;

afterEach(async () => {
  for (const d of daemons.splice(0)) await d.kill('SIGKILL');
});

afterAll(async () => {
  if (state) await main(['destroy', '--state-dir', state], bufferIo(process.env)).catch(() => 1);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const CANARY = `      strategy:
        canary:
          steps: [ { weight: 10, pause: 2s }, { weight: 50, pause: 6s }, { weight: 100 } ]
          analysis: { successRate: { min: 99% }, minRequests: 5 }`;

interface Progress { instances?: Record<string, { canary?: { weight: number; step: number } }> }

describe('a canary across a daemon restart', () => {
  it('resumes at the weight the switch applies, without deploying again, and is promoted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tower-canary-restart-'));
    state = mkdtempSync(join(tmpdir(), 'tower-canary-restart-state-'));
    dirs.push(dir, state);
    const ports = await writeSmallFleet(dir, [{ name: 'api', text: 'v1', extraYaml: CANARY }], '{ order: sequential }');
    const first = await startDaemon(['--repo', dir, '--state-dir', state, '--interval', '1h'], process.env);
    daemons.push(first);
    await first.waitFor((s) => s.sync === 'Synced', 60_000, 'the fleet to converge');

    const traffic = tallyLoad(ports.api!, '/hello', 20, 5_000);
    try {
      await writeSmallFleet(dir, [{ name: 'api', text: 'v2', extraYaml: CANARY }], '{ order: sequential }', ports);
      await first.waitFor((s) => (s.rollout as Progress | null)?.instances?.api?.canary?.weight === 50, 60_000, 'the canary at 50 %');
      await first.kill('SIGKILL');
      const during = { ...traffic.tally.ok };
      // With no daemon, what runs says where the canary is: the switch's weight.
      const io = bufferIo(process.env);
      await main(['status', '--state-dir', state, '--format', 'json'], io);
      expect((JSON.parse(io.out) as { instances: { name: string; color?: string; canaryWeight?: number }[] }).instances).toMatchObject([{ name: 'api', color: 'blue', canaryWeight: 50 }]);

      const second = await startDaemon(['--repo', dir, '--state-dir', state, '--interval', '1h'], process.env);
      daemons.push(second);
      const done = await second.waitFor((s) => s.sync === 'Synced' && s.instances[0]?.rev !== undefined && s.history?.[0]?.outcome === 'succeeded', 90_000, 'the resumed canary to be promoted');
      expect(done.instances[0]).toMatchObject({ name: 'api', color: 'green', health: 'Healthy' });
      const api = second.logs.filter((l) => l.instance === 'api');
      const phases = api.filter((l) => typeof l.phase === 'string').map((l) => l.phase);
      expect(phases).not.toContain('DEPLOY'); // the canary colour was not started again
      expect(phases).toContain('VERIFY');
      const steps = api.map((l) => String(l.msg)).filter((m) => m.startsWith('canary step'));
      expect(steps[0]).toMatch(/^canary step 2 \(50%\): pass/);
      expect(steps.some((m) => m.startsWith('canary step 1 '))).toBe(false);
      expect(during['v1 blue']).toBeGreaterThan(0);
      expect(during['v2 green']).toBeGreaterThan(0);
    } finally {
      const tally = await traffic.stop();
      console.log(`through the switch across the restart: ${JSON.stringify(tally)}`);
      expect(tally.switchFailures).toEqual({});
    }
  }, 240_000);
});
