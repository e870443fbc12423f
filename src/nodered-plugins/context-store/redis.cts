/**
 * A Node-RED context store backed by Redis, so that flow and global context outlive a
 * blue-green swap: both colours of an instance use the same prefix (fleet and instance, not
 * colour), hence the same data.
 *
 * CommonJS on purpose: the settings.js Tower generates is CommonJS and hands Node-RED the
 * factory itself (`contextStorage.default.module = require('<this file>')`); Node-RED calls
 * `module(config)` and then `open()` (see @node-red/runtime/lib/nodes/context/index.js).
 *
 * Layout, for prefix P:
 *   P:ctx:<scope>   hash: top-level context key -> JSON of its value
 *                   (scope: "global", a flow id, or "<node id>:<flow id>", as Node-RED names them)
 *   P:scopes        set of the scopes that hold data (what clean() looks at)
 *   P:orphans       sorted set: scope -> when a clean() first found no node or flow using it
 *
 * Semantics:
 * - Asynchronous only (callbacks); the synchronous form throws, as localfilesystem without
 *   cache does. Values are JSON (Buffers come back as {type, data}, Dates as strings).
 * - Nested keys (`a.b[0]`) use Node-RED's own property functions: read the top-level value,
 *   change it, write it back. The write is a compare-and-set in a Lua script
 *   (redis-scripts.cts), retried, so two colours setting different parts of one key never
 *   lose each other's change. A flow's own `get` then `set` (a counter) is two operations,
 *   not a transaction — as with every store.
 * - In one process, the operations on one scope run in call order: a get after a set sees it.
 * - clean(activeNodes) does not delete at once (unless cleanGraceMs is 0). Both colours call
 *   it with their own flows (at every start and deploy), and the colour running older or newer
 *   flows must not wipe what the other still uses. A scope no active node or flow owns is marked an orphan; a later
 *   clean deletes it if it is still unowned and was marked at least cleanGraceMs ago. A write
 *   to the scope, or a clean by a colour that owns it, clears the mark. Global is never cleaned.
 */
import { createRequire } from 'node:module';
import { Redis } from 'ioredis';
import { CLEAN, DELETE, runScript, WRITE } from './redis-scripts.cjs';

/**
 * The part of @node-red/util (shipped without types) this store uses: Node-RED's own property
 * functions, so that nested keys (`a.b[0]`) mean what they mean in the built-in stores, and its
 * log. Inside Node-RED this is the very instance the runtime uses: resolved from the Node-RED
 * that runs (require.main, its red.js), whose copy may not be the one beside this file — in a
 * container, this file and Tower's node_modules are mounted apart from the image's Node-RED,
 * and a second copy's log was never initialised, so it would say nothing.
 */
interface NodeRedUtilModule {
  util: {
    /** Splits `a.b["c"][0]` into ['a', 'b', 'c', 0]; throws an error with code INVALID_EXPR. */
    normalisePropertyExpression(expr: string): (string | number)[];
    getObjectProperty(obj: object, expr: string): unknown;
    /** false when it could not set (a parent is not an object); an undefined value deletes. */
    setObjectProperty(obj: object, expr: string, value: unknown, createMissing?: boolean): boolean;
  };
  log: { warn(message: string): void; info(message: string): void };
}
function loadNodeRedUtil(): NodeRedUtilModule {
  const main = require.main?.filename;
  if (main) {
    try {
      return createRequire(main)('@node-red/util') as NodeRedUtilModule;
    } catch {
      // not started as Node-RED (a test, an embedding): the copy beside this file
    }
  }
  return createRequire(__filename)('@node-red/util') as NodeRedUtilModule;
}
const { util: nodeRedUtil, log: nodeRedLog } = loadNodeRedUtil();

interface RedisContextConfig {
  /** redis://[:password@]host:port[/db] */
  url: string;
  /** Namespace of one instance: tower:<fleet>:<instance>. Both colours use the same one. */
  prefix: string;
  /** How long a scope stays unowned before clean() deletes it; default 24 h. 0: at once, as Node-RED's stores do. */
  cleanGraceMs?: number;
  connectTimeoutMs?: number;
  commandTimeoutMs?: number;
  /** Copied in by Node-RED (userDir); unused. */
  settings?: unknown;
}

type Callback = (err?: Error, ...values: unknown[]) => void;
type ContextKey = string | string[];

const DAY_MS = 24 * 60 * 60 * 1000;
/** Attempts of one nested write against concurrent writers of the same key. */
const MAX_CAS_ATTEMPTS = 50;
/** Scopes per clean script call: keeps each script short, so Redis never stalls on one. */
const CLEAN_BATCH = 500;

/** One field change for WRITE_LUA. */
interface FieldWrite {
  field: string;
  /** undefined: no check (plain top-level set); null: must be absent; string: must equal. */
  expected: string | null | undefined;
  /** undefined deletes the field. */
  value: string | undefined;
}

class CasConflict extends Error {}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable url)';
  }
}

