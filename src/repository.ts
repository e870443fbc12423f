/** Loads a fleet repository from a directory, with Tower's bundled flow library. */
import { existsSync } from 'node:fs';
import { directoryReader } from './adapters/fs/repo-reader.js';
import { loadRepository, type LoadedRepository } from './core/load.js';
import { LIBRARY_DIR } from './paths.js';

export function loadDirectory(dir: string): LoadedRepository {
  const library = existsSync(LIBRARY_DIR) ? directoryReader(LIBRARY_DIR) : undefined;
  return loadRepository(directoryReader(dir), { library });
}
