/**
 * replicas: N on runtime: kubernetes, end to end on the stand-in (its pods run real Node-RED):
 * each pod of a colour is a replica the engine asks itself — every one must run the desired rev
 * before the Service moves — requests through the Service reach every pod, a swap under
 * open-loop load fails none, and MQTT work behind the deploy gate is shared between the pods
 * ($share/<group>/<topic>, each pod its own session named after it): each QoS 1 message
 * published across a swap is processed once, none lost. With the daemon: a crashed pod is
 * Kubernetes' to restart (Tower restarts nothing), and a pod Kubernetes replaces (a new name, so
 * a new gate) has its gate opened by the next pass and takes its share of the work.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { bufferIo } from '../../src/commands/io.js';
import { freePort } from '../../src/adapters/net.js';
import { api, eventually } from '../helpers/kube-standin/client.js';
import { startStandin, type Standin } from '../helpers/kube-standin/server.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';

const NS = 'tower-replicas';
let s: Standin;
let broker: Mosquitto;
let kubeconfig: string;
const dirs: string[] = [];

beforeAll(async () => {
  s = await startStandin({ images: { 'nodered/node-red:4.1': 'node-red' }, crashBackoffMs: 1_000 });
  s.namespace(NS);
  broker = await startMosquitto();
  kubeconfig = s.kubeconfig(join(tmp('tower-kube-'), 'config'), NS);
});

const daemons: DaemonProcess[] = [];

afterAll(async () => {
  for (const d of daemons) await d.kill('SIGKILL').catch(() => undefined);
  await s?.stop();
  await broker?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tmp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

async function tower(...args: string[]) {
  const io = bufferIo({ ...process.env, KUBECONFIG: kubeconfig, KUBERNETES_SERVICE_HOST: '', MQTT_URL: broker.url });
  const code = await main(args, io);
  return { code, out: io.out, err: io.err };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Answers GET /who with its version, colour and pod (TOWER_REPLICA is the pod's name); a job on $share/worker/<fleet>/jobs is answered on <fleet>/done with who did it. */
function flows(fleet: string, version: string, delayMs: number): object[] {
  const z = 'w-tab';
  const who = `${JSON.stringify(version)} + ' ' + env.get('TOWER_COLOR') + ' ' + env.get('TOWER_REPLICA')`;
  return [
    { id: z, type: 'tab', label: 'worker', disabled: false, info: '' },
    { id: 'w-http', type: 'http in', z, name: '', url: '/who', method: 'get', upload: false, swaggerDoc: '', x: 100, y: 40, wires: [['w-who']] },
    { id: 'w-who', type: 'function', z, name: 'who', func: `setTimeout(() => { msg.payload = ${who}; node.send(msg); }, ${delayMs});\nreturn null;`, outputs: 1, timeout: 0, noerr: 0, initialize: '', finalize: '', libs: [], x: 300, y: 40, wires: [['w-res']] },
    { id: 'w-res', type: 'http response', z, name: '', statusCode: '', headers: {}, x: 500, y: 40, wires: [] },
    { id: 'w-broker', type: 'mqtt-broker', name: 'fleet broker', broker: '${TOWER_MQTT_URL}', port: '${TOWER_MQTT_PORT}', tls: 'w-tls', clientid: '', autoConnect: true, usetls: true, verifyservercert: '${TOWER_MQTT_VERIFY_SERVER_CERT}', protocolVersion: '4', keepalive: '60', cleansession: true, autoUnsubscribe: true },
    { id: 'w-tls', type: 'tls-config', name: 'fleet broker TLS', cert: '', key: '', ca: '', certname: '', keyname: '', caname: '', servername: '', alpnprotocol: '' },
    { id: 'w-in', type: 'mqtt in', z, name: 'jobs', topic: `$share/worker/${fleet}/jobs`, qos: '1', datatype: 'json', broker: 'tower-gate-consumer', nl: false, rap: true, rh: 0, inputs: 0, x: 120, y: 100, wires: [['w-process']] },
    { id: 'w-process', type: 'function', z, name: 'process', func: `msg.payload = { id: msg.payload && msg.payload.id, by: env.get('TOWER_COLOR') + '/' + env.get('TOWER_REPLICA') };\nmsg.topic = '${fleet}/done';\nreturn msg;`, outputs: 1, timeout: 0, noerr: 0, initialize: '', finalize: '', libs: [], x: 300, y: 100, wires: [['w-out']] },
    { id: 'w-out', type: 'mqtt out', z, name: 'done', topic: '', qos: '1', retain: 'false', broker: 'w-broker', x: 480, y: 100, wires: [] },
  ];
}

