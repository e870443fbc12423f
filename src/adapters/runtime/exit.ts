/**
 * How a colour's run ended, in the words both drivers use: one vocabulary for the engine's
 * CrashLoop reasons and the status page, whichever runtime noticed it.
 */
import { constants } from 'node:os';
import type { ExitRecord } from './types.js';

/**
 * "killed by SIGKILL", "exited with code 1", "out of memory"; "process gone" when neither
 * code nor signal is known (an adopted process is not our child: nobody tells us either).
 */
export function exitInfo(at: string, code: number | null, signal: string | null, oom = false): ExitRecord {
  const reason = oom ? 'out of memory' : signal !== null ? `killed by ${signal}` : code !== null ? `exited with code ${code}` : 'process gone';
  return { at, code, signal, reason };
}

/** A container's main process killed by signal n exits with 128 + n (137: SIGKILL). */
export function signalOfExitCode(code: number | null): string | null {
  if (code === null || code <= 128 || code >= 128 + 65) return null;
  const found = Object.entries(constants.signals).find(([, n]) => n === code - 128);
  return found ? found[0] : null;
}
