/**
 * Restart backoff for colours (and switches) that die, like a kubelet's: the first restart is
 * immediate, each further one waits twice as long (1 s, 2 s, 4 s … up to 5 min), and a colour
 * restarted `crashLoopAfter` times without staying up for `stableAfterMs` is in CrashLoop.
 * Pure: the book of restarts goes in and comes out; time is a number the caller passes.
 */

export interface RestartRecord {
  /** Restarts since the colour last ran stably. */
  restarts: number;
  /** When the last restart was made (ms since the epoch). */
  lastRestartAt: number;
}

/** Keyed by `instance/color` (or `instance/switch`). */
export type RestartBook = Readonly<Record<string, RestartRecord>>;

export interface RestartPolicy {
  baseDelayMs: number;
  maxDelayMs: number;
  crashLoopAfter: number;
  /** Running this long after its last restart clears a colour's record. */
  stableAfterMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = { baseDelayMs: 1_000, maxDelayMs: 5 * 60_000, crashLoopAfter: 3, stableAfterMs: 2 * 60_000 };

export interface RestartVerdict {
  /** Restart now. */
  due: boolean;
  /** When the next restart may be made (ms since the epoch). */
  at: number;
  restarts: number;
  crashLoop: boolean;
}

export function restartKey(instance: string, what: string): string {
  return `${instance}/${what}`;
}

/** The delay before restart number n + 1, after n restarts. */
export function backoffDelay(restarts: number, policy: RestartPolicy = DEFAULT_RESTART_POLICY): number {
  if (restarts <= 0) return 0;
  return Math.min(policy.baseDelayMs * 2 ** (restarts - 1), policy.maxDelayMs);
}

/** May a dead colour be restarted now? */
export function restartVerdict(record: RestartRecord | undefined, now: number, policy: RestartPolicy = DEFAULT_RESTART_POLICY): RestartVerdict {
  if (!record) return { due: true, at: now, restarts: 0, crashLoop: false };
  const at = record.lastRestartAt + backoffDelay(record.restarts, policy);
  return { due: now >= at, at, restarts: record.restarts, crashLoop: record.restarts >= policy.crashLoopAfter };
}

/** The book after a restart of key was made at now. */
export function recordRestart(book: RestartBook, key: string, now: number): RestartBook {
  return { ...book, [key]: { restarts: (book[key]?.restarts ?? 0) + 1, lastRestartAt: now } };
}

/**
 * The book without the records of colours that have run stably since their last restart,
 * nor of colours that are gone.
 */
export function settleRestarts(book: RestartBook, state: (key: string) => 'running' | 'dead' | 'gone', now: number, policy: RestartPolicy = DEFAULT_RESTART_POLICY): RestartBook {
  const out: Record<string, RestartRecord> = {};
  for (const [key, record] of Object.entries(book)) {
    const s = state(key);
    if (s === 'gone') continue;
    if (s === 'running' && now - record.lastRestartAt >= policy.stableAfterMs) continue;
    out[key] = record;
  }
  return out;
}
