/**
 * The kubernetes driver and the Service switch against the stand-in, with pods that are ready
 * without a process (the stand-in's run: false): what each call asks of the API server (list is
 * one request per kind, whatever the number of instances), the colour's status as Kubernetes
 * reports it (created, running, stopped, ImagePullBackOff, unschedulable), and adoption by a
 * driver that knows nothing but the cluster.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectKube, type KubeApi } from '../../src/adapters/kubernetes/api.js';
import { kubernetesDriver } from '../../src/adapters/runtime/kubernetes.js';
import { serviceSwitch } from '../../src/adapters/switch/service.js';
import type { ColorSpec, RuntimeDriver } from '../../src/engine/ports.js';
import { eventually } from '../helpers/kube-standin/client.js';
import { startStandin, type Standin } from '../helpers/kube-standin/server.js';

const NS = 'driver';
const FLEET = 'df';
let s: Standin;
let dir: string;
let kube: KubeApi;
let driver: RuntimeDriver;

function spec(instance: string, more: Partial<ColorSpec> = {}): ColorSpec {
  return {
    fleet: FLEET,
    instance,
    color: 'blue',
    port: 1880,
    flows: [{ id: 't', type: 'tab', label: instance }],
    rev: 'a'.repeat(64),
    flowsHash: 'b'.repeat(64),
    env: { GREETING: 'hello', API_KEY: 'sekrit-value' },
    secretEnv: ['API_KEY'],
    nodeRedVersion: '4.1',
    resources: { memory: '64Mi', cpu: 0.01 },
    settings: {},
    context: 'memory',
    labels: {},
    admin: { username: 'tower', password: 'admin-password-1' },
    drainMs: 2_000,
    ...more,
  };
}

function requests(what: string): number {
  return s.requests.get(what) ?? 0;
}

beforeAll(async () => {
  s = await startStandin({ run: false });
  s.namespace(NS);
  dir = mkdtempSync(join(tmpdir(), 'tower-kube-driver-'));
  kube = connectKube({ namespace: NS, access: 'kubeconfig' }, { KUBECONFIG: s.kubeconfig(join(dir, 'config'), NS) });
  driver = kubernetesDriver({ api: kube, stateDir: dir, credentialSecret: 'c'.repeat(32) });
});

afterAll(async () => {
  await s?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('kubernetes driver', () => {
  it('lists a fleet of 40 colours with one list of Deployments and one of pods', async () => {
    const names = Array.from({ length: 40 }, (_, i) => `i${i}`);
    for (const n of names) await driver.create(spec(n));
    for (const n of names) await driver.start({ fleet: FLEET, instance: n, color: 'blue' });
    await eventually(async () => (await driver.list(FLEET)).filter((c) => c.status === 'running' && c.url.includes('/pods/')).length === 40, 20_000, 'every colour runs');
    s.requests.clear();
    const colors = await driver.list(FLEET);
    expect(colors).toHaveLength(40);
    expect([...s.requests.keys()].sort()).toEqual(['list deployments', 'list pods']);
    expect(requests('list deployments')).toBe(1);
    expect(requests('list pods')).toBe(1);
    const one = colors.find((c) => c.instance === 'i7')!;
    expect(one).toMatchObject({ runtime: 'kubernetes', color: 'blue', status: 'running', rev: 'a'.repeat(64), flowsHash: 'b'.repeat(64), port: 1880 });
    expect(one.url).toMatch(new RegExp(`^${s.url}/api/v1/namespaces/${NS}/pods/${FLEET}-i7-blue-\\w+-\\w+:1880/proxy$`));

    // The Service switch lists the fleet's Services with one request too.
    const sw = serviceSwitch({ api: kube, fleet: FLEET });
    for (const n of names.slice(0, 10)) await sw.ensure(n, 20_000 + Number(n.slice(1)));
    s.requests.clear();
    expect(await sw.list()).toHaveLength(10);
    expect([...s.requests.entries()]).toEqual([['list services', 1]]);
    for (const n of names) await driver.remove({ fleet: FLEET, instance: n, color: 'blue' });
    for (const n of names.slice(0, 10)) await sw.remove(n);
  }, 60_000);

  it('keeps secret env in the Secret, and is adopted by a driver that knows only the cluster', async () => {
    const created = await driver.create(spec('keep'));
    expect(created.status).toBe('created');
    const deployment = s.store.get('deployments', NS, `${FLEET}-keep-blue`)!;
    const env = (deployment.spec as { template: { spec: { containers: { env: { name: string; value?: string; valueFrom?: unknown }[] }[] } } }).template.spec.containers[0]!.env;
    expect(env.find((e) => e.name === 'GREETING')).toEqual({ name: 'GREETING', value: 'hello' });
    expect(env.find((e) => e.name === 'API_KEY')).toEqual({ name: 'API_KEY', valueFrom: { secretKeyRef: { name: `${FLEET}-keep-blue`, key: 'API_KEY' } } });
    expect(JSON.stringify(deployment)).not.toContain('sekrit-value');
    expect(JSON.stringify(s.store.get('configmaps', NS, `${FLEET}-keep-blue`))).not.toContain('sekrit-value');
    expect(s.store.get('secrets', NS, `${FLEET}-keep-blue`)!.metadata.ownerReferences?.[0]).toMatchObject({ kind: 'Deployment', uid: deployment.metadata.uid });
    await driver.start({ fleet: FLEET, instance: 'keep', color: 'blue' });

    const fresh = kubernetesDriver({ api: connectKube({ namespace: NS }, { KUBECONFIG: join(dir, 'config') }), stateDir: dir, credentialSecret: 'c'.repeat(32) });
    const adopted = await eventually(async () => (await fresh.inspect({ fleet: FLEET, instance: 'keep', color: 'blue' }))?.status === 'running' && fresh.inspect({ fleet: FLEET, instance: 'keep', color: 'blue' }), 10_000, 'adopted');
    expect(adopted).toMatchObject({ status: 'running', rev: 'a'.repeat(64) });

    await driver.stop({ fleet: FLEET, instance: 'keep', color: 'blue' });
    const stopped = await driver.inspect({ fleet: FLEET, instance: 'keep', color: 'blue' });
    expect(stopped?.status).toBe('exited');
    expect(stopped?.exit?.reason).toContain('stopped');
    await driver.start({ fleet: FLEET, instance: 'keep', color: 'blue' });
    await eventually(async () => (await driver.inspect({ fleet: FLEET, instance: 'keep', color: 'blue' }))?.status === 'running', 10_000, 'running again');
    await driver.remove({ fleet: FLEET, instance: 'keep', color: 'blue' });
    expect(await driver.inspect({ fleet: FLEET, instance: 'keep', color: 'blue' })).toBeUndefined();
    expect(s.store.get('secrets', NS, `${FLEET}-keep-blue`)).toBeUndefined();
    expect(s.store.get('configmaps', NS, `${FLEET}-keep-blue`)).toBeUndefined();
  }, 60_000);

  it('starts the Deployment at the instance\'s replicas; its pods count as one colour', async () => {
    await driver.create(spec('two', { replicas: 2 }));
    expect((s.store.get('deployments', NS, `${FLEET}-two-blue`)!.spec as { replicas: number }).replicas).toBe(0);
    await driver.start({ fleet: FLEET, instance: 'two', color: 'blue' });
    expect((s.store.get('deployments', NS, `${FLEET}-two-blue`)!.spec as { replicas: number }).replicas).toBe(2);
    await eventually(() => s.store.list('pods', NS, (p) => p.metadata.name.startsWith(`${FLEET}-two-blue-`)).length === 2, 10_000, 'two pods');
    const colors = (await driver.list(FLEET)).filter((c) => c.instance === 'two');
    expect(colors).toHaveLength(1);
    expect(colors[0]!.status).toBe('running');
    await driver.remove({ fleet: FLEET, instance: 'two', color: 'blue' });
  }, 30_000);

  it('reports a colour Kubernetes cannot run as exited, with its reason: ImagePullBackOff, unschedulable', async () => {
    await driver.create(spec('pull', { image: 'registry.example/none:1' }));
    const pulled = await driver.start({ fleet: FLEET, instance: 'pull', color: 'blue' });
    const stuck = pulled.status === 'exited' ? pulled : await eventually(async () => {
      const c = await driver.inspect({ fleet: FLEET, instance: 'pull', color: 'blue' });
      return c?.status === 'exited' ? c : undefined;
    }, 10_000, 'pull failure seen');
    expect(stuck.exit?.reason).toMatch(/^(ErrImagePull|ImagePullBackOff): .*registry\.example\/none:1/);

    await driver.create(spec('big', { resources: { cpu: 64, memory: '64Mi' } }));
    const big = await driver.start({ fleet: FLEET, instance: 'big', color: 'blue' });
    const pending = big.status === 'exited' ? big : await eventually(async () => {
      const c = await driver.inspect({ fleet: FLEET, instance: 'big', color: 'blue' });
      return c?.status === 'exited' ? c : undefined;
    }, 10_000, 'unschedulable seen');
    expect(pending.exit?.reason).toMatch(/^Unschedulable: 0\/1 nodes are available: 1 Insufficient cpu/);
    for (const instance of ['pull', 'big']) await driver.remove({ fleet: FLEET, instance, color: 'blue' });
  }, 60_000);
});
