/**
 * The Redis context store's writes as Lua scripts, so that each is atomic on the server: a
 * (multi-key) compare-and-set, the marking and deleting of orphaned scopes, the removal of a
 * scope. They run by their SHA1 (EVALSHA), and the source is sent again when Redis lost its
 * script cache. CommonJS, like redis.cts, which require()s it from the same directory.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * KEYS: hash, scopes, orphans. ARGV: scope, n, then n groups of
 * field, expect ('*' any, '-' absent, '=' equal to the next), expected, op ('s' set, 'd' delete), value.
 * All checks pass or nothing is written: a multi-key set is atomic too.
 */
const WRITE_LUA = `
local n = tonumber(ARGV[2])
for i = 0, n - 1 do
  local b = 3 + i * 5
  local expect = ARGV[b + 1]
  if expect ~= '*' then
    local cur = redis.call('HGET', KEYS[1], ARGV[b])
    if expect == '-' then
      if cur then return 0 end
    elseif cur ~= ARGV[b + 2] then
      return 0
    end
  end
end
for i = 0, n - 1 do
  local b = 3 + i * 5
  if ARGV[b + 3] == 's' then
    redis.call('HSET', KEYS[1], ARGV[b], ARGV[b + 4])
  else
    redis.call('HDEL', KEYS[1], ARGV[b])
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('SADD', KEYS[2], ARGV[1])
else
  redis.call('SREM', KEYS[2], ARGV[1])
end
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
`;

/**
 * KEYS: scopes, orphans, then the hash of each candidate. ARGV: now, cutoff, then each candidate
 * scope (ARGV[i] goes with KEYS[i]). Marks each candidate; deletes those marked at or before cutoff.
 */
const CLEAN_LUA = `
local removed = 0
for i = 3, #ARGV do
  local scope = ARGV[i]
  redis.call('ZADD', KEYS[2], 'NX', ARGV[1], scope)
  local since = tonumber(redis.call('ZSCORE', KEYS[2], scope))
  if since <= tonumber(ARGV[2]) then
    redis.call('DEL', KEYS[i])
    redis.call('SREM', KEYS[1], scope)
    redis.call('ZREM', KEYS[2], scope)
    removed = removed + 1
  end
end
return removed
`;

/** KEYS: hash, scopes, orphans. ARGV: scope. */
const DELETE_LUA = `
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
`;

export interface Script {
  source: string;
  sha: string;
}
const script = (source: string): Script => ({ source, sha: createHash('sha1').update(source).digest('hex') });
export const WRITE = script(WRITE_LUA);
export const CLEAN = script(CLEAN_LUA);
export const DELETE = script(DELETE_LUA);

export async function runScript(client: Redis, s: Script, keys: string[], args: (string | number)[]): Promise<unknown> {
  try {
    return await client.evalsha(s.sha, keys.length, ...keys, ...args);
  } catch (err) {
    // Redis restarted or flushed its script cache: send the source once, it is cached again.
    if (err instanceof Error && err.message.startsWith('NOSCRIPT')) return client.eval(s.source, keys.length, ...keys, ...args);
    throw err;
  }
}