function writeFleet(dir: string, fleet: string, port: number, version: string, delayMs = 0): void {
  mkdirSync(join(dir, 'flows'), { recursive: true });
  writeFileSync(join(dir, 'flows', 'worker.json'), JSON.stringify(flows(fleet, version, delayMs), null, 2));
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
      '    - name: worker',
      '      flows: [flows/worker.json, lib:deploy-gate]',
      `      port: ${port}`,
      '      replicas: 2',
      '      smoke:',
      `        - { name: answers, http: { path: /who, expect: { status: 200, bodyContains: ${version} } } }`,
      '',
    ].join('\n'),
  );
}

/** GET /who through the Service (the API server's service proxy, as a client outside the cluster reaches it). */
async function who(fleet: string): Promise<{ ok: boolean; body: string }> {
  const r = await api(s, 'GET', `/api/v1/namespaces/${NS}/services/${fleet}-worker:http/proxy/who`).catch((e: Error) => ({ status: 0, text: e.message }));
  return { ok: r.status === 200, body: r.text };
}

async function podsOf(fleet: string, color: string): Promise<string[]> {
  const r = await api<{ items: { metadata: { name: string; deletionTimestamp?: string } }[] }>(s, 'GET', `/api/v1/namespaces/${NS}/pods?labelSelector=${encodeURIComponent(`tower.redforge.dev/fleet=${fleet},tower.redforge.dev/color=${color}`)}`);
  return r.body.items.filter((p) => !p.metadata.deletionTimestamp).map((p) => p.metadata.name).sort();
}

/** How often Tower asked a pod's Admin API for its flows (the rev check) through the pod proxy. */
const flowsAsked = (pod: string) => s.proxied.get(`GET pods/${pod} /flows`) ?? 0;

