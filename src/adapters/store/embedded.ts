/**
 * The embedded StateStore: the default, for a daemon without a database server.
 *
 * Why an append-only JSON-lines log (and not SQLite, PGlite, LevelDB…):
 * - no server and no native module: node:sqlite does not exist in Node 20, better-sqlite3
 *   and leveldown need a compiler or prebuilt binaries, PGlite costs ~2 s and ~700 MiB RSS
 *   against a daemon budget of 150 MiB. The data is small (a journal of a few instances,
 *   bounded history), so it fits in memory and a log replayed on open is enough;
 * - crash safety is easy to argue: a write is one appended line, acknowledged only after
 *   write + fdatasync of the file (its directory entry was fsync'd when it was created).
 *   kill -9 can only leave a torn last line, which open detects (no newline, or not JSON),
 *   ignores with a warning and truncates, so the next append does not glue onto it.
 *   A damaged line with intact lines after it cannot come from a crash (appends are
 *   sequential), so open refuses with Corrupt rather than silently dropping acknowledged data;
 * - group commit: writes arriving while a flush is in progress go out together in one
 *   write + fdatasync, so Promise.all of many writes costs a few syncs, and the event loop
 *   is never blocked on the disk;
 * - compaction: when the log grows past max(compactBytes, snapshot size) the in-memory state
 *   is written as a snapshot (tmp + fsync + rename + fsync dir) and the log is truncated.
 *   Every record carries a sequence number and the snapshot the last one it includes, so a
 *   crash between rename and truncate replays nothing twice. Retention (finished rollouts
 *   and audit entries per fleet) is applied as records are applied, so memory, snapshot and
 *   replay agree and stay bounded;
 * - one writer: an exclusive lock file (O_EXCL, with pid and the process's start time);
 *   a lock whose process is gone (or is a zombie, or is another process that got the same
 *   pid, e.g. pid 1 in a restarted container) is taken over.
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
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, realpathSync, rmSync, truncateSync, writeSync } from 'node:fs';
import { open, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
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

export const LOG_FILE = 'store.log';
export const SNAPSHOT_FILE = 'store.snapshot.json';
export const LOCK_FILE = 'store.lock';
const FORMAT = 1;

type Attempted = NonNullable<RevisionState['attempted']>;
type Applied = NonNullable<RevisionState['applied']>;

/** One line of the log. */
type LogRecord = { seq: number } & (
  | { type: 'rollout.begin'; rollout: RolloutRecord }
  | { type: 'rollout.state'; id: string; instance: string; state: unknown }
  | { type: 'rollout.history'; id: string; instance: string; history: InstanceHistory }
  | { type: 'rollout.finish'; id: string; outcome: RolloutOutcome; finishedAt: string; error?: string }
  | { type: 'audit'; entry: AuditEntry }
  | { type: 'revision.attempted'; fleet: string; attempted: Attempted }
  | { type: 'revision.applied'; fleet: string; applied: Applied }
);

/** Distributes Omit over the union, so that each variant keeps its own fields. */
type Unsequenced<T> = T extends unknown ? Omit<T, 'seq'> : never;

interface Snapshot {
  format: number;
  seq: number;
  rollouts: { seq: number; record: RolloutRecord }[];
  journal: [string, [string, unknown][]][];
  audit: { seq: number; entry: AuditEntry }[];
  revisions: [string, RevisionState][];
}

interface StoredRollout {
  seq: number;
  record: RolloutRecord;
}

interface StoredAudit {
  seq: number;
  entry: AuditEntry;
}

const newestRolloutFirst = (a: StoredRollout, b: StoredRollout) => (a.record.startedAt < b.record.startedAt ? 1 : a.record.startedAt > b.record.startedAt ? -1 : b.seq - a.seq);
const oldestAuditFirst = (a: StoredAudit, b: StoredAudit) => (a.entry.at < b.entry.at ? -1 : a.entry.at > b.entry.at ? 1 : a.seq - b.seq);

/** The whole state in memory; apply() is the only way it changes, live and on replay. */
class Memory {
  seq = 0;
  readonly rollouts = new Map<string, StoredRollout>();
  readonly byFleet = new Map<string, Set<string>>();
  readonly journal = new Map<string, Map<string, unknown>>();
  /** Per fleet, oldest first by (at, seq), so that the usual append is a push. */
  readonly audit = new Map<string, StoredAudit[]>();
  readonly revisions = new Map<string, RevisionState>();

