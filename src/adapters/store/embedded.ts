/**
 * The embedded StateStore: the default, for a daemon without a database server.
 *
 * Why an append-only JSON-lines log (and not SQLite, PGlite, LevelDB…):
 * - no server and no native module: node:sqlite does not exist in Node 20, better-sqlite3
 *   and leveldown need a compiler or prebuilt binaries, PGlite costs ~2 s and ~700 MiB RSS
 *   against a daemon budget of 150 MiB. The data is small (a journal of a few instances,
 *   bounded history), so it fits in memory and a log replayed on open is enough;
 * - crash safety is easy to argue, and writes are cheap: see embedded/log.ts (one appended
 *   line per write, fdatasync before it is acknowledged, group commit, torn last lines);
 * - bounded: embedded/compaction.ts snapshots memory and truncates the log, embedded/model.ts
 *   applies retention as records are applied;
 * - one writer: embedded/lock.ts.
 *
 * A read-only open takes no lock: it reads the log before the snapshot, so that a compaction
 * in between still gives a consistent (at worst slightly older) state.
 *
 * One log for all fleets (not one per fleet): a daemon usually runs one fleet, getRollout()
 * looks up by id alone, and one file means one lock, one fd and one fsync per batch.
 *
 * Memory is applied when a write is queued, before it is durable: reads in this process see
 * it at once, and a crash loses memory and unacknowledged writes together. If a write or
 * sync fails, the store refuses every later call (the log and memory may disagree): the
 * daemon should exit and reopen, as PostgreSQL does after a failed fsync.
 */
import { existsSync, mkdirSync, realpathSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
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
  setKey,
  silentLog,
  StoreError,
  type Retention,
  type StoreLog,
} from './common.js';
import { Compaction, loadSnapshot } from './embedded/compaction.js';
import { fsyncDir, ioError, LOG_FILE, SNAPSHOT_FILE } from './embedded/files.js';
import { takeLock, type Lock } from './embedded/lock.js';
import { AppendLog, readLog, replayLog } from './embedded/log.js';
import { Memory, type Applied, type Attempted, type LogRecord, type Unsequenced } from './embedded/model.js';

export { LOCK_FILE, LOG_FILE, SNAPSHOT_FILE } from './embedded/files.js';

export interface EmbeddedStoreOptions {
  /** The store's directory (created 0700). Only one process may have it open. */
  dir: string;
  log?: StoreLog;
  retention?: Partial<Retention>;
  /** Compact when the log is larger than this and than the last snapshot. Default 1 MiB. */
  compactBytes?: number;
  /**
   * Read the state as it is now, without the lock, while a daemon may be writing (e.g. for
   * `tower status`). Writes are refused; the state is not refreshed after open.
   */
  readOnly?: boolean;
}

export class EmbeddedStore implements StateStore {
  readonly kind = 'embedded' as const;
  readonly location: string;
  readonly #dir: string;
  readonly #mem: Memory;
  readonly #lock: Lock | undefined;
  /** Absent when read-only. */
  readonly #appendLog: AppendLog | undefined;
  #closed = false;

  /** Use openEmbeddedStore(). */
  private constructor(init: { dir: string; mem: Memory; lock?: Lock; appendLog?: AppendLog }) {
    this.#dir = init.dir;
    this.location = init.dir;
    this.#mem = init.mem;
    this.#lock = init.lock;
    this.#appendLog = init.appendLog;
  }

