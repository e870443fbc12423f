/**
 * Two Tower replicas as deploy/kubernetes/cluster/ runs them, on the stand-in API server with
 * that directory's Role enforced: a fleet with runtime: kubernetes (its pods real Node-RED
 * processes), `tower run` with the default leader choice (auto → the Lease, for a fleet on
 * Kubernetes), each replica with a state directory of its own holding only the shared admin.json
 * (the Secret tower-admin). Exactly one acts; SIGKILL of it → the other takes over once the lease
 * has expired, adopts what runs and rolls out the next commit. Every request both made was within
 * the Role, so the Role suffices for leadership and for the runtime together.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { freePort } from '../../src/adapters/net.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';
import { helloFlow } from '../helpers/fleet-fixture.js';
import { initBare, WorkClone } from '../helpers/git.js';
import { api, eventually } from '../helpers/kube-standin/client.js';
import { startStandin, type PolicyRule, type Standin } from '../helpers/kube-standin/server.js';
import { startPostgres, type PostgresServer } from '../helpers/postgres.js';

const NS = 'redforge';
const ROLE = parseYaml(readFileSync(join(import.meta.dirname, '../../deploy/kubernetes/cluster/role.yaml'), 'utf8')) as { rules: PolicyRule[] };

let standin: Standin;
let postgres: PostgresServer;
const dirs: string[] = [];
const daemons: DaemonProcess[] = [];

beforeAll(async () => {
  standin = await startStandin({ rules: ROLE.rules, images: { 'nodered/node-red:4.1': 'node-red' }, crashBackoffMs: 1_000 });
  standin.namespace(NS);
  postgres = await startPostgres();
}, 60_000);

afterAll(async () => {
  for (const d of daemons) await d.kill('SIGKILL');
  await standin?.stop();
  await postgres?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tmp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

async function writeFleet(dir: string, text: string, port: number): Promise<void> {
  mkdirSync(join(dir, 'flows'), { recursive: true });
  writeFileSync(join(dir, 'flows', 'web.json'), JSON.stringify(helloFlow('web', text), null, 2));
  writeFileSync(
    join(dir, 'fleet.yaml'),
    [
      'apiVersion: tower.redforge.dev/v1',
      'kind: Fleet',
      'metadata: { name: redforge }',
      'spec:',
      `  kubernetes: { namespace: ${NS}, access: kubeconfig }`,
      '  defaults: { runtime: kubernetes, keepWarm: 1m, drainTimeout: 2s, nodeRedVersion: "4.1" }',
      '  plan: { order: sequential }',
      '  instances:',
      '    - name: web',
      '      flows: [flows/web.json]',
      `      port: ${port}`,
      '      smoke:',
      `        - { name: says hello, http: { path: /hello, expect: { status: 200, bodyContains: ${JSON.stringify(text)} } } }`,
      '',
    ].join('\n'),
  );
}

async function hello(): Promise<string> {
  const r = await api(standin, 'GET', `/api/v1/namespaces/${NS}/services/redforge-web:http/proxy/hello`).catch((e: Error) => ({ status: 0, text: e.message }));
  return r.status === 200 ? r.text : `(${r.status}) ${r.text}`;
}

describe('two Tower replicas on Kubernetes (deploy/kubernetes/cluster)', () => {
  it('elect one leader by Lease under the Role; a killed leader is replaced, and its successor rolls out on what runs', async () => {
    const bare = await initBare(join(tmp('tower-bare-'), 'fleet.git'));
    const clone = await WorkClone.create(bare, tmp('tower-clone-'));
    const port = await freePort();
    await writeFleet(clone.dir, 'c1', port);
    const first = await clone.commit('c1');
    await clone.push();

    const kubeconfig = standin.kubeconfig(join(tmp('tower-kube-'), 'config'), NS);
    const env: NodeJS.ProcessEnv = { ...process.env, KUBECONFIG: kubeconfig, KUBERNETES_SERVICE_HOST: '', TOWER_LEADER_LEASE: '3s', DATABASE_URL: await postgres.createDatabase('kube_fleet_leader') };
    delete env.TOWER_LEADER;
    delete env.REDIS_URL;
    const admin = JSON.stringify({ username: 'tower', password: 'a-shared-admin-password-for-both' });
    const replica = async () => {
      const state = tmp('tower-state-');
      writeFileSync(join(state, 'admin.json'), admin, { mode: 0o600 });
      const d = await startDaemon(['--repo', bare, '--state-dir', state, '--interval', '1s'], env);
      daemons.push(d);
      return d;
    };
    const a = await replica();
    await a.waitFor((s) => s.appliedRevision === first && s.sync === 'Synced', 90_000, 'a to converge');
    expect(await hello()).toBe('c1 blue');
    const b = await replica();
    await b.waitForLog((l) => l.msg === 'another replica leads this fleet; waiting to take over', 20_000);
    expect([(await a.status()).leader, (await b.status()).leader]).toEqual([true, false]);
    expect(a.logs.some((l) => l.msg === 'leader lease acquired')).toBe(true);

    // The leader dies; b takes over after the lease, adopts the Deployments a made, and rolls out.
    await a.kill('SIGKILL');
    await b.waitFor((s) => s.leader, 20_000, 'b to take over');
    // It adopts what a made: the same revision, Synced, nothing drifted, nothing restarted.
    const adopted = await b.waitFor((s) => s.appliedRevision === first && s.sync === 'Synced', 20_000, 'b to see the fleet synced');
    expect(adopted.drift).toEqual([]);
    expect(adopted.instances).toEqual([expect.objectContaining({ name: 'web', color: 'blue', runtime: 'kubernetes', health: 'Healthy', restarts: 0 })]);
    await writeFleet(clone.dir, 'c2', port);
    const second = await clone.commit('c2');
    await clone.push();
    await b.waitFor((s) => s.appliedRevision === second && s.sync === 'Synced', 90_000, 'b to roll out c2');
    expect(await eventually(async () => ((await hello()) === 'c2 green' ? 'ok' : undefined), 10_000, 'c2 served by green')).toBe('ok');
    const deployments = await api<{ items: { metadata: { name: string } }[] }>(standin, 'GET', `/apis/apps/v1/namespaces/${NS}/deployments`);
    expect(deployments.body.items.map((d) => d.metadata.name)).toContain('redforge-web-green');
    // (Not asserted: whether blue is kept warm. Today b, which did not deploy blue and keeps no
    // record of it in its own state directory, removes it as "changed by hand" — see deploy/README.)

    // Everything either replica asked for was within the Role.
    expect([...standin.requests.keys()].filter((k) => k.includes('forbidden'))).toEqual([]);
    const granted = new Set(ROLE.rules.flatMap((r) => r.resources.flatMap((res) => r.verbs.map((v) => `${r.apiGroups[0] ? `${r.apiGroups[0]}/` : ''}${res} ${v}`))));
    expect([...standin.used].filter((u) => !granted.has(u))).toEqual([]);
  }, 240_000);
});
