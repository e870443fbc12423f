/**
 * The Admin API client against a real Node-RED 4.1 started by the process driver (one
 * process for the whole file). Proves that our rev computation is Node-RED's, that stale
 * revs are refused, that tokens are renewed, and that errors carry no secret.
 */
import { inspect } from 'node:util';
import axios from 'axios';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminApiError, FlowsConflictError, NodeRedAdmin } from '../../src/adapters/nodered/admin.js';
import { processDriver } from '../../src/adapters/runtime/process.js';
import type { RuntimeDriver } from '../../src/adapters/runtime/types.js';
import { deployableFlows, flowsRev } from '../../src/core/flows.js';
import type { FlowNode } from '../../src/core/model.js';
import { ADMIN, cleanUpStateDir, colorSpec, eventuallyGet, freePort, httpFlow, httpGet, tempStateDir } from '../helpers/nodered.js';

const FLEET = 'admin-test';
const ref = { fleet: FLEET, instance: 'api', color: 'blue' as const };
let stateDir: string;
let driver: RuntimeDriver;
let port: number;
let url: string;
let admin: NodeRedAdmin;
let initialFlows: FlowNode[];

/** /hello answers; /creds calls /echo-auth through an http request node whose basic-auth user and password are node credentials. */
function flowsWithCredentials(password: string): FlowNode[] {
  return [
    ...httpFlow({ url: '/hello', func: "msg.payload = 'hello ' + (msg.req.query.name || 'world'); return msg;" }),
    ...httpFlow({ tab: 'tab2', idPrefix: 'echo', url: '/echo-auth', func: 'msg.payload = msg.req.headers.authorization || "none"; return msg;' }),
    { id: 'creds-in', type: 'http in', z: 'tab2', name: '', url: '/creds', method: 'get', upload: false, swaggerDoc: '', x: 100, y: 200, wires: [['creds-req']] },
    {
      id: 'creds-req',
      type: 'http request',
      z: 'tab2',
      name: '',
      method: 'GET',
      ret: 'txt',
      paytoqs: 'ignore',
      url: `http://127.0.0.1:${port}/echo-auth`,
      tls: '',
      persist: false,
      proxy: '',
      insecureHTTPParser: false,
      authType: 'basic',
      senderr: false,
      headers: [],
      x: 300,
      y: 200,
      wires: [['creds-out']],
      credentials: { user: 'alice', password },
    },
    { id: 'creds-out', type: 'http response', z: 'tab2', name: '', statusCode: '', headers: {}, x: 500, y: 200, wires: [] },
  ];
}

const basic = (password: string) => `Basic ${Buffer.from(`alice:${password}`).toString('base64')}`;

beforeAll(async () => {
  stateDir = tempStateDir();
  driver = processDriver({ stateDir });
  port = await freePort();
  url = `http://127.0.0.1:${port}`;
  initialFlows = flowsWithCredentials('cred-one');
  await driver.create(colorSpec({ ...ref, port, flows: initialFlows }));
  await driver.start(ref);
  admin = new NodeRedAdmin({ baseUrl: url, credentials: ADMIN, timeoutMs: 3_000 });
  await admin.waitUntilReady(20_000);
});

afterAll(async () => {
  if (stateDir) await cleanUpStateDir(stateDir);
});

