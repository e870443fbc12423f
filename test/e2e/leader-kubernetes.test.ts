/**
 * Two daemons (`tower run`, real processes) elect their leader with a Kubernetes Lease on the
 * stand-in API server, whose RBAC enforces deploy/kubernetes/cluster/role.yaml: exactly one acts;
 * when it is killed (SIGKILL: no release), the other takes over once the lease has expired; when
 * the new leader stops cleanly (SIGTERM), a third takes over at once; a leader that may no longer
 * renew (RBAC) stops acting until it may. The fleet's instances run as processes (the Kubernetes
 * runtime is not needed to elect a leader); PostgreSQL shares the history.
 */
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import axios from 'axios';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { main } from '../../src/cli.js';
import { bufferIo } from '../../src/commands/io.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';
import { writeSmallFleet, type SmallInstance } from '../helpers/fleet-fixture.js';
import { initBare, WorkClone } from '../helpers/git.js';
import { startPostgres, type PostgresServer } from '../helpers/postgres.js';
import { api } from '../helpers/kube-standin/client.js';
import { startStandin, type PolicyRule, type Standin } from '../helpers/kube-standin/server.js';

const NS = 'redforge';
const ROLE = parseYaml(readFileSync(join(import.meta.dirname, '../../deploy/kubernetes/cluster/role.yaml'), 'utf8')) as { rules: PolicyRule[] };

let standin: Standin;
let postgres: PostgresServer;
const dirs: string[] = [];
const daemons: DaemonProcess[] = [];

beforeAll(async () => {
  standin = await startStandin({ rules: ROLE.rules, run: false });
  standin.namespace(NS);
  postgres = await startPostgres();
}, 60_000);

afterAll(async () => {
  for (const d of daemons) await d.kill('SIGKILL');
  for (const d of dirs.filter((x) => x.includes('state'))) await main(['destroy', '--state-dir', d], bufferIo(process.env)).catch(() => 1);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await standin?.stop();
  await postgres?.stop();
});

function tmp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

/** The small fleet, named redforge (the Role's Lease is tower-redforge) and placed in the namespace. */
async function writeFleet(dir: string, instances: SmallInstance[], ports?: Record<string, number>): Promise<Record<string, number>> {
  const p = await writeSmallFleet(dir, instances, '{ order: sequential }', ports);
  const file = join(dir, 'fleet.yaml');
  const text = readFileSync(file, 'utf8').replace('metadata: { name: small }', 'metadata: { name: redforge }').replace('spec:\n', `spec:\n  kubernetes: { namespace: ${NS}, access: kubeconfig }\n`);
  writeFileSync(file, text);
  return p;
}

async function holder(): Promise<string | undefined> {
  const r = await api<{ spec?: { holderIdentity?: string } }>(standin, 'GET', `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/tower-redforge`);
  return r.status === 200 ? r.body.spec?.holderIdentity : undefined;
}