function topKey(key: string): string {
  const parts = nodeRedUtil.normalisePropertyExpression(key);
  return String(parts[0]);
}

function encode(key: string, value: unknown): string {
  const json = JSON.stringify(value);
  if (json === undefined) throw new TypeError(`context value of ${key} cannot be stored as JSON`);
  return json;
}

function decode(json: string | null): unknown {
  return json === null ? undefined : JSON.parse(json);
}

/** As memory.js _getOne: a missing parent is undefined, an invalid expression is an error. */
function readProperty(top: string, json: string | null, key: string): unknown {
  const holder: Record<string, unknown> = {};
  if (json !== null) holder[top] = decode(json);
  try {
    return nodeRedUtil.getObjectProperty(holder, key);
  } catch (err) {
    if ((err as { code?: string }).code === 'INVALID_EXPR') throw err;
    return undefined;
  }
}

class RedisContextStore {
  private readonly client: Redis;
  private readonly prefix: string;
  private readonly graceMs: number;
  private readonly redactedUrl: string;
  /** Per scope, the end of the last operation queued on it: keeps one process's operations in order. */
  private readonly tails = new Map<string, Promise<void>>();
  private warnedDown = false;
  private lastError: Error | undefined;

  constructor(config: RedisContextConfig) {
    if (!config || typeof config.url !== 'string' || !config.url) throw new Error('redis context store: config.url (redis://host:port) is required');
    if (typeof config.prefix !== 'string' || !config.prefix) throw new Error('redis context store: config.prefix (tower:<fleet>:<instance>) is required');
    this.prefix = config.prefix;
    this.graceMs = config.cleanGraceMs ?? DAY_MS;
    this.redactedUrl = redactUrl(config.url);
    this.client = new Redis(config.url, {
      lazyConnect: true,
      connectTimeout: config.connectTimeoutMs ?? 5_000,
      commandTimeout: config.commandTimeoutMs ?? 5_000,
      // While Redis is away, context calls fail after a short while instead of piling up.
      maxRetriesPerRequest: 2,
      retryStrategy: (times) => Math.min(100 * times, 2_000),
    });
    this.client.on('error', (err: Error) => {
      this.lastError = err;
      if (this.warnedDown) return;
      this.warnedDown = true;
      nodeRedLog.warn(`redis context store ${this.redactedUrl}: ${err.message}`);
    });
    this.client.on('ready', () => {
      if (this.warnedDown) nodeRedLog.info(`redis context store ${this.redactedUrl}: connected again`);
      this.warnedDown = false;
    });
  }

  private hashKey(scope: string): string {
    return `${this.prefix}:ctx:${scope}`;
  }
  private get scopesKey(): string {
    return `${this.prefix}:scopes`;
  }
  private get orphansKey(): string {
    return `${this.prefix}:orphans`;
  }

