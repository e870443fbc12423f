/**
 * tower run end to end, through a real bare Git repository: push → converge, invalid commit
 * → nothing changes, git revert → previous flows back, webhook → converge at once, remote
 * unreachable → keep running, SIGKILL in every phase → recover.
 */
import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import axios from 'axios';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { bufferIo } from '../../src/commands/io.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';
import { writeSmallFleet } from '../helpers/fleet-fixture.js';
import { initBare, WorkClone } from '../helpers/git.js';

const SECRET = 'a-webhook-secret-for-tests';
const dirs: string[] = [];
const daemons: DaemonProcess[] = [];
const stateDirs: string[] = [];

afterEach(async () => {
  for (const d of daemons.splice(0)) await d.kill('SIGKILL');
});

afterAll(async () => {
  for (const s of stateDirs) await main(['destroy', '--state-dir', s], bufferIo(process.env)).catch(() => 1);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tmp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

async function repoWithFleet(text: string) {
  const bare = await initBare(join(tmp('tower-bare-'), 'fleet.git'));
  const clone = await WorkClone.create(bare, tmp('tower-clone-'));
  const ports = await writeSmallFleet(clone.dir, [{ name: 'web', text, delayMs: 100 }], '{ order: sequential }');
  const first = await clone.commit(`web says ${text}`);
  await clone.push();
  return { bare, clone, ports, first };
}

async function daemon(bare: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<DaemonProcess & { state: string }> {
  const state = tmp('tower-daemon-state-');
  stateDirs.push(state);
  return startWith(bare, state, extra, env);
}

async function startWith(bare: string, state: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<DaemonProcess & { state: string }> {
  const d = await startDaemon(['--repo', bare, '--state-dir', state, '--interval', '1s', ...extra], { ...process.env, TOWER_WEBHOOK_SECRET: SECRET, ...env });
  daemons.push(d);
  return Object.assign(d, { state });
}

async function hello(port: number): Promise<string> {
  return String((await axios.get(`http://127.0.0.1:${port}/hello`, { responseType: 'text', timeout: 10_000 })).data);
}

const converged = (revision: string) => (s: { appliedRevision?: string; sync: string; instances: { health: string }[] }) =>
  s.appliedRevision === revision && s.sync === 'Synced' && s.instances.every((i) => i.health === 'Healthy');

describe('tower run', () => {
  it('push → converges; invalid commit → nothing changes, the error names file and line; git revert → previous flows back', async () => {
    const { bare, clone, ports, first } = await repoWithFleet('v1');
    const d = await daemon(bare);
    await d.waitFor(converged(first), 30_000, 'the first revision');
    expect(await hello(ports.web!)).toBe('v1 blue');

    await writeSmallFleet(clone.dir, [{ name: 'web', text: 'v2', delayMs: 100 }], '{ order: sequential }', ports);
    const second = await clone.commit('web says v2');
    await clone.push();
    const s2 = await d.waitFor(converged(second), 30_000, 'the second revision');
    expect(await hello(ports.web!)).toBe('v2 green');
    expect(s2.history[0]).toMatchObject({ revision: second, outcome: 'succeeded' });

    // An invalid commit: the plan names an instance that does not exist.
    await writeSmallFleet(clone.dir, [{ name: 'web', text: 'v3', delayMs: 100 }], '{ order: waves, waves: [[web, ghost]] }', ports);
    const invalid = await clone.commit('broken plan');
    await clone.push();
    const s3 = await d.waitFor((s) => s.attempted?.revision === invalid, 30_000, 'the invalid revision to be rejected');
    expect(s3.attempted).toMatchObject({ outcome: 'invalid' });
    expect(s3.attempted!.error).toMatch(/fleet\.yaml:\d+:\d+: "ghost" is not an instance of this fleet/);
    expect(s3.validation.some((v) => v.file === 'fleet.yaml' && v.line > 0 && v.message.includes('ghost'))).toBe(true);
    expect(s3.appliedRevision).toBe(second);
    expect(await hello(ports.web!)).toBe('v2 green');

    // Revert the broken commit and the v2 change: back to v1, from the warm blue colour.
    await clone.git('revert', '--no-edit', invalid);
    await clone.git('revert', '--no-edit', second);
    const reverted = await clone.head();
    const pushedAt = Date.now();
    await clone.push();
    await d.waitFor(converged(reverted), 30_000, 'the revert');
    expect(Date.now() - pushedAt).toBeLessThan(10_000);
    expect(await hello(ports.web!)).toBe('v1 blue');
    const swap = d.logs.find((l) => l.instance === 'web' && l.path === 'swap');
    expect(swap, 'the revert swaps back to the warm colour').toBeDefined();
  });

  it('a verified webhook converges at once; a bad signature gets 401 and changes nothing', async () => {
    const { bare, clone, ports, first } = await repoWithFleet('w1');
    const state = tmp('tower-daemon-state-');
    stateDirs.push(state);
    const d = await startDaemon(['--repo', bare, '--state-dir', state, '--interval', '10m'], { ...process.env, TOWER_WEBHOOK_SECRET: SECRET });
    daemons.push(d);
    await d.waitFor(converged(first), 30_000, 'the first revision');

    await writeSmallFleet(clone.dir, [{ name: 'web', text: 'w2', delayMs: 100 }], '{ order: sequential }', ports);
    const second = await clone.commit('web says w2');
    await clone.push();
    const payload = JSON.stringify({ ref: 'refs/heads/main', before: first, after: second, repository: { full_name: 'o/fleet' }, pusher: { name: 't' }, head_commit: { message: 'web says w2' }, deleted: false, forced: false });
    const bad = await axios.post(`${d.url}hooks/github`, payload, { headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-hub-signature-256': 'sha256=' + '0'.repeat(64) }, validateStatus: () => true });
    expect(bad.status).toBe(401);
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await d.status()).appliedRevision).toBe(first);

    const signature = 'sha256=' + createHmac('sha256', SECRET).update(payload).digest('hex');
    const ok = await axios.post(`${d.url}hooks/github`, payload, { headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': 'd1', 'x-hub-signature-256': signature } });
    expect(ok.status).toBe(202);
    await d.waitFor(converged(second), 15_000, 'the webhook-triggered rollout');
    expect(await hello(ports.web!)).toBe('w2 green');
  });

  it('keeps running the last good revision while the remote is unreachable, and says so', async () => {
    const { bare, ports, first } = await repoWithFleet('u1');
    const d = await daemon(bare);
    await d.waitFor(converged(first), 30_000, 'the first revision');
    renameSync(bare, `${bare}.away`);
    const s = await d.waitFor((x) => Boolean(x.source.error), 15_000, 'the source error');
    expect(s.appliedRevision).toBe(first);
    expect(await hello(ports.web!)).toBe('u1 blue');
    renameSync(`${bare}.away`, bare);
    await d.waitFor((x) => !x.source.error, 15_000, 'the source to recover');
  });

  describe.each(['DRAIN', 'DEPLOY', 'VERIFY', 'RESUME', 'AUDIT', 'CLEANUP'])('killed with SIGKILL in %s', (phase) => {
    it('recovers: converges, nothing orphaned, no request lost, the history says what happened', async () => {
      const { bare, clone, ports, first } = await repoWithFleet('k1');
      const d = await daemon(bare);
      await d.waitFor(converged(first), 30_000, 'the first revision');

      // Light traffic the whole time: the stable address must never fail.
      const failures: string[] = [];
      let sent = 0;
      let stop = false;
      const traffic = (async () => {
        while (!stop && sent < 2_000) {
          sent++;
          await hello(ports.web!).catch((e: Error) => failures.push(e.message));
          await new Promise((r) => setTimeout(r, 20));
        }
      })();

      await writeSmallFleet(clone.dir, [{ name: 'web', text: 'k2', delayMs: 100 }], '{ order: sequential }', ports);
      const second = await clone.commit('web says k2');
      const mark = d.logs.length;
      await clone.push();
      if (phase === 'CLEANUP') await d.waitForLog((l) => l.msg === 'rollout succeeded: the fleet runs this revision', 30_000, mark);
      else await d.waitForLog((l) => l.instance === 'web' && l.phase === phase, 30_000, mark);
      await d.kill('SIGKILL');

      const again = await startWith(bare, d.state);
      const s = await again.waitFor(converged(second), 45_000, 'recovery');
      stop = true;
      await traffic;
      expect(failures).toEqual([]);
      expect(sent).toBeGreaterThan(10);
      expect(await hello(ports.web!)).toMatch(/^k2 (blue|green)$/);
      // Nothing orphaned: at most the routed colour and one parked warm colour, both running.
      const colours = readdirSync(join(d.state, 'instances', 'web'));
      expect(colours.length).toBeLessThanOrEqual(2);
      expect(s.instances).toEqual([expect.objectContaining({ name: 'web', health: 'Healthy' })]);
      if (phase !== 'CLEANUP') {
        expect(s.history.some((h) => h.outcome === 'interrupted' && /interrupted/.test(h.error ?? '')), JSON.stringify(s.history.map((h) => [h.outcome, h.error]))).toBe(true);
      }
      expect(existsSync(join(d.state, 'lock'))).toBe(true);
    });
  });
});