describe('NodeRedAdmin against Node-RED 4.1', () => {
  it('reads the flows with the generated adminAuth; the rev is flowsRev(deployableFlows(flows)), credentials included in the spec', async () => {
    const { rev, flows } = await admin.getFlows();
    expect(rev).toBe(flowsRev(deployableFlows(initialFlows)));
    // Node-RED hands out the stored list: no node carries credentials.
    expect(flows).toEqual(deployableFlows(initialFlows));
    expect(flows.some((n) => 'credentials' in n)).toBe(false);
    // ...but it runs with them: the http request node sends the user and password from flows_cred.json.
    expect((await httpGet(`${url}/creds`)).text).toBe(basic('cred-one'));
    expect(await httpGet(`${url}/hello?name=tower`)).toEqual({ status: 200, text: 'hello tower' });
  });

  it('health(): up and asking for auth (401) when unauthenticated', async () => {
    expect(await new NodeRedAdmin({ baseUrl: url }).health()).toEqual({ up: true, status: 401, authRequired: true });
    await expect(new NodeRedAdmin({ baseUrl: url }).getFlows()).rejects.toMatchObject({ status: 401, code: 'unauthorized' });
  });

  it('setFlows: a stale rev is a FlowsConflictError carrying the live rev; the right rev deploys and returns flowsRev of what was sent', async () => {
    const { rev } = await admin.getFlows();
    const changed = flowsWithCredentials('cred-one').map((n) => (n.id === 'n-fn' ? { ...n, func: "msg.payload = 'hi ' + (msg.req.query.name || 'world'); return msg;" } : n));
    const stale = 'f'.repeat(64);
    const err = await admin.setFlows(changed, { rev: stale, type: 'full' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FlowsConflictError);
    expect(err).toBeInstanceOf(AdminApiError);
    expect(err).toMatchObject({ status: 409, code: 'version_mismatch', method: 'POST', path: '/flows', expectedRev: stale, liveRev: rev });
    // Nothing was deployed.
    expect((await admin.getFlows()).rev).toBe(rev);

    const next = await admin.setFlows(changed, { rev, type: 'full' });
    expect(next).toBe(flowsRev(deployableFlows(changed)));
    expect((await admin.getFlows()).rev).toBe(next);
    await eventuallyGet(`${url}/hello?name=x`, (r) => r.text === 'hi x');
  });

  it('setFlows accepts full, flows, nodes and reload deployments', async () => {
    let { rev } = await admin.getFlows();
    for (const type of ['full', 'flows', 'nodes'] as const) {
      const flows = flowsWithCredentials('cred-one').map((n) => (n.id === 'n-fn' ? { ...n, func: `msg.payload = '${type}'; return msg;` } : n));
      const next = await admin.setFlows(flows, { rev, type });
      expect(next).toBe(flowsRev(deployableFlows(flows)));
      rev = next;
      await eventuallyGet(`${url}/hello`, (r) => r.text === type);
    }
    // reload re-reads the flow file Node-RED wrote: same flows, same rev.
    expect(await admin.setFlows([], { type: 'reload' })).toBe(rev);
  });

  it('credentials sent with setFlows: the rev ignores them, GET /flows omits them, the nodes use them', async () => {
    const { rev } = await admin.getFlows();
    const flows = flowsWithCredentials('cred-two');
    const next = await admin.setFlows(flows, { rev, type: 'full' });
    expect(next).toBe(flowsRev(deployableFlows(flows)));
    const live = await admin.getFlows();
    expect(live.rev).toBe(next);
    expect(live.flows).toEqual(deployableFlows(flows));
    await eventuallyGet(`${url}/creds`, (r) => r.text === basic('cred-two'));
  });

  it('an invalid API version is an AdminApiError with Node-RED code invalid_api_version', async () => {
    const token = await admin.accessToken();
    const res = await axios.get(`${url}/flows`, { headers: { Authorization: `Bearer ${token}`, 'Node-RED-API-Version': 'v9' }, validateStatus: () => true, proxy: false });
    // What the client turns into AdminApiError.code: Node-RED's own body.
    expect(res.status).toBe(400);
    expect(res.data).toMatchObject({ code: 'invalid_api_version' });
  });

  it('flows state: stop and start through /flows/state', async () => {
    expect(await admin.getFlowsState()).toBe('start');
    expect(await admin.setFlowsState('stop')).toBe('stop');
    expect(await admin.getFlowsState()).toBe('stop');
    await eventuallyGet(`${url}/hello`, (r) => r.status === 404);
    expect(await admin.setFlowsState('start')).toBe('start');
    await eventuallyGet(`${url}/hello`, (r) => r.status === 200);
  });

  it('a revoked token is replaced transparently: the next call logs in again', async () => {
    const old = await admin.accessToken();
    expect(old).toBeTruthy();
    const revoke = await axios.post(`${url}/auth/revoke`, { token: old }, { headers: { Authorization: `Bearer ${old}` }, validateStatus: () => true, proxy: false });
    expect(revoke.status).toBe(200);
    // The old token is dead for everyone...
    const dead = await axios.get(`${url}/flows`, { headers: { Authorization: `Bearer ${old}` }, validateStatus: () => true, proxy: false });
    expect(dead.status).toBe(401);
    // ...and the client notices the 401, logs in once and retries.
    const { rev } = await admin.getFlows();
    expect(rev).toMatch(/^[0-9a-f]{64}$/);
    const fresh = await admin.accessToken();
    expect(fresh).toBeTruthy();
    expect(fresh).not.toBe(old);
  });

  it('errors carry no password and no token: bad password, 404, connection refused', async () => {
    const token = (await admin.accessToken())!;
    const wrongPassword = 'wrong-pw-4b1d-secret';
    const cases: Array<{ run: () => Promise<unknown>; secrets: string[]; expected: Record<string, unknown> }> = [
      {
        run: () => new NodeRedAdmin({ baseUrl: url, credentials: { username: ADMIN.username, password: wrongPassword } }).getFlows(),
        secrets: [wrongPassword],
        expected: { method: 'POST', path: '/auth/token', status: 403, code: 'invalid_grant' },
      },
      {
        run: () => new NodeRedAdmin({ baseUrl: url, credentials: { username: ADMIN.username, password: wrongPassword } }).waitUntilReady(5_000),
        secrets: [wrongPassword],
        expected: { path: '/auth/token', code: 'invalid_grant' },
      },
      { run: () => admin.getFlow('no-such-tab'), secrets: [ADMIN.password, token], expected: { method: 'GET', path: '/flow/no-such-tab', status: 404, code: 'not_found' } },
      {
        run: async () => new NodeRedAdmin({ baseUrl: `http://127.0.0.1:${await freePort()}`, credentials: ADMIN }).getFlows(),
        secrets: [ADMIN.password],
        expected: { method: 'POST', path: '/auth/token', code: 'ECONNREFUSED' },
      },
    ];
    for (const c of cases) {
      const err = await c.run().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(AdminApiError);
      expect(err).toMatchObject(c.expected);
      const renderings = [String(err), JSON.stringify(err), inspect(err, { depth: 10 }), inspect(err, { depth: 10, showHidden: true }), (err as Error).stack ?? ''];
      for (const text of renderings) {
        for (const secret of c.secrets) expect(text).not.toContain(secret);
        expect(text).not.toMatch(/authorization|bearer/i);
      }
    }
    // The client object itself does not show its password either.
    expect(inspect(admin, { depth: 10, showHidden: true })).not.toContain(ADMIN.password);
  });

  it('health(): down once the process is stopped; getFlows then fails with a network code', async () => {
    await driver.stop(ref, { timeoutMs: 10_000 });
    const health = await admin.health(1_000);
    expect(health.up).toBe(false);
    expect(health).toMatchObject({ reason: 'ECONNREFUSED' });
    await expect(admin.getFlows()).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});
