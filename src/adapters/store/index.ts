/**
 * Opens the daemon's StateStore: PostgreSQL when a database URL is given (the composition
 * root passes DATABASE_URL), otherwise the embedded store in `dir`. The caller runs
 * migrate() once before use, and close() on shutdown.
 */
import type { StateStore } from '../../engine/ports.js';
import type { Retention, StoreLog } from './common.js';
import { openEmbeddedStore } from './embedded.js';
import { openPostgresStore } from './postgres.js';

export { StoreError, type Retention, type StoreErrorReason, type StoreLog } from './common.js';

export interface OpenStoreOptions {
  /** postgres://…; empty or absent: the embedded store. */
  databaseUrl?: string | undefined;
  /** The embedded store's directory (unused with PostgreSQL). */
  dir: string;
  log?: StoreLog;
  retention?: Partial<Retention>;
  /** Reads only, beside a daemon that writes (e.g. `tower status`): no lock, writes refused. */
  readOnly?: boolean;
}

/** A StateStore and where it keeps its data (a directory, or the database URL without its password). */
export type OpenedStore = StateStore & { readonly location: string };

export async function openStore(options: OpenStoreOptions): Promise<OpenedStore> {
  const url = options.databaseUrl?.trim();
  const common = { log: options.log, retention: options.retention, readOnly: options.readOnly };
  if (url) return openPostgresStore({ url, ...common });
  return openEmbeddedStore({ dir: options.dir, ...common });
}