describe('two daemons with a Kubernetes Lease', () => {
  it('exactly one acts; a killed leader is replaced after the lease expires, a stopped one at once; one that cannot renew stops', async () => {
    const bare = await initBare(join(tmp('tower-bare-'), 'fleet.git'));
    const clone = await WorkClone.create(bare, tmp('tower-clone-'));
    const ports = await writeFleet(clone.dir, [{ name: 'web', text: 'k1' }]);
    const first = await clone.commit('k1');
    await clone.push();

    const state = tmp('tower-state-');
    const kubeconfig = standin.kubeconfig(join(tmp('tower-kube-'), 'config'), NS);
    const env: NodeJS.ProcessEnv = { ...process.env, TOWER_LEADER: 'kubernetes', TOWER_LEADER_LEASE: '3s', KUBECONFIG: kubeconfig, DATABASE_URL: await postgres.createDatabase('kube_leader') };
    delete env.REDIS_URL;
    const start = async () => {
      const d = await startDaemon(['--repo', bare, '--state-dir', state, '--interval', '1s'], env);
      daemons.push(d);
      return d;
    };
    const a = await start();
    await a.waitFor((s) => s.appliedRevision === first && s.sync === 'Synced', 30_000, 'a to converge');
    expect(await holder()).toMatch(/_[0-9a-f]{12}$/);
    const aHolds = await holder();
    const b = await start();
    await b.waitForLog((l) => l.msg === 'another replica leads this fleet; waiting to take over', 15_000);
    const [sa, sb] = [await a.status(), await b.status()];
    expect([sa.leader, sb.leader]).toEqual([true, false]);
    const leaderGauge = async (d: DaemonProcess) => /^tower_leader (\d)$/m.exec(String((await axios.get(`${d.url}metrics`, { responseType: 'text' })).data))?.[1];
    expect([await leaderGauge(a), await leaderGauge(b)]).toEqual(['1', '0']);

    // Only the leader rolls a change out.
    await writeFleet(clone.dir, [{ name: 'web', text: 'k2' }], ports);
    const second = await clone.commit('k2');
    await clone.push();
    await a.waitFor((s) => s.appliedRevision === second && s.sync === 'Synced', 30_000, 'a to roll out k2');
    const rolloutsBy = (d: DaemonProcess) => d.logs.filter((l) => l.msg === 'rollout started').length;
    expect(rolloutsBy(a)).toBe(2);
    expect(rolloutsBy(b)).toBe(0);
    expect(await holder()).toBe(aHolds);

    // The leader dies without releasing: b waits out the lease (3 s from its last renew), then leads.
    const killedAt = Date.now();
    await a.kill('SIGKILL');
    await b.waitFor((s) => s.leader, 20_000, 'b to take over');
    const tookOver = Date.now() - killedAt;
    expect(tookOver).toBeGreaterThanOrEqual(3_000 - 400 - 100); // a lease, less at most one renew period (and a poll)
    const bHolds = await holder();
    expect(bHolds).not.toBe(aHolds);
    await writeFleet(clone.dir, [{ name: 'web', text: 'k3' }], ports);
    const third = await clone.commit('k3');
    await clone.push();
    const s = await b.waitFor((x) => x.appliedRevision === third && x.sync === 'Synced', 30_000, 'b to roll out k3');
    expect(rolloutsBy(b)).toBe(1);
    expect(String((await axios.get(`http://127.0.0.1:${ports.web}/hello`, { responseType: 'text' })).data)).toMatch(/^k3 /);
    expect(s.history.map((h) => h.revision)).toEqual(expect.arrayContaining([first, second, third]));

    // A clean stop releases the Lease: c takes over within a retry period or two, not a lease.
    const c = await start();
    await c.waitForLog((l) => l.msg === 'another replica leads this fleet; waiting to take over', 15_000);
    await b.kill('SIGTERM');
    await c.waitFor((x) => x.leader, 10_000, 'c to take over');
    // From b's release to c's acquisition (both logs on this machine's clock): a retry period or
    // two (400 ms), where an expiry would take at least 2.6 s (3 s from b's last renew, ≤ 400 ms before).
    const at = (d: DaemonProcess, msg: string) => Number(d.logs.find((l) => l.msg === msg)?.time);
    const handedOver = at(c, 'leader lease acquired') - at(b, 'leader lease released');
    expect(handedOver).toBeGreaterThanOrEqual(0);
    expect(handedOver).toBeLessThan(1_500);
    expect(await holder()).not.toBe(bHolds);
    // Leadership stayed within the Role: nothing was forbidden.
    expect([...standin.requests.keys()].filter((k) => k.includes('forbidden'))).toEqual([]);

    // A leader that cannot renew (its Role loses update on leases) stops acting: a commit made
    // meanwhile is not rolled out until it may renew again.
    const update = ROLE.rules.find((r) => r.apiGroups.includes('coordination.k8s.io') && r.verbs.includes('update'))!;
    await c.waitFor((x) => x.appliedRevision === third && x.sync === 'Synced', 30_000, 'c to settle');
    update.verbs = update.verbs.filter((v) => v !== 'update');
    await c.waitFor((x) => !x.leader, 10_000, 'c to step down');
    expect(c.logs.some((l) => l.msg === 'leader lease lost: this replica stops acting')).toBe(true);
    await writeFleet(clone.dir, [{ name: 'web', text: 'k4' }], ports);
    const fourth = await clone.commit('k4');
    await clone.push();
    await new Promise((r) => setTimeout(r, 4_000));
    expect(rolloutsBy(c)).toBe(0);
    expect((await c.status()).leader).toBe(false);
    update.verbs.push('update');
    await c.waitFor((x) => x.leader && x.appliedRevision === fourth && x.sync === 'Synced', 30_000, 'c to lead again and roll out k4');
    expect(rolloutsBy(c)).toBe(1);
  }, 180_000);
});

describe('the leader choice when fleet.yaml cannot be read at start', () => {
  it('a daemon whose remote is down when it starts still leads (auto: the state-dir lock) and keeps what runs', async () => {
    const bare = await initBare(join(tmp('tower-bare-'), 'fleet.git'));
    const clone = await WorkClone.create(bare, tmp('tower-clone-'));
    const ports = await writeSmallFleet(clone.dir, [{ name: 'web', text: 'd1' }], '{ order: sequential }');
    const first = await clone.commit('d1');
    await clone.push();
    const state = tmp('tower-state-');
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const k of ['TOWER_LEADER', 'REDIS_URL', 'DATABASE_URL', 'KUBECONFIG']) delete env[k];
    // A file:// URL: a path that is gone would be refused as configuration, a URL is just unreachable.
    const url = `file://${bare}`;
    const a = await startDaemon(['--repo', url, '--state-dir', state, '--interval', '1s'], env);
    daemons.push(a);
    await a.waitFor((x) => x.appliedRevision === first && x.sync === 'Synced', 30_000, 'a to converge');
    await a.kill('SIGTERM');

    renameSync(bare, `${bare}.away`);
    try {
      const b = await startDaemon(['--repo', url, '--state-dir', state, '--interval', '1s'], env);
      daemons.push(b);
      const s = await b.waitFor((x) => x.leader && x.instances.length === 1, 20_000, 'b to lead without its remote');
      expect(s.instances[0]).toMatchObject({ name: 'web', health: 'Healthy' });
      expect(b.logs.some((l) => l.msg === 'fleet.yaml cannot be read: choosing the leader lease as this state directory last ran the fleet')).toBe(true);
      expect(String((await axios.get(`http://127.0.0.1:${ports.web}/hello`, { responseType: 'text' })).data)).toMatch(/^d1 /);
    } finally {
      renameSync(`${bare}.away`, bare);
    }
  });
});
