/**
 * context: shared with the docker runtime, against a real private Docker engine and a real
 * redis-server: the driver stages the built Redis context store and the ioredis it requires in the
 * state directory, mounts it into the container (read-only), and settings.js requires the store
 * at its in-container path, so a
 * counter kept in flow and global context by the blue container carries on in the green one.
 * As in docker-driver.test.ts, a busybox image runs the host's node and Node-RED (bind-mounted).
 * Needs the build (dist/src/nodered-plugins/context-store/redis.cjs): npx tsc -p tsconfig.json.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/adapters/net.js';
import { NodeRedAdmin } from '../../src/adapters/nodered/admin.js';
import { stageContextStore } from '../../src/adapters/runtime/docker-context.js';
import { containerName, dockerDriver } from '../../src/adapters/runtime/docker.js';
import type { ColorSpec, RuntimeDriver } from '../../src/adapters/runtime/types.js';
import type { FlowNode } from '../../src/core/model.js';
import { buildTestImage, hostNodeRedRun, startDockerd, type PrivateDockerd } from '../helpers/dockerd.js';
import { ADMIN, colorSpec, eventuallyGet } from '../helpers/nodered.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

const ROOT = join(import.meta.dirname, '..', '..');
const IMAGE = 'tower-test/node-red:4.1.8';
const FLEET = 'dctx';
const INSTANCE = 'counter';
const PREFIX = `tower:${FLEET}:${INSTANCE}`;

/** GET /count: a flow counter and a global one in the default store (Redis), a node counter in memory. */
function counterFlows(): FlowNode[] {
  const z = 'dctx-tab';
  const func = `
const fail = (err) => { msg.statusCode = 500; msg.payload = String(err); node.send(msg); };
flow.get('n', (err, n) => {
  if (err) return fail(err);
  n = (n || 0) + 1;
  flow.set('n', n, (err) => {
    if (err) return fail(err);
    global.get('stats.hits', (err, hits) => {
      if (err) return fail(err);
      hits = (hits || 0) + 1;
      global.set('stats.hits', hits, (err) => {
        if (err) return fail(err);
        const local = (context.get('local', 'memory') || 0) + 1;
        context.set('local', local, 'memory');
        msg.payload = { n, hits, local, color: env.get('TOWER_COLOR') };
        node.send(msg);
      });
    });
  });
});
return null;`;
  return [
    { id: z, type: 'tab', label: 'Counter', disabled: false, info: '', env: [] },
    { id: 'count-in', type: 'http in', z, name: '', url: '/count', method: 'get', upload: false, swaggerDoc: '', x: 100, y: 60, wires: [['count-fn']] },
    { id: 'count-fn', type: 'function', z, name: 'count', func, outputs: 1, timeout: 0, noerr: 0, initialize: '', finalize: '', libs: [], x: 300, y: 60, wires: [['count-out']] },
    { id: 'count-out', type: 'http response', z, name: '', statusCode: '', headers: {}, x: 500, y: 60, wires: [] },
  ];
}

interface Count {
  n: number;
  hits: number;
  local: number;
  color: string;
}

