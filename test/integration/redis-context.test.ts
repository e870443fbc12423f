/**
 * The Redis context store against a private redis-server: the plugin API Node-RED calls (get,
 * set with nested keys, keys, delete, clean), atomic nested writes from two "colours", and a
 * real Node-RED pair started by the process driver whose flow counter survives the swap from
 * blue to green. Needs the build (dist/src/nodered-plugins/context-store/redis.cjs):
 * npx tsc -p tsconfig.json.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeRedAdmin } from '../../src/adapters/nodered/admin.js';
import { processDriver } from '../../src/adapters/runtime/process.js';
import { renderSettings } from '../../src/adapters/runtime/settings.js';
import type { ColorSpec, RuntimeDriver } from '../../src/adapters/runtime/types.js';
import { redisContextStorePath, type RedisContextStore, type RedisContextStoreConfig, type RedisContextStoreFactory } from '../../src/nodered-plugins/context-store/index.js';
import type { FlowNode } from '../../src/core/model.js';
import { ADMIN, cleanUpStateDir, colorSpec, eventually, eventuallyGet, freePort, httpGet, tempStateDir } from '../helpers/nodered.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

const require = createRequire(import.meta.url);
const factory = require(redisContextStorePath()) as RedisContextStoreFactory;

let redis: RedisServer;
let admin: Redis;
const stores: RedisContextStore[] = [];

beforeAll(async () => {
  redis = await startRedis();
  admin = new Redis(redis.url, { lazyConnect: true });
  await admin.connect();
});

afterAll(async () => {
  for (const s of stores) await s.close().catch(() => {});
  admin?.disconnect();
  await redis?.stop();
});

async function openStore(prefix: string, extra: Partial<RedisContextStoreConfig> = {}): Promise<RedisContextStore> {
  const store = factory({ url: redis.url, prefix, ...extra });
  stores.push(store);
  await store.open();
  return store;
}

// The callback API, as Node-RED's context object calls it.
const get = (store: RedisContextStore, scope: string, key: string | string[]) =>
  new Promise<unknown[]>((resolve, reject) => store.get(scope, key, (err, ...values) => (err ? reject(err) : resolve(values))));
const get1 = async (store: RedisContextStore, scope: string, key: string) => (await get(store, scope, key))[0];
const set = (store: RedisContextStore, scope: string, key: string | string[], value: unknown) =>
  new Promise<void>((resolve, reject) => store.set(scope, key, value, (err) => (err ? reject(err) : resolve())));
const keys = (store: RedisContextStore, scope: string) => new Promise<unknown>((resolve, reject) => store.keys(scope, (err, k) => (err ? reject(err) : resolve(k))));

describe('the Redis context store API', () => {
  it('refuses to open without a Redis, naming the address but not the password', async () => {
    const dead = await freePort();
    const store = factory({ url: `redis://:s3cret-pw@127.0.0.1:${dead}`, prefix: 't:dead', connectTimeoutMs: 1_000 });
    const err = (await store.open().catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(new RegExp(`cannot connect to redis://:\\*\\*\\*@127\\.0\\.0\\.1:${dead}`));
    expect(err.message).toContain('ECONNREFUSED');
    expect(err.message).not.toContain('s3cret-pw');
    expect(() => factory({ url: '', prefix: 'x' })).toThrow(/config\.url/);
    expect(() => factory({ url: redis.url, prefix: '' })).toThrow(/config\.prefix/);
  });

  it('gets and sets top-level and nested keys with Node-RED property semantics; values are JSON in a hash per scope', async () => {
    const store = await openStore('t:api');
    expect(await get1(store, 'flow1', 'missing')).toBeUndefined();
    expect(await get1(store, 'flow1', 'missing.deep.er')).toBeUndefined();
    await set(store, 'flow1', 'n', 5);
    expect(await get1(store, 'flow1', 'n')).toBe(5);
    // a.b.c creates the parents, as memory's setObjectProperty does.
    await set(store, 'flow1', 'a.b.c', 1);
    await set(store, 'flow1', 'a.b.d', 'two');
    await set(store, 'flow1', 'a["x y"]', true);
    await set(store, 'flow1', 'list', [1, 2, 3]);
    await set(store, 'flow1', 'list[1]', 20);
    expect(await get1(store, 'flow1', 'a')).toEqual({ b: { c: 1, d: 'two' }, 'x y': true });
    expect(await get1(store, 'flow1', 'a.b')).toEqual({ c: 1, d: 'two' });
    expect(await get1(store, 'flow1', 'a.b.d')).toBe('two');
    expect(await get1(store, 'flow1', 'list')).toEqual([1, 20, 3]);
    // A property below a primitive is neither readable nor settable (no error), as in memory.
    expect(await get1(store, 'flow1', 'n.x')).toBeUndefined();
    await set(store, 'flow1', 'n.x', 1);
    expect(await get1(store, 'flow1', 'n')).toBe(5);
    // undefined deletes; null is a value.
    await set(store, 'flow1', 'a.b.c', undefined);
    expect(await get1(store, 'flow1', 'a.b')).toEqual({ d: 'two' });
    await set(store, 'flow1', 'nothing', null);
    expect(await get1(store, 'flow1', 'nothing')).toBeNull();
    await set(store, 'flow1', 'nothing', undefined);
    // The layout: one hash per scope, a field per top-level key, JSON values.
    expect(await admin.hgetall('t:api:ctx:flow1')).toEqual({ n: '5', a: JSON.stringify({ b: { d: 'two' }, 'x y': true }), list: '[1,20,3]' });
    expect(await admin.smembers('t:api:scopes')).toEqual(['flow1']);
    expect(((await keys(store, 'flow1')) as string[]).sort()).toEqual(['a', 'list', 'n']);
    expect(await keys(store, 'empty')).toEqual([]);
  });

  it('takes arrays of keys and values as Node-RED passes them (missing values are null)', async () => {
    const store = await openStore('t:multi');
    await set(store, 'node1:flow1', ['p', 'q.r', 's'], [1, { t: 2 }]);
    expect(await get(store, 'node1:flow1', ['p', 'q.r.t', 's', 'zz'])).toEqual([1, 2, null, undefined]);
    await set(store, 'node1:flow1', ['o.a', 'o.b'], [1, 2]);
    expect(await get1(store, 'node1:flow1', 'o')).toEqual({ a: 1, b: 2 });
  });

  it('reports errors through the callback, and refuses the synchronous form', async () => {
    const store = await openStore('t:errors');
    await expect(get(store, 'flow1', 'a[')).rejects.toThrow(/Invalid property expression/);
    await expect(set(store, 'flow1', 'a[', 1)).rejects.toThrow(/Invalid property expression/);
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    await expect(set(store, 'flow1', 'c', circular)).rejects.toThrow(/circular/i);
    await expect(set(store, 'flow1', 'f', () => 1)).rejects.toThrow(/cannot be stored as JSON/);
    expect(() => (store.get as (scope: string, key: string) => void)('flow1', 'n')).toThrow(/asynchronous: use the callback form/);
  });

  it('in one process, a get right after a set (without waiting for it) sees the set, nested or not', async () => {
    const store = await openStore('t:order');
    const seen: unknown[] = [];
    await new Promise<void>((resolve, reject) => {
      store.set('global', 'cfg.level', 3);
      store.get('global', 'cfg.level', (err, v) => (err ? reject(err) : seen.push(v)));
      store.set('global', 'cfg.level', 4);
      store.set('global', 'plain', 'x');
      store.get('global', ['cfg', 'plain'], (err, ...v) => (err ? reject(err) : (seen.push(...v), resolve())));
    });
    expect(seen).toEqual([3, { level: 4 }, 'x']);
  });

  it('two colours on one prefix share the data; another instance (prefix) does not see it', async () => {
    const blue = await openStore('tower:f:ingest');
    const green = await openStore('tower:f:ingest');
    const other = await openStore('tower:f:query');
    await set(blue, 'global', 'docs', ['a']);
    expect(await get1(green, 'global', 'docs')).toEqual(['a']);
    expect(await get1(other, 'global', 'docs')).toBeUndefined();
  });

  it('nested writes are atomic read-modify-writes: 2 × 100 concurrent writers of one key lose nothing', async () => {
    const blue = await openStore('t:cas');
    const green = await openStore('t:cas');
    await Promise.all(
      Array.from({ length: 100 }, (_, i) => [set(blue, 'global', `obj.blue${i}`, i), set(green, 'global', `obj.green${i}`, i)]).flat(),
    );
    const obj = (await get1(blue, 'global', 'obj')) as Record<string, number>;
    expect(Object.keys(obj)).toHaveLength(200);
    expect(obj.blue99).toBe(99);
    expect(obj.green0).toBe(0);
  });

  it('delete(scope) removes the scope and its index entries', async () => {
    const store = await openStore('t:delete');
    await set(store, 'global', 'g', 1);
    await set(store, 'flow1', 'f', 1);
    await store.delete('global');
    expect(await get1(store, 'global', 'g')).toBeUndefined();
    expect(await get1(store, 'flow1', 'f')).toBe(1);
    expect(await admin.smembers('t:delete:scopes')).toEqual(['flow1']);
    expect(await admin.exists('t:delete:ctx:global')).toBe(0);
  });

  it('clean: unowned scopes are marked, and deleted only by a later clean after the grace period; owners and writes clear the mark', async () => {
    const store = await openStore('t:clean', { cleanGraceMs: 300 });
    const scopes = { global: 'global', flowA: 'flowA', flowB: 'flowB', nodeA: 'nodeA:flowA', nodeGone: 'nodeGone:flowA', nodeB: 'nodeB:flowB' };
    for (const scope of Object.values(scopes)) await set(store, scope, 'v', scope);

    // Green runs newer flows without flowB, nodeGone and nodeB: it only marks them.
    await store.clean(['flowA', 'nodeA']);
    expect((await admin.zrange('t:clean:orphans', 0, -1)).sort()).toEqual(['flowB', 'nodeB:flowB', 'nodeGone:flowA']);
    for (const scope of Object.values(scopes)) expect(await get1(store, scope, 'v')).toBe(scope);

    // Blue (older flows, still running) owns flowB, nodeB and nodeGone: its clean clears their marks. It does not
    // know green's new nodeA: it marks it, and deletes nothing.
    await store.clean(['flowA', 'flowB', 'nodeB', 'nodeGone']);
    expect(await admin.zrange('t:clean:orphans', 0, -1)).toEqual(['nodeA:flowA']);
    expect(await get1(store, scopes.nodeA, 'v')).toBe(scopes.nodeA);
    // Green again (a deploy): nodeA is owned again, the others are marked afresh.
    await store.clean(['flowA', 'nodeA']);
    expect((await admin.zrange('t:clean:orphans', 0, -1)).sort()).toEqual(['flowB', 'nodeB:flowB', 'nodeGone:flowA']);
    // A write proves a scope is in use: it clears the mark too.
    await set(store, scopes.nodeB, 'v', 'written');
    expect((await admin.zrange('t:clean:orphans', 0, -1)).sort()).toEqual(['flowB', 'nodeGone:flowA']);

    await new Promise((r) => setTimeout(r, 350));
    await store.clean(['flowA', 'nodeA']);
    // flowB and nodeGone were unowned for longer than the grace: gone. nodeB was written since: marked again, kept.
    expect(await get1(store, scopes.flowB, 'v')).toBeUndefined();
    expect(await get1(store, scopes.nodeGone, 'v')).toBeUndefined();
    expect(await get1(store, scopes.nodeB, 'v')).toBe('written');
    expect(await get1(store, scopes.global, 'v')).toBe('global');
    expect(await get1(store, scopes.nodeA, 'v')).toBe(scopes.nodeA);
    expect((await admin.smembers('t:clean:scopes')).sort()).toEqual(['flowA', 'global', 'nodeA:flowA', 'nodeB:flowB']);
    expect(await admin.zrange('t:clean:orphans', 0, -1)).toEqual(['nodeB:flowB']);
  });

  it('clean with cleanGraceMs 0 behaves like Node-RED\'s own stores: unowned scopes go at once, global never', async () => {
    const store = await openStore('t:clean0', { cleanGraceMs: 0 });
    await set(store, 'global', 'v', 1);
    await set(store, 'flowA', 'v', 1);
    await set(store, 'nodeX:flowA', 'v', 1);
    await store.clean([]);
    expect(await admin.smembers('t:clean0:scopes')).toEqual(['global']);
    expect(await get1(store, 'global', 'v')).toBe(1);
  });

  it('while Redis is away, context calls fail through the callback within seconds (no hang); they work again when it is back', async () => {
    const own = await startRedis();
    try {
      const store = factory({ url: own.url, prefix: 't:outage', commandTimeoutMs: 2_000 });
      stores.push(store);
      await store.open();
      await set(store, 'global', 'v', 1);
      await own.stop();
      const started = Date.now();
      await expect(get1(store, 'global', 'v')).rejects.toThrow();
      expect(Date.now() - started).toBeLessThan(5_000);
      const again = await startRedis({ port: own.port });
      try {
        // A fresh server without persistence: the value is gone, but the store works again.
        await eventually(async () => ((await get(store, 'global', 'v').then(() => true, () => false)) ? true : undefined), 10_000, 100);
        await set(store, 'global', 'v', 2);
        expect(await get1(store, 'global', 'v')).toBe(2);
      } finally {
        await again.stop();
      }
    } finally {
      await own.stop();
    }
  });
});

/** GET /count: flow and global counters in Redis (callback API), a node counter in memory. GET /ready: up. */
function counterFlows(): FlowNode[] {
  const z = 'counter-tab';
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
    { id: 'ready-in', type: 'http in', z, name: '', url: '/ready', method: 'get', upload: false, swaggerDoc: '', x: 100, y: 120, wires: [['ready-fn']] },
    { id: 'ready-fn', type: 'function', z, name: '', func: "msg.payload = 'ok'; return msg;", outputs: 1, timeout: 0, noerr: 0, initialize: '', finalize: '', libs: [], x: 300, y: 120, wires: [['ready-out']] },
    { id: 'ready-out', type: 'http response', z, name: '', statusCode: '', headers: {}, x: 500, y: 120, wires: [] },
  ];
}