  constructor(private readonly retention: Retention) {}

  apply(rec: LogRecord): void {
    this.seq = rec.seq;
    switch (rec.type) {
      case 'rollout.begin':
        this.addRollout(rec.seq, rec.rollout);
        return;
      case 'rollout.state': {
        if (!this.rollouts.has(rec.id)) return;
        let states = this.journal.get(rec.id);
        if (!states) this.journal.set(rec.id, (states = new Map()));
        states.set(rec.instance, rec.state);
        return;
      }
      case 'rollout.history': {
        const r = this.rollouts.get(rec.id)?.record;
        if (!r) return;
        r.instances ??= {};
        setKey(r.instances, rec.instance, rec.history);
        return;
      }
      case 'rollout.finish': {
        const r = this.rollouts.get(rec.id)?.record;
        if (!r) return;
        r.outcome = rec.outcome;
        r.finishedAt = rec.finishedAt;
        if (rec.error === undefined) delete r.error;
        else r.error = rec.error;
        // The journal only serves to resume a running rollout.
        this.journal.delete(rec.id);
        this.pruneRollouts(r.fleet);
        return;
      }
      case 'audit':
        this.addAudit(rec.seq, rec.entry);
        return;
      case 'revision.attempted':
        this.revisions.set(rec.fleet, { ...this.revisions.get(rec.fleet), attempted: rec.attempted });
        return;
      case 'revision.applied':
        this.revisions.set(rec.fleet, { ...this.revisions.get(rec.fleet), applied: rec.applied });
        return;
      default:
        throw new StoreError('Incompatible', `unknown record type ${JSON.stringify((rec as { type?: unknown }).type)}: written by a newer Tower?`);
    }
  }

  addRollout(seq: number, record: RolloutRecord): void {
    this.rollouts.set(record.id, { seq, record });
    let ids = this.byFleet.get(record.fleet);
    if (!ids) this.byFleet.set(record.fleet, (ids = new Set()));
    ids.add(record.id);
  }

  addAudit(seq: number, entry: AuditEntry): void {
    let list = this.audit.get(entry.fleet);
    if (!list) this.audit.set(entry.fleet, (list = []));
    const item = { seq, entry };
    let i = list.length;
    // Entries usually come in time order; walk back only past newer ones (bounded by the list).
    while (i > 0 && oldestAuditFirst(list[i - 1]!, item) > 0) i--;
    list.splice(i, 0, item);
    if (list.length > this.retention.audit) list.splice(0, list.length - this.retention.audit);
  }

  fleetRollouts(fleet: string): StoredRollout[] {
    const out: StoredRollout[] = [];
    for (const id of this.byFleet.get(fleet) ?? []) {
      const r = this.rollouts.get(id);
      if (r) out.push(r);
    }
    return out.sort(newestRolloutFirst);
  }

  private pruneRollouts(fleet: string): void {
    const finished = this.fleetRollouts(fleet).filter((r) => r.record.outcome !== 'running');
    for (const old of finished.slice(this.retention.rollouts)) {
      this.rollouts.delete(old.record.id);
      this.byFleet.get(fleet)?.delete(old.record.id);
      this.journal.delete(old.record.id);
    }
  }

  snapshot(): Snapshot {
    const audit: StoredAudit[] = [];
    for (const list of this.audit.values()) audit.push(...list);
    return {
      format: FORMAT,
      seq: this.seq,
      rollouts: [...this.rollouts.values()].sort((a, b) => a.seq - b.seq),
      journal: [...this.journal].map(([id, states]) => [id, [...states]]),
      audit,
      revisions: [...this.revisions],
    };
  }

  load(s: Snapshot): void {
    this.seq = s.seq;
    for (const r of s.rollouts) this.addRollout(r.seq, r.record);
    for (const [id, states] of s.journal) this.journal.set(id, new Map(states));
    for (const a of s.audit) this.addAudit(a.seq, a.entry);
    for (const [fleet, rev] of s.revisions) this.revisions.set(fleet, rev);
  }
}

interface Pending {
  line: string;
  resolve: () => void;
  reject: (err: Error) => void;
}

// Store directories open in this process (by real path): a second open here is refused,
// while a lock file carrying our own pid but not listed here is a previous life's, e.g.
// pid 1 in a restarted container.
const OPEN_DIRS = new Set<string>();