describe('docker runtime with context: shared (real private dockerd, real redis-server)', () => {
  let engine: PrivateDockerd | undefined;
  let redis: RedisServer | undefined;
  let admin: Redis | undefined;
  let stateDir = '';
  let driver: RuntimeDriver;
  const ports = { blue: 0, green: 0 };

  const spec = (color: 'blue' | 'green'): ColorSpec =>
    colorSpec({
      fleet: FLEET,
      instance: INSTANCE,
      color,
      port: ports[color],
      flows: counterFlows(),
      env: { TOWER_COLOR: color },
      nodeRedVersion: '4.1.8',
      image: IMAGE,
      context: 'shared',
      sharedContext: { url: redis!.url, prefix: PREFIX },
    });

  async function startColour(color: 'blue' | 'green'): Promise<void> {
    ports[color] = await freePort();
    await driver.create(spec(color));
    await driver.start({ fleet: FLEET, instance: INSTANCE, color });
    const url = `http://127.0.0.1:${ports[color]}`;
    try {
      await new NodeRedAdmin({ baseUrl: url, credentials: ADMIN, timeoutMs: 3_000 }).waitUntilReady(30_000);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${await logs(color)}`);
    }
  }

  async function logs(color: 'blue' | 'green'): Promise<string> {
    const out = await engine?.docker.getContainer(containerName({ fleet: FLEET, instance: INSTANCE, color })).logs({ stdout: true, stderr: true });
    return String(out ?? '');
  }

  const count = async (color: 'blue' | 'green'): Promise<Count> => {
    const res = await eventuallyGet(`http://127.0.0.1:${ports[color]}/count`, (r) => r.status !== 404, 15_000);
    expect(res.status, res.text).toBe(200);
    return JSON.parse(res.text) as Count;
  };

  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'tower-docker-ctx-'));
    redis = await startRedis();
    admin = new Redis(redis.url);
    engine = await startDockerd();
    await buildTestImage(engine.docker, IMAGE);
    driver = dockerDriver({ docker: engine.docker, stateDir, run: await hostNodeRedRun(join(ROOT, 'node_modules')) });
  });

  afterAll(async () => {
    admin?.disconnect();
    await engine?.stop();
    await redis?.stop();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  it('the blue container keeps its counter in Redis through the mounted store; the green one carries on', async () => {
    await startColour('blue');
    // settings.js requires the store where the container sees it, with the instance's prefix.
    const settings = await readFile(join(stateDir, 'docker', INSTANCE, 'blue', 'data', 'settings.js'), 'utf8');
    expect(settings).toContain('module: require("/opt/tower/context-store/redis.cjs")');
    expect(settings).toContain(`"prefix":"${PREFIX}"`);
    // The store and ioredis with its dependencies, staged in the state directory, are mounted read-only;
    // Tower's own node_modules is not (the test's image sees it at /opt/node-red/node_modules only,
    // from where the store could not require ioredis).
    const staged = stageContextStore(stateDir);
    expect(staged.binds).toEqual([`${staged.staged}:/opt/tower/context-store:ro`]);
    expect(staged.staged.startsWith(join(stateDir, 'docker', 'context-store') + '/')).toBe(true);
    for (const file of ['redis.cjs', 'redis-scripts.cjs', 'node_modules/ioredis/package.json', 'node_modules/denque/package.json', 'node_modules/@ioredis/commands/package.json']) {
      expect(existsSync(join(staged.staged, file)), file).toBe(true);
    }
    const info = await engine!.docker.getContainer(containerName({ fleet: FLEET, instance: INSTANCE, color: 'blue' })).inspect();
    expect(info.HostConfig.Binds).toContain(staged.binds[0]);
    expect(info.HostConfig.Binds?.some((b) => b.startsWith(`${join(ROOT, 'node_modules')}:/opt/tower`))).toBe(false);
    expect(await logs('blue')).toMatch(/Context store\s*: 'default' \[module=tower-redis\]/);

    const onBlue: Count[] = [];
    for (let i = 0; i < 3; i++) onBlue.push(await count('blue'));
    expect(onBlue.map((c) => [c.n, c.hits, c.color])).toEqual([
      [1, 1, 'blue'],
      [2, 2, 'blue'],
      [3, 3, 'blue'],
    ]);

    // The other colour, a container of its own, reads what blue wrote (through the same staged store).
    await startColour('green');
    const greenInfo = await engine!.docker.getContainer(containerName({ fleet: FLEET, instance: INSTANCE, color: 'green' })).inspect();
    expect(greenInfo.HostConfig.Binds).toContain(staged.binds[0]);
    expect(await count('green')).toEqual({ n: 4, hits: 4, local: 1, color: 'green' });
    await driver.stop({ fleet: FLEET, instance: INSTANCE, color: 'blue' });
    expect(await count('green')).toEqual({ n: 5, hits: 5, local: 2, color: 'green' });

    // In Redis, under the instance's prefix: the flow scope is the tab id.
    expect(await admin!.hget(`${PREFIX}:ctx:dctx-tab`, 'n')).toBe('5');
    expect(JSON.parse((await admin!.hget(`${PREFIX}:ctx:global`, 'stats'))!)).toEqual({ hits: 5 });
  });

  it('a colour with context: memory gets no mounts and the memory store', async () => {
    const port = await freePort();
    const ref = { fleet: FLEET, instance: 'plain', color: 'blue' as const };
    await driver.create(colorSpec({ ...ref, port, flows: counterFlows(), nodeRedVersion: '4.1.8', image: IMAGE }));
    const info = await engine!.docker.getContainer(containerName(ref)).inspect();
    expect(info.HostConfig.Binds?.some((b) => b.includes('/opt/tower/'))).toBe(false);
    const settings = await readFile(join(stateDir, 'docker', 'plain', 'blue', 'data', 'settings.js'), 'utf8');
    expect(settings).not.toContain('require(');
    await driver.remove(ref);
  });
});
