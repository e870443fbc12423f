/**
 * Where the compiled Redis context store is, for the settings.js that require()s it. The plugin
 * is CommonJS (redis.cts -> dist/src/nodered-plugins/context-store/redis.cjs) because
 * settings.js is.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
// Type-only, but it also puts redis.cts into the program, so that tsc compiles it to redis.cjs.
import type redisContextStore from './redis.cjs';

export type RedisContextStoreFactory = typeof redisContextStore;
export type RedisContextStoreConfig = Parameters<RedisContextStoreFactory>[0];
export type RedisContextStore = ReturnType<RedisContextStoreFactory>;

/** What a colour needs to keep its context in Redis: both colours of an instance get the same prefix. */
export interface SharedContext {
  /** redis://[:password@]host:port[/db] */
  url: string;
  /** tower:<fleet>:<instance> */
  prefix: string;
}

/**
 * Absolute path of redis.cjs: next to this file when it runs from dist/, under dist/ when it
 * runs from src/ (tests run the TypeScript sources; the plugin must be built either way).
 */
export function redisContextStorePath(): string {
  const candidates = [new URL('./redis.cjs', import.meta.url), new URL('../../../dist/src/nodered-plugins/context-store/redis.cjs', import.meta.url)].map((u) => fileURLToPath(u));
  const found = candidates.find((file) => existsSync(file));
  if (!found) throw new Error(`the Redis context store is not built (looked for ${candidates.join(' and ')}); run npm run build`);
  return found;
}
