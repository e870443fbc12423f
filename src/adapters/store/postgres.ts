/**
 * The PostgreSQL StateStore, for production and for several daemons sharing state.
 *
 * - Schema: numbered migrations (migrations/index.ts) recorded in tower_migrations, all
 *   applied in one transaction that first takes a transaction-scoped advisory lock, so two
 *   daemons starting at once serialize: the second finds the work done.
 * - A small pool, a statement timeout on every connection, parameterized queries only.
 *   jsonb columns are written from JSON text we produce and read back as text, so that a
 *   stored JSON null stays distinct from "absent", as in the embedded store.
 * - The connection string may hold a password: every error leaving this module is a
 *   StoreError whose message went through redact() and which carries no cause; the pool's
 *   background errors are logged the same way. `location` is the URL without its password.
 */
import pg from 'pg';
import type { AuditEntry, InstanceHistory, RevisionState, RolloutOutcome, RolloutRecord, StateStore } from '../../engine/ports.js';
import {
  checkLimit,
  checkName,
  normalizeApplied,
  normalizeAttempted,
  normalizeAudit,
  normalizeBegin,
  normalizeFinish,
  normalizeHistory,
  normalizeState,
  retentionFrom,
  silentLog,
  StoreError,
  type Retention,
  type StoreErrorReason,
  type StoreLog,
} from './common.js';
import { MIGRATIONS } from './migrations/index.js';

export interface PostgresStoreOptions {
  /** postgres://user:password@host:port/database (query parameters as pg reads them). */
  url: string;
  log?: StoreLog;
  retention?: Partial<Retention>;
  /** Connections at most. Default 4: the daemon is one loop, plus the status page. */
  poolMax?: number;
  /** Server-side statement_timeout (and lock waits) per statement. Default 10 s. */
  statementTimeoutMs?: number;
  /** Giving up on a new connection. Default 5 s. */
  connectTimeoutMs?: number;
  /** Reads only (e.g. `tower status`): writes are refused here and by the server; migrate() does nothing. */
  readOnly?: boolean;
}

// 'tower' in ASCII: the advisory lock every Tower takes to migrate.
const MIGRATION_LOCK = '500152609138';
const MIGRATION_TIMEOUT = '60s';

interface RolloutRow {
  id: string;
  fleet: string;
  revision: string | null;
  author: string | null;
  message: string | null;
  started_at: Date;
  finished_at: Date | null;
  outcome: RolloutOutcome;
  error: string | null;
  plan: string | null;
  instances: string;
}

const ROLLOUT_COLUMNS = 'id, fleet, revision, author, message, started_at, finished_at, outcome, error, plan::text AS plan, instances::text AS instances';

