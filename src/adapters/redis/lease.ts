/**
 * A leader lease with fencing tokens, so that two daemons pointed at the same fleet never both
 * act. (Without REDIS_URL there is one daemon per state directory: StateDir.lock.)
 *
 * Protocol, for key K:
 * - acquire: SET K <holder> NX PX <ttl>; on success INCR K:token, in the same Lua script. The
 *   token grows with every acquisition, whoever makes it, and never expires.
 * - renew (every ttl/3): PEXPIRE K only while K holds our holder name and K:token is still our
 *   token (Lua compare-and-pexpire).
 * - release: DEL K only on the same condition (Lua compare-and-del).
 * - The holder counts its lease from the moment it *sent* the last successful renew, minus a
 *   margin for clock drift, so it always gives up before Redis lets the key expire and before
 *   anyone else can acquire it. Unreachable Redis therefore means: stop acting within one ttl.
 * - checkFence(token): before each side effect, the daemon asks whether its lease is still
 *   valid and K:token still equals its token. A newer token means someone else leads.
 *
 * Limits: a step that starts just before the lease ends may finish after it (keep steps
 * shorter than ttl/3, and call checkFence again before each one); Redis must keep K:token
 * (persistence on) for tokens to stay monotonic across a Redis restart.
 */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';

export interface LeaseOptions {
  /** redis://[:password@]host:port[/db]. Either url or redis. */
  url?: string;
  /** A client to use instead of opening one; the lease then never closes it. */
  redis?: Redis;
  /** The lease key, e.g. tower:<fleet>:leader. Its token counter is <key>:token. */
  key: string;
  /** Who holds it: unique per daemon process (host, pid, random). */
  holder: string;
  ttlMs: number;
  log?: (line: string) => void;
}

export interface Lease {
  readonly key: string;
  readonly holder: string;
  readonly ttlMs: number;
  /** The token of the current (or last) term; undefined before the first acquisition. */
  readonly fencingToken: number | undefined;
  /** One attempt: the new term's token, or undefined when someone else holds the lease. */
  acquire(): Promise<{ token: number } | undefined>;
  /** Extends the lease if Redis still holds our name and token; false: the term is over. Rejects when Redis cannot be asked. */
  renew(): Promise<boolean>;
  /** Stops renewing and deletes the key if it still holds our name and token. Best effort: otherwise it expires within ttl. */
  release(): Promise<void>;
  /** Renews every ttl/3 until released; calls onLost once if the lease is lost or cannot be renewed in time. Returns a stop function. */
  watch(onLost: (reason: string) => void): () => void;
  /** Locally: a term is running and its lease has not run out by our own clock. */
  isHeld(): boolean;
  /** Call before each side effect: false when the lease ran out or a newer token exists. */
  checkFence(token?: number): Promise<boolean>;
  /** Releases, and closes the client if the lease opened it. */
  close(): Promise<void>;
}

/** KEYS: lease, token counter. ARGV: holder, ttl. */
const ACQUIRE_LUA = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return false
`;
/** KEYS: lease, token counter. ARGV: holder, token, ttl. */
const RENEW_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[2] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 0
`;
/** KEYS: lease, token counter. ARGV: holder, token. */
const RELEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[2] then
  return redis.call('DEL', KEYS[1])
end
return 0
`;
/** KEYS: lease, token counter. ARGV: holder, token. */
const FENCE_LUA = `
if redis.call('GET', KEYS[2]) == ARGV[2] and redis.call('GET', KEYS[1]) == ARGV[1] then
  return 1
