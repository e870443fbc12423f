/**
 * runtime: kubernetes end to end on the stand-in API server (no cluster is reachable here):
 * `tower apply` creates a Deployment, ConfigMap and Secret per colour and a Service per
 * instance; the pods run real Node-RED; Tower reaches them through the API server's pod proxy,
 * and the stable address is the Service, reached through the service proxy.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { bufferIo } from '../../src/commands/io.js';
import { freePort } from '../../src/adapters/net.js';
import { parseDocument } from 'yaml';
import { readFileSync } from 'node:fs';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';
import { exampleFleetCopy, helloFlow } from '../helpers/fleet-fixture.js';
import { api, eventually } from '../helpers/kube-standin/client.js';
import { startStandin, type PolicyRule, type Standin } from '../helpers/kube-standin/server.js';

/**
 * Every verb the kubernetes driver and the Service switch use (the Lease of leadership apart):
 * what deploy/kubernetes' Role must grant. The proxies' verbs follow the HTTP method (GET get,
 * POST create): Node-RED's Admin API and POST smoke checks; a smoke check with PUT, PATCH or
 * DELETE needs update, patch or delete on them as well.
 */
export const TOWER_ROLE: PolicyRule[] = [
  { apiGroups: ['apps'], resources: ['deployments'], verbs: ['get', 'list', 'create', 'patch', 'delete'] },
  { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] },
  { apiGroups: [''], resources: ['pods/log'], verbs: ['get'] },
  { apiGroups: [''], resources: ['pods/proxy', 'services/proxy'], verbs: ['get', 'create'] },
  { apiGroups: [''], resources: ['configmaps'], verbs: ['create', 'delete'] },
  { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'create', 'delete'] },
  { apiGroups: [''], resources: ['services'], verbs: ['get', 'list', 'create', 'patch', 'delete'] },
  { apiGroups: [''], resources: ['endpoints'], verbs: ['get'] },
];

const NS = 'tower-e2e';
let s: Standin;
let kubeconfig: string;
const dirs: string[] = [];