export class EmbeddedStore implements StateStore {
  readonly kind = 'embedded' as const;
  readonly location: string;
  readonly #dir: string;
  readonly #log: StoreLog;
  readonly #mem: Memory;
  readonly #compactBytes: number;
  readonly #lock: Lock | undefined;
  /** Absent when read-only. */
  readonly #fh: FileHandle | undefined;
  #logBytes: number;
  #snapshotBytes: number;
  #nextCompactAt = 0;
  #queue: Pending[] = [];
  #flushing: Promise<void> | undefined;
  #failed: StoreError | undefined;
  #closed = false;

  /** Use openEmbeddedStore(). */
  private constructor(init: { dir: string; log: StoreLog; mem: Memory; compactBytes: number; lock?: Lock; fh?: FileHandle; logBytes: number; snapshotBytes: number }) {
    this.#dir = init.dir;
    this.location = init.dir;
    this.#log = init.log;
    this.#mem = init.mem;
    this.#compactBytes = init.compactBytes;
    this.#lock = init.lock;
    this.#fh = init.fh;
    this.#logBytes = init.logBytes;
    this.#snapshotBytes = init.snapshotBytes;
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
      const snapshotBytes = loadSnapshot(join(dir, SNAPSHOT_FILE), mem);
      const logBytes = replayLog(join(dir, LOG_FILE), logBuf, mem, undefined);
      return new EmbeddedStore({ dir, log, mem, compactBytes, logBytes, snapshotBytes });
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
      return new EmbeddedStore({ dir, log, mem, compactBytes, lock, fh, logBytes, snapshotBytes });
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
    // Each round waits for the flush in progress; the queue is closed to new writes.
    for (let round = 0; round < 1000 && this.#flushing; round++) await this.#flushing;
    try {
      await this.#fh?.close();
    } finally {
      this.#lock?.release();
    }
  }

  #usable(write = false): void {
    if (this.#closed) throw new StoreError('Closed', `the embedded store in ${this.#dir} is closed`);
    if (this.#failed) throw this.#failed;
    if (write && !this.#fh) throw new StoreError('Invalid', `the embedded store in ${this.#dir} was opened read-only`);
  }

  #known(rolloutId: string): void {
    if (!this.#mem.rollouts.has(rolloutId)) throw new StoreError('NotFound', `no rollout with id ${JSON.stringify(rolloutId)}`);
  }

  /** Applies the record to memory and resolves once its line is on disk. */
  #write(body: Unsequenced<LogRecord>): Promise<void> {
    const rec = { seq: this.#mem.seq + 1, ...body } as LogRecord;
    const line = JSON.stringify(rec) + '\n';
    this.#mem.apply(rec);
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ line, resolve, reject });
      this.#kick();
    });
  }

  #kick(): void {
    if (this.#flushing) return;
    this.#flushing = this.#drain().finally(() => {
      this.#flushing = undefined;
      // A write queued between the drain's last look and now would otherwise wait forever.
      if (this.#queue.length > 0) this.#kick();
    });
  }

  /** Group commit: everything queued goes out in one write + fdatasync, until the queue is empty. */
  async #drain(): Promise<void> {
    const fh = this.#fh;
    if (!fh) return; // read-only: #usable() let no write in
    // Ends when the queue is empty; each round takes everything queued so far.
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#queue.length);
      if (this.#failed) {
        for (const p of batch) p.reject(this.#failed);
        continue;
      }
      try {
        const buf = Buffer.from(batch.map((p) => p.line).join(''), 'utf8');
        await writeFully(fh, buf);
        await fh.datasync();
        this.#logBytes += buf.length;
      } catch (err) {
        this.#failed = ioError(`the embedded store could not write ${join(this.#dir, LOG_FILE)}; it accepts no more calls — restart Tower`, err);
        this.#log.warn({ err: this.#failed.message }, 'state store failed');
        for (const p of batch) p.reject(this.#failed);
        continue;
      }
      for (const p of batch) p.resolve();
      if (this.#logBytes >= Math.max(this.#compactBytes, this.#snapshotBytes, this.#nextCompactAt)) await this.#compact(fh);
    }
  }

  /** Snapshot of memory (tmp + fsync + rename + fsync dir), then an empty log. */
  async #compact(fh: FileHandle): Promise<void> {
    const started = Date.now();
    // Captured synchronously: memory includes queued records, whose seq the snapshot then covers.
    const text = JSON.stringify(this.#mem.snapshot());
    const file = join(this.#dir, SNAPSHOT_FILE);
    const tmp = `${file}.tmp`;
    try {
      await writeFile(tmp, text, { mode: 0o600 });
      const h = await open(tmp, 'r');
      try {
        await h.sync();
      } finally {
        await h.close();
      }
      await rename(tmp, file);
      const d = await open(this.#dir, 'r');
      try {
        await d.sync();
      } finally {
        await d.close();
      }
    } catch (err) {
      // The log is intact: keep appending, try again when it has doubled.
      this.#nextCompactAt = this.#logBytes * 2;
      await rm(tmp, { force: true }).catch(() => undefined);
      this.#log.warn({ err: (err as Error).message, dir: this.#dir }, 'state store compaction failed; the log keeps growing');
      return;
    }
    try {
      // Records now in the log have seq <= the snapshot's: replay would skip them anyway.
      await fh.truncate(0);
      await fh.datasync();
    } catch (err) {
      this.#failed = ioError(`the embedded store could not truncate ${join(this.#dir, LOG_FILE)} after a snapshot; restart Tower`, err);
      this.#log.warn({ err: this.#failed.message }, 'state store failed');
      return;
    }
    const before = this.#logBytes;
    this.#logBytes = 0;
    this.#nextCompactAt = 0;
    this.#snapshotBytes = Buffer.byteLength(text);
    this.#log.info({ dir: this.#dir, logBytes: before, snapshotBytes: this.#snapshotBytes, ms: Date.now() - started }, 'state store compacted');
  }
}

export function openEmbeddedStore(options: EmbeddedStoreOptions): Promise<EmbeddedStore> {
  return EmbeddedStore.open(options);
}

async function writeFully(fh: FileHandle, buf: Buffer): Promise<void> {
  let off = 0;
  // A short write is continued at the (O_APPEND) end; a write that makes no progress is an error.
  for (let attempt = 0; off < buf.length; attempt++) {
    if (attempt >= 64) throw new Error(`short writes: ${off} of ${buf.length} bytes after ${attempt} attempts`);
    const { bytesWritten } = await fh.write(buf, off, buf.length - off);
    off += bytesWritten;
  }
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function ioError(what: string, err: unknown): StoreError {
  const e = err as NodeJS.ErrnoException;
  return new StoreError('Failed', `${what}: ${e.message}`, e.code);
}

function loadSnapshot(file: string, mem: Memory): number {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw ioError(`cannot read ${file}`, err);
  }
  let s: Snapshot;
  try {
    s = JSON.parse(text) as Snapshot;
  } catch (err) {
    // Written atomically, so never torn: damage means the disk or a person changed it.
    throw new StoreError('Corrupt', `the snapshot ${file} is not valid JSON (${(err as Error).message}); restore it from a backup or move the store directory aside`);
  }
  if (typeof s !== 'object' || s === null || typeof s.format !== 'number') throw new StoreError('Corrupt', `the snapshot ${file} has no format number`);
  if (s.format > FORMAT) throw new StoreError('Incompatible', `the snapshot ${file} has format ${s.format}; this Tower reads format ${FORMAT} — upgrade Tower`);
  mem.load(s);
  return Buffer.byteLength(text);
}

function readLog(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return Buffer.alloc(0);
    throw ioError(`cannot read ${file}`, err);
  }
}

/**
 * Applies the log's records after the snapshot's seq. A damaged tail (a crash mid-append) is
 * dropped with a warning and cut off the file; damage followed by intact records is Corrupt.
 * Without a log (read-only) the tail is only skipped: a writer may be appending it right now.
 * Returns the size of the log as kept.
 */
function replayLog(file: string, buf: Buffer, mem: Memory, log: StoreLog | undefined): number {
  let start = 0;
  let line = 0;
  let bad: { offset: number; line: number; why: string } | undefined;
  let lastSeq = mem.seq;
  // Bounded: every round moves start forward past one newline, or ends.
  while (start < buf.length) {
    line++;
    const nl = buf.indexOf(0x0a, start);
    if (nl === -1) {
      bad ??= { offset: start, line, why: 'it has no newline (a write cut short)' };
      break;
    }
    const rec = parseRecord(buf.toString('utf8', start, nl));
    if (!rec) {
      bad ??= { offset: start, line, why: 'it is not a JSON record' };
    } else if (bad) {
      throw new StoreError(
        'Corrupt',
        `the store log ${file} is damaged at line ${bad.line} (byte ${bad.offset}: ${bad.why}), but line ${line} after it is intact — ` +
          'that is not a write cut short by a crash, and Tower will not drop records it acknowledged. Repair or remove the damaged line, or move the store directory aside.',
      );
    } else if (rec.seq > mem.seq) {
      if (rec.seq !== lastSeq + 1) log?.warn({ file, line, expected: lastSeq + 1, seq: rec.seq }, 'state store log skips sequence numbers');
      lastSeq = rec.seq;
      mem.apply(rec);
    }
    start = nl + 1;
  }
  if (!bad) return buf.length;
  if (!log) return bad.offset;
  log.warn({ file, line: bad.line, offset: bad.offset, droppedBytes: buf.length - bad.offset }, `state store: ignoring a torn last record (${bad.why}); it was never acknowledged`);
  try {
    // Cut it off, or the next append would be glued onto it and lost on the next replay.
    truncateSync(file, bad.offset);
    const fd = openSync(file, 'r+');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    throw ioError(`cannot truncate the torn tail of ${file}`, err);
  }
  return bad.offset;
}

function parseRecord(text: string): LogRecord | undefined {
  try {
    const rec = JSON.parse(text) as unknown;
    if (typeof rec === 'object' && rec !== null && typeof (rec as LogRecord).seq === 'number' && typeof (rec as LogRecord).type === 'string') return rec as LogRecord;
  } catch {
    // a torn or damaged line: the caller decides what it means
  }
  return undefined;
}

// ---- the lock ----

interface LockOwner {
  pid: number;
  /** The process's start time (clock ticks since boot, /proc/PID/stat field 22), to tell PID reuse. */
  start?: string;
  since: string;
  token: string;
}

interface Lock {
  release(): void;
}

function procStat(pid: number): { state: string; start: string } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0] ?? '', start: fields[19] ?? '' };
  } catch {
    return undefined;
  }
}

