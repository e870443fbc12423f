/** Loads a fleet repository from a directory, with Tower's bundled flow library. */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { directoryReader } from './adapters/fs/repo-reader.js';
import { FLEET_FILES, loadRepository, type LoadedRepository } from './core/load.js';
import { LIBRARY_DIR } from './paths.js';

/**
 * The directory given is not a fleet repository at all: it does not exist, is not a
 * directory, or has no fleet.yaml. The commands print the message as `tower <cmd>: <message>`
 * and exit with their invalid-input code. (Problems inside a repository are diagnostics.)
 */
export class NotAFleetDirectory extends Error {
  override readonly name = 'NotAFleetDirectory';
}

export function loadDirectory(dir: string): LoadedRepository {
  checkFleetDirectory(dir);
  const library = existsSync(LIBRARY_DIR) ? directoryReader(LIBRARY_DIR) : undefined;
  return loadRepository(directoryReader(dir), { library });
}

function checkFleetDirectory(dir: string): void {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(dir).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new NotAFleetDirectory(`${dir}: no such directory`);
    if (code === 'ENOTDIR') throw new NotAFleetDirectory(`${dir}: no such directory (a part of the path is a file)`);
    throw new NotAFleetDirectory(`${dir}: cannot be read (${code ?? (err as Error).message})`);
  }
  if (!isDirectory) throw new NotAFleetDirectory(`${dir}: is not a directory — pass the directory that holds fleet.yaml`);
  if (!FLEET_FILES.some((f) => existsSync(join(dir, f)))) {
    throw new NotAFleetDirectory(`${dir}: has no fleet.yaml — a fleet repository has fleet.yaml at its top (see fleet-example/); pass the directory that holds it`);
  }
}
