import { resolve } from 'node:path';
import { destroyAll } from '../engine/destroy.js';
import { openRuntime } from '../runtime.js';
import { loadDirectory } from '../repository.js';
import type { Io } from './io.js';
import { lockStateDir, STATE_DIR_IN_USE_EXIT } from './state-lock.js';

/** tower destroy: stop and remove every instance and switch this state directory manages. */
export async function destroyCommand(dir: string | undefined, options: { stateDir: string }, io: Io): Promise<number> {
  const rt = await openRuntime({ stateDir: resolve(options.stateDir), env: io.env });
  const unlock = lockStateDir(rt.state, 'tower destroy', io);
  if (!unlock) {
    await rt.close();
    return STATE_DIR_IN_USE_EXIT;
  }
  try {
    const fleet = rt.registry.read().fleet ?? (dir ? loadDirectory(resolve(dir)).fleet?.name : undefined);
    if (!fleet) {
      io.stdout(`nothing is managed from ${options.stateDir}\n`);
      return 0;
    }
    const removed = await destroyAll(rt, fleet);
    io.stdout(removed.length ? `removed ${removed.join(', ')}\n` : 'nothing was running\n');
    return 0;
  } finally {
    unlock();
    await rt.close();
  }
}