describe('replicas: 2 on runtime: kubernetes', () => {
  it('asks every pod for its rev before the Service moves; the Service reaches both pods; a swap under open-loop load fails none', async () => {
    const dir = tmp('tower-kr-fleet-');
    const state = tmp('tower-kr-state-');
    const port = await freePort();
    writeFleet(dir, 'kr1', port, 'v1', 300);
    const first = await tower('apply', dir, '--state-dir', state);
    expect(first.code, first.out + first.err).toBe(0);
    const blue = await podsOf('kr1', 'blue');
    expect(blue).toHaveLength(2);
    for (const pod of blue) expect(flowsAsked(pod), `GET /flows on ${pod}`).toBeGreaterThan(0);
    const bodies = new Set<string>();
    for (let i = 0; i < 30 && bodies.size < 2; i++) bodies.add((await who('kr1')).body);
    expect(bodies).toEqual(new Set(blue.map((p) => `v1 blue ${p}`)));
    const status = JSON.parse((await tower('status', '--state-dir', state, '--format', 'json')).out) as { instances: { name: string; health: string; replicas?: unknown }[] };
    expect(status.instances[0]).toMatchObject({ name: 'worker', health: 'Healthy' });
    // tower logs --replica k: the k-th pod's log.
    const logs = await tower('logs', 'worker', '--state-dir', state, '--replica', '2', '--lines', '200');
    expect(logs.code, logs.err).toBe(0);
    expect(logs.out).toMatch(/Started flows/);
    expect((await tower('logs', 'worker', '--state-dir', state, '--replica', '3')).err).toContain('replicas 1 to 2, not 3');

    writeFleet(dir, 'kr1', port, 'v2', 300);
    const results: { ok: boolean; body: string }[] = [];
    const pending: Promise<void>[] = [];
    // Open loop: a request every 25 ms whatever the answers do, at most 600.
    const timer = setInterval(() => {
      if (pending.length < 600) pending.push(who('kr1').then((r) => void results.push(r)));
    }, 25);
    // When the Service's selector first names green: how often each green pod had been asked for its flows.
    let atSwitch: Record<string, number> | undefined;
    const watcher = setInterval(() => {
      const selector = (s.store.get('services', NS, 'kr1-worker')?.spec as { selector?: Record<string, string> } | undefined)?.selector;
      if (atSwitch || selector?.['tower.redforge.dev/color'] !== 'green') return;
      atSwitch = Object.fromEntries([...s.proxied].filter(([k]) => k.startsWith('GET pods/kr1-worker-green-') && k.endsWith(' /flows')).map(([k, n]) => [k.split(' ')[1]!.slice('pods/'.length), n]));
    }, 20);
    const second = await tower('apply', dir, '--state-dir', state);
    clearInterval(watcher);
    await sleep(500);
    clearInterval(timer);
    await Promise.all(pending);
    expect(second.code, second.out + second.err).toBe(0);
    const green = await podsOf('kr1', 'green');
    expect(green).toHaveLength(2);
    // Each green pod had been asked for its rev before the Service moved to green; the audit asks each again after.
    expect(Object.keys(atSwitch ?? {}).sort()).toEqual(green);
    for (const pod of green) expect(flowsAsked(pod), `GET /flows on ${pod}`).toBeGreaterThan(atSwitch![pod]!);
    expect(results.length).toBeGreaterThan(50);
    expect(results.filter((r) => !r.ok)).toEqual([]);
    const served = new Set(results.map((r) => r.body));
    for (const pod of blue) expect(served).toContain(`v1 blue ${pod}`);
    for (const pod of green) expect(served).toContain(`v2 green ${pod}`);
    expect(await podsOf('kr1', 'blue')).toEqual([]);
  }, 180_000);

  it('shares MQTT work between the pods: each QoS 1 message published across a swap is processed once in total, none lost', async () => {
    const dir = tmp('tower-kr-fleet-');
    const state = tmp('tower-kr-state-');
    const port = await freePort();
    writeFleet(dir, 'kr2', port, 'v1');
    const first = await tower('apply', dir, '--state-dir', state);
    expect(first.code, first.out + first.err).toBe(0);
    const blue = await podsOf('kr2', 'blue');

    const processed = new Map<string, string[]>();
    const collector = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    collector.on('message', (_t, payload) => {
      const { id, by } = JSON.parse(payload.toString()) as { id: string; by: string };
      processed.set(id, [...(processed.get(id) ?? []), by]);
    });
    await collector.subscribeAsync('kr2/done', { qos: 1 });
    const publisher = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    const sent: string[] = [];
    const publish = async (id: string) => {
      sent.push(id);
      await publisher.publishAsync('kr2/jobs', JSON.stringify({ id }), { qos: 1 });
    };
    const allProcessed = async () => {
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline && sent.some((id) => !processed.has(id))) await sleep(100);
      await sleep(1_000); // duplicates, if any, would arrive now
    };
    try {
      for (let i = 0; i < 40; i++) await publish(`before-${i}`);
      await allProcessed();
      const before = sent.map((id) => processed.get(id) ?? []);
      expect(before.every((by) => by.length === 1)).toBe(true);
      expect(new Set(before.flat())).toEqual(new Set(blue.map((p) => `blue/${p}`)));

      writeFleet(dir, 'kr2', port, 'v2');
      let publishing = true;
      const publishing2 = (async () => {
        for (let i = 0; publishing && i < 3_000; i++) {
          await publish(`swap-${i}`);
          await sleep(10);
        }
      })();
      const swap = await tower('apply', dir, '--state-dir', state);
      await sleep(500);
      publishing = false;
      await publishing2;
      expect(swap.code, swap.out + swap.err).toBe(0);
      await allProcessed();
      const green = await podsOf('kr2', 'green');
      const during = sent.filter((id) => id.startsWith('swap-'));
      expect(during.length).toBeGreaterThan(100);
      expect(during.filter((id) => !processed.has(id))).toEqual([]);
      // QoS 1 is at least once: a message in flight on a gate that closes may be redelivered after it
      // was processed — at most one per closed gate (blue's two pods), each at most twice, never by every pod.
      const twice = during.filter((id) => (processed.get(id)?.length ?? 0) > 1);
      expect(twice.length, JSON.stringify(twice.map((id) => [id, processed.get(id)]))).toBeLessThanOrEqual(2);
      expect(twice.filter((id) => processed.get(id)!.length > 2)).toEqual([]);
      expect(new Set(during.flatMap((id) => processed.get(id)!))).toEqual(new Set([...blue.map((p) => `blue/${p}`), ...green.map((p) => `green/${p}`)]));
    } finally {
      await publisher.endAsync();
      await collector.endAsync();
    }
  }, 180_000);

  it('by the daemon: a crashed pod is left to Kubernetes; a replaced pod\'s gate is opened by the next pass and it takes its share; a lost pod\'s session is ended', async () => {
    const dir = tmp('tower-kr-fleet-');
    const state = tmp('tower-kr-state-');
    writeFleet(dir, 'kr3', await freePort(), 'v1');
    const d = await startDaemon(['--repo', dir, '--state-dir', state, '--interval', '2s'], { ...process.env, KUBECONFIG: kubeconfig, KUBERNETES_SERVICE_HOST: '', MQTT_URL: broker.url, TOWER_LOG_LEVEL: 'debug' });
    daemons.push(d);
    await d.waitFor((st) => st.sync === 'Synced' && st.instances[0]?.health === 'Healthy', 90_000, 'Synced');
    const [a, b] = await podsOf('kr3', 'blue');

    // A crash inside pod a: the kubelet restarts its container in the same pod; Tower hears of it and restarts nothing.
    let from = d.logs.length;
    expect(s.kubelet.crash(NS, a!)).toBe(true);
    await d.waitForLog((l) => typeof l.msg === 'string' && l.msg.includes(a!) && l.msg.includes('killed by SIGKILL'), 15_000, from);
    await d.waitFor((st) => st.instances[0]?.health === 'Healthy', 30_000, 'healthy again');
    expect(await podsOf('kr3', 'blue')).toEqual([a, b]);
    expect(d.logs.slice(from).filter((l) => typeof l.msg === 'string' && l.msg.startsWith('repaired worker: restart'))).toEqual([]);

    // Pod b deleted: the Deployment makes another, with another name — its gate is new and closed until Tower opens it.
    from = d.logs.length;
    const deleted = await api(s, 'DELETE', `/api/v1/namespaces/${NS}/pods/${b!}`);
    expect(deleted.status, deleted.text).toBe(200);
    const pods = await eventually(async () => {
      const now = await podsOf('kr3', 'blue');
      return now.length === 2 && !now.includes(b!) ? now : undefined;
    }, 30_000, 'a replacement pod');
    const c = pods.find((p) => p !== a)!;
    await d.waitForLog((l) => l.msg === 'repaired worker: reopen-gate', 30_000, from);
    const watcher = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    try {
      const states = new Map<string, string>();
      watcher.on('message', (t, payload) => void states.set(t, payload.toString()));
      await watcher.subscribeAsync(`tower/gate/kr3/worker/blue/+/state`, { qos: 1 });
      await eventually(async () => (states.get(`tower/gate/kr3/worker/blue/${c}/state`) === 'open' && states.get(`tower/gate/kr3/worker/blue/${a!}/state`) === 'open' ? true : undefined), 10_000, 'both pods\' gates open');

      const processed = new Map<string, string[]>();
      watcher.on('message', (t, payload) => {
        if (t !== 'kr3/done') return;
        const { id, by } = JSON.parse(payload.toString()) as { id: string; by: string };
        processed.set(id, [...(processed.get(id) ?? []), by]);
      });
      await watcher.subscribeAsync('kr3/done', { qos: 1 });
      const ids = Array.from({ length: 40 }, (_, i) => `after-${i}`);
      for (const id of ids) await watcher.publishAsync('kr3/jobs', JSON.stringify({ id }), { qos: 1 });
      await eventually(async () => (ids.every((id) => processed.has(id)) ? true : undefined), 20_000, 'every job processed');
      await sleep(1_000);
      expect(ids.filter((id) => processed.get(id)!.length !== 1)).toEqual([]);
      expect(new Set(ids.flatMap((id) => processed.get(id)!))).toEqual(new Set([`blue/${a!}`, `blue/${c}`]));

      // Pod c lost without stopping (a forced delete: SIGKILL, no preStop): its persistent session stays in the shared
      // subscription, where the broker would queue its share of the work. The next pass ends it (forget-replicas).
      from = d.logs.length;
      const forced = await api(s, 'DELETE', `/api/v1/namespaces/${NS}/pods/${c}`, { gracePeriodSeconds: 0 });
      expect(forced.status, forced.text).toBe(200);
      await d.waitForLog((l) => l.msg === 'repaired worker: forget-replicas' && String(l.reason).includes(c), 30_000, from);
      const replacement = await eventually(async () => {
        const now = await podsOf('kr3', 'blue');
        return now.length === 2 && !now.includes(c) ? now.find((p) => p !== a)! : undefined;
      }, 30_000, 'a pod in place of c');
      await eventually(async () => (states.get(`tower/gate/kr3/worker/blue/${replacement}/state`) === 'open' ? true : undefined), 30_000, 'the new pod\'s gate open');
      expect(states.get(`tower/gate/kr3/worker/blue/${c}/state`) ?? '').toBe('');
      const more = Array.from({ length: 60 }, (_, i) => `lost-pod-${i}`);
      for (const id of more) await watcher.publishAsync('kr3/jobs', JSON.stringify({ id }), { qos: 1 });
      await eventually(async () => (more.every((id) => processed.has(id)) ? true : undefined), 20_000, 'every job after the lost pod processed');
      await sleep(1_000);
      expect(more.filter((id) => processed.get(id)!.length !== 1)).toEqual([]);
      expect(new Set(more.flatMap((id) => processed.get(id)!))).toEqual(new Set([`blue/${a!}`, `blue/${replacement}`]));
    } finally {
      await watcher.endAsync();
    }
    await d.kill('SIGTERM');
  }, 180_000);
});
