/**
 * Shared context on the embedded defaults: fleet-example's storage instance (context: shared),
 * applied by `tower apply` without REDIS_URL. Tower runs redis-server itself from the state
 * directory; a conversation written through the memory flow on blue is read back on green
 * after a blue-green swap; the next Tower adopts the same Redis; a Redis that stopped comes
 * back on its port with its data; `tower destroy` stops it. Real Node-RED, real redis-server,
 * a private mosquitto (MQTT_URL) for the instance's broker.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { accepts } from '../../src/adapters/net.js';
import { main } from '../../src/cli.js';
import { bufferIo } from '../../src/commands/io.js';
import { sharedContextWarning } from '../../src/engine/apply.js';
import { exampleFleetCopy } from '../helpers/fleet-fixture.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { eventually } from '../helpers/nodered.js';
import { loadDirectory } from '../../src/repository.js';

interface RedisRecord {
  pid: number;
  port: number;
  password: string;
}

let broker: Mosquitto;
let dir = '';
let state = '';
let port = 0;

/** tower with the test's broker and without REDIS_URL, whatever the environment running the tests holds. */
async function tower(...args: string[]) {
  const env: NodeJS.ProcessEnv = { ...process.env, MQTT_URL: broker.url };
  delete env.REDIS_URL;
  const io = bufferIo(env);
  const code = await main(args, io);
  return { code, out: io.out, err: io.err };
}

const record = (): RedisRecord => JSON.parse(readFileSync(join(state, 'redis', 'redis.json'), 'utf8')) as RedisRecord;

/** A live redis-server with that pid (not a zombie, not another program that got the pid). */
function isRedisServer(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return /^\d+ \(redis-server\) [^ZX]/.test(stat);
  } catch {
    return false;
  }
}

async function memory(method: 'GET' | 'POST', session: string, body?: unknown): Promise<{ status: number; json: { session?: string; turns?: number; messages?: { role: string; text: string }[] } }> {
  const r = await fetch(`http://127.0.0.1:${port}/memory/${session}`, {
    method,
    ...(body ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(10_000),
  });
  return { status: r.status, json: (await r.json().catch(() => ({}))) as never };
}

/** One inline command on a fresh connection, and the first line of the answer. */
function rawCommand(redisPort: number, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: redisPort }, () => socket.write(`${command}\r\n`));
    let answer = '';
    socket.setTimeout(3_000, () => socket.destroy(new Error(`no answer to ${command.split(' ')[0]}`)));
    socket.on('data', (d: Buffer) => {
      answer += d.toString();
      if (answer.includes('\r\n')) {
        socket.end();
        resolve(answer.split('\r\n')[0]!);
      }
    });
    socket.on('error', reject);
  });
}

async function servingColor(): Promise<string | undefined> {
  const r = await tower('status', '--state-dir', state, '--format', 'json');
  return (JSON.parse(r.out) as { instances: { name: string; color?: string }[] }).instances.find((i) => i.name === 'storage')?.color;
}

/** fleet-example with only its storage instance (flows, env, smoke checks as they are), one plan inline. */
function writeStorageOnly(maxTurns: number): void {
  const file = join(dir, 'fleet.yaml');
  const doc = parseDocument(readFileSync(file, 'utf8'));
  const instances = doc.getIn(['spec', 'instances']) as { items: unknown[] };
  const names = instances.items.map((_, i) => String(doc.getIn(['spec', 'instances', i, 'name'])));
  for (let i = names.length - 1; i >= 0; i--) if (names[i] !== 'storage') doc.deleteIn(['spec', 'instances', i]);
  doc.setIn(['spec', 'plan'], doc.createNode({ order: 'sequential' }));
  doc.setIn(['spec', 'instances', 0, 'env', 'MEMORY_MAX_TURNS'], maxTurns);
  writeFileSync(file, doc.toString());
}

beforeAll(async () => {
  broker = await startMosquitto();
  const copy = await exampleFleetCopy();
  dir = copy.dir;
  port = copy.ports.storage!;
  // The example's other plans name the instances left out here.
  rmSync(join(dir, 'plans'), { recursive: true, force: true });
  writeStorageOnly(100);
  state = mkdtempSync(join(tmpdir(), 'tower-state-'));
});

