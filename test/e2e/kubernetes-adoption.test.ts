/**
 * kill -9 of Tower mid-rollout on runtime: kubernetes (the stand-in; pods run real Node-RED):
 * `tower run` is SIGKILLed while the new colour is being deployed, or verified; the cluster is
 * then the only record of what runs. A restarted daemon finds the Deployments by their labels,
 * closes the interrupted rollout and converges — Synced on the desired revision — leaving no
 * Deployment, ConfigMap or Secret of the other colour behind, the Service routed to the colour
 * that runs the desired rev.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/adapters/net.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';
import { helloFlow } from '../helpers/fleet-fixture.js';
import { api, eventually } from '../helpers/kube-standin/client.js';
import { startStandin, type Standin } from '../helpers/kube-standin/server.js';

const NS = 'tower-adopt';
let s: Standin;
let kubeconfig: string;
const dirs: string[] = [];
const daemons: DaemonProcess[] = [];

beforeAll(async () => {
  s = await startStandin({ images: { 'nodered/node-red:4.1': 'node-red' }, crashBackoffMs: 1_000 });
  s.namespace(NS);
  kubeconfig = s.kubeconfig(join(tmp('tower-kube-'), 'config'), NS);
});

afterEach(async () => {
  for (const d of daemons.splice(0)) await d.kill('SIGKILL').catch(() => undefined);
});

afterAll(async () => {
  await s?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tmp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

function writeFleet(dir: string, fleet: string, port: number, text: string): void {
  mkdirSync(join(dir, 'flows'), { recursive: true });
  writeFileSync(join(dir, 'flows', 'web.json'), JSON.stringify(helloFlow('web', text), null, 2));
  writeFileSync(
    join(dir, 'fleet.yaml'),
    [
      'apiVersion: tower.redforge.dev/v1',
      'kind: Fleet',
      `metadata: { name: ${fleet} }`,
      'spec:',
      `  kubernetes: { namespace: ${NS}, access: kubeconfig }`,
      '  defaults: { runtime: kubernetes, keepWarm: 0s, drainTimeout: 2s, nodeRedVersion: "4.1", resources: { memory: 256Mi, cpu: 0.1 } }',
      '  instances:',
      '    - name: web',
      '      flows: [flows/web.json]',
      `      port: ${port}`,
      '      replicas: 2',
      '      smoke:',
      `        - { name: says hello, http: { path: /hello, expect: { status: 200, bodyContains: ${text} } } }`,
      '',
    ].join('\n'),
  );
}

type Named = { items: { metadata: { name: string; annotations?: Record<string, string>; deletionTimestamp?: string } }[] };
const selector = (fleet: string) => `labelSelector=${encodeURIComponent(`tower.redforge.dev/fleet=${fleet}`)}`;
async function names(path: string, fleet: string): Promise<string[]> {
  const r = await api<Named>(s, 'GET', `${path}?${selector(fleet)}`);
  return r.body.items.filter((o) => !o.metadata.deletionTimestamp).map((o) => o.metadata.name).sort();
}

async function hello(fleet: string): Promise<string> {
  const r = await api(s, 'GET', `/api/v1/namespaces/${NS}/services/${fleet}-web:http/proxy/hello`).catch((e: Error) => ({ status: 0, text: e.message }));
  return `${r.status} ${r.text}`;
}

describe('kill -9 of tower run mid-rollout on runtime: kubernetes', () => {
  it.each([
    ['DEPLOY', 'ka'],
    ['VERIFY', 'kb'],
  ])('killed in %s: a restarted daemon finds what runs, closes the rollout and converges with nothing left over', async (phase, fleet) => {
    const dir = tmp('tower-adopt-fleet-');
    const state = tmp('tower-adopt-state-');
    const port = await freePort();
    writeFleet(dir, fleet, port, 'v1');
    const env = { ...process.env, KUBECONFIG: kubeconfig, KUBERNETES_SERVICE_HOST: '', TOWER_LOG_LEVEL: 'debug' };
    const args = ['--repo', dir, '--state-dir', state, '--interval', '2s'];
    const first = await startDaemon(args, env);
    daemons.push(first);
    const v1 = await first.waitFor((st) => st.sync === 'Synced' && st.instances[0]?.health === 'Healthy', 90_000, 'v1 Synced');
    expect(await hello(fleet)).toBe('200 v1 blue');

    const from = first.logs.length;
    writeFleet(dir, fleet, port, 'v2');
    await first.waitForLog((l) => l.instance === 'web' && l.phase === phase, 60_000, from);
    if (phase === 'DEPLOY') await eventually(async () => ((await names(`/apis/apps/v1/namespaces/${NS}/deployments`, fleet)).includes(`${fleet}-web-green`) ? true : undefined), 20_000, 'the green Deployment made');
    await first.kill('SIGKILL');
    // What the killed daemon left: green's Deployment (its pods starting, or verified and not routed), the Service on blue.
    expect(await names(`/apis/apps/v1/namespaces/${NS}/deployments`, fleet)).toEqual([`${fleet}-web-blue`, `${fleet}-web-green`]);
    expect(await hello(fleet)).toBe('200 v1 blue');
    const green = await api<{ metadata: { uid: string } }>(s, 'GET', `/apis/apps/v1/namespaces/${NS}/deployments/${fleet}-web-green`);

    const second = await startDaemon(args, env);
    daemons.push(second);
    const done = await second.waitFor((st) => st.sync === 'Synced' && st.appliedRevision !== v1.appliedRevision && st.instances[0]?.health === 'Healthy', 120_000, 'Synced on v2 after the restart');
    const color = done.instances[0]!.color!;
    expect(await hello(fleet)).toBe(`200 v2 ${color}`);
    // The interrupted rollout is closed, not left running.
    expect(done.history.map((h) => h.outcome)).toContain('interrupted');
    if (phase === 'VERIFY') {
      // Green was made and ready: the next daemon adopts it — the same Deployment, not deployed again — and completes.
      const phases = second.logs.filter((l) => l.instance === 'web' && typeof l.phase === 'string').map((l) => l.phase);
      expect(color).toBe('green');
      expect(phases).not.toContain('DEPLOY');
      expect((await api<{ metadata: { uid: string } }>(s, 'GET', `/apis/apps/v1/namespaces/${NS}/deployments/${fleet}-web-green`)).body.metadata.uid).toBe(green.body.metadata.uid);
    }
    expect(done.rollout).toBeNull();
    // Nothing of the other colour is left: one Deployment, ConfigMap and Secret, the Service on it, its pods only.
    const only = [`${fleet}-web-${color}`];
    await eventually(async () => ((await names(`/api/v1/namespaces/${NS}/pods`, fleet)).every((p) => p.startsWith(`${fleet}-web-${color}-`)) ? true : undefined), 30_000, 'the other colour\'s pods gone');
    expect(await names(`/apis/apps/v1/namespaces/${NS}/deployments`, fleet)).toEqual(only);
    expect(await names(`/api/v1/namespaces/${NS}/configmaps`, fleet)).toEqual(only);
    expect(await names(`/api/v1/namespaces/${NS}/secrets`, fleet)).toEqual(only);
    expect(await names(`/api/v1/namespaces/${NS}/pods`, fleet)).toHaveLength(2);
    const svc = await api<{ spec: { selector: Record<string, string> } }>(s, 'GET', `/api/v1/namespaces/${NS}/services/${fleet}-web`);
    expect(svc.body.spec.selector['tower.redforge.dev/color']).toBe(color);
    const deployment = await api<{ metadata: { annotations: Record<string, string> } }>(s, 'GET', `/apis/apps/v1/namespaces/${NS}/deployments/${fleet}-web-${color}`);
    expect(deployment.body.metadata.annotations['tower.redforge.dev/rev']).toBe(done.instances[0]!.rev);
    await second.kill('SIGTERM');
  }, 300_000);
});