beforeAll(async () => {
  s = await startStandin({ images: { 'nodered/node-red:4.1': 'node-red', 'nodered/node-red:4.1.8': 'node-red', 'nodered/node-red:4.1-hangs': 'never-ready' }, crashBackoffMs: 1_000 });
  s.namespace(NS);
  kubeconfig = s.kubeconfig(join(tmp('tower-kube-'), 'config'), NS);
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

function env(): NodeJS.ProcessEnv {
  return { ...process.env, KUBECONFIG: kubeconfig, KUBERNETES_SERVICE_HOST: '' };
}

async function tower(...args: string[]) {
  const io = bufferIo(env());
  const code = await main(args, io);
  return { code, out: io.out, err: io.err };
}

interface KubeInstance {
  name: string;
  text: string;
  delayMs?: number;
  smokeExpect?: string;
  extra?: string[];
}

/** A fleet of hello instances on runtime: kubernetes in the stand-in's namespace. */
async function writeKubeFleet(dir: string, fleet: string, instances: KubeInstance[], ports: Record<string, number> = {}, keepWarm = '1m'): Promise<Record<string, number>> {
  mkdirSync(join(dir, 'flows'), { recursive: true });
  const lines = ['apiVersion: tower.redforge.dev/v1', 'kind: Fleet', `metadata: { name: ${fleet} }`, 'spec:', `  kubernetes: { namespace: ${NS}, access: kubeconfig }`, `  defaults: { runtime: kubernetes, keepWarm: ${keepWarm}, drainTimeout: 2s, nodeRedVersion: "4.1" }`, '  plan: { order: sequential }', '  instances:'];
  for (const i of instances) {
    ports[i.name] ??= await freePort();
    writeFileSync(join(dir, 'flows', `${i.name}.json`), JSON.stringify(helloFlow(i.name, i.text, i.delayMs ?? 0), null, 2));
    lines.push(`    - name: ${i.name}`, `      flows: [flows/${i.name}.json]`, `      port: ${ports[i.name]}`, '      smoke:', `        - { name: says hello, http: { path: /hello, expect: { status: 200, bodyContains: ${JSON.stringify(i.smokeExpect ?? i.text)} } } }`, ...(i.extra ?? []));
  }
  writeFileSync(join(dir, 'fleet.yaml'), lines.join('\n') + '\n');
  return ports;
}

/** GET /hello through the Service, as a client outside the cluster reaches it (the API server's service proxy). */
async function hello(fleet: string, instance: string): Promise<{ ok: boolean; body: string }> {
  const r = await api(s, 'GET', `/api/v1/namespaces/${NS}/services/${fleet}-${instance}:http/proxy/hello`).catch((e: Error) => ({ status: 0, text: e.message }));
  return { ok: r.status === 200, body: r.text };
}

describe('runtime: kubernetes on the stand-in', () => {
  it('applies a fleet from nothing, then swaps it blue-green through the Service under open-loop load without a failed request', async () => {
    const dir = tmp('tower-kube-fleet-');
    const state = tmp('tower-kube-state-');
    const ports = await writeKubeFleet(dir, 'k1', [{ name: 'web', text: 'v1', delayMs: 1500 }]);
    const first = await tower('apply', dir, '--state-dir', state);
    expect(first.code, first.err + first.out).toBe(0);
    expect(await hello('k1', 'web')).toEqual({ ok: true, body: 'v1 blue' });
    const status = await tower('status', '--state-dir', state, '--format', 'json');
    expect(JSON.parse(status.out).instances).toEqual([expect.objectContaining({ name: 'web', color: 'blue', runtime: 'kubernetes', health: 'Healthy' })]);

    // keepWarm 0s: blue is removed right after the drain, with requests still in flight on it (each takes 1.5 s, longer than the drain's settle time); its pod's preStop lets them finish.
    await writeKubeFleet(dir, 'k1', [{ name: 'web', text: 'v2', delayMs: 1500 }], ports, '0s');
    const results: { ok: boolean; body: string }[] = [];
    const pending: Promise<void>[] = [];
    // Open loop: a request every 20 ms whatever the answers do, at most 500.
    const timer = setInterval(() => {
      if (pending.length < 500) pending.push(hello('k1', 'web').then((r) => void results.push(r)));
    }, 20);
    const second = await tower('apply', dir, '--state-dir', state);
    clearInterval(timer);
    await Promise.all(pending);
    expect(second.code, second.err + second.out).toBe(0);
    expect(second.out).toMatch(/web: DRAIN[\s\S]*web: RESUME[\s\S]*web: AUDIT/);
    expect(results.length).toBeGreaterThan(20);
    expect(results.filter((x) => !x.ok)).toEqual([]);
    expect(results.some((x) => x.body === 'v1 blue')).toBe(true);
    expect(results.some((x) => x.body === 'v2 green')).toBe(true);
    expect(await hello('k1', 'web')).toEqual({ ok: true, body: 'v2 green' });
    const deployments = await api<{ items: { metadata: { name: string } }[] }>(s, 'GET', `/apis/apps/v1/namespaces/${NS}/deployments?labelSelector=tower.redforge.dev%2Ffleet%3Dk1`);
    expect(deployments.body.items.map((d) => d.metadata.name)).toEqual(['k1-web-green']);
  }, 120_000);

  it('rolls back a colour whose smoke check fails: the old colour keeps serving through the Service', async () => {
    const dir = tmp('tower-kube-fleet-');
    const state = tmp('tower-kube-state-');
    const ports = await writeKubeFleet(dir, 'k2', [{ name: 'api', text: 'v1' }]);
    expect((await tower('apply', dir, '--state-dir', state)).code).toBe(0);
    await writeKubeFleet(dir, 'k2', [{ name: 'api', text: 'v2', smokeExpect: 'not what it says' }], ports);
    const r = await tower('apply', dir, '--state-dir', state);
    expect(r.code).not.toBe(0);
    expect(r.out + r.err).toContain('says hello');
    expect(r.out + r.err).toMatch(/failed: api in VERIFY: [^\n]*"says hello"/);
    expect(r.out + r.err).toContain('api: rolled back — it runs what it ran before');
    expect(await hello('k2', 'api')).toEqual({ ok: true, body: 'v1 blue' });
    // The failed colour is gone from the cluster; the Service still selects blue.
    const deployments = await api<{ items: { metadata: { name: string } }[] }>(s, 'GET', `/apis/apps/v1/namespaces/${NS}/deployments?labelSelector=tower.redforge.dev%2Ffleet%3Dk2`);
    expect(deployments.body.items.map((d) => d.metadata.name)).toEqual(['k2-api-blue']);
    const svc = await api<{ spec: { selector: Record<string, string> } }>(s, 'GET', `/api/v1/namespaces/${NS}/services/k2-api`);
    expect(svc.body.spec.selector['tower.redforge.dev/color']).toBe('blue');

    // Someone points the live Deployment at an image the cluster cannot pull: tower status says what Kubernetes says.
    const patched = await api(s, 'PATCH', `/apis/apps/v1/namespaces/${NS}/deployments/k2-api-blue`, [{ op: 'replace', path: '/spec/template/spec/containers/0/image', value: 'nodered/node-red:0.0-gone' }], 'application/json-patch+json');
    expect(patched.status, patched.text).toBe(200);
    const shown = await eventually(async () => {
      const st = await tower('status', '--state-dir', state);
      return st.code !== 0 && /ImagePullBackOff|ErrImagePull/.test(st.out) ? st.out : undefined;
    }, 20_000, 'tower status shows the pull failure');
    expect(shown).toMatch(/api\s+blue\s+\d+\s+-\s+Degraded\s+the blue colour the switch routes to is not running \((ErrImagePull|ImagePullBackOff): .*nodered\/node-red:0\.0-gone/);
  }, 120_000);

  it('fails DEPLOY and rolls back when the new colour never becomes ready, with the pod\'s reason (ImagePullBackOff)', async () => {
    const dir = tmp('tower-kube-fleet-');
    const state = tmp('tower-kube-state-');
    const ports = await writeKubeFleet(dir, 'k3', [{ name: 'db', text: 'v1' }]);
    expect((await tower('apply', dir, '--state-dir', state)).code).toBe(0);
    await writeKubeFleet(dir, 'k3', [{ name: 'db', text: 'v2', extra: ['      image: nodered/node-red:0.0-nowhere'] }], ports);
    const r = await tower('apply', dir, '--state-dir', state);
    expect(r.code).not.toBe(0);
    expect(r.out + r.err).toMatch(/DEPLOY/);
    expect(r.out + r.err).toMatch(/ErrImagePull|ImagePullBackOff/);
    expect(r.out + r.err).toContain('nodered/node-red:0.0-nowhere');
    expect(await hello('k3', 'db')).toEqual({ ok: true, body: 'v1 blue' });
    expect(r.out + r.err).toMatch(/failed: db in DEPLOY: start green: green exited while starting \((ErrImagePull|ImagePullBackOff): [^)]*nodered\/node-red:0\.0-nowhere/);
    expect(r.out + r.err).toContain('db: rolled back — it runs what it ran before');
    const deployments = await api<{ items: { metadata: { name: string } }[] }>(s, 'GET', `/apis/apps/v1/namespaces/${NS}/deployments?labelSelector=tower.redforge.dev%2Ffleet%3Dk3`);
    expect(deployments.body.items.map((d) => d.metadata.name)).toEqual(['k3-db-blue']);
  }, 120_000);

  it('fails DEPLOY at the readiness timeout when the new colour runs but never becomes ready, with the pod\'s state', async () => {
    const dir = tmp('tower-kube-fleet-');
    const state = tmp('tower-kube-state-');
    const ports = await writeKubeFleet(dir, 'k4', [{ name: 'slow', text: 'v1' }]);
    expect((await tower('apply', dir, '--state-dir', state)).code).toBe(0);
    await writeKubeFleet(dir, 'k4', [{ name: 'slow', text: 'v2', extra: ['      image: nodered/node-red:4.1-hangs'] }], ports);
    const r = await tower('apply', dir, '--state-dir', state);
    expect(r.code).not.toBe(0);
    expect(r.out + r.err).toMatch(/failed: slow in DEPLOY: start green: Node-RED \(green\) not ready after 30000 ms: .*\(pod k4-slow-green-\w+-\w+ is not Ready: ContainersNotReady.*readiness probe GET \/auth\/login on port http has not passed/);
    expect(r.out + r.err).toContain('slow: rolled back — it runs what it ran before');
    expect(await hello('k4', 'slow')).toEqual({ ok: true, body: 'v1 blue' });
  }, 120_000);

  it('is what the real kubectl lists and describes: Deployments, Services, ConfigMaps, pods Tower created', async () => {
    const selector = ['-l', 'tower.redforge.dev/fleet=k1'];
    const get = await s.kubectl(['get', 'deployments,services,configmaps,pods', ...selector, '-o', 'wide'], NS);
    if (process.env.SHOW_KUBECTL) console.log(get);
    expect(get).toMatch(/deployment\.apps\/k1-web-green\s+1\/1\s+1\s+1/);
    expect(get).toMatch(/service\/k1-web\s+ClusterIP\s+\S+\s+<none>\s+\d+\/TCP/);
    expect(get).toMatch(/configmap\/k1-web-green\s+2/);
    expect(get).toMatch(/pod\/k1-web-green-\w+-\w+\s+1\/1\s+Running/);
    const deployment = await s.kubectl(['describe', 'deployment', 'k1-web-green'], NS);
    expect(deployment).toMatch(/tower\.redforge\.dev\/rev:\s+[0-9a-f]{64}/);
    expect(deployment).toMatch(/TOWER_ADMIN_PASSWORD_HASH:\s+<set to the key 'TOWER_ADMIN_PASSWORD_HASH' in secret 'k1-web-green'>/);
    expect(deployment).toContain('nodered/node-red:4.1');
    const service = await s.kubectl(['describe', 'service', 'k1-web'], NS);
    expect(service).toMatch(/Selector:\s+.*tower\.redforge\.dev\/color=green/);
    expect(service).toMatch(/Endpoints:\s+127\.\d+\.\d+\.\d+:1880/);
    const pod = await s.kubectl(['describe', 'pods', '-l', 'tower.redforge.dev/instance=web,tower.redforge.dev/color=green'], NS);
    expect(pod).toMatch(/Readiness:\s+http-get http:\/\/:http\/auth\/login/);
  }, 60_000);
});

/**
 * fleet-example on runtime: kubernetes, adapted to what the stand-in can do: no cluster DNS (the
 * query smoke check that calls its peers through their Services goes), context in each colour's
 * memory (context: shared is not wired to Redis in pods yet), a tenth of a CPU each (the
 * stand-in's node has two), drainTimeout 3s.
 */
async function kubeExampleFleet(): Promise<string> {
  const { dir } = await exampleFleetCopy();
  dirs.push(dir);
  const doc = parseDocument(readFileSync(join(dir, 'fleet.yaml'), 'utf8'));
  doc.setIn(['spec', 'kubernetes'], doc.createNode({ namespace: NS, access: 'kubeconfig' }));
  doc.setIn(['spec', 'defaults', 'runtime'], 'kubernetes');
  doc.setIn(['spec', 'defaults', 'drainTimeout'], '3s');
  doc.setIn(['spec', 'defaults', 'resources'], doc.createNode({ memory: '256Mi', cpu: 0.1 }));
  const instances = (doc.getIn(['spec', 'instances']) as { items: unknown[] }).items.length;
  for (let i = 0; i < instances; i++) {
    const name = String(doc.getIn(['spec', 'instances', i, 'name']));
    if (name === 'storage') doc.deleteIn(['spec', 'instances', i, 'context']);
    if (name === 'query') doc.deleteIn(['spec', 'instances', i, 'smoke', 1]);
  }
  writeFileSync(join(dir, 'fleet.yaml'), doc.toString());
  return dir;
}

describe('fleet-example on runtime: kubernetes, by the daemon', () => {
  const daemons: DaemonProcess[] = [];
  afterAll(async () => {
    for (const d of daemons) await d.kill('SIGKILL').catch(() => undefined);
  });

  it('goes from nothing to Synced, reports a crashed pod, a restarted Tower adopts what runs and rolls out a change of an MQTT-gated instance', async () => {
    const dir = await kubeExampleFleet();
    const state = tmp('tower-kube-state-');
    const daemonEnv = { ...env(), TOWER_LOG_LEVEL: 'debug' };
    const first = await startDaemon(['--repo', dir, '--state-dir', state, '--interval', '2s'], daemonEnv);
    daemons.push(first);
    const synced = await first.waitFor((st) => st.sync === 'Synced' && st.instances.length === 5 && st.instances.every((i) => i.health === 'Healthy'), 100_000, 'fleet-example Synced on the stand-in');
    expect(synced.instances.map((i) => i.name).sort()).toEqual(['embeddings', 'errors', 'ingest', 'query', 'storage']);
    const healthz = await api(s, 'GET', `/api/v1/namespaces/${NS}/services/redforge-ingest:http/proxy/healthz`);
    expect(healthz.status, healthz.text).toBe(200);

    // A crash inside a pod: Kubernetes restarts the container; Tower hears of it from its watch.
    const pods = await api<{ items: { metadata: { name: string } }[] }>(s, 'GET', `/api/v1/namespaces/${NS}/pods?labelSelector=${encodeURIComponent('tower.redforge.dev/fleet=redforge,tower.redforge.dev/instance=errors')}`);
    const from = first.logs.length;
    expect(s.kubelet.crash(NS, pods.body.items[0]!.metadata.name)).toBe(true);
    const heard = await first.waitForLog((l) => typeof l.msg === 'string' && l.msg.includes('errors/') && l.msg.includes('killed by SIGKILL'), 15_000, from);
    expect(String(heard.msg)).toMatch(/CrashLoopBackOff|Kubernetes restarts it/);
    await first.waitFor((st) => st.instances.find((i) => i.name === 'errors')?.health === 'Healthy', 30_000, 'errors healthy again');

    const before = await api<{ items: { metadata: { name: string; uid: string } }[] }>(s, 'GET', `/apis/apps/v1/namespaces/${NS}/deployments?labelSelector=tower.redforge.dev%2Ffleet%3Dredforge`);
    await first.kill('SIGKILL');
    const second = await startDaemon(['--repo', dir, '--state-dir', state, '--interval', '2s'], daemonEnv);
    daemons.push(second);
    await second.waitFor((st) => st.sync === 'Synced' && st.instances.length === 5 && st.instances.every((i) => i.health === 'Healthy'), 60_000, 'Synced again after the restart');
    const after = await api<{ items: { metadata: { name: string; uid: string } }[] }>(s, 'GET', `/apis/apps/v1/namespaces/${NS}/deployments?labelSelector=tower.redforge.dev%2Ffleet%3Dredforge`);
    // Adopted: the same Deployments, none made again.
    expect(after.body.items.map((d) => d.metadata.uid).sort()).toEqual(before.body.items.map((d) => d.metadata.uid).sort());

    // A change of embeddings (its MQTT consumer behind the deploy gate) rolls out blue-green: green's gate opens before blue's closes.
    const applied = (await second.status()).appliedRevision;
    const doc = parseDocument(readFileSync(join(dir, 'fleet.yaml'), 'utf8'));
    doc.setIn(['spec', 'instances', 1, 'env', 'EMBEDDINGS_NOTE'], 'second revision');
    writeFileSync(join(dir, 'fleet.yaml'), doc.toString());
    const swapped = await second.waitFor((st) => st.sync === 'Synced' && st.appliedRevision !== applied && st.instances.every((i) => i.health === 'Healthy'), 60_000, 'the change of embeddings applied');
    expect(swapped.instances.find((i) => i.name === 'embeddings')?.color).toBe('green');
    expect(swapped.history[0]).toMatchObject({ outcome: 'succeeded' });
    await second.kill('SIGTERM');
  }, 200_000);
});

describe('runtime: kubernetes with RBAC and without a cluster', () => {
  it('holds to its Role: a verb missing is a stalled error with the API server\'s message; with the Role, apply, swap, logs (secrets redacted) and destroy work', async () => {
    const rules = TOWER_ROLE.map((r) => ({ ...r, verbs: [...r.verbs] }));
    const services = rules.find((r) => r.resources.includes('services'))!;
    services.verbs = services.verbs.filter((v) => v !== 'create');
    const b = await startStandin({ images: { 'nodered/node-red:4.1': 'node-red' }, rules });
    try {
      b.namespace(NS);
      const config = b.kubeconfig(join(tmp('tower-kube-rbac-'), 'config'), NS);
      const run = async (...args: string[]) => {
        const io = bufferIo({ ...process.env, KUBECONFIG: config, KUBERNETES_SERVICE_HOST: '', KUBE_E2E_TOKEN: 'tok-3f9a8c7e1d2b' });
        const code = await main(args, io);
        return { code, out: io.out, err: io.err };
      };
      const dir = tmp('tower-kube-fleet-');
      const state = tmp('tower-kube-state-');
      // A secret given by reference, which the flows write to Node-RED's log: tower logs must not show it.
      const secretEnv = ['      env: { API_TOKEN: { fromEnv: KUBE_E2E_TOKEN } }'];
      const ports = await writeKubeFleet(dir, 'r1', [{ name: 'web', text: 'v1', extra: secretEnv }]);
      const flows = JSON.parse(readFileSync(join(dir, 'flows', 'web.json'), 'utf8')) as object[];
      const leaky = [...flows, { id: 'leak-in', type: 'inject', z: 'web-tab', once: true, onceDelay: 0.1, repeat: '', props: [], wires: [['leak-fn']] }, { id: 'leak-fn', type: 'function', z: 'web-tab', func: "node.warn('the token is ' + env.get('API_TOKEN'));\nreturn null;", outputs: 1, wires: [[]] }];
      writeFileSync(join(dir, 'flows', 'web.json'), JSON.stringify(leaky));
      const refused = await run('apply', dir, '--state-dir', state);
      expect(refused.code).not.toBe(0);
      expect(refused.out + refused.err).toContain('services is forbidden: User "system:serviceaccount:tower" cannot create resource "services" in API group "" in the namespace "tower-e2e"');

      services.verbs.push('create');
      b.used.clear();
      const first = await run('apply', dir, '--state-dir', state);
      expect(first.code, first.out + first.err).toBe(0);
      const logsBefore = await run('logs', 'web', '--state-dir', state, '--lines', '50');
      expect(logsBefore.out).toContain('the token is [redacted]');
      expect(logsBefore.out).not.toContain('tok-3f9a8c7e1d2b');
      await writeKubeFleet(dir, 'r1', [{ name: 'web', text: 'v2', extra: secretEnv }], ports);
      const second = await run('apply', dir, '--state-dir', state);
      expect(second.code, second.out + second.err).toBe(0);
      const logs = await run('logs', 'web', '--state-dir', state, '--lines', '50');
      expect(logs.code, logs.err).toBe(0);
      expect(logs.out).toMatch(/Started flows/);
      expect((await run('status', '--state-dir', state)).out).toMatch(/web\s+green/);
      const destroyed = await run('destroy', '--state-dir', state);
      expect(destroyed.code, destroyed.out + destroyed.err).toBe(0);
      const left = await api<{ items: unknown[] }>(b, 'GET', `/apis/apps/v1/namespaces/${NS}/deployments`);
      expect(left.body.items).toEqual([]);
      // What was asked is within the Role, and the Role holds nothing the rollout did not use but
      // the pods watch (the daemon's) and the methods smoke checks may use.
      const granted = new Set(TOWER_ROLE.flatMap((r) => r.resources.flatMap((res) => r.verbs.map((v) => `${r.apiGroups[0] ? `${r.apiGroups[0]}/` : ''}${res} ${v}`))));
      expect([...b.used].filter((u) => !granted.has(u))).toEqual([]);
      expect([...granted].filter((g) => !b.used.has(g)).sort()).toEqual(['pods watch', 'pods/proxy create', 'services/proxy create'].sort());
    } finally {
      await b.stop();
    }
  }, 120_000);

  it('without a kubeconfig: a stalled error that says so, nothing started', async () => {
    const dir = tmp('tower-kube-fleet-');
    const state = tmp('tower-kube-state-');
    await writeKubeFleet(dir, 'n1', [{ name: 'web', text: 'v1' }]);
    const io = bufferIo({ ...process.env, KUBECONFIG: join(dir, 'no-such-kubeconfig'), KUBERNETES_SERVICE_HOST: '' });
    const code = await main(['apply', dir, '--state-dir', state], io);
    expect(code).not.toBe(0);
    expect(io.out + io.err).toContain('kubernetes: cannot load the kubeconfig');
    expect(io.out + io.err).toContain('no-such-kubeconfig');

    // The daemon says so in its status and keeps running.
    const d = await startDaemon(['--repo', dir, '--state-dir', tmp('tower-kube-state-'), '--interval', '1s'], { ...process.env, KUBECONFIG: join(dir, 'no-such-kubeconfig'), KUBERNETES_SERVICE_HOST: '' });
    try {
      const st = await d.waitFor((x) => `${x.lastError ?? ''} ${x.message} ${x.attempted?.error ?? ''}`.includes('cannot load the kubeconfig'), 30_000, 'the kubeconfig error in status');
      expect(JSON.stringify(st)).toContain('no-such-kubeconfig');
      expect(d.child.exitCode).toBeNull();
    } finally {
      await d.kill('SIGTERM');
    }
  }, 60_000);
});
