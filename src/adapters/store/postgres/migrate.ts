/**
 * Brings the PostgreSQL schema up to date: the numbered migrations of migrations/index.ts,
 * recorded in tower_migrations, all applied in one transaction that first takes a
 * transaction-scoped advisory lock, so two daemons starting at once serialize: the second
 * finds the work done.
 */
import { StoreError, type StoreLog } from '../common.js';
import { MIGRATIONS } from '../migrations/index.js';
import type { PgConnection } from './connection.js';

// 'tower' in ASCII: the advisory lock every Tower takes to migrate.
const MIGRATION_LOCK = '500152609138';
const MIGRATION_TIMEOUT = '60s';

/** Nothing on a read-only connection. */
export async function migrateSchema(db: PgConnection, log: StoreLog): Promise<void> {
  if (db.readOnly) return;
  await db.tx('migrate', async (c) => {
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
      log.info({ version: m.version, name: m.name, database: db.location }, 'postgres: applied migration');
    }
  });
}
