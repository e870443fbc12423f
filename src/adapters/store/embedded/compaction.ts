/**
 * The embedded store's snapshot: read on open, written by compaction.
 *
 * When the log grows past max(compactBytes, snapshot size) the in-memory state is written as
 * a snapshot (tmp + fsync + rename + fsync dir) and the log is truncated. Every record
 * carries a sequence number and the snapshot the last one it includes, so a crash between
 * rename and truncate replays nothing twice. A snapshot is written atomically, so it is never
 * torn: damage means the disk or a person changed it, and open refuses with Corrupt.
 */
import { readFileSync } from 'node:fs';
import { open, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StoreError, type StoreLog } from '../common.js';
import { ioError, LOG_FILE, SNAPSHOT_FILE } from './files.js';
import type { AppendLog } from './log.js';
import { FORMAT, type Memory, type Snapshot } from './model.js';

/** Loads the snapshot in file (if any) into mem; returns its size. */
export function loadSnapshot(file: string, mem: Memory): number {
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

/** Decides when the log is worth compacting, and compacts it. */
export class Compaction {
  readonly #dir: string;
  readonly #mem: Memory;
  readonly #log: StoreLog;
  readonly #compactBytes: number;
  #snapshotBytes: number;
  #nextCompactAt = 0;

  constructor(init: { dir: string; mem: Memory; log: StoreLog; compactBytes: number; snapshotBytes: number }) {
    this.#dir = init.dir;
    this.#mem = init.mem;
    this.#log = init.log;
    this.#compactBytes = init.compactBytes;
    this.#snapshotBytes = init.snapshotBytes;
  }

  /** After each batch written: compacts when the log has outgrown the threshold. */
  async afterBatch(appendLog: AppendLog): Promise<void> {
    if (appendLog.bytes >= Math.max(this.#compactBytes, this.#snapshotBytes, this.#nextCompactAt)) await this.#compact(appendLog);
  }

  /** Snapshot of memory (tmp + fsync + rename + fsync dir), then an empty log. */
  async #compact(appendLog: AppendLog): Promise<void> {
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
      this.#nextCompactAt = appendLog.bytes * 2;
      await rm(tmp, { force: true }).catch(() => undefined);
      this.#log.warn({ err: (err as Error).message, dir: this.#dir }, 'state store compaction failed; the log keeps growing');
      return;
    }
    const before = appendLog.bytes;
    try {
      // Records now in the log have seq <= the snapshot's: replay would skip them anyway.
      await appendLog.truncate();
    } catch (err) {
      appendLog.fail(ioError(`the embedded store could not truncate ${join(this.#dir, LOG_FILE)} after a snapshot; restart Tower`, err));
      return;
    }
    this.#nextCompactAt = 0;
    this.#snapshotBytes = Buffer.byteLength(text);
    this.#log.info({ dir: this.#dir, logBytes: before, snapshotBytes: this.#snapshotBytes, ms: Date.now() - started }, 'state store compacted');
  }
}
