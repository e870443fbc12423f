/**
 * The leader lease against a private redis-server: one winner, hand-over on release, take-over
 * after a daemon is SIGKILLed (a real second process), and fencing: a partitioned holder gives
 * up before anyone else can take the lease, and its renew, release and fence checks then fail.
 * The SIGKILL case runs dist/ (build first: npx tsc -p tsconfig.json).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { redisLease, runWhileLeader, type Lease } from '../../src/adapters/redis/lease.js';
import { stopChild, track } from '../helpers/mosquitto.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

const TTL = 1_000;
let redis: RedisServer;
let admin: Redis;
let leases: Lease[] = [];
const clients: Redis[] = [];
const children: ChildProcess[] = [];
let keyCounter = 0;

beforeAll(async () => {
  redis = await startRedis();
  admin = new Redis(redis.url, { lazyConnect: true });
  await admin.connect();
});

afterEach(async () => {
  for (const lease of leases) await lease.close().catch(() => {});
  leases = [];
});

afterAll(async () => {
  for (const child of children) await stopChild(child, 1_000);
  for (const c of clients) c.disconnect();
  admin?.disconnect();
  await redis?.stop();
});

const newKey = () => `tower:lease-test-${++keyCounter}:leader`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function lease(key: string, holder: string, extra: { redis?: Redis } = {}): Lease {
  const l = redisLease({ url: redis.url, key, holder, ttlMs: TTL, ...extra });
  leases.push(l);
  return l;
}

/** Polls acquire() until it succeeds; bounded. Resolves with the token and when it succeeded. */
async function acquireWithin(l: Lease, timeoutMs: number, everyMs = 50): Promise<{ token: number; at: number }> {
  const deadline = performance.now() + timeoutMs;
  for (let i = 0; i < 10_000 && performance.now() < deadline; i++) {
    const got = await l.acquire().catch(() => undefined);
    if (got) return { token: got.token, at: performance.now() };
    await sleep(everyMs);
  }
  throw new Error(`${l.holder} did not acquire ${l.key} within ${timeoutMs} ms`);
}