function rowToRollout(row: RolloutRow): RolloutRecord {
  const r: RolloutRecord = { id: row.id, fleet: row.fleet, startedAt: row.started_at.toISOString(), outcome: row.outcome, instances: JSON.parse(row.instances) as Record<string, InstanceHistory> };
  if (row.revision !== null) r.revision = row.revision;
  if (row.author !== null) r.author = row.author;
  if (row.message !== null) r.message = row.message;
  if (row.finished_at !== null) r.finishedAt = row.finished_at.toISOString();
  if (row.error !== null) r.error = row.error;
  if (row.plan !== null) r.plan = JSON.parse(row.plan) as unknown;
  return r;
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

export class PostgresStore implements StateStore {
  readonly kind = 'postgres' as const;
  /** The URL without its password, for logs. */
  readonly location: string;
  readonly #pool: pg.Pool;
  readonly #log: StoreLog;
  readonly #retention: Retention;
  readonly #secrets: string[];
  readonly #auditPruneEvery: number;
  readonly #auditSincePrune = new Map<string, number>();
  readonly #readOnly: boolean;
  #closed = false;

  constructor(options: PostgresStoreOptions) {
    this.#secrets = secretsOf(options.url);
    this.#readOnly = options.readOnly ?? false;
    this.#log = options.log ?? silentLog;
    this.#retention = retentionFrom(options.retention);
    this.#auditPruneEvery = Math.max(1, Math.min(100, Math.ceil(this.#retention.audit / 10)));
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
    this.#pool = new pg.Pool({
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
      ...(this.#readOnly ? { options: '-c default_transaction_read_only=on' } : {}),
      keepAlive: true,
    });
    // Without listeners, an idle or busy connection that drops would crash the daemon.
    this.#pool.on('error', (err) => this.#log.warn({ err: this.#redact(err.message), code: (err as { code?: string }).code }, 'postgres: an idle connection failed'));
    this.#pool.on('connect', (client) => client.on('error', (err) => this.#log.warn({ err: this.#redact(err.message) }, 'postgres: a connection failed')));
  }

  async migrate(): Promise<void> {
    if (this.#readOnly) return;
    await this.#tx('migrate', async (c) => {
      await c.query(`SET LOCAL statement_timeout = '${MIGRATION_TIMEOUT}'`);
      await c.query(`SET LOCAL lock_timeout = '${MIGRATION_TIMEOUT}'`);
      // Before anything else, so that concurrent migrators never race on the catalog.
      await c.query('SELECT pg_advisory_xact_lock($1::bigint)', [MIGRATION_LOCK]);
      await c.query('CREATE TABLE IF NOT EXISTS tower_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())');
      const { rows } = await c.query<{ version: number }>('SELECT version FROM tower_migrations');
      const applied = new Set(rows.map((r) => r.version));
      const known = Math.max(...MIGRATIONS.map((m) => m.version));
      const newest = Math.max(0, ...applied);
      if (newest > known) throw new StoreError('Incompatible', `the database schema is at version ${newest}, this Tower knows up to ${known}: upgrade Tower`);
      for (const m of MIGRATIONS) {
        if (applied.has(m.version)) continue;
        await c.query(m.sql);
        await c.query('INSERT INTO tower_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
        this.#log.info({ version: m.version, name: m.name, database: this.location }, 'postgres: applied migration');
      }
    });
  }

  async beginRollout(rollout: Omit<RolloutRecord, 'outcome' | 'finishedAt'>): Promise<void> {
    const { record: r, planText, instancesText } = normalizeBegin(rollout);
    await this.#runWrite('beginRollout', async () => {
      try {
        await this.#pool.query(
          `INSERT INTO tower_rollouts (id, fleet, revision, author, message, started_at, outcome, error, plan, instances)
           VALUES ($1, $2, $3, $4, $5, $6, 'running', $7, $8::jsonb, $9::jsonb)`,
          [r.id, r.fleet, r.revision ?? null, r.author ?? null, r.message ?? null, r.startedAt, r.error ?? null, planText ?? null, instancesText],
        );
      } catch (err) {
        if ((err as { code?: string }).code === '23505') throw new StoreError('Conflict', `a rollout with id ${r.id} exists`, '23505');
        throw err;
      }
    });
  }

  async saveInstanceState(rolloutId: string, instance: string, state: unknown): Promise<void> {
    const { text } = normalizeState(state);
    checkName(instance, 'instance');
    await this.#runWrite('saveInstanceState', async () => {
      try {
        await this.#pool.query(
          `INSERT INTO tower_journal (rollout_id, instance, state, updated_at) VALUES ($1, $2, $3::jsonb, now())
           ON CONFLICT (rollout_id, instance) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at`,
          [rolloutId, instance, text],
        );
      } catch (err) {
        if ((err as { code?: string }).code === '23503') throw notFound(rolloutId);
        throw err;
      }
    });
  }

  async saveInstanceHistory(rolloutId: string, instance: string, history: InstanceHistory): Promise<void> {
    const { text } = normalizeHistory(history);
    checkName(instance, 'instance');
    await this.#runWrite('saveInstanceHistory', async () => {
      // One statement: concurrent histories of other instances are merged, not overwritten.
      const res = await this.#pool.query('UPDATE tower_rollouts SET instances = instances || jsonb_build_object($2::text, $3::jsonb) WHERE id = $1', [rolloutId, instance, text]);
      if (res.rowCount === 0) throw notFound(rolloutId);
    });
  }

  async finishRollout(rolloutId: string, outcome: RolloutOutcome, finishedAt: string, error?: string): Promise<void> {
    const f = normalizeFinish(outcome, finishedAt, error);
    await this.#tx('finishRollout', async (c) => {
      const res = await c.query<{ fleet: string }>('UPDATE tower_rollouts SET outcome = $2, finished_at = $3, error = $4 WHERE id = $1 RETURNING fleet', [rolloutId, f.outcome, f.finishedAt, f.error ?? null]);
      const fleet = res.rows[0]?.fleet;
      if (fleet === undefined) throw notFound(rolloutId);
      // The journal only serves to resume a running rollout.
      await c.query('DELETE FROM tower_journal WHERE rollout_id = $1', [rolloutId]);
      await c.query(
        `DELETE FROM tower_rollouts WHERE seq IN (
           SELECT seq FROM tower_rollouts WHERE fleet = $1 AND outcome <> 'running' ORDER BY started_at DESC, seq DESC OFFSET $2)`,
        [fleet, this.#retention.rollouts],
      );
    });
  }

  async openRollout(fleet: string): Promise<{ rollout: RolloutRecord; states: Record<string, unknown> } | undefined> {
    return this.#run('openRollout', async () => {
      // One statement, so that the record and its journal are from the same snapshot.
      const { rows } = await this.#pool.query<RolloutRow & { states: string }>(
        `SELECT ${ROLLOUT_COLUMNS},
                (SELECT coalesce(jsonb_object_agg(j.instance, j.state), '{}'::jsonb) FROM tower_journal j WHERE j.rollout_id = r.id)::text AS states
           FROM tower_rollouts r WHERE fleet = $1 AND outcome = 'running' ORDER BY started_at DESC, seq DESC LIMIT 1`,
        [fleet],
      );
      const row = rows[0];
      return row && { rollout: rowToRollout(row), states: JSON.parse(row.states) as Record<string, unknown> };
    });
  }

  async history(fleet: string, limit: number): Promise<RolloutRecord[]> {
    return this.#run('history', async () => {
      const { rows } = await this.#pool.query<RolloutRow>(`SELECT ${ROLLOUT_COLUMNS} FROM tower_rollouts WHERE fleet = $1 ORDER BY started_at DESC, seq DESC LIMIT $2`, [fleet, checkLimit(limit)]);
      return rows.map(rowToRollout);
    });
  }

  async getRollout(id: string): Promise<RolloutRecord | undefined> {
    return this.#run('getRollout', async () => {
      const { rows } = await this.#pool.query<RolloutRow>(`SELECT ${ROLLOUT_COLUMNS} FROM tower_rollouts WHERE id = $1`, [id]);
      return rows[0] && rowToRollout(rows[0]);
    });
  }

  async audit(entry: AuditEntry): Promise<void> {
    const { value: e, detailText } = normalizeAudit(entry);
    await this.#runWrite('audit', async () => {
      await this.#pool.query('INSERT INTO tower_audit (fleet, at, actor, action, revision, detail) VALUES ($1, $2, $3, $4, $5, $6::jsonb)', [e.fleet, e.at, e.actor, e.action, e.revision ?? null, detailText ?? null]);
      // Pruning every insert would scan `retention` rows each time; every Nth keeps it cheap
      // (and the first insert after a start always prunes).
      const since = (this.#auditSincePrune.get(e.fleet) ?? this.#auditPruneEvery - 1) + 1;
      if (since < this.#auditPruneEvery) {
        this.#auditSincePrune.set(e.fleet, since);
        return;
      }
      this.#auditSincePrune.set(e.fleet, 0);
      try {
        await this.#pool.query('DELETE FROM tower_audit WHERE id IN (SELECT id FROM tower_audit WHERE fleet = $1 ORDER BY at DESC, id DESC OFFSET $2)', [e.fleet, this.#retention.audit]);
      } catch (err) {
        // The entry is stored: failing the call now would only make the caller write it twice.
        this.#log.warn({ err: this.#wrap('audit prune', err).message }, 'postgres: pruning the audit trail failed; next time');
      }
    });
  }

  async auditTrail(fleet: string, limit: number): Promise<AuditEntry[]> {
    return this.#run('auditTrail', async () => {
      const { rows } = await this.#pool.query<{ fleet: string; at: Date; actor: string; action: string; revision: string | null; detail: string | null }>(
        'SELECT fleet, at, actor, action, revision, detail::text AS detail FROM tower_audit WHERE fleet = $1 ORDER BY at DESC, id DESC LIMIT $2',
        [fleet, checkLimit(limit)],
      );
      return rows.map((row) => {
        const e: AuditEntry = { at: row.at.toISOString(), fleet: row.fleet, actor: row.actor, action: row.action };
        if (row.revision !== null) e.revision = row.revision;
        if (row.detail !== null) e.detail = JSON.parse(row.detail) as unknown;
        return e;
      });
    });
  }

  async setAttempted(fleet: string, attempted: NonNullable<RevisionState['attempted']>): Promise<void> {
    const a = normalizeAttempted(attempted);
    checkName(fleet, 'fleet');
    await this.#runWrite('setAttempted', async () => {
      await this.#pool.query(
        `INSERT INTO tower_revisions (fleet, attempted_revision, attempted_at, attempted_outcome, attempted_error) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (fleet) DO UPDATE SET attempted_revision = EXCLUDED.attempted_revision, attempted_at = EXCLUDED.attempted_at,
           attempted_outcome = EXCLUDED.attempted_outcome, attempted_error = EXCLUDED.attempted_error, updated_at = now()`,
        [fleet, a.revision, a.at, a.outcome, a.error ?? null],
      );
    });
  }

  async setApplied(fleet: string, applied: NonNullable<RevisionState['applied']>): Promise<void> {
    const a = normalizeApplied(applied);
    checkName(fleet, 'fleet');
    await this.#runWrite('setApplied', async () => {
      await this.#pool.query(
        `INSERT INTO tower_revisions (fleet, applied_revision, applied_at) VALUES ($1, $2, $3)
         ON CONFLICT (fleet) DO UPDATE SET applied_revision = EXCLUDED.applied_revision, applied_at = EXCLUDED.applied_at, updated_at = now()`,
        [fleet, a.revision, a.at],
      );
    });
  }

  async revisions(fleet: string): Promise<RevisionState> {
    return this.#run('revisions', async () => {
      const { rows } = await this.#pool.query<{
        attempted_revision: string | null;
        attempted_at: Date | null;
        attempted_outcome: RolloutOutcome | null;
        attempted_error: string | null;
        applied_revision: string | null;
        applied_at: Date | null;
      }>('SELECT attempted_revision, attempted_at, attempted_outcome, attempted_error, applied_revision, applied_at FROM tower_revisions WHERE fleet = $1', [fleet]);
      const row = rows[0];
      const out: RevisionState = {};
      if (row?.attempted_revision != null && row.attempted_at && row.attempted_outcome) {
        out.attempted = { revision: row.attempted_revision, at: row.attempted_at.toISOString(), outcome: row.attempted_outcome };
        if (row.attempted_error !== null) out.attempted.error = row.attempted_error;
      }
      if (row?.applied_revision != null && row.applied_at) out.applied = { revision: row.applied_revision, at: row.applied_at.toISOString() };
      return out;
    });
  }

  /** Ends the pool; waits for queries in flight. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#pool.end();
    } catch (err) {
      throw this.#wrap('close', err);
    }
  }

  async #run<T>(op: string, fn: () => Promise<T>, write = false): Promise<T> {
    if (this.#closed) throw new StoreError('Closed', `the PostgreSQL store ${this.location} is closed`);
    if (write && this.#readOnly) throw new StoreError('Invalid', `the PostgreSQL store ${this.location} was opened read-only`);
    try {
      return await fn();
    } catch (err) {
      throw this.#wrap(op, err);
    }
  }

  #runWrite<T>(op: string, fn: () => Promise<T>): Promise<T> {
    return this.#run(op, fn, true);
  }

  async #tx<T>(op: string, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.#runWrite(op, async () => {
      const client = await this.#pool.connect();
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

  #wrap(op: string, err: unknown): StoreError {
    if (err instanceof StoreError) return new StoreError(err.reason, this.#redact(err.message), err.code);
    const e = (err ?? {}) as { message?: unknown; code?: unknown };
    const message = typeof e.message === 'string' ? e.message : String(err);
    const code = typeof e.code === 'string' ? e.code : undefined;
    const reason = reasonFor(code, message);
    const hint = code === '42P01' ? ' (has migrate() run?)' : '';
    return new StoreError(reason, this.#redact(`postgres ${this.location}: ${op}: ${message}${hint}`), code);
  }

  #redact(text: string): string {
    let out = text;
    for (const s of this.#secrets) out = out.split(s).join('***');
    return out;
  }
}

function notFound(id: string): StoreError {
  return new StoreError('NotFound', `no rollout with id ${JSON.stringify(id)}`);
}

export function openPostgresStore(options: PostgresStoreOptions): PostgresStore {
  return new PostgresStore(options);
}
