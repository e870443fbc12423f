/**
 * The embedded store's directory: the names of its files, and the two I/O helpers every part
 * needs (an fsync of a directory, and an errno turned into a StoreError that carries no cause).
 */
import { closeSync, fsyncSync, openSync } from 'node:fs';
import { StoreError } from '../common.js';

export const LOG_FILE = 'store.log';
export const SNAPSHOT_FILE = 'store.snapshot.json';
export const LOCK_FILE = 'store.lock';

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function ioError(what: string, err: unknown): StoreError {
  const e = err as NodeJS.ErrnoException;
  return new StoreError('Failed', `${what}: ${e.message}`, e.code);
}