  /** Without Redis, context would silently be lost: the colour must not start. */
  async open(): Promise<void> {
    try {
      await this.client.connect();
    } catch (err) {
      this.client.disconnect();
      const reason = this.lastError?.message ?? (err as Error).message;
      throw new Error(`redis context store: cannot connect to ${this.redactedUrl}: ${reason}`, { cause: err });
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.tails.values()]);
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }

  private inScope<T>(scope: string, op: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(scope) ?? Promise.resolve();
    const run = prev.then(op);
    const tail = run.then(
      () => {},
      () => {},
    );
    this.tails.set(scope, tail);
    void tail.then(() => {
      if (this.tails.get(scope) === tail) this.tails.delete(scope);
    });
    return run;
  }

  get(scope: string, key: ContextKey, callback?: Callback): void {
    if (typeof callback !== 'function') {
      throw new Error('the Redis context store is asynchronous: use the callback form, e.g. flow.get("n", (err, n) => { ... })');
    }
    const keys = Array.isArray(key) ? key : [key];
    const op = async (): Promise<unknown[]> => {
      const tops = keys.map(topKey);
      const fields = [...new Set(tops)];
      const raw = await this.client.hmget(this.hashKey(scope), ...fields);
      const byField = new Map(fields.map((f, i) => [f, raw[i] ?? null]));
      return keys.map((k, i) => readProperty(tops[i]!, byField.get(tops[i]!) ?? null, k));
    };
    settle(this.inScope(scope, op), callback);
  }

  set(scope: string, key: ContextKey, value: unknown, callback?: Callback): void {
    // As memory.js: an array of keys takes an array of values, missing ones are null.
    const keys = Array.isArray(key) ? key : [key];
    const values = Array.isArray(key) ? (Array.isArray(value) ? value : [value]) : [value];
    const pairs = keys.map((k, i) => ({ key: k, value: i < values.length ? values[i] : null }));
    const op = () => this.write(scope, pairs);
    const done = this.inScope(scope, op);
    if (typeof callback === 'function') settle(done, callback);
    // Without a callback nobody can hear about an error; Node-RED's log can.
    else done.catch((err: unknown) => nodeRedLog.warn(`redis context store: set ${String(key)} in ${scope} failed: ${(err as Error).message}`));
  }

  private async write(scope: string, pairs: { key: string; value: unknown }[]): Promise<unknown[]> {
    const tops = pairs.map((p) => topKey(p.key));
    const nested = pairs.some((p, i) => p.key !== tops[i]);
    for (let attempt = 1; attempt <= MAX_CAS_ATTEMPTS; attempt++) {
      const writes = nested ? await this.prepareNested(scope, pairs, tops) : this.preparePlain(pairs);
      if (writes.length === 0) return [];
      const args: (string | number)[] = [scope, writes.length];
      for (const w of writes) {
        const expect = w.expected === undefined ? '*' : w.expected === null ? '-' : '=';
        args.push(w.field, expect, w.expected ?? '', w.value === undefined ? 'd' : 's', w.value ?? '');
      }
      const ok = await runScript(this.client, WRITE, [this.hashKey(scope), this.scopesKey, this.orphansKey], args);
      if (Number(ok) === 1) return [];
      // Another writer changed the key between our read and our write: read again, with a little jitter.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(2 * attempt, 20)));
    }
    throw new CasConflict(`context ${pairs.map((p) => p.key).join(', ')} in ${scope}: too many concurrent writers, gave up after ${MAX_CAS_ATTEMPTS} attempts`);
  }

  private preparePlain(pairs: { key: string; value: unknown }[]): FieldWrite[] {
    // Last one wins for a key given twice, as applying them in order would.
    const byField = new Map<string, FieldWrite>();
    for (const p of pairs) byField.set(p.key, { field: p.key, expected: undefined, value: p.value === undefined ? undefined : encode(p.key, p.value) });
    return [...byField.values()];
  }

  /** Read the top-level values, apply every change with Node-RED's setObjectProperty, write back if they differ. */
  private async prepareNested(scope: string, pairs: { key: string; value: unknown }[], tops: string[]): Promise<FieldWrite[]> {
    const fields = [...new Set(tops)];
    const raw = await this.client.hmget(this.hashKey(scope), ...fields);
    const holder: Record<string, unknown> = {};
    fields.forEach((f, i) => {
      const json = raw[i] ?? null;
      if (json !== null) holder[f] = decode(json);
    });
    for (const p of pairs) nodeRedUtil.setObjectProperty(holder, p.key, p.value);
    const writes: FieldWrite[] = [];
    fields.forEach((f, i) => {
      const before = raw[i] ?? null;
      const after = Object.prototype.hasOwnProperty.call(holder, f) && holder[f] !== undefined ? encode(f, holder[f]) : undefined;
      if ((after ?? null) === before) return;
      writes.push({ field: f, expected: before, value: after });
    });
    return writes;
  }

  keys(scope: string, callback?: Callback): void {
    if (typeof callback !== 'function') throw new Error('the Redis context store is asynchronous: use the callback form of keys()');
    settle(
      this.inScope(scope, async () => [await this.client.hkeys(this.hashKey(scope))]),
      callback,
    );
  }

  delete(scope: string): Promise<void> {
    return this.inScope(scope, async () => {
      await runScript(this.client, DELETE, [this.hashKey(scope), this.scopesKey, this.orphansKey], [scope]);
    });
  }

  async clean(activeNodes: string[]): Promise<void> {
    const active = new Set(activeNodes);
    const scopes = await this.client.smembers(this.scopesKey);
    const owned: string[] = [];
    const unowned: string[] = [];
    for (const scope of scopes) {
      if (scope === 'global') continue;
      // Node-RED's rule (memory.js): "<node>:<flow>" belongs to the node, "<flow>" to the flow.
      (active.has(scope.split(':')[0]!) ? owned : unowned).push(scope);
    }
    for (let i = 0; i < owned.length; i += CLEAN_BATCH) await this.client.zrem(this.orphansKey, ...owned.slice(i, i + CLEAN_BATCH));
    const now = Date.now();
    for (let i = 0; i < unowned.length; i += CLEAN_BATCH) {
      const batch = unowned.slice(i, i + CLEAN_BATCH);
      await runScript(this.client, CLEAN, [this.scopesKey, this.orphansKey, ...batch.map((s) => this.hashKey(s))], [now, now - this.graceMs, ...batch]);
    }
  }
}

/** Calls back outside the promise chain: an exception in the callback is the caller's, and never calls it twice. */
function settle(result: Promise<unknown[]>, callback: Callback): void {
  result.then(
    (values) => process.nextTick(() => callback(undefined, ...values)),
    (err: unknown) => process.nextTick(() => callback(err instanceof Error ? err : new Error(String(err)))),
  );
}

function redisContextStore(config: RedisContextConfig): RedisContextStore {
  return new RedisContextStore(config);
}
// Node-RED logs "Context store: 'default' [module=<toString()>]" for a module object that has its own toString.
redisContextStore.toString = () => 'tower-redis';

export = redisContextStore;
