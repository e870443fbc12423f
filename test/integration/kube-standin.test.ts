/**
 * The stand-in Kubernetes API server (test/helpers/kube-standin) on its own, before Tower uses
 * it: bodies are checked against Kubernetes' OpenAPI schemas and the API server's own rules; a
 * Deployment's pod runs a real Node-RED from a ConfigMap and a Secret and becomes ready through
 * its readiness probe; the pod and service proxies reach it; a label-selected watch sees objects
 * come and go; a deleted pod runs its preStop hook and finishes the request in flight; an image
 * the registry lacks is ImagePullBackOff. Its fidelity is checked with the real kubectl.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, eventually } from '../helpers/kube-standin/client.js';
import { startStandin, type Standin } from '../helpers/kube-standin/server.js';

const NS = 'redforge';
const FLOWS = [
  { id: 't1', type: 'tab', label: 'standin' },
  { id: 'in', type: 'http in', z: 't1', url: '/hello', method: 'get', wires: [['fn']] },
  { id: 'fn', type: 'function', z: 't1', func: "msg.payload = 'hello from ' + env.get('WHO') + ' ' + env.get('SECRET_WORD');\nreturn msg;", outputs: 1, wires: [['out']] },
  { id: 'out', type: 'http response', z: 't1', wires: [] },
  { id: 'sin', type: 'http in', z: 't1', url: '/slow', method: 'get', wires: [['sfn']] },
  { id: 'sfn', type: 'function', z: 't1', func: "setTimeout(() => { msg.payload = 'slow done'; node.send(msg); }, 1500);\nreturn null;", outputs: 1, wires: [['sout']] },
  { id: 'sout', type: 'http response', z: 't1', wires: [] },
];
const SETTINGS = `const fs = require('fs'), path = require('path');
const i = process.argv.indexOf('--userDir');
const userDir = i > 0 ? process.argv[i + 1] : '/data';
if (!fs.existsSync(path.join(userDir, 'flows.json'))) fs.copyFileSync(path.join(__dirname, 'flows.json'), path.join(userDir, 'flows.json'));
module.exports = { uiHost: '0.0.0.0', uiPort: 1880, flowFile: 'flows.json', credentialSecret: false, telemetry: { enabled: false }, logging: { console: { level: 'info' } } };
`;

function deployment(name: string, image = 'nodered/node-red:4.1.8', labels: Record<string, string> = { app: name }) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, labels, annotations: { 'tower.redforge.dev/rev': 'a'.repeat(64) } },
    spec: {
      replicas: 1,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          terminationGracePeriodSeconds: 10,
          containers: [
            {
              name: 'node-red',
              image,
              args: ['--settings', '/config/settings.js'],
              ports: [{ name: 'http', containerPort: 1880 }],
              env: [{ name: 'WHO', value: name }, { name: 'SECRET_WORD', valueFrom: { secretKeyRef: { name: 'words', key: 'word' } } }],
              resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } },
              readinessProbe: { httpGet: { path: '/hello', port: 'http' }, periodSeconds: 1 },
              lifecycle: { preStop: { exec: { command: ['sleep', '2'] } } },
              volumeMounts: [{ name: 'config', mountPath: '/config', readOnly: true }, { name: 'data', mountPath: '/data' }],
            },
          ],
          volumes: [{ name: 'config', configMap: { name: 'nr-config' } }, { name: 'data', emptyDir: {} }],
        },
      },
    },
  };
}

describe('kube stand-in', () => {
  let s: Standin;
  const ns = (path: string) => `/api/v1/namespaces/${NS}${path}`;
  const apps = (path: string) => `/apis/apps/v1/namespaces/${NS}${path}`;

  beforeAll(async () => {
    s = await startStandin({ images: { 'nodered/node-red:4.1.8': 'node-red' } });
    s.namespace(NS);
  });
  afterAll(async () => {
    await s?.stop();
  });

  it('authenticates with the bearer token', async () => {
    const r = await api({ ...s, token: 'wrong' }, 'GET', ns('/pods'));
    expect(r.status).toBe(401);
    expect((r.body as { reason: string }).reason).toBe('Unauthorized');
  });

  it('checks bodies against the Kubernetes schemas and the API server rules', async () => {
    const bad = deployment('bad') as unknown as { spec: Record<string, unknown>; metadata: Record<string, unknown> };
    bad.spec.replicas = 'one';
    let r = await api(s, 'POST', apps('/deployments'), bad);
    expect(r.status).toBe(422);
    expect(r.text).toContain('spec.replicas: must be integer');
    // A rev as a label value: longer than 63 characters.
    r = await api(s, 'POST', apps('/deployments'), deployment('bad', undefined, { app: 'x'.repeat(64) }));
    expect(r.status).toBe(422);
    expect(r.text).toContain('must be no more than 63 characters');
    const mismatch = deployment('bad') as unknown as { spec: { selector: unknown } };
    mismatch.spec.selector = { matchLabels: { app: 'other' } };
    r = await api(s, 'POST', apps('/deployments'), mismatch);
    expect(r.text).toContain('`selector` does not match template `labels`');
    r = await api(s, 'POST', ns('/configmaps'), { metadata: { name: 'big' }, data: { 'flows.json': 'x'.repeat(1024 * 1024 + 1) } });
    expect(r.status).toBe(422);
    expect(r.text).toContain('must have at most 1048576 bytes');
    r = await api(s, 'POST', ns('/services'), { metadata: { name: '1abc' }, spec: { ports: [{ port: 80 }] } });
    expect(r.text).toContain('DNS-1035');
    const lease = await api(s, 'POST', '/apis/coordination.k8s.io/v1/namespaces/redforge/leases', { metadata: { name: 'l' }, spec: { holderIdentity: 'a', renewTime: 'yesterday' } });
    expect(lease.status).toBe(422);
  });

  it('runs a Deployment as a real Node-RED from a ConfigMap and a Secret, ready through its probe, reached through the proxies', async () => {
    expect((await api(s, 'POST', ns('/configmaps'), { metadata: { name: 'nr-config' }, data: { 'settings.js': SETTINGS, 'flows.json': JSON.stringify(FLOWS) } })).status).toBe(201);
    expect((await api(s, 'POST', ns('/secrets'), { metadata: { name: 'words' }, stringData: { word: 'swordfish' } })).status).toBe(201);
    const created = await api(s, 'POST', apps('/deployments'), deployment('hello'));
    expect(created.status, created.text).toBe(201);
    expect((await api(s, 'POST', ns('/services'), { metadata: { name: 'hello' }, spec: { selector: { app: 'hello' }, ports: [{ name: 'http', port: 1881, targetPort: 'http' }] } })).status).toBe(201);
    const dep = await eventually(async () => {
      const d = await api<{ status?: { readyReplicas?: number } }>(s, 'GET', apps('/deployments/hello'));
      return d.body.status?.readyReplicas === 1 ? d.body : undefined;
    }, 30_000, 'deployment hello ready');
    expect(dep).toBeTruthy();
    const pods = await api<{ items: { metadata: { name: string }; status: { podIP: string } }[] }>(s, 'GET', ns('/pods?labelSelector=app%3Dhello'));
    expect(pods.body.items).toHaveLength(1);
    const pod = pods.body.items[0]!;
    expect(pod.status.podIP).toMatch(/^127\.1\./);
    const viaPod = await api(s, 'GET', ns(`/pods/${pod.metadata.name}:1880/proxy/hello`));
    expect(viaPod.text).toBe('hello from hello swordfish');
    const viaService = await api(s, 'GET', ns('/services/hello:http/proxy/hello'));
    expect(viaService.text).toBe('hello from hello swordfish');
    const endpoints = await api<{ subsets: { addresses: { ip: string }[]; ports: { port: number }[] }[] }>(s, 'GET', ns('/endpoints/hello'));
    expect(endpoints.body.subsets[0]!.addresses[0]!.ip).toBe(pod.status.podIP);
    expect(endpoints.body.subsets[0]!.ports[0]!.port).toBe(1880);
  });

  it('is read by the real kubectl: get and describe', async () => {
    const get = await s.kubectl(['get', 'deployments,pods,services,configmaps', '-o', 'wide'], NS);
    expect(get).toMatch(/deployment\.apps\/hello\s+1\/1\s+1\s+1/);
    expect(get).toMatch(/pod\/hello-\w+-\w+\s+1\/1\s+Running\s+0/);
    expect(get).toMatch(/service\/hello\s+ClusterIP\s+\S+\s+<none>\s+1881\/TCP/);
    const describe = await s.kubectl(['describe', 'deployment', 'hello'], NS);
    expect(describe).toMatch(/Replicas:\s+1 desired \| 1 updated \| 1 total \| 1 available \| 0 unavailable/);
    expect(describe).toContain('nodered/node-red:4.1.8');
    expect(describe).toMatch(/SECRET_WORD:\s+<set to the key 'word' in secret 'words'>/);
    const pod = await s.kubectl(['describe', 'pods', '-l', 'app=hello'], NS);
    expect(pod).toMatch(/Status:\s+Running/);
    expect(pod).toMatch(/Readiness:\s+http-get http:\/\/:http\/hello/);
    expect(pod).toContain('Started container node-red');
    const svc = await s.kubectl(['describe', 'service', 'hello'], NS);
    if (process.env.SHOW_KUBECTL) console.log(get, describe, pod, svc);
    expect(svc).toMatch(/Endpoints:\s+127\.1\.\d+\.\d+:1880/);
  });

  it('watches by label: objects come, change and go', async () => {
    const events: string[] = [];
    const https = await import('node:https');
    const { readFileSync } = await import('node:fs');
    const req = https.request(`${s.url}${ns('/configmaps?watch=true&labelSelector=w%3D1')}`, { ca: readFileSync(s.caFile), headers: { Authorization: `Bearer ${s.token}` } }, (res) => {
      let buf = '';
      res.on('data', (c: Buffer) => {
        buf += c.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const e = JSON.parse(buf.slice(0, nl)) as { type: string; object: { metadata: { name: string } } };
          events.push(`${e.type} ${e.object.metadata.name}`);
          buf = buf.slice(nl + 1);
        }
      });
    });
    req.on('error', () => {});
    req.end();
    await new Promise((r) => setTimeout(r, 200));
    await api(s, 'POST', ns('/configmaps'), { metadata: { name: 'w', labels: { w: '1' } }, data: { a: '1' } });
    await api(s, 'PATCH', ns('/configmaps/w'), { data: { a: '2' } }, 'application/merge-patch+json');
    await api(s, 'PATCH', ns('/configmaps/w'), [{ op: 'replace', path: '/metadata/labels/w', value: '2' }], 'application/json-patch+json');
    await eventually(() => events.length >= 3, 5_000, 'three watch events');
    req.destroy();
    expect(events).toEqual(['ADDED w', 'MODIFIED w', 'DELETED w']);
  });

  it('refuses a stale resourceVersion on update', async () => {
    const cm = await api<{ metadata: { resourceVersion: string } }>(s, 'GET', ns('/configmaps/w'));
    const stale = { ...cm.body, metadata: { ...cm.body.metadata, resourceVersion: '1' } };
    const r = await api(s, 'PUT', ns('/configmaps/w'), stale);
    expect(r.status).toBe(409);
    expect(r.text).toContain('the object has been modified');
  });

  it('deletes a pod gracefully: out of the endpoints at once, preStop, and the request in flight finishes', async () => {
    const pods = await api<{ items: { metadata: { name: string } }[] }>(s, 'GET', ns('/pods?labelSelector=app%3Dhello'));
    const name = pods.body.items[0]!.metadata.name;
    const slow = api(s, 'GET', ns(`/pods/${name}:1880/proxy/slow`));
    await new Promise((r) => setTimeout(r, 200));
    const del = await api<{ metadata: { deletionTimestamp?: string } }>(s, 'DELETE', ns(`/pods/${name}`));
    expect(del.body.metadata.deletionTimestamp).toBeTruthy();
    await eventually(async () => {
      const ep = await api<{ subsets?: { addresses?: { targetRef: { name: string } }[] }[] }>(s, 'GET', ns('/endpoints/hello'));
      return !(ep.body.subsets ?? []).some((x) => (x.addresses ?? []).some((a) => a.targetRef.name === name));
    }, 2_000, 'terminating pod out of the endpoints');
    expect((await slow).text).toBe('slow done');
    // The Deployment makes a new pod; the old one is gone once preStop (2 s) and SIGTERM are through.
    await eventually(async () => (await api(s, 'GET', ns(`/pods/${name}`))).status === 404, 10_000, 'old pod gone');
    await eventually(async () => ((await api<{ status?: { readyReplicas?: number } }>(s, 'GET', apps('/deployments/hello'))).body.status?.readyReplicas === 1), 30_000, 'replacement ready');
  });

  it('an image the registry lacks is ImagePullBackOff; deleting the Deployment takes its pods', async () => {
    expect((await api(s, 'POST', apps('/deployments'), deployment('nopull', 'example.com/missing:1', { app: 'nopull' }))).status).toBe(201);
    const pod = await eventually(async () => {
      const p = await api<{ items: { metadata: { name: string }; status: { containerStatuses?: { state: { waiting?: { reason: string } } }[] } }[] }>(s, 'GET', ns('/pods?labelSelector=app%3Dnopull'));
      return p.body.items.find((x) => x.status.containerStatuses?.[0]?.state.waiting?.reason === 'ImagePullBackOff');
    }, 5_000, 'ImagePullBackOff');
    expect(await s.kubectl(['get', 'pods', '-l', 'app=nopull'], NS)).toContain('ImagePullBackOff');
    expect((await api(s, 'DELETE', apps('/deployments/nopull'))).status).toBe(200);
    await eventually(async () => (await api(s, 'GET', ns(`/pods/${pod.metadata.name}`))).status === 404, 10_000, 'pod collected');
  });
});
