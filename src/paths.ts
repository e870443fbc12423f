/**
 * Where Tower's own files live, wherever it is installed or run from (src/ under vitest,
 * dist/src/ when built), and Tower's version. Cheap on purpose — `tower --version` loads
 * this: a few stats and one read of package.json.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findPackage(): { root: string; version: string } {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) {
      try {
        const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === 'redforge-tower') return { root: dir, version: String(pkg.version) };
      } catch {
        // not ours; keep looking
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the redforge-tower package root');
    dir = parent;
  }
}

const PACKAGE = findPackage();
export const PACKAGE_ROOT = PACKAGE.root;
export const LIBRARY_DIR = join(PACKAGE_ROOT, 'flows');
export const VERSION = PACKAGE.version;