end
return 0
`;

interface Script {
  source: string;
  sha: string;
}
const script = (source: string): Script => ({ source, sha: createHash('sha1').update(source).digest('hex') });
const ACQUIRE = script(ACQUIRE_LUA);
const RENEW = script(RENEW_LUA);
const RELEASE = script(RELEASE_LUA);
const FENCE = script(FENCE_LUA);

async function runScript(client: Redis, s: Script, keys: string[], args: (string | number)[]): Promise<unknown> {
  try {
    return await client.evalsha(s.sha, keys.length, ...keys, ...args);
  } catch (err) {
    // Redis restarted or flushed its script cache: send the source once, it is cached again.
    if (err instanceof Error && err.message.startsWith('NOSCRIPT')) return client.eval(s.source, keys.length, ...keys, ...args);
    throw err;
  }
}

/** Our lease ends this much before Redis's: Redlock's allowance for clocks running at different rates. */
const driftMs = (ttlMs: number) => Math.ceil(ttlMs * 0.01) + 2;

export function redisLease(options: LeaseOptions): Lease {
  const { key, holder, ttlMs } = options;
  if (!Number.isInteger(ttlMs) || ttlMs < 100) throw new Error(`lease ttlMs must be an integer of at least 100 ms, not ${ttlMs}`);
  if (!holder) throw new Error('lease holder must be a non-empty name');
  const log = options.log ?? (() => {});
  const tokenKey = `${key}:token`;
  const owned = !options.redis;
  let client: Redis;
  if (options.redis) {
    client = options.redis;
  } else {
    if (!options.url) throw new Error('redisLease needs url or redis');
    client = new Redis(options.url, {
      lazyConnect: true,
      // A renew that hangs is as bad as one that fails: give up in time to try again within the term.
      commandTimeout: Math.max(50, Math.floor(ttlMs / 3)),
      connectTimeout: Math.max(100, ttlMs),
      maxRetriesPerRequest: 1,
      retryStrategy: (times) => Math.min(50 * times, 1_000),
    });
    let down = false;
    client.on('error', (err: Error) => {
      if (!down) log(`lease ${key}: redis: ${err.message}`);
      down = true;
    });
    client.on('ready', () => (down = false));
  }

  let token: number | undefined;
  /** performance.now() after which our term is over by our own clock; 0: no term. */
  let validUntil = 0;
  let watcher: { stop(): void } | undefined;
  /** The current term was given up on purpose: nothing may extend it. */
  let released = false;

  const now = () => performance.now();
  const isHeld = () => token !== undefined && validUntil > 0 && now() < validUntil;
  const endTerm = () => {
    validUntil = 0;
  };

  /** Asks Redis even after our clock ended the term: only Redis can say the lease is still ours (nobody took it meanwhile). */
  async function renew(): Promise<boolean> {
    if (token === undefined || released) return false;
    const sentAt = now();
    const ok = Number(await runScript(client, RENEW, [key, tokenKey], [holder, token, ttlMs])) === 1;
    if (ok && !released) validUntil = sentAt + ttlMs - driftMs(ttlMs);
    else endTerm();
    return ok && !released;
  }

  const lease: Lease = {
    key,
    holder,
    ttlMs,
    get fencingToken() {
      return token;
    },

    async acquire() {
      if (isHeld() && (await renew())) return { token: token! };
      const sentAt = now();
      const result = await runScript(client, ACQUIRE, [key, tokenKey], [holder, ttlMs]);
      if (result === null || result === undefined) return undefined;
      token = Number(result);
      released = false;
      validUntil = sentAt + ttlMs - driftMs(ttlMs);
      log(`lease ${key}: acquired by ${holder}, token ${token}`);
      return { token };
    },

    renew,

    async release() {
      watcher?.stop();
      endTerm();
      if (token === undefined || released) return;
      released = true;
      try {
        // Compare-and-delete: a no-op when the lease has moved on to another holder or token.
        if (Number(await runScript(client, RELEASE, [key, tokenKey], [holder, token])) === 1) log(`lease ${key}: released by ${holder}, token ${token}`);
      } catch (err) {
        log(`lease ${key}: release failed (${(err as Error).message}); it expires within ${ttlMs} ms`);
      }
    },

    watch(onLost) {
      watcher?.stop();
      let stopped = false;
      let tick: NodeJS.Timeout | undefined;
      let expiry: NodeJS.Timeout | undefined;
      const lost = (reason: string) => {
        if (stopped) return;
        stop();
        endTerm();
        log(`lease ${key}: lost by ${holder} (token ${token}): ${reason}`);
        onLost(reason);
      };
      // Fires when our own clock says the term is over, even while a renew is still in flight.
      const armExpiry = () => {
        if (expiry) clearTimeout(expiry);
        expiry = setTimeout(() => lost('it could not be renewed before it ran out'), Math.max(0, validUntil - now()));
        expiry.unref();
      };
      const schedule = () => {
        tick = setTimeout(() => {
          renew().then(
            (ok) => {
              if (stopped) return;
              if (!ok) return lost('another holder has it, or it expired');
              armExpiry();
              schedule();
            },
            () => {
              // Unreachable Redis: keep trying; the expiry timer ends the term in time.
              if (!stopped) schedule();
            },
          );
        }, Math.max(10, Math.floor(ttlMs / 3)));
        tick.unref();
      };
      const stop = () => {
        stopped = true;
        if (tick) clearTimeout(tick);
        if (expiry) clearTimeout(expiry);
        if (watcher === handle) watcher = undefined;
      };
      const handle = { stop };
      watcher = handle;
      if (!isHeld()) {
        queueMicrotask(() => lost('it is not held'));
      } else {
        armExpiry();
        schedule();
      }
      return stop;
    },

    isHeld,

    async checkFence(fence = token) {
      if (fence === undefined || !isHeld() || fence !== token) return false;
      const ok = Number(await runScript(client, FENCE, [key, tokenKey], [holder, fence])) === 1;
      return ok && isHeld();
    },

    async close() {
      await lease.release();
      if (owned) {
        try {
          await client.quit();
        } catch {
          client.disconnect();
        }
      }
    },
  };
  return lease;
}

export interface LeaderTerm {
  /** This term's fencing token. */
  token: number;
  /** Aborted when the lease is lost or the caller stops: stop acting at once. */
  signal: AbortSignal;
  /** Before each side effect: false means stop, someone else leads now. */
  checkFence(): Promise<boolean>;
}

export interface RunWhileLeaderOptions {
  /** Stops waiting and ends the current term. */
  signal?: AbortSignal;
  /** Wait between acquisition attempts while someone else leads; default ttl/3 (with ±20 % jitter). */
  pollMs?: number;
  /** Upper bound of the back-off when Redis fails; default 5 s. */
  maxBackoffMs?: number;
  log?: (line: string) => void;
}

/**
 * The daemon's loop: wait for the lease (polling, backing off on Redis errors), run fn for one
 * term with the lease renewed every ttl/3, and go back to waiting when the term is lost. fn must
 * stop acting when term.signal aborts. Resolves when fn returns without having lost the lease
 * (the daemon is done), or when options.signal aborts; rejects with fn's error (lease released).
 */
export async function runWhileLeader(lease: Lease, fn: (term: LeaderTerm) => Promise<void>, options: RunWhileLeaderOptions = {}): Promise<void> {
  const log = options.log ?? (() => {});
  const outer = options.signal;
  const pollMs = options.pollMs ?? Math.max(10, Math.floor(lease.ttlMs / 3));
  const maxBackoffMs = options.maxBackoffMs ?? 5_000;
  let backoff = pollMs;
  while (!outer?.aborted) {
    let acquired: { token: number } | undefined;
    try {
      acquired = await lease.acquire();
      backoff = pollMs;
    } catch (err) {
      log(`lease ${lease.key}: cannot reach redis (${(err as Error).message}); retrying in ${backoff} ms`);
      await sleep(backoff, outer);
      backoff = Math.min(backoff * 2, maxBackoffMs);
      continue;
    }
    if (!acquired) {
      await sleep(pollMs * (0.8 + Math.random() * 0.4), outer);
      continue;
    }
    const term = new AbortController();
    const stopWatch = lease.watch((reason) => term.abort(new Error(`lease lost: ${reason}`)));
    const onOuterAbort = () => term.abort(outer?.reason);
    outer?.addEventListener('abort', onOuterAbort, { once: true });
    const token = acquired.token;
    try {
      await fn({ token, signal: term.signal, checkFence: () => lease.checkFence(token) });
    } finally {
      outer?.removeEventListener('abort', onOuterAbort);
      stopWatch();
      await lease.release();
    }
    if (!term.signal.aborted) return;
    log(`lease ${lease.key}: term ${token} over; waiting to lead again`);
  }
}

/** Resolves after ms, or at once when signal aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
