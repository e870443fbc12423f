/**
 * A RepoReader over a directory on disk. Paths are resolved inside the root; anything that
 * leads outside it — through "..", an absolute path or a symbolic link — is refused. Files
 * are handed over as bytes; decoding them is the loader's.
 */
import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { ReadResult, RepoReader } from '../../core/load.js';

export function directoryReader(root: string): RepoReader {
  const realRoot = realpathSync(root);
  const inside = (p: string) => {
    const rel = relative(realRoot, p);
    return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
  };
  return {
    read(path: string, maxBytes: number): ReadResult {
      const target = resolve(realRoot, path);
      if (!inside(target)) return { ok: false, reason: 'outside-repository' };
      let real: string;
      try {
        real = realpathSync(target);
      } catch {
        return { ok: false, reason: 'not-found' };
      }
      if (!inside(real)) return { ok: false, reason: 'outside-repository' };
      let stat;
      try {
        stat = statSync(real);
      } catch {
        return { ok: false, reason: 'not-found' };
      }
      if (!stat.isFile()) return { ok: false, reason: 'not-a-file' };
      if (stat.size > maxBytes) return { ok: false, reason: 'too-large', size: stat.size };
      try {
        // Bytes, not text: the loader decodes them strictly and reports a byte that is no UTF-8.
        const bytes = readFileSync(real);
        if (bytes.length > maxBytes) return { ok: false, reason: 'too-large', size: bytes.length };
        return { ok: true, bytes };
      } catch {
        return { ok: false, reason: 'not-found' };
      }
    },
    list(dir: string): string[] {
      const target = resolve(realRoot, dir);
      if (!inside(target)) return [];
      try {
        return readdirSync(target, { withFileTypes: true })
          .filter((e) => e.isFile() || (e.isSymbolicLink() && isFileQuiet(join(target, e.name))))
          .map((e) => e.name)
          .sort();
      } catch {
        return [];
      }
    },
  };
}

function isFileQuiet(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}