function ownerAlive(owner: LockOwner): boolean {
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = procStat(owner.pid);
  if (!stat) return true; // no /proc: trust kill(0)
  if (stat.state === 'Z') return false;
  return owner.start === undefined || owner.start === stat.start;
}

function takeLock(dir: string, log: StoreLog): Lock {
  const file = join(dir, LOCK_FILE);
  if (OPEN_DIRS.has(dir)) throw new StoreError('Locked', `the embedded store in ${dir} is already open in this process (pid ${process.pid}); close it first`);
  const me: LockOwner = { pid: process.pid, since: new Date().toISOString(), token: randomBytes(8).toString('hex') };
  const start = procStat(process.pid)?.start;
  if (start) me.start = start;
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(`cannot create the lock ${file}`, err);
      let owner: LockOwner | undefined;
      try {
        owner = JSON.parse(readFileSync(file, 'utf8')) as LockOwner;
      } catch {
        // empty or half-written: its writer died between create and write
      }
      if (owner && typeof owner.pid === 'number' && owner.pid !== process.pid && ownerAlive(owner)) {
        throw new StoreError(
          'Locked',
          `the embedded store in ${dir} is open by another process (pid ${owner.pid}, since ${owner.since}); only one Tower may write a store directory — ` +
            'stop that one, give this one its own directory, or share state through PostgreSQL (DATABASE_URL)',
        );
      }
      log.warn({ file, pid: owner?.pid, since: owner?.since }, 'state store: taking over a lock whose process is gone');
      rmSync(file, { force: true });
      continue;
    }
    try {
      writeSync(fd, JSON.stringify(me));
    } finally {
      closeSync(fd);
    }
    OPEN_DIRS.add(dir);
    let released = false;
    return {
      release() {
        if (released) return;
        released = true;
        OPEN_DIRS.delete(dir);
        try {
          // Only our own lock: never one a later process took over.
          if ((JSON.parse(readFileSync(file, 'utf8')) as LockOwner).token === me.token) rmSync(file, { force: true });
        } catch {
          // gone already
        }
      },
    };
  }
  throw new StoreError('Locked', `cannot take the lock ${file}: other processes keep taking it`);
}