describe('redisLease', () => {
  it('of two contenders exactly one acquires; the other acquires right after the first releases, with a newer token', async () => {
    const key = newKey();
    const a = lease(key, 'daemon-a');
    const b = lease(key, 'daemon-b');
    const [ra, rb] = await Promise.all([a.acquire(), b.acquire()]);
    expect([ra, rb].filter(Boolean)).toHaveLength(1);
    const [winner, loser] = ra ? [a, b] : [b, a];
    expect(winner.fencingToken).toBe(1);
    expect(winner.isHeld()).toBe(true);
    expect(loser.isHeld()).toBe(false);
    expect(loser.fencingToken).toBeUndefined();
    expect(await admin.get(key)).toBe(winner.holder);
    expect(Number(await admin.pttl(key))).toBeGreaterThan(TTL / 2);
    // The loser cannot renew or release what it does not hold; it keeps waiting.
    expect(await loser.renew()).toBe(false);
    await loser.release();
    expect(await loser.acquire()).toBeUndefined();
    expect(await winner.checkFence()).toBe(true);

    const waiting = acquireWithin(loser, 5_000);
    await sleep(150);
    const releasedAt = performance.now();
    await winner.release();
    expect(winner.isHeld()).toBe(false);
    const { token, at } = await waiting;
    expect(at - releasedAt).toBeLessThan(500);
    expect(token).toBe(2);
    expect(await admin.get(key)).toBe(loser.holder);
    expect(await winner.checkFence(1)).toBe(false);
    expect(await loser.checkFence(token)).toBe(true);
  });

  it('renew extends the lease while it is ours; the watch keeps it past several ttls', async () => {
    const key = newKey();
    const a = lease(key, 'daemon-a');
    await a.acquire();
    let lost: string | undefined;
    a.watch((reason) => (lost = reason));
    await sleep(TTL * 2.5);
    expect(lost).toBeUndefined();
    expect(a.isHeld()).toBe(true);
    expect(await a.checkFence()).toBe(true);
    expect(await admin.get(key)).toBe('daemon-a');
    expect(await lease(key, 'daemon-b').acquire()).toBeUndefined();
  });

  it('a SIGKILLed holder (another process) is taken over within about one ttl, never before its lease ran out', async () => {
    const key = newKey();
    const leaseModule = fileURLToPath(new URL('../../dist/src/adapters/redis/lease.js', import.meta.url));
    const program = `
      const { redisLease } = await import(${JSON.stringify(leaseModule)});
      const lease = redisLease({ url: ${JSON.stringify(redis.url)}, key: ${JSON.stringify(key)}, holder: 'doomed-daemon', ttlMs: ${TTL} });
      const got = await lease.acquire();
      lease.watch(() => { console.log('lost'); });
      console.log('acquired ' + (got ? got.token : 'none'));
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', program], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    track(child);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + 10_000;
    while (!/acquired \d+/.test(out) && Date.now() < deadline && child.exitCode === null) await sleep(20);
    expect(out).toMatch(/acquired 1/);

    const standby = lease(key, 'standby-daemon');
    expect(await standby.acquire()).toBeUndefined();
    // Let the child renew a few times: it really is alive and renewing.
    await sleep(TTL * 1.5);
    expect(await admin.get(key)).toBe('doomed-daemon');
    child.kill('SIGKILL');
    const killedAt = performance.now();
    const { token, at } = await acquireWithin(standby, TTL * 3, TTL / 3);
    const takeover = at - killedAt;
    // It renewed at most ttl/3 before the kill, so the key lives at least 2/3 ttl more; a ttl/3 poll finds it free within ttl + ttl/3.
    expect(takeover).toBeGreaterThan(TTL / 2);
    expect(takeover).toBeLessThan(TTL + TTL / 3 + 400);
    expect(token).toBe(2);
  });

  it('a partitioned holder stops acting before the other takes over; then its renew, release and fence checks fail', async () => {
    const key = newKey();
    const staleClient = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0, commandTimeout: 200 });
    staleClient.on('error', () => {});
    clients.push(staleClient);
    await staleClient.connect();
    const stale = lease(key, 'daemon-a', { redis: staleClient });
    const fresh = lease(key, 'daemon-b');
    const first = await stale.acquire();
    expect(first).toBeDefined();
    let lostAt: number | undefined;
    let lostReason = '';
    stale.watch((reason) => {
      lostAt = performance.now();
      lostReason = reason;
    });

    // The partition: daemon-a cannot reach Redis any more (its renews fail), daemon-b can.
    staleClient.disconnect();
    const { token, at } = await acquireWithin(fresh, TTL * 3, 20);
    expect(lostAt, 'daemon-a noticed the loss').toBeDefined();
    expect(lostAt!).toBeLessThanOrEqual(at);
    expect(lostReason).toMatch(/could not be renewed before it ran out/);
    expect(stale.isHeld()).toBe(false);

    // The partition heals: daemon-a's lease is gone for good, and its token is the older one.
    await staleClient.connect();
    expect(await stale.renew()).toBe(false);
    expect(stale.fencingToken).toBe(first!.token);
    expect(token).toBeGreaterThan(first!.token);
    expect(await stale.checkFence(first!.token)).toBe(false);
    expect(await fresh.checkFence(token)).toBe(true);
    expect(Number(await admin.get(`${key}:token`))).toBe(token);

    // daemon-a restarts under the same name and leads again: the old process, still around with
    // the old token, matches the name but not the token, so Redis refuses its renew and release.
    await fresh.release();
    const restarted = lease(key, 'daemon-a');
    const again = await restarted.acquire();
    expect(again!.token).toBe(token + 1);
    expect(await stale.renew()).toBe(false);
    await stale.release();
    expect(await admin.get(key)).toBe('daemon-a');
    expect(await restarted.checkFence()).toBe(true);
    expect(await stale.checkFence(first!.token)).toBe(false);
  });

  it('runWhileLeader: a term ends when another daemon takes the lease (checkFence false, signal aborted); it leads again when that one releases', async () => {
    const key = newKey();
    const l = lease(key, 'daemon-a');
    const terms: { token: number; fencedAtStart: boolean; fencedAtEnd?: boolean }[] = [];
    const outer = new AbortController();
    let secondTermStarted = () => {};
    const secondTerm = new Promise<void>((resolve) => (secondTermStarted = resolve));
    const running = runWhileLeader(
      l,
      async (term) => {
        const record: (typeof terms)[number] = { token: term.token, fencedAtStart: await term.checkFence() };
        terms.push(record);
        if (terms.length === 2) secondTermStarted();
        await new Promise<void>((resolve) => term.signal.addEventListener('abort', () => resolve(), { once: true }));
        record.fencedAtEnd = await term.checkFence();
      },
      { signal: outer.signal, pollMs: 100 },
    );
    const deadline = Date.now() + 5_000;
    while (terms.length === 0 && Date.now() < deadline) await sleep(20);
    expect(terms).toEqual([{ token: 1, fencedAtStart: true }]);

    // An intruder takes over (an operator deleted the key, another daemon was quicker).
    await admin.del(key);
    const intruder = lease(key, 'daemon-b');
    expect(await intruder.acquire()).toEqual({ token: 2 });
    const until = Date.now() + TTL * 2;
    while (terms[0]!.fencedAtEnd === undefined && Date.now() < until) await sleep(20);
    expect(terms[0]).toEqual({ token: 1, fencedAtStart: true, fencedAtEnd: false });
    expect(await admin.get(key)).toBe('daemon-b');

    await intruder.release();
    await Promise.race([secondTerm, sleep(3_000)]);
    expect(terms[1]).toEqual({ token: 3, fencedAtStart: true });
    outer.abort();
    await running;
    // Stopping ends the term and gives the lease back.
    expect(await admin.get(key)).toBeNull();
    expect(l.isHeld()).toBe(false);
  });

  it('refuses a ttl too short to renew in time', () => {
    expect(() => redisLease({ url: redis.url, key: 'k', holder: 'h', ttlMs: 10 })).toThrow(/at least 100 ms/);
  });
});
