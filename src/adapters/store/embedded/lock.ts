/**
 * One writer per store directory: an exclusive lock file (O_EXCL, with pid and the process's
 * start time). A lock whose process is gone (or is a zombie, or is another process that got
 * the same pid, e.g. pid 1 in a restarted container) is taken over.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { StoreError, type StoreLog } from '../common.js';
import { ioError, LOCK_FILE } from './files.js';

interface LockOwner {
  pid: number;
  /** The process's start time (clock ticks since boot, /proc/PID/stat field 22), to tell PID reuse. */
  start?: string;
  since: string;
  token: string;
}

export interface Lock {
  release(): void;
}

// Store directories open in this process (by real path): a second open here is refused,
// while a lock file carrying our own pid but not listed here is a previous life's, e.g.
// pid 1 in a restarted container.
const OPEN_DIRS = new Set<string>();

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

export function takeLock(dir: string, log: StoreLog): Lock {
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
