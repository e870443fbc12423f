/**
 * The docker runtime driver against a real, private Docker engine (test/helpers/dockerd.ts):
 * a tiny imported busybox image runs the host's node and Node-RED (bind-mounted read-only)
 * on the host network, on an ephemeral loopback port. Exit supervision (watch) of a Node-RED
 * colour is here; with busybox stand-ins (OOM, removal, a cut event stream) in docker-watch.test.ts.
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerDriver, LABELS, memoryBytes, nanoCpus } from '../../src/adapters/runtime/docker.js';
import { RuntimeError, type ColorExit, type ColorSpec, type RunningColor, type RuntimeDriver } from '../../src/adapters/runtime/types.js';
import { contentHash, deployableFlows, flowsRev } from '../../src/core/flows.js';
import type { FlowNode } from '../../src/core/model.js';
import { buildTestImage, hostNodeRedRun, startDockerd, type PrivateDockerd } from '../helpers/dockerd.js';
import { nextExit, sleep, watchExits, watching } from '../helpers/exits.js';
import { freePort } from '../../src/adapters/net.js';

const ROOT = join(import.meta.dirname, '..', '..');
const IMAGE = 'tower-test/node-red:4.1.8';
const FLEET = 'dtest';
const ADMIN = { username: 'admin', password: 'test-password-123' };
const SECRET = 'sup3r-s3cret-api-key';
const FLOWS: FlowNode[] = [
  { id: 'tab1', type: 'tab', label: 'docker driver test', disabled: false, info: '', env: [] },
  { id: 'in1', type: 'http in', z: 'tab1', name: '', url: '/env', method: 'get', upload: false, swaggerDoc: '', x: 120, y: 80, wires: [['fn1']] },
  {
    id: 'fn1', type: 'function', z: 'tab1', name: 'env X', func: "msg.payload = String(env.get('X'));\nreturn msg;",
    outputs: 1, timeout: 0, noerr: 0, initialize: '', finalize: '', libs: [], x: 300, y: 80, wires: [['out1']],
  },
  { id: 'out1', type: 'http response', z: 'tab1', name: '', statusCode: '', headers: {}, x: 480, y: 80, wires: [] },
  // /creds calls /echo-auth through an http request node whose basic-auth user and password are node credentials.
  { id: 'cin', type: 'http in', z: 'tab1', name: '', url: '/creds', method: 'get', upload: false, swaggerDoc: '', x: 120, y: 160, wires: [['curl']] },
  {
    id: 'curl', type: 'function', z: 'tab1', name: 'own port', func: "msg.url = 'http://127.0.0.1:' + env.get('PORT') + '/echo-auth';\nreturn msg;",
    outputs: 1, timeout: 0, noerr: 0, initialize: '', finalize: '', libs: [], x: 300, y: 160, wires: [['req1']],
  },
  {
    id: 'req1', type: 'http request', z: 'tab1', name: '', method: 'GET', ret: 'txt', paytoqs: 'ignore', url: '', tls: '', persist: false,
    proxy: '', insecureHTTPParser: false, authType: 'basic', senderr: false, headers: [], x: 480, y: 160, wires: [['cout']],
    credentials: { user: 'bob', password: 'cred-password-42' },
  },
  { id: 'cout', type: 'http response', z: 'tab1', name: '', statusCode: '', headers: {}, x: 660, y: 160, wires: [] },
  { id: 'ein', type: 'http in', z: 'tab1', name: '', url: '/echo-auth', method: 'get', upload: false, swaggerDoc: '', x: 120, y: 240, wires: [['efn']] },
  {
    id: 'efn', type: 'function', z: 'tab1', name: 'echo auth', func: "msg.payload = msg.req.headers.authorization || 'none';\nreturn msg;",
    outputs: 1, timeout: 0, noerr: 0, initialize: '', finalize: '', libs: [], x: 300, y: 240, wires: [['eout']],
  },
  { id: 'eout', type: 'http response', z: 'tab1', name: '', statusCode: '', headers: {}, x: 480, y: 240, wires: [] },
];

function specFor(color: 'blue' | 'green', port: number, image = IMAGE): ColorSpec {
  return {
    fleet: FLEET,
    instance: 'ingest',
    color,
    port,
    flows: FLOWS,
    rev: flowsRev(deployableFlows(FLOWS)),
    flowsHash: contentHash(FLOWS),
    env: { X: `hello from ${color}`, API_KEY: SECRET, TOWER_COLOR: color, PORT: String(port) },
    nodeRedVersion: '4.1.8',
    image,
    resources: { memory: '256Mi', cpu: '1500m' },
    settings: {},
    context: 'memory',
    labels: { team: 'pipeline' },
    admin: ADMIN,
  };
}

describe('docker runtime driver (real private dockerd)', () => {
  let engine: PrivateDockerd | undefined;
  let stateDir = '';
  let driver: RuntimeDriver;
  let blue: ColorSpec;
  let green: ColorSpec;
  let created: RunningColor;
  let started: RunningColor;
  const timings: Record<string, number> = {};
  /** Everything driver's watcher reported, for the whole block; and the driver's log. */
  const exits: ColorExit[] = [];
  const lines: string[] = [];
  let unwatch = () => {};

  /** Bounded poll of GET /settings until Node-RED answers (401 with adminAuth); container logs on failure. */
  async function waitUp(url: string, name: string): Promise<number> {
    const deadline = Date.now() + 20_000;
    for (let attempt = 0; attempt < 200 && Date.now() < deadline; attempt++) {
      const status = await fetch(`${url}/settings`, { signal: AbortSignal.timeout(1000) }).then((r) => r.status, () => 0);
      if (status === 200 || status === 401) return status;
      await new Promise((done) => setTimeout(done, 100));
    }
    const logs = await engine?.docker.getContainer(name).logs({ stdout: true, stderr: true, tail: 30 }).catch(() => '');
    throw new Error(`Node-RED in ${name} did not answer ${url}/settings\n${String(logs)}`);
  }

  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'tower-docker-state-'));
    engine = await startDockerd();
    timings.dockerdMs = engine.startMs;
    let t = Date.now();
    await buildTestImage(engine.docker, IMAGE);
    timings.importMs = Date.now() - t;
    driver = dockerDriver({ docker: engine.docker, stateDir, run: await hostNodeRedRun(join(ROOT, 'node_modules')), log: (line) => lines.push(line) });
    unwatch = watchExits(driver, FLEET, exits);
    blue = specFor('blue', await freePort());
    green = specFor('green', await freePort());
    t = Date.now();
    created = await driver.create(blue);
    timings.createMs = Date.now() - t;
    started = await driver.start(blue);
    timings.startMs = Date.now() - t - timings.createMs;
    await waitUp(started.url, 'tower-dtest-ingest-blue');
    timings.readyMs = Date.now() - t;
    // Green is only prepared: list must report it as created, not running.
    await driver.create(green);
  });

  afterAll(async () => {
    unwatch();
    await engine?.stop();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
    console.info(`[docker-driver] dockerd ready ${timings.dockerdMs} ms, image import ${timings.importMs} ms, create ${timings.createMs} ms + start ${timings.startMs} ms, Node-RED answering ${timings.readyMs} ms after create`);
  });

  it('create + start: Node-RED answers on the colour port and runs exactly spec.rev', async () => {
    expect(created).toMatchObject({ runtime: 'docker', fleet: FLEET, instance: 'ingest', color: 'blue', status: 'created', port: blue.port });
    expect(started).toMatchObject({ id: created.id, status: 'running', url: `http://127.0.0.1:${blue.port}` });
    expect(started.startedAt).toMatch(/^\d{4}-\d\d-\d\dT/);

    const settings = await fetch(`${started.url}/settings`);
    expect(settings.status).toBe(401);

    const tokenRes = await fetch(`${started.url}/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_id: 'node-red-admin', grant_type: 'password', scope: '*', ...ADMIN }),
    });
    expect(tokenRes.status).toBe(200);
    const { access_token: token } = (await tokenRes.json()) as { access_token: string };
    const flowsRes = await fetch(`${started.url}/flows`, { headers: { authorization: `Bearer ${token}`, 'Node-RED-API-Version': 'v2' } });
    expect(flowsRes.status).toBe(200);
    const body = (await flowsRes.json()) as { rev: string; flows: FlowNode[] };
    expect(body.rev).toBe(blue.rev);
    expect(body.flows.map((n) => n.id)).toEqual(FLOWS.map((n) => n.id));

    // Credentials went to flows_cred.json, encrypted with the state dir's secret, and the node uses them.
    const creds = await fetch(`${started.url}/creds`);
    expect(await creds.text()).toBe(`Basic ${Buffer.from('bob:cred-password-42').toString('base64')}`);
  });

  it('labels carry the identity (no secrets); a new driver object adopts what runs', async () => {
    const info = await engine!.docker.getContainer('tower-dtest-ingest-blue').inspect();
    expect(info.Config.Labels).toEqual({
      team: 'pipeline',
      [LABELS.fleet]: FLEET,
      [LABELS.instance]: 'ingest',
      [LABELS.color]: 'blue',
      [LABELS.rev]: blue.rev,
      [LABELS.flowsHash]: blue.flowsHash,
      [LABELS.port]: String(blue.port),
      [LABELS.nodeRedVersion]: '4.1.8',
    });
    const labelText = JSON.stringify(info.Config.Labels);
    expect(labelText).not.toContain(SECRET);
    expect(labelText).not.toContain(ADMIN.password);

    // A restarted reconciler: nothing in memory, only the engine's labels.
    const fresh = dockerDriver({ docker: engine!.docker, stateDir });
    const listed = (await fresh.list(FLEET)).sort((a, b) => a.color.localeCompare(b.color));
    expect(listed).toEqual([
      { runtime: 'docker', fleet: FLEET, instance: 'ingest', color: 'blue', id: started.id, port: blue.port, rev: blue.rev, flowsHash: blue.flowsHash, status: 'running', url: started.url },
      expect.objectContaining({ color: 'green', port: green.port, rev: green.rev, status: 'created' }),
    ]);
    expect(await fresh.inspect(blue)).toEqual(started);
    expect(await fresh.list('some-other-fleet')).toEqual([]);
  });

  it('applies resource limits, host networking, restart policy and the /data userDir', async () => {
    const info = await engine!.docker.getContainer('tower-dtest-ingest-blue').inspect();
    expect(info.HostConfig.Memory).toBe(256 * 2 ** 20);
    expect(info.HostConfig.NanoCpus).toBe(1_500_000_000);
    expect(info.HostConfig.NetworkMode).toBe('host');
    // Docker restarts nothing behind Tower's back: the engine hears the exit and decides.
    expect(info.HostConfig.RestartPolicy?.Name).toBe('no');
    const dataDir = join(stateDir, 'docker', 'ingest', 'blue', 'data');
    expect(info.HostConfig.Binds).toContain(`${dataDir}:/data`);
    expect(info.Config.Env).toEqual(expect.arrayContaining(['X=hello from blue', `API_KEY=${SECRET}`]));

    // The image's user (uid 1000) owns the userDir; settings name the colour's port on loopback.
    expect((await stat(dataDir)).uid).toBe(1000);
    const settings = await readFile(join(dataDir, 'settings.js'), 'utf8');
    expect(settings).toContain(`"uiPort": ${blue.port}`);
    expect(settings).toContain('"uiHost": "127.0.0.1"');
    expect(settings).not.toContain(ADMIN.password);
    expect(await readFile(join(dataDir, 'flows.json'), 'utf8')).toBe(JSON.stringify(deployableFlows(blue.flows)));
    expect(await readFile(join(dataDir, 'flows_cred.json'), 'utf8')).not.toContain('cred-password-42');
    // One credentialSecret per state dir, in the process driver's file and format.
    expect(JSON.parse(await readFile(join(stateDir, 'secrets.json'), 'utf8'))).toEqual({ credentialSecret: expect.stringMatching(/^[0-9a-f]{64}$/) });

    expect([memoryBytes('512Ki'), memoryBytes('256Mi'), memoryBytes('1Gi'), memoryBytes('1000000')]).toEqual([524_288, 268_435_456, 1_073_741_824, 1_000_000]);
    expect([nanoCpus('0.5'), nanoCpus(0.5), nanoCpus('500m'), nanoCpus(2)]).toEqual([5e8, 5e8, 5e8, 2e9]);
    expect(() => memoryBytes('256MB')).toThrow(RuntimeError);
    expect(() => nanoCpus('-1')).toThrow(/resources.cpu/);
  });

  it('env reaches the flow (env.get in a function node)', async () => {
    const res = await fetch(`${started.url}/env`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('hello from blue');
  });

  it('usage reports CPU seconds and memory from container stats', async () => {
    const usage = await driver.usage!(blue);
    expect(usage?.cpuSeconds).toBeGreaterThan(0.1);
    expect(usage?.rssBytes).toBeGreaterThan(20 * 2 ** 20);
    expect(usage?.rssBytes).toBeLessThan(256 * 2 ** 20);
    expect(await driver.usage!(green)).toBeUndefined(); // created, not running
  });

  it('docker kill of a colour: watch() hears it within a second, inspect and list tell how, Docker does not restart it', async () => {
    await watching(lines);
    expect(exits).toEqual([]);
    const t0 = Date.now();
    await engine!.docker.getContainer('tower-dtest-ingest-blue').kill();
    const { exit, ms } = await nextExit(exits, 0, t0);
    expect(ms).toBeLessThan(1_000);
    expect(exit).toEqual({ fleet: FLEET, instance: 'ingest', color: 'blue', at: expect.any(String), code: 137, signal: 'SIGKILL', reason: 'killed by SIGKILL' });
    expect(Date.parse(exit.at)).toBeGreaterThanOrEqual(t0 - 1_000);

    // Docker's own restart delay is 100 ms: had it a policy, the colour would run again by now.
    await sleep(500);
    const info = await engine!.docker.getContainer('tower-dtest-ingest-blue').inspect();
    expect(info.State).toMatchObject({ Running: false, ExitCode: 137, OOMKilled: false });
    expect(info.RestartCount).toBe(0);
    const how = { at: new Date(info.State.FinishedAt).toISOString(), code: 137, signal: 'SIGKILL', reason: 'killed by SIGKILL' };
    expect(await driver.inspect(blue)).toMatchObject({ status: 'exited', exit: how });
    expect((await driver.list(FLEET)).find((c) => c.color === 'blue')).toMatchObject({ status: 'exited', exit: how });
    expect(exits).toHaveLength(1);

    // Tower starts it again (here: the test, as the engine would); it runs, and nothing more is reported.
    const again = await driver.start(blue);
    expect(again).toMatchObject({ status: 'running' });
    expect(again.exit).toBeUndefined();
    await waitUp(again.url, 'tower-dtest-ingest-blue');
    expect(exits).toHaveLength(1);
  });

  it('stop leaves it not running; remove is idempotent and deletes container and data dir', async () => {
    await driver.stop(blue, { timeoutMs: 5000 });
    expect(await driver.inspect(blue)).toMatchObject({ status: 'exited', id: started.id });
    await driver.stop(blue); // already stopped
    await expect(fetch(`${started.url}/settings`, { signal: AbortSignal.timeout(1000) })).rejects.toThrow();

    const colorDir = join(stateDir, 'docker', 'ingest', 'blue');
    await driver.remove(blue);
    await driver.remove(blue);
    expect(await driver.inspect(blue)).toBeUndefined();
    await expect(engine!.docker.getContainer('tower-dtest-ingest-blue').inspect()).rejects.toMatchObject({ statusCode: 404 });
    await expect(stat(colorDir)).rejects.toMatchObject({ code: 'ENOENT' });
    await driver.stop(blue); // gone: still fine

    await driver.remove(green);
    expect(await driver.list(FLEET)).toEqual([]);
    // Asked for: the watcher heard nothing of these stops and removals (only the kill before).
    await sleep(300);
    expect(exits).toHaveLength(1);
  });

  it('a missing image is a RuntimeError that names the image and how to load it; nothing is left behind', async () => {
    const missing = specFor('blue', await freePort(), 'nodered/node-red:9.9.9-missing');
    const err = await driver.create(missing).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect(err).toMatchObject({ reason: 'ImageMissing', kind: 'stalled' }); // retrying cannot bring the image
    expect((err as Error).message).toMatch(/nodered\/node-red:9\.9\.9-missing/);
    expect((err as Error).message).toMatch(/docker pull .*docker load/);
    expect(await driver.list(FLEET)).toEqual([]);
    await expect(stat(join(stateDir, 'docker', 'ingest', 'blue'))).rejects.toMatchObject({ code: 'ENOENT' });

    // Without spec.image the official image is the default.
    const { image: _image, ...noImage } = missing;
    await expect(driver.create(noImage)).rejects.toThrow(/nodered\/node-red:4\.1\.8 is not on the Docker host/);
  });

  it('preflight: says before anything changes that an image is missing, and nothing when it is there', async () => {
    expect(await driver.cannotRun('ingest', { nodeRedVersion: '4.1.8', image: 'nodered/node-red:9.9.9-missing' })).toMatch(/^instance ingest: image nodered\/node-red:9\.9\.9-missing is not on the Docker host/);
    expect(await driver.cannotRun('ingest', { nodeRedVersion: '9.9' })).toMatch(/nodered\/node-red:9\.9 is not on the Docker host/);
    expect(await driver.cannotRun('ingest', { nodeRedVersion: '4.1.8', image: IMAGE })).toBeUndefined();
  });

  it('Docker errors become RuntimeErrors with status and message; a foreign container is never replaced', async () => {
    const broken = dockerDriver({ docker: engine!.docker, stateDir, run: { entrypoint: ['/no/such/binary'] } });
    const spec = specFor('green', await freePort());
    expect(await broken.create(spec)).toMatchObject({ status: 'created' });
    const err = await broken.start(spec).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as Error).message).toMatch(/^docker: start tower-dtest-ingest-green failed \(HTTP \d{3}\): .*no such file or directory/);
    expect((err as Error).message).not.toContain(SECRET);
    await broken.remove(spec);

    await engine!.docker.createContainer({ name: 'tower-dtest-ingest-green', Image: IMAGE, Cmd: ['true'] });
    await expect(driver.create(spec)).rejects.toMatchObject({ reason: 'NameConflict' });
    expect((await engine!.docker.getContainer('tower-dtest-ingest-green').inspect()).Config.Labels).toEqual({});
    await engine!.docker.getContainer('tower-dtest-ingest-green').remove({ force: true });
  });
});