afterAll(async () => {
  if (state) {
    await tower('destroy', '--state-dir', state).catch(() => undefined);
    // Should destroy have failed, the Redis must not outlive the test.
    const file = join(state, 'redis', 'redis.json');
    if (existsSync(file)) {
      const { pid } = JSON.parse(readFileSync(file, 'utf8')) as RedisRecord;
      if (isRedisServer(pid)) process.kill(pid, 'SIGKILL');
    }
    rmSync(state, { recursive: true, force: true });
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
  await broker?.stop();
});

describe('shared context on the embedded defaults (no REDIS_URL)', () => {
  it('the fleet asks for shared context: tower apply starts redis-server from the state directory, password-protected, and does not warn', async () => {
    expect(loadDirectory(dir).instances.map((i) => [i.name, i.config.context])).toEqual([['storage', 'shared']]);
    const r = await tower('apply', dir, '--state-dir', state);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).not.toMatch(/REDIS_URL is not set|shared context, but/);
    expect(r.out).toMatch(/embedded Redis \(redis-server\) listening on 127\.0\.0\.1:\d+/);
    const rec = record();
    expect(isRedisServer(rec.pid)).toBe(true);
    expect(await accepts(rec.port)).toBe(true);
    expect(r.out).not.toContain(rec.password);
    // Its configuration holds the password: owner-only. Persistence is on.
    const conf = join(state, 'redis', 'redis.conf');
    expect(statSync(conf).mode & 0o077).toBe(0);
    expect(readFileSync(conf, 'utf8')).toMatch(/^appendonly yes$/m);
    // Without the password, Redis answers nothing but NOAUTH.
    expect(await rawCommand(rec.port, 'GET x')).toMatch(/^-NOAUTH/);
    expect(await rawCommand(rec.port, `AUTH ${rec.password}`)).toBe('+OK');
    expect(await servingColor()).toBe('blue');
  });

  it('a conversation written through the memory flow on blue is read back on green after a blue-green swap', async () => {
    const posted = await memory('POST', 'demo', { role: 'user', text: 'remember me across the swap' });
    expect(posted.status).toBe(200);
    expect(posted.json).toMatchObject({ session: 'demo', turns: 1 });
    // It sits in the embedded Redis, under the instance's prefix (both colours share it).
    const admin = new Redis(`redis://:${record().password}@127.0.0.1:${record().port}`);
    try {
      const fields = await admin.hkeys('tower:redforge:storage:ctx:global');
      expect(fields.some((f) => f.startsWith('rfmem_'))).toBe(true);
    } finally {
      admin.disconnect();
    }

    // An env change: the instance is rolled out blue-green.
    writeStorageOnly(50);
    const r = await tower('apply', dir, '--state-dir', state);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/storage: DRAIN[\s\S]*storage: DEPLOY[\s\S]*storage: VERIFY/);
    expect(await servingColor()).toBe('green');
    const read = await memory('GET', 'demo');
    expect(read.status).toBe(200);
    expect(read.json.turns).toBe(1);
    expect(read.json.messages?.map((m) => m.text)).toEqual(['remember me across the swap']);
  });

  it('the next Tower adopts the running Redis; one that stopped comes back on its port, with its data', async () => {
    const before = record();
    const again = await tower('apply', dir, '--state-dir', state);
    expect(again.code).toBe(0);
    expect(again.out).toContain('No changes.');
    expect(record().pid).toBe(before.pid);

    // Redis stops (a reboot, an OOM kill, someone's SIGTERM): the next Tower starts it again.
    process.kill(before.pid, 'SIGTERM');
    await eventually(async () => (isRedisServer(before.pid) ? undefined : true), 10_000);
    const restarted = await tower('apply', dir, '--state-dir', state);
    expect(restarted.code).toBe(0);
    const after = record();
    expect(after.pid).not.toBe(before.pid);
    expect(after.port).toBe(before.port);
    expect(isRedisServer(after.pid)).toBe(true);
    // The colour, still running, reconnects to the same address and reads what Redis saved.
    const read = await eventually(async () => {
      const r = await memory('GET', 'demo').catch(() => undefined);
      return r?.status === 200 && r.json.turns === 1 ? r : undefined;
    }, 20_000, 250);
    expect(read.json.messages?.[0]?.text).toBe('remember me across the swap');
  });

  it('tower destroy stops the embedded Redis: its pid is gone, its port closed', async () => {
    const { pid, port: redisPort } = record();
    const r = await tower('destroy', '--state-dir', state);
    expect(r.code).toBe(0);
    expect(r.out).toContain('removed storage');
    expect(isRedisServer(pid)).toBe(false);
    expect(await accepts(redisPort)).toBe(false);
  });
});

describe('without REDIS_URL and without redis-server', () => {
  it('the warning says that context is lost on a swap and how to fix it', () => {
    const instances = loadDirectory(dir).instances;
    const warning = sharedContextWarning(instances, new FakeRuntime());
    expect(warning).toMatch(/^storage asks for shared context, but REDIS_URL is not set and redis-server is not installed/);
    expect(warning).toContain('lost on a swap');
    expect(warning).toContain('apt-get install redis-server');
    expect(warning).toContain('REDIS_URL=redis://host:port');
    const withRedis = new FakeRuntime();
    withRedis.redisUrl = 'redis://127.0.0.1:1';
    expect(sharedContextWarning(instances, withRedis)).toBeUndefined();
  });
});