  static async open(options: EmbeddedStoreOptions): Promise<EmbeddedStore> {
    const log = options.log ?? silentLog;
    const retention = retentionFrom(options.retention);
    const compactBytes = options.compactBytes ?? 1024 * 1024;
    if (options.readOnly) {
      // A directory nobody wrote yet reads as an empty store.
      const dir = existsSync(options.dir) ? realpathSync(options.dir) : options.dir;
      const mem = new Memory(retention);
      // The log first: see the header.
      const logBuf = readLog(join(dir, LOG_FILE));
      loadSnapshot(join(dir, SNAPSHOT_FILE), mem);
      replayLog(join(dir, LOG_FILE), logBuf, mem, undefined);
      return new EmbeddedStore({ dir, mem });
    }
    try {
      mkdirSync(options.dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw ioError(`cannot create the store directory ${options.dir}`, err);
    }
    const dir = realpathSync(options.dir);
    const lock = takeLock(dir, log);
    try {
      const mem = new Memory(retention);
      rmSync(join(dir, `${SNAPSHOT_FILE}.tmp`), { force: true });
      const logBuf = readLog(join(dir, LOG_FILE));
      const snapshotBytes = loadSnapshot(join(dir, SNAPSHOT_FILE), mem);
      const logBytes = replayLog(join(dir, LOG_FILE), logBuf, mem, log);
      const created = !existsSync(join(dir, LOG_FILE));
      const fh = await open(join(dir, LOG_FILE), 'a', 0o600);
      // A new file's directory entry must be durable before the first write is acknowledged.
      if (created) fsyncDir(dir);
      const compaction = new Compaction({ dir, mem, log, compactBytes, snapshotBytes });
      const appendLog = new AppendLog({ fh, file: join(dir, LOG_FILE), log, bytes: logBytes, afterBatch: (a) => compaction.afterBatch(a) });
      return new EmbeddedStore({ dir, mem, lock, appendLog });
    } catch (err) {
      lock.release();
      if (err instanceof StoreError) throw err;
      throw ioError(`cannot open the embedded store in ${dir}`, err);
    }
  }

  /** The schema lives in code and the format is checked on open: nothing to do. */
  async migrate(): Promise<void> {
    this.#usable();
  }

  async beginRollout(rollout: Omit<RolloutRecord, 'outcome' | 'finishedAt'>): Promise<void> {
    this.#usable(true);
    const { record } = normalizeBegin(rollout);
    if (this.#mem.rollouts.has(record.id)) throw new StoreError('Conflict', `a rollout with id ${record.id} exists`);
    return this.#write({ type: 'rollout.begin', rollout: record });
  }

  async saveInstanceState(rolloutId: string, instance: string, state: unknown): Promise<void> {
    this.#usable(true);
    this.#known(rolloutId);
    const { value } = normalizeState(state);
    return this.#write({ type: 'rollout.state', id: rolloutId, instance: checkName(instance, 'instance'), state: value });
  }

  async saveInstanceHistory(rolloutId: string, instance: string, history: InstanceHistory): Promise<void> {
    this.#usable(true);
    this.#known(rolloutId);
    const { value } = normalizeHistory(history);
    return this.#write({ type: 'rollout.history', id: rolloutId, instance: checkName(instance, 'instance'), history: value });
  }

  async finishRollout(rolloutId: string, outcome: RolloutOutcome, finishedAt: string, error?: string): Promise<void> {
    this.#usable(true);
    this.#known(rolloutId);
    return this.#write({ type: 'rollout.finish', id: rolloutId, ...normalizeFinish(outcome, finishedAt, error) });
  }

  async openRollout(fleet: string): Promise<{ rollout: RolloutRecord; states: Record<string, unknown> } | undefined> {
    this.#usable();
    const running = this.#mem.fleetRollouts(fleet).find((r) => r.record.outcome === 'running');
    if (!running) return undefined;
    const states: Record<string, unknown> = {};
    for (const [instance, state] of this.#mem.journal.get(running.record.id) ?? []) setKey(states, instance, structuredClone(state));
    return { rollout: structuredClone(running.record), states };
  }

  async history(fleet: string, limit: number): Promise<RolloutRecord[]> {
    this.#usable();
    return this.#mem
      .fleetRollouts(fleet)
      .slice(0, checkLimit(limit))
      .map((r) => structuredClone(r.record));
  }

  async getRollout(id: string): Promise<RolloutRecord | undefined> {
    this.#usable();
    const r = this.#mem.rollouts.get(id);
    return r && structuredClone(r.record);
  }

  async audit(entry: AuditEntry): Promise<void> {
    this.#usable(true);
    return this.#write({ type: 'audit', entry: normalizeAudit(entry).value });
  }

  async auditTrail(fleet: string, limit: number): Promise<AuditEntry[]> {
    this.#usable();
    const list = this.#mem.audit.get(fleet) ?? [];
    const n = Math.min(list.length, checkLimit(limit));
    const out: AuditEntry[] = [];
    for (let i = list.length - 1; i >= list.length - n; i--) out.push(structuredClone(list[i]!.entry));
    return out;
  }

  async setAttempted(fleet: string, attempted: Attempted): Promise<void> {
    this.#usable(true);
    return this.#write({ type: 'revision.attempted', fleet: checkName(fleet, 'fleet'), attempted: normalizeAttempted(attempted) });
  }

  async setApplied(fleet: string, applied: Applied): Promise<void> {
    this.#usable(true);
    return this.#write({ type: 'revision.applied', fleet: checkName(fleet, 'fleet'), applied: normalizeApplied(applied) });
  }

  async revisions(fleet: string): Promise<RevisionState> {
    this.#usable();
    return structuredClone(this.#mem.revisions.get(fleet) ?? {});
  }

  /** Waits for queued writes, closes the log and releases the lock. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#appendLog?.close();
    } finally {
      this.#lock?.release();
    }
  }

  #usable(write = false): void {
    if (this.#closed) throw new StoreError('Closed', `the embedded store in ${this.#dir} is closed`);
    const failed = this.#appendLog?.failed;
    if (failed) throw failed;
    if (write && !this.#appendLog) throw new StoreError('Invalid', `the embedded store in ${this.#dir} was opened read-only`);
  }

  #known(rolloutId: string): void {
    if (!this.#mem.rollouts.has(rolloutId)) throw new StoreError('NotFound', `no rollout with id ${JSON.stringify(rolloutId)}`);
  }

  /** Applies the record to memory and resolves once its line is on disk. */
  #write(body: Unsequenced<LogRecord>): Promise<void> {
    const rec = { seq: this.#mem.seq + 1, ...body } as LogRecord;
    const line = JSON.stringify(rec) + '\n';
    this.#mem.apply(rec);
    // #usable(true) let no write in when read-only.
    return this.#appendLog!.append(line);
  }
}

export function openEmbeddedStore(options: EmbeddedStoreOptions): Promise<EmbeddedStore> {
  return EmbeddedStore.open(options);
}
