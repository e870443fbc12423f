/** tmp + rename: a reader (or a crash) never sees half a file. */
import { randomBytes } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';

const tmpName = (file: string) => `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;

export function writeAtomic(file: string, content: string, mode = 0o644): void {
  const tmp = tmpName(file);
  writeFileSync(tmp, content, { mode });
  renameSync(tmp, file);
}

export async function writeAtomicAsync(file: string, content: string, mode = 0o644): Promise<void> {
  const tmp = tmpName(file);
  await writeFile(tmp, content, { mode });
  await rename(tmp, file);
}
