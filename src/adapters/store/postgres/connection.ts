/**
 * The PostgreSQL store's connection: a small pool with a statement timeout on every
 * connection, transactions, and errors made safe to log.
 *
 * The connection string may hold a password: every error leaving the store is a StoreError
 * whose message went through redact() and which carries no cause; the pool's background
 * errors are logged the same way. `location` is the URL without its password.
 */
import pg from 'pg';
import { StoreError, type StoreErrorReason, type StoreLog } from '../common.js';

export interface ConnectionOptions {
  /** postgres://user:password@host:port/database (query parameters as pg reads them). */
  url: string;
  log: StoreLog;
  /** Connections at most. Default 4: the daemon is one loop, plus the status page. */
  poolMax?: number;
  /** Server-side statement_timeout (and lock waits) per statement. Default 10 s. */
  statementTimeoutMs?: number;
  /** Giving up on a new connection. Default 5 s. */
  connectTimeoutMs?: number;
  /** Every transaction read-only, on the server too; writes are refused before they are sent. */
  readOnly: boolean;
}

export class PgConnection {
  /** The URL without its password, for logs. */
  readonly location: string;
  readonly pool: pg.Pool;
  readonly readOnly: boolean;
  readonly #log: StoreLog;
  readonly #secrets: string[];
  #closed = false;

  constructor(options: ConnectionOptions) {
    this.#secrets = secretsOf(options.url);
    this.readOnly = options.readOnly;
    this.#log = options.log;
    let parsed: URL;
    try {
      parsed = new URL(options.url);
    } catch {
      throw new StoreError('Invalid', 'the PostgreSQL URL (DATABASE_URL) is not a valid URL; expected postgres://user:password@host:port/database');
    }
    if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') throw new StoreError('Invalid', `the PostgreSQL URL (DATABASE_URL) must start with postgres:// or postgresql://, not ${parsed.protocol}//`);
    if (parsed.password) parsed.password = '***';
    for (const key of ['password', 'sslpassword']) parsed.searchParams.delete(key);
    this.location = parsed.toString();
    const statementTimeout = options.statementTimeoutMs ?? 10_000;
    this.pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolMax ?? 4,
      idleTimeoutMillis: 30_000,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
      statement_timeout: statementTimeout,
      lock_timeout: statementTimeout,
      // The server's timeout should fire first; this one catches a server that stopped answering.
      query_timeout: statementTimeout + 5_000,
      idle_in_transaction_session_timeout: 60_000,
      application_name: 'redforge-tower',
      ...(this.readOnly ? { options: '-c default_transaction_read_only=on' } : {}),
      keepAlive: true,
    });
    // Without listeners, an idle or busy connection that drops would crash the daemon.
    this.pool.on('error', (err) => this.#log.warn({ err: this.redact(err.message), code: (err as { code?: string }).code }, 'postgres: an idle connection failed'));
    this.pool.on('connect', (client) => client.on('error', (err) => this.#log.warn({ err: this.redact(err.message) }, 'postgres: a connection failed')));
  }

  /** Ends the pool; waits for queries in flight. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.pool.end();
    } catch (err) {
      throw this.wrap('close', err);
    }
  }

  /** Runs fn unless closed (or a write on a read-only store); whatever it throws becomes a redacted StoreError. */
  async run<T>(op: string, fn: () => Promise<T>, write = false): Promise<T> {
    if (this.#closed) throw new StoreError('Closed', `the PostgreSQL store ${this.location} is closed`);
    if (write && this.readOnly) throw new StoreError('Invalid', `the PostgreSQL store ${this.location} was opened read-only`);
    try {
      return await fn();
    } catch (err) {
      throw this.wrap(op, err);
    }
  }

  runWrite<T>(op: string, fn: () => Promise<T>): Promise<T> {
    return this.run(op, fn, true);
  }

  /** fn inside BEGIN … COMMIT on one connection; ROLLBACK on any error. */
  async tx<T>(op: string, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.runWrite(op, async () => {
      const client = await this.pool.connect();
      let broken: Error | undefined;
      try {
        await client.query('BEGIN');
        const result = await fn(client);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        try {
          await client.query('ROLLBACK');
        } catch (rollbackErr) {
          // The connection is unusable: make the pool drop it instead of reusing it.
          broken = rollbackErr as Error;
        }
        throw err;
      } finally {
        client.release(broken);
      }
    });
  }

  wrap(op: string, err: unknown): StoreError {
    if (err instanceof StoreError) return new StoreError(err.reason, this.redact(err.message), err.code);
    const e = (err ?? {}) as { message?: unknown; code?: unknown };
    const message = typeof e.message === 'string' ? e.message : String(err);
    const code = typeof e.code === 'string' ? e.code : undefined;
    const reason = reasonFor(code, message);
    const hint = code === '42P01' ? ' (has migrate() run?)' : '';
    return new StoreError(reason, this.redact(`postgres ${this.location}: ${op}: ${message}${hint}`), code);
  }

  redact(text: string): string {
    let out = text;
    for (const s of this.#secrets) out = out.split(s).join('***');
    return out;
  }
}

/** Every form a password in the URL may take, longest first (so that no part of one survives). */
function secretsOf(url: string): string[] {
  const found = new Set<string>([url]);
  const add = (raw: string | undefined) => {
    if (!raw) return;
    found.add(raw);
    try {
      found.add(decodeURIComponent(raw));
    } catch {
      // not percent-encoded
    }
    found.add(encodeURIComponent(raw));
  };
  // By hand rather than new URL(): a malformed URL must still give up its password.
  add(/^[a-z][a-z0-9+.-]*:\/\/[^/?#@]*?:([^/?#]*)@/i.exec(url)?.[1]);
  for (const m of url.matchAll(/[?&](?:password|sslpassword)=([^&#]*)/gi)) add(m[1]);
  return [...found].filter((s) => s.length > 0).sort((a, b) => b.length - a.length);
}

function reasonFor(code: string | undefined, message: string): StoreErrorReason {
  if (code === '57014' || code === '55P03' || /query read timeout/i.test(message)) return 'Timeout';
  if (code === '28P01' || code === '28000') return 'AuthFailed';
  if (code === '23505') return 'Conflict';
  if (code === '23503') return 'NotFound';
  if (code !== undefined && /^(08|53|57P)/.test(code)) return 'Unavailable';
  if (code !== undefined && /^E[A-Z]+$/.test(code)) return 'Unavailable'; // ECONNREFUSED, ENOTFOUND, …
  if (/timeout exceeded when trying to connect|connection terminated|Connection terminated|not queryable/i.test(message)) return 'Unavailable';
  return 'Failed';
}
