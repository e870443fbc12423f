/**
 * Two daemons pointed at the same fleet, with Redis (leader lease) and PostgreSQL (shared
 * history): exactly one acts; when it is killed, the other takes over and converges.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import axios from 'axios';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { bufferIo } from '../../src/commands/io.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';
import { writeSmallFleet } from '../helpers/fleet-fixture.js';
import { initBare, WorkClone } from '../helpers/git.js';
import { startPostgres, type PostgresServer } from '../helpers/postgres.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

let redis: RedisServer;
let postgres: PostgresServer;
const dirs: string[] = [];
const daemons: DaemonProcess[] = [];

beforeAll(async () => {
  redis = await startRedis();
  postgres = await startPostgres();
}, 60_000);

afterAll(async () => {
  for (const d of daemons) await d.kill('SIGKILL');
  for (const d of dirs.filter((x) => x.includes('state'))) await main(['destroy', '--state-dir', d], bufferIo(process.env)).catch(() => 1);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await redis?.stop();
  await postgres?.stop();
});

function tmp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

describe('two daemons with Redis', () => {
  it('exactly one acts; the other takes over when it is killed', async () => {
    const bare = await initBare(join(tmp('tower-bare-'), 'fleet.git'));
    const clone = await WorkClone.create(bare, tmp('tower-clone-'));
    const ports = await writeSmallFleet(clone.dir, [{ name: 'web', text: 'l1' }], '{ order: sequential }');
    const first = await clone.commit('l1');
    await clone.push();

    // Both run the fleet from the same state directory (a shared volume), as two replicas would.
    const state = tmp('tower-state-');
    const env = { ...process.env, REDIS_URL: redis.url, DATABASE_URL: await postgres.createDatabase('leader') };
    const a = await startDaemon(['--repo', bare, '--state-dir', state, '--interval', '1s'], env);
    daemons.push(a);
    await a.waitFor((s) => s.appliedRevision === first && s.sync === 'Synced', 30_000, 'a to converge');
    const b = await startDaemon(['--repo', bare, '--state-dir', state, '--interval', '1s'], env);
    daemons.push(b);
    await new Promise((r) => setTimeout(r, 2_000));
    const [sa, sb] = [await a.status(), await b.status()];
    expect([sa.leader, sb.leader]).toEqual([true, false]);

    // A change: only the leader rolls it out.
    await writeSmallFleet(clone.dir, [{ name: 'web', text: 'l2' }], '{ order: sequential }', ports);
    const second = await clone.commit('l2');
    await clone.push();
    await a.waitFor((s) => s.appliedRevision === second && s.sync === 'Synced', 30_000, 'a to roll out l2');
    const rolloutsBy = (d: DaemonProcess) => d.logs.filter((l) => l.msg === 'rollout started').length;
    expect(rolloutsBy(a)).toBe(2);
    expect(rolloutsBy(b)).toBe(0);

    // The leader dies; the standby takes over within the lease time and converges the next change.
    await a.kill('SIGKILL');
    await b.waitFor((s) => s.leader, 20_000, 'b to take over');
    await writeSmallFleet(clone.dir, [{ name: 'web', text: 'l3' }], '{ order: sequential }', ports);
    const third = await clone.commit('l3');
    await clone.push();
    const s = await b.waitFor((x) => x.appliedRevision === third && x.sync === 'Synced', 30_000, 'b to roll out l3');
    expect(rolloutsBy(b)).toBe(1);
    expect(String((await axios.get(`http://127.0.0.1:${ports.web}/hello`, { responseType: 'text' })).data)).toMatch(/^l3 /);
    // The history is shared: b sees a's rollouts too.
    expect(s.history.map((h) => h.revision)).toEqual(expect.arrayContaining([first, second, third]));
  });
});
