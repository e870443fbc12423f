/**
 * The PostgreSQL StateStore, for production and for several daemons sharing state.
 *
 * - Schema: numbered migrations, applied under an advisory lock (postgres/migrate.ts).
 * - A small pool, a statement timeout on every connection, errors redacted of the password
 *   (postgres/connection.ts); parameterized queries only (here).
 * - jsonb columns are written from JSON text we produce and read back as text, so that a
 *   stored JSON null stays distinct from "absent", as in the embedded store (postgres/rows.ts).
 */
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
  type StoreLog,
} from './common.js';
import { PgConnection } from './postgres/connection.js';
import { migrateSchema } from './postgres/migrate.js';
import { AUDIT_COLUMNS, REVISIONS_COLUMNS, ROLLOUT_COLUMNS, rowToAudit, rowToRevisions, rowToRollout, type AuditRow, type RevisionsRow, type RolloutRow } from './postgres/rows.js';

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

export class PostgresStore implements StateStore {
  readonly kind = 'postgres' as const;
  /** The URL without its password, for logs. */
  readonly location: string;
  readonly #db: PgConnection;
  readonly #log: StoreLog;
  readonly #retention: Retention;
  readonly #auditPruneEvery: number;
  readonly #auditSincePrune = new Map<string, number>();

  constructor(options: PostgresStoreOptions) {
    this.#log = options.log ?? silentLog;
    this.#retention = retentionFrom(options.retention);
    this.#auditPruneEvery = Math.max(1, Math.min(100, Math.ceil(this.#retention.audit / 10)));
    this.#db = new PgConnection({
      url: options.url,
      log: this.#log,
      poolMax: options.poolMax,
      statementTimeoutMs: options.statementTimeoutMs,
      connectTimeoutMs: options.connectTimeoutMs,
      readOnly: options.readOnly ?? false,
    });
    this.location = this.#db.location;
  }

  async migrate(): Promise<void> {
    await migrateSchema(this.#db, this.#log);
  }

  async beginRollout(rollout: Omit<RolloutRecord, 'outcome' | 'finishedAt'>): Promise<void> {
    const { record: r, planText, instancesText } = normalizeBegin(rollout);
    await this.#db.runWrite('beginRollout', async () => {
      try {
        await this.#db.pool.query(
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
    await this.#db.runWrite('saveInstanceState', async () => {
      try {
        await this.#db.pool.query(
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
    await this.#db.runWrite('saveInstanceHistory', async () => {
      // One statement: concurrent histories of other instances are merged, not overwritten.
      const res = await this.#db.pool.query('UPDATE tower_rollouts SET instances = instances || jsonb_build_object($2::text, $3::jsonb) WHERE id = $1', [rolloutId, instance, text]);
      if (res.rowCount === 0) throw notFound(rolloutId);
    });
  }

  async finishRollout(rolloutId: string, outcome: RolloutOutcome, finishedAt: string, error?: string): Promise<void> {
    const f = normalizeFinish(outcome, finishedAt, error);
    await this.#db.tx('finishRollout', async (c) => {
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
    return this.#db.run('openRollout', async () => {
      // One statement, so that the record and its journal are from the same snapshot.
      const { rows } = await this.#db.pool.query<RolloutRow & { states: string }>(
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
    return this.#db.run('history', async () => {
      const { rows } = await this.#db.pool.query<RolloutRow>(`SELECT ${ROLLOUT_COLUMNS} FROM tower_rollouts WHERE fleet = $1 ORDER BY started_at DESC, seq DESC LIMIT $2`, [fleet, checkLimit(limit)]);
      return rows.map(rowToRollout);
    });
  }

  async getRollout(id: string): Promise<RolloutRecord | undefined> {
    return this.#db.run('getRollout', async () => {
      const { rows } = await this.#db.pool.query<RolloutRow>(`SELECT ${ROLLOUT_COLUMNS} FROM tower_rollouts WHERE id = $1`, [id]);
      return rows[0] && rowToRollout(rows[0]);
    });
  }

  async audit(entry: AuditEntry): Promise<void> {
    const { value: e, detailText } = normalizeAudit(entry);
    await this.#db.runWrite('audit', async () => {
      await this.#db.pool.query('INSERT INTO tower_audit (fleet, at, actor, action, revision, detail) VALUES ($1, $2, $3, $4, $5, $6::jsonb)', [e.fleet, e.at, e.actor, e.action, e.revision ?? null, detailText ?? null]);
      // Pruning every insert would scan `retention` rows each time; every Nth keeps it cheap
      // (and the first insert after a start always prunes).
      const since = (this.#auditSincePrune.get(e.fleet) ?? this.#auditPruneEvery - 1) + 1;
      if (since < this.#auditPruneEvery) {
        this.#auditSincePrune.set(e.fleet, since);
        return;
      }
      this.#auditSincePrune.set(e.fleet, 0);
      try {
        await this.#db.pool.query('DELETE FROM tower_audit WHERE id IN (SELECT id FROM tower_audit WHERE fleet = $1 ORDER BY at DESC, id DESC OFFSET $2)', [e.fleet, this.#retention.audit]);
      } catch (err) {
        // The entry is stored: failing the call now would only make the caller write it twice.
        this.#log.warn({ err: this.#db.wrap('audit prune', err).message }, 'postgres: pruning the audit trail failed; next time');
      }
    });
  }

  async auditTrail(fleet: string, limit: number): Promise<AuditEntry[]> {
    return this.#db.run('auditTrail', async () => {
      const { rows } = await this.#db.pool.query<AuditRow>(`SELECT ${AUDIT_COLUMNS} FROM tower_audit WHERE fleet = $1 ORDER BY at DESC, id DESC LIMIT $2`, [fleet, checkLimit(limit)]);
      return rows.map(rowToAudit);
    });
  }

  async setAttempted(fleet: string, attempted: NonNullable<RevisionState['attempted']>): Promise<void> {
    const a = normalizeAttempted(attempted);
    checkName(fleet, 'fleet');
    await this.#db.runWrite('setAttempted', async () => {
      await this.#db.pool.query(
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
    await this.#db.runWrite('setApplied', async () => {
      await this.#db.pool.query(
        `INSERT INTO tower_revisions (fleet, applied_revision, applied_at) VALUES ($1, $2, $3)
         ON CONFLICT (fleet) DO UPDATE SET applied_revision = EXCLUDED.applied_revision, applied_at = EXCLUDED.applied_at, updated_at = now()`,
        [fleet, a.revision, a.at],
      );
    });
  }

  async revisions(fleet: string): Promise<RevisionState> {
    return this.#db.run('revisions', async () => {
      const { rows } = await this.#db.pool.query<RevisionsRow>(`SELECT ${REVISIONS_COLUMNS} FROM tower_revisions WHERE fleet = $1`, [fleet]);
      return rowToRevisions(rows[0]);
    });
  }

  /** Ends the pool; waits for queries in flight. Idempotent. */
  close(): Promise<void> {
    return this.#db.close();
  }
}

function notFound(id: string): StoreError {
  return new StoreError('NotFound', `no rollout with id ${JSON.stringify(id)}`);
}

export function openPostgresStore(options: PostgresStoreOptions): PostgresStore {
  return new PostgresStore(options);
}
