/**
 * replicas: N on the docker runtime driver, against a real private Docker engine
 * (test/helpers/dockerd.ts): a colour of three replicas is three containers, each on its own
 * loopback port with its own userDir and TOWER_REPLICA; a killed replica is reported (with
 * its index) and start() restarts it alone; list() and inspect() show the colour once with
 * its replicas; remove() takes them all. The engine's end-to-end behaviour (switch, swap,
 * repair) is the same as for the process runtime (replicas.test.ts) — it sees only the driver.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/adapters/net.js';
import { containerName, dockerDriver } from '../../src/adapters/runtime/docker.js';
import type { ColorExit, ColorSpec, RuntimeDriver } from '../../src/adapters/runtime/types.js';
import { contentHash, deployableFlows, flowsRev } from '../../src/core/flows.js';
import { replicaEnvironments } from '../../src/core/instance-env.js';
import type { FlowNode } from '../../src/core/model.js';
import { buildTestImage, hostNodeRedRun, startDockerd, type PrivateDockerd } from '../helpers/dockerd.js';
import { nextExit, watchExits, watching } from '../helpers/exits.js';

const ROOT = join(import.meta.dirname, '..', '..');
const IMAGE = 'tower-test/node-red:4.1.8';
const FLEET = 'drep';
const FLOWS: FlowNode[] = [
  { id: 'tab1', type: 'tab', label: 'replica', disabled: false, info: '', env: [] },
  { id: 'in1', type: 'http in', z: 'tab1', name: '', url: '/who', method: 'get', upload: false, swaggerDoc: '', x: 120, y: 80, wires: [['fn1']] },
  { id: 'fn1', type: 'function', z: 'tab1', name: '', func: "msg.payload = 'r' + env.get('TOWER_REPLICA');\nreturn msg;", outputs: 1, timeout: 0, noerr: 0, initialize: '', finalize: '', libs: [], x: 300, y: 80, wires: [['out1']] },
  { id: 'out1', type: 'http response', z: 'tab1', name: '', statusCode: '', headers: {}, x: 480, y: 80, wires: [] },
];

async function answer(port: number): Promise<string> {
  const deadline = Date.now() + 20_000;
  for (let i = 0; i < 200 && Date.now() < deadline; i++) {
    const text = await fetch(`http://127.0.0.1:${port}/who`, { signal: AbortSignal.timeout(1_000) }).then((r) => (r.ok ? r.text() : ''), () => '');
    if (text) return text;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing answers on ${port}`);
}

describe('docker runtime driver: replicas (real private dockerd)', () => {
  let engine: PrivateDockerd | undefined;
  let stateDir = '';
  let driver: RuntimeDriver;
  const exits: ColorExit[] = [];
  const lines: string[] = [];
  let unwatch = () => {};

  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'tower-docker-replicas-'));
    engine = await startDockerd();
    await buildTestImage(engine.docker, IMAGE);
    driver = dockerDriver({ docker: engine.docker, stateDir, run: await hostNodeRedRun(join(ROOT, 'node_modules')), log: (line) => lines.push(line) });
    unwatch = watchExits(driver, FLEET, exits);
  }, 60_000);

  afterAll(async () => {
    unwatch();
    await engine?.stop();
    await rm(stateDir, { recursive: true, force: true });
  });

  it('runs three containers for a colour, restarts a killed one alone, and removes them all', async () => {
    const ports = [await freePort(), await freePort(), await freePort()];
    const spec: ColorSpec = {
      fleet: FLEET, instance: 'web', color: 'blue', port: ports[0]!, flows: FLOWS, rev: flowsRev(deployableFlows(FLOWS)), flowsHash: contentHash(FLOWS),
      env: { TOWER_COLOR: 'blue' }, nodeRedVersion: '4.1.8', image: IMAGE, resources: {}, settings: {}, context: 'memory', labels: {},
      admin: { username: 'admin', password: 'test-password-123' },
      replicas: 3, replicaPorts: ports.slice(1), replicaEnv: replicaEnvironments(FLEET, 'web', 'blue', 3),
    };
    const created = await driver.create(spec);
    expect(created.replicas?.map((r) => [r.index, r.port, r.status])).toEqual([[1, ports[0], 'created'], [2, ports[1], 'created'], [3, ports[2], 'created']]);
    const started = await driver.start(spec);
    expect(started.status).toBe('running');
    expect(await Promise.all(ports.map(answer))).toEqual(['r1', 'r2', 'r3']);
    const listed = await driver.list(FLEET);
    expect(listed).toHaveLength(1);
    expect(listed[0]!.replicas?.map((r) => r.status)).toEqual(['running', 'running', 'running']);
    await watching(lines);

    // kill replica 2: reported with its index; the colour still runs; start() restarts replica 2 alone.
    const ids = started.replicas!.map((r) => r.id);
    const killedAt = Date.now();
    await engine!.docker.getContainer(containerName(spec, 2)).kill();
    const { exit } = await nextExit(exits, 0, killedAt, 5_000);
    expect(exit).toMatchObject({ fleet: FLEET, instance: 'web', color: 'blue', replica: 2 });
    const down = (await driver.inspect(spec))!;
    expect(down.status).toBe('running');
    expect(down.replicas?.map((r) => r.status)).toEqual(['running', 'exited', 'running']);
    const before = await engine!.docker.getContainer(containerName(spec, 1)).inspect();
    const again = await driver.start(spec);
    expect(again.replicas?.map((r) => r.status)).toEqual(['running', 'running', 'running']);
    expect(again.replicas?.map((r) => r.id)).toEqual(ids); // the same containers
    expect((await engine!.docker.getContainer(containerName(spec, 1)).inspect()).State.StartedAt).toBe(before.State.StartedAt);
    expect(await answer(ports[1]!)).toBe('r2');

    // logs of one replica; remove takes every container.
    const logged: string[] = [];
    for await (const line of driver.logs(spec, { lines: 200, replica: 3 })) logged.push(line);
    expect(logged.join('\n')).toMatch(/Started flows/);
    await driver.remove(spec);
    expect(await driver.list(FLEET)).toEqual([]);
    expect(await engine!.docker.listContainers({ all: true })).toEqual([]);
  }, 120_000);
});
