/**
 * tower history beside a running daemon: two commits pushed to a real bare repository, each
 * rolled out by `tower run` onto real Node-RED; `tower history` reads the daemon's embedded
 * store read-only while the daemon holds it, and shows both rollouts, newest first, with who
 * and what, and the phases of the instance.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { bufferIo } from '../../src/commands/io.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';
import { writeSmallFleet } from '../helpers/fleet-fixture.js';
import { GIT_TEST_ENV, initBare, WorkClone } from '../helpers/git.js';

const dirs: string[] = [];
let daemon: DaemonProcess | undefined;
let state = '';

afterAll(async () => {
  await daemon?.kill('SIGKILL');
  if (state) await main(['destroy', '--state-dir', state], bufferIo(process.env)).catch(() => 1);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tmp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

async function tower(...args: string[]) {
  const io = bufferIo({ ...process.env, DATABASE_URL: '' });
  const code = await main(args, io);
  return { code, out: io.out, err: io.err };
}

describe('tower history with tower run', () => {
  it('shows the daemon\'s rollouts, newest first, while the daemon runs', async () => {
    const bare = await initBare(join(tmp('tower-hist-bare-'), 'fleet.git'));
    const clone = await WorkClone.create(bare, tmp('tower-hist-clone-'));
    const ports = await writeSmallFleet(clone.dir, [{ name: 'web', text: 'v1' }], '{ order: sequential }');
    const first = await clone.commit('web says v1');
    await clone.push();
    state = tmp('tower-hist-state-');
    daemon = await startDaemon(['--repo', bare, '--state-dir', state, '--interval', '1s'], { ...process.env, DATABASE_URL: '' });
    const converged = (revision: string) => (s: { appliedRevision?: string; sync: string }) => s.appliedRevision === revision && s.sync === 'Synced';
    await daemon.waitFor(converged(first), 30_000, 'the first revision');

    await writeSmallFleet(clone.dir, [{ name: 'web', text: 'v2' }], '{ order: sequential }', ports);
    const second = await clone.commit('web says v2\n\nwith a body');
    await clone.push();
    await daemon.waitFor(converged(second), 30_000, 'the second revision');

    const json = await tower('history', '--state-dir', state, '--format', 'json');
    expect(json.code, json.err).toBe(0);
    const { fleet, history } = JSON.parse(json.out) as { fleet: string; history: { revision?: string; author?: string; message?: string; actor?: string; outcome: string; finishedAt?: string; instances?: Record<string, { path: string; outcome: string; phases: { phase: string; ms?: number }[] }> }[] };
    expect(fleet).toBe('small');
    const ours = history.filter((h) => h.revision === first || h.revision === second);
    expect(ours.map((h) => h.revision)).toEqual([second, first]);
    for (const h of ours) {
      expect(h).toMatchObject({ author: GIT_TEST_ENV.GIT_AUTHOR_NAME, actor: 'tower', outcome: 'succeeded', finishedAt: expect.any(String) });
      expect(h.instances?.web?.phases.length).toBeGreaterThan(0);
      expect(h.instances!.web!.phases.every((p) => typeof p.ms === 'number')).toBe(true);
    }
    expect(ours[0]!.message).toBe('web says v2\n\nwith a body');
    expect(ours[0]!.instances!.web!.path).toBe('blue-green');
    expect(ours[1]!.instances!.web!.path).toBe('create');

    const text = await tower('history', '--state-dir', state, '--limit', '2');
    expect(text.code, text.err).toBe(0);
    expect(text.out).toContain(`${second.slice(0, 12)}  ${GIT_TEST_ENV.GIT_AUTHOR_NAME} (tower)  web says v2\n`);
    expect(text.out).toMatch(/\n {4}web {2}blue-green {2}succeeded {2}[A-Z]+ \d/);
    // The daemon still runs and still holds its store.
    expect((await daemon.status()).appliedRevision).toBe(second);
  });
});
