import { renameSync, writeFileSync } from 'node:fs';

/** tmp + rename: a reader (or a crash) never sees half a file. */
export function writeAtomic(file: string, content: string, mode = 0o644): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode });
  renameSync(tmp, file);
}
