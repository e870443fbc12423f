/**
 * The state directory's lock, for the commands that change what runs (apply, destroy). When
 * a live process holds it (the daemon, another apply or destroy), the command says so and
 * exits 3 — its own code, so that a script can tell "busy, try later" from "failed".
 */
import type { Io } from './io.js';

export const STATE_DIR_IN_USE_EXIT = 3;

/** Takes the lock; or, when it is held, prints `<command>: the state directory … is in use by …` and returns undefined. */
export function lockStateDir(state: { lock(holder: string): () => void }, command: string, io: Io): (() => void) | undefined {
  try {
    return state.lock(command);
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('the state directory ')) throw err;
    io.stderr(`${command}: ${err.message}\n`);
    return undefined;
  }
}