interface Count {
  n: number;
  hits: number;
  local: number;
  color: string;
}

describe('Node-RED with context: shared, through the process driver', () => {
  const FLEET = 'ctx-fleet';
  const INSTANCE = 'counter';
  let stateDir: string;
  let driver: RuntimeDriver;
  const lines: string[] = [];
  const ports: Record<'blue' | 'green', number> = { blue: 0, green: 0 };

  const spec = (color: 'blue' | 'green', port: number, url = redis.url): ColorSpec =>
    colorSpec({
      fleet: FLEET,
      instance: INSTANCE,
      color,
      port,
      flows: counterFlows(),
      env: { TOWER_COLOR: color },
      context: 'shared',
      sharedContext: { url, prefix: `tower:${FLEET}:${INSTANCE}` },
    });

  async function startColour(color: 'blue' | 'green'): Promise<void> {
    ports[color] = await freePort();
    await driver.create(spec(color, ports[color]));
    await driver.start({ fleet: FLEET, instance: INSTANCE, color });
    await new NodeRedAdmin({ baseUrl: `http://127.0.0.1:${ports[color]}`, credentials: ADMIN, timeoutMs: 3_000 }).waitUntilReady(30_000);
    await eventuallyGet(`http://127.0.0.1:${ports[color]}/ready`, (r) => r.status === 200, 15_000);
  }

  const count = async (color: 'blue' | 'green'): Promise<Count> => {
    const res = await httpGet(`http://127.0.0.1:${ports[color]}/count`);
    expect(res.status, res.text).toBe(200);
    return JSON.parse(res.text) as Count;
  };

  beforeAll(() => {
    stateDir = tempStateDir();
    driver = processDriver({ stateDir, log: (line) => lines.push(line) });
  });

  afterAll(async () => {
    if (stateDir) await cleanUpStateDir(stateDir);
  });

  it('settings.js requires the built store with the instance prefix; memory stays available by name', () => {
    const text = renderSettings({ port: 1880, admin: ADMIN, credentialSecret: 'x', sharedContext: { url: 'redis://127.0.0.1:1', prefix: 'tower:f:i' } });
    expect(text).toContain(`module: require(${JSON.stringify(redisContextStorePath())})`);
    expect(text).toContain('config: {"url":"redis://127.0.0.1:1","prefix":"tower:f:i"}');
    expect(text).toContain("memory: { module: 'memory' }");
    const plain = renderSettings({ port: 1880, admin: ADMIN, credentialSecret: 'x' });
    expect(plain).not.toContain('require(');
    expect(plain).toContain('"contextStorage": {\n    "default": {\n      "module": "memory"');
  });

  it('the flow counter continues on green after 5 requests on blue: flow and global context survive the swap, memory does not', async () => {
    await startColour('blue');
    const log = readFileSync(path.join(stateDir, 'instances', INSTANCE, 'blue', 'node-red.log'), 'utf8');
    expect(log).toMatch(/Context store\s*: 'default' \[module=tower-redis\]/);
    expect(log).toMatch(/Context store\s*: 'memory' \[module=memory\]/);
    const onBlue: Count[] = [];
    for (let i = 0; i < 5; i++) onBlue.push(await count('blue'));
    expect(onBlue.map((c) => c.n)).toEqual([1, 2, 3, 4, 5]);
    expect(onBlue.map((c) => c.hits)).toEqual([1, 2, 3, 4, 5]);
    expect(onBlue.every((c) => c.color === 'blue')).toBe(true);

    // Green starts beside blue, with the same flows and the same prefix.
    await startColour('green');
    const first = await count('green');
    expect(first).toEqual({ n: 6, hits: 6, local: 1, color: 'green' });
    // Both colours read and write the one store while they run side by side.
    expect((await count('blue')).n).toBe(7);
    expect((await count('green')).n).toBe(8);

    // Blue stops (the swap is done): green carries on.
    await driver.stop({ fleet: FLEET, instance: INSTANCE, color: 'blue' });
    expect(await count('green')).toEqual({ n: 9, hits: 9, local: 3, color: 'green' });

    // The data sits in Redis under the instance's prefix: the flow scope is the tab id.
    const prefix = `tower:${FLEET}:${INSTANCE}`;
    expect(await admin.hget(`${prefix}:ctx:counter-tab`, 'n')).toBe('9');
    expect(JSON.parse((await admin.hget(`${prefix}:ctx:global`, 'stats'))!)).toEqual({ hits: 9 });
    // Starting green and stopping blue cleaned nothing the flows still use.
    expect(await admin.zrange(`${prefix}:orphans`, 0, -1)).toEqual([]);
  });

  it('a colour with context: shared but no reachable Redis does not start flows: Node-RED stops with the store error', async () => {
    const port = await freePort();
    const deadRedis = `redis://127.0.0.1:${await freePort()}`;
    const ref = { fleet: FLEET, instance: 'noredis', color: 'blue' as const };
    await driver.create({ ...spec('blue', port, deadRedis), instance: 'noredis' });
    await driver.start(ref);
    const logFile = path.join(stateDir, 'instances', 'noredis', 'blue', 'node-red.log');
    const log = await eventually(async () => {
      const text = readFileSync(logFile, 'utf8');
      return /cannot connect to redis:\/\/127\.0\.0\.1/.test(text) ? text : undefined;
    }, 20_000);
    expect(log).not.toMatch(/Started flows/);
    await eventually(async () => ((await driver.inspect(ref))?.status === 'exited' ? true : undefined), 10_000);
    await driver.remove(ref);
  });
});
