/**
 * The docker driver's logs() against a real, private Docker engine (test/helpers/dockerd.ts):
 * Node-RED's container log, stdout and stderr demultiplexed, a secret env value and a node
 * credential redacted, `lines` bounding it, following a line written after it started until
 * aborted, and the end of a followed log when the container stops.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/adapters/net.js';
import { dockerDriver } from '../../src/adapters/runtime/docker.js';
import { RuntimeError, type ColorSpec, type RuntimeDriver } from '../../src/adapters/runtime/types.js';
import { contentHash, deployableFlows, flowsRev } from '../../src/core/flows.js';
import type { FlowNode } from '../../src/core/model.js';
import { buildTestImage, hostNodeRedRun, startDockerd, type PrivateDockerd } from '../helpers/dockerd.js';
import { eventually } from '../helpers/nodered.js';

const ROOT = join(import.meta.dirname, '..', '..');
const IMAGE = 'tower-test/node-red:4.1.8';
const FLEET = 'dlogs';
const ADMIN = { username: 'admin', password: 'docker-logs-admin-pw' };
const SECRET = 'sk-docker-0f9e8d7c6b';
const CRED_PASSWORD = 'docker-cred-pw-99';

const fn = (id: string, func: string, wires: string[][] = [[]]): FlowNode => ({ id, type: 'function', z: 'tab', name: id, func, outputs: 1, timeout: 0, noerr: 0, initialize: '', finalize: '', libs: [], x: 300, y: 100, wires });
const httpIn = (id: string, url: string, next: string): FlowNode => ({ id, type: 'http in', z: 'tab', name: '', url, method: 'get', upload: false, swaggerDoc: '', x: 100, y: 100, wires: [[next]] });
const httpOut = (id: string): FlowNode => ({ id, type: 'http response', z: 'tab', name: '', statusCode: '', headers: {}, x: 500, y: 100, wires: [] });

const FLOWS: FlowNode[] = [
  { id: 'tab', type: 'tab', label: 'docker logs', disabled: false, info: '', env: [] },
  { id: 'boot', type: 'inject', z: 'tab', name: '', props: [], repeat: '', crontab: '', once: true, onceDelay: 0.1, topic: '', x: 100, y: 200, wires: [['leak']] },
  fn('leak', "node.warn('key ' + env.get('API_KEY'));\nconsole.error('on stderr ' + env.get('API_KEY'));\nreturn null;"),
  httpIn('shout-in', '/shout', 'shout'),
  fn('shout', "node.warn('shout ' + msg.req.query.n);\nmsg.payload = 'ok';\nreturn msg;", [['shout-out']]),
  httpOut('shout-out'),
  // /auth calls /echo-auth through an http request node with basic-auth credentials, and logs the header it sent.
  httpIn('auth-in', '/auth', 'auth-url'),
  fn('auth-url', "msg.url = 'http://127.0.0.1:' + env.get('PORT') + '/echo-auth';\nreturn msg;", [['auth-req']]),
  {
    id: 'auth-req', type: 'http request', z: 'tab', name: '', method: 'GET', ret: 'txt', paytoqs: 'ignore', url: '', tls: '', persist: false, proxy: '',
    authType: 'basic', senderr: false, headers: [], x: 500, y: 300, wires: [['auth-log']], credentials: { user: 'carol', password: CRED_PASSWORD },
  },
  fn('auth-log', "node.warn('auth header ' + msg.payload);\nreturn msg;", [['auth-out']]),
  httpOut('auth-out'),
  httpIn('echo-in', '/echo-auth', 'echo'),
  fn('echo', "msg.payload = msg.req.headers.authorization || 'none';\nreturn msg;", [['echo-out']]),
  httpOut('echo-out'),
];

describe('docker runtime driver: logs (real private dockerd)', () => {
  let engine: PrivateDockerd | undefined;
  let stateDir = '';
  let driver: RuntimeDriver;
  let spec: ColorSpec;

  const read = async (opts: { lines: number }) => {
    const out: string[] = [];
    for await (const line of driver.logs(spec, { ...opts, secrets: [ADMIN.password] })) out.push(line);
    return out;
  };

  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'tower-docker-logs-state-'));
    engine = await startDockerd();
    await buildTestImage(engine.docker, IMAGE);
    driver = dockerDriver({ docker: engine.docker, stateDir, run: await hostNodeRedRun(join(ROOT, 'node_modules')) });
    const port = await freePort();
    spec = {
      fleet: FLEET, instance: 'web', color: 'blue', port, flows: FLOWS, rev: flowsRev(deployableFlows(FLOWS)), flowsHash: contentHash(FLOWS),
      env: { API_KEY: SECRET, PORT: String(port) }, nodeRedVersion: '4.1.8', image: IMAGE, resources: {}, settings: {}, context: 'memory', labels: {}, admin: ADMIN,
    };
    await driver.create(spec);
    await driver.start(spec);
  });

  afterAll(async () => {
    await engine?.stop();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  it('gives stdout and stderr lines, the env secret and the node credential redacted', async () => {
    const lines = await eventually(async () => ((l) => (l.some((x) => x.includes('on stderr')) && l.some((x) => x.includes('Started flows')) ? l : undefined))(await read({ lines: 1000 })), 20_000);
    expect(lines.find((l) => l.includes('[function:leak] key'))).toMatch(/key \[redacted\]$/);
    expect(lines.find((l) => l.includes('on stderr'))).toBe('on stderr [redacted]');
    expect(lines.join('\n')).not.toContain(SECRET);
    // The raw container log holds it.
    expect(String(await engine!.docker.getContainer('tower-dlogs-web-blue').logs({ stdout: true, stderr: true }))).toContain(SECRET);

    expect((await fetch(`http://127.0.0.1:${spec.port}/auth`)).status).toBe(200);
    const auth = await eventually(async () => (await read({ lines: 50 })).find((l) => l.includes('auth header')), 10_000);
    expect(auth).toContain('[redacted]');
    expect(auth).not.toContain(Buffer.from(`carol:${CRED_PASSWORD}`).toString('base64'));
  });

  it('lines bounds what it gives (Docker tail)', async () => {
    const all = await read({ lines: 1000 });
    const two = await read({ lines: 2 });
    expect(all.length).toBeGreaterThan(2);
    expect(two).toEqual(all.slice(-2));
  });

  it('follow gives a line written after it started, ends at once when aborted, and by itself when the container stops', async () => {
    const controller = new AbortController();
    const got: string[] = [];
    const following = (async () => {
      for await (const line of driver.logs(spec, { lines: 1, follow: true, signal: controller.signal })) got.push(line);
    })();
    await eventually(async () => (got.length > 0 ? true : undefined), 5_000);
    const marker = `m-${Date.now()}`;
    expect((await fetch(`http://127.0.0.1:${spec.port}/shout?n=${marker}`)).status).toBe(200);
    await eventually(async () => (got.some((l) => l.includes(`shout ${marker}`)) ? true : undefined), 10_000);
    let t = Date.now();
    controller.abort();
    await following;
    expect(Date.now() - t).toBeLessThan(1_000);

    const after: string[] = [];
    const second = (async () => {
      for await (const line of driver.logs(spec, { lines: 1, follow: true })) after.push(line);
    })();
    await eventually(async () => (after.length > 0 ? true : undefined), 5_000);
    t = Date.now();
    await driver.stop(spec, { timeoutMs: 5_000 });
    await second;
    expect(Date.now() - t).toBeLessThan(10_000);
    expect(after.join('\n')).toMatch(/Stopping flows|Stopped flows/);
  });

  it('a colour that does not exist is a RuntimeError', async () => {
    const iterator = driver.logs({ fleet: FLEET, instance: 'web', color: 'green' }, { lines: 10 })[Symbol.asyncIterator]();
    await expect(iterator.next()).rejects.toThrow(RuntimeError);
    await expect(read({ lines: 1 })).resolves.toHaveLength(1);
  });
});
