/**
 * The embedded store's append-only log: one JSON record per line, written with group commit
 * and replayed on open.
 *
 * - Crash safety is easy to argue: a write is one appended line, acknowledged only after
 *   write + fdatasync of the file (its directory entry was fsync'd when it was created).
 *   kill -9 can only leave a torn last line, which replay detects (no newline, or not JSON),
 *   ignores with a warning and truncates, so the next append does not glue onto it.
 *   A damaged line with intact lines after it cannot come from a crash (appends are
 *   sequential), so replay refuses with Corrupt rather than silently dropping acknowledged data.
 * - Group commit: writes arriving while a flush is in progress go out together in one
 *   write + fdatasync, so Promise.all of many writes costs a few syncs, and the event loop
 *   is never blocked on the disk.
 * - If a write or sync fails, the log refuses every later append (the log and memory may
 *   disagree): the daemon should exit and reopen, as PostgreSQL does after a failed fsync.
 */
import { closeSync, fsyncSync, openSync, readFileSync, truncateSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { StoreError, type StoreLog } from '../common.js';
import { ioError } from './files.js';
import type { LogRecord, Memory } from './model.js';

interface Pending {
  line: string;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** The open log file of a writable store: appends lines with group commit. */
export class AppendLog {
  readonly #fh: FileHandle;
  readonly #file: string;
  readonly #log: StoreLog;
  /** Runs after each batch is on disk, inside the flush (compaction: later writes wait for it). */
  readonly #afterBatch: (appendLog: AppendLog) => Promise<void>;
  #bytes: number;
  #queue: Pending[] = [];
  #flushing: Promise<void> | undefined;
  #failed: StoreError | undefined;

  constructor(init: { fh: FileHandle; file: string; log: StoreLog; bytes: number; afterBatch: (appendLog: AppendLog) => Promise<void> }) {
    this.#fh = init.fh;
    this.#file = init.file;
    this.#log = init.log;
    this.#bytes = init.bytes;
    this.#afterBatch = init.afterBatch;
  }

  /** The size of the log file. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Set once a write, a sync or a truncate failed: every later call gets it. */
  get failed(): StoreError | undefined {
    return this.#failed;
  }

  /** Refuses every later append with err, and logs it once. */
  fail(err: StoreError): void {
    this.#failed = err;
    this.#log.warn({ err: err.message }, 'state store failed');
  }

  /** Resolves once the line is on disk. */
  append(line: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ line, resolve, reject });
      this.#kick();
    });
  }

  /** Empties the log (after a snapshot took in everything it holds). */
  async truncate(): Promise<void> {
    await this.#fh.truncate(0);
    await this.#fh.datasync();
    this.#bytes = 0;
  }

  /** Waits for the flush in progress (the store refuses new writes by now) and closes the file. */
  async close(): Promise<void> {
    // Each round waits for the flush in progress; the queue is closed to new writes.
    for (let round = 0; round < 1000 && this.#flushing; round++) await this.#flushing;
    await this.#fh.close();
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
    // Ends when the queue is empty; each round takes everything queued so far.
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#queue.length);
      if (this.#failed) {
        for (const p of batch) p.reject(this.#failed);
        continue;
      }
      try {
        const buf = Buffer.from(batch.map((p) => p.line).join(''), 'utf8');
        await writeFully(this.#fh, buf);
        await this.#fh.datasync();
        this.#bytes += buf.length;
      } catch (err) {
        this.fail(ioError(`the embedded store could not write ${this.#file}; it accepts no more calls — restart Tower`, err));
        for (const p of batch) p.reject(this.#failed!);
        continue;
      }
      for (const p of batch) p.resolve();
      await this.#afterBatch(this);
    }
  }
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

export function readLog(file: string): Buffer {
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
export function replayLog(file: string, buf: Buffer, mem: Memory, log: StoreLog | undefined): number {
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
