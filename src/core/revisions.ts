/**
 * Which revision of the fleet repository the engine converges on, and what it remembers of
 * revisions that failed. Pure: the book goes in and comes out; time is a number.
 *
 * Kinds of failure, by what the loop should do (Flux's Stalled / Retryable):
 *   - invalid:   the revision does not validate — never retried;
 *   - stalled:   its flows failed their checks (VERIFY, AUDIT) and were rolled back — never
 *                retried: the same flows would fail the same way;
 *   - retryable: something outside the revision failed (a port in use, an engine down, a
 *                secret not set yet) — retried after 30 s, 1 min, 2 min, then given up.
 * A failed revision stays failed until a newer one arrives; meanwhile the engine holds the
 * last applied revision and only repairs (it does not roll anything out).
 */

export type FailureKind = 'invalid' | 'stalled' | 'retryable';

export interface RevisionFailure {
  kind: FailureKind;
  error: string;
  /** The rollout stopped where it failed (onFailure: halt): what it changed stays until a newer revision. */
  halted?: boolean;
  attempts: number;
  /** When it failed last (ms since the epoch). */
  at: number;
  /** When it may be tried again; Infinity when never. */
  retryAt: number;
}

export interface RevisionBook {
  failures: Readonly<Record<string, RevisionFailure>>;
}

export const EMPTY_BOOK: RevisionBook = { failures: {} };
export const MAX_RETRIES = 3;
/** Failures remembered at most (the oldest are forgotten first). */
export const MAX_REMEMBERED = 50;

export function retryDelay(attempts: number): number {
  return Math.min(30_000 * 2 ** (attempts - 1), 10 * 60_000);
}

export function recordFailure(book: RevisionBook, revision: string, failure: { kind: FailureKind; error: string; halted?: boolean }, now: number): RevisionBook {
  const attempts = (book.failures[revision]?.attempts ?? 0) + 1;
  const permanent = failure.kind !== 'retryable' || attempts > MAX_RETRIES;
  const entry: RevisionFailure = { ...failure, attempts, at: now, retryAt: permanent ? Infinity : now + retryDelay(attempts) };
  const entries = Object.entries({ ...book.failures, [revision]: entry }).sort((a, b) => b[1].at - a[1].at);
  return { failures: Object.fromEntries(entries.slice(0, MAX_REMEMBERED)) };
}

export function recordSuccess(book: RevisionBook, revision: string): RevisionBook {
  if (!(revision in book.failures)) return book;
  const { [revision]: _gone, ...rest } = book.failures;
  return { failures: rest };
}

export function isPermanent(f: RevisionFailure | undefined): boolean {
  return f !== undefined && f.retryAt === Infinity;
}

/** The newest revision as the source gave it, and whether it validated. */
export interface NewestRevision {
  revision: string;
  valid: boolean;
}

export interface Target {
  /**
   * rollout: converge on `revision` — the newest, or the applied one when the newest is
   * invalid, failed or unreadable (what a failed rollout left behind goes back). hold: keep
   * what runs alive and whole, roll nothing out — while the newest waits for its retry, or
   * after a rollout that halted.
   */
  mode: 'rollout' | 'hold';
  /** The revision whose desired state the pass uses; absent when there is none (nothing applied yet). */
  revision?: string;
  /** Why the engine holds: the newest revision is invalid, failed, waits for its retry, or cannot be read. */
  because?: 'invalid' | 'failed' | 'backoff' | 'no-source';
  /** Rollouts (and re-creations) may run now; false while the target revision waits for its retry. */
  canPlan: boolean;
  /** When the next retry is due (ms since the epoch). */
  retryAt?: number;
}

/**
 * When a revision may be tried again after its failure: never (Infinity) for an invalid or
 * stalled newer revision; the applied revision itself is always retried, with backoff —
 * re-creating a missing instance from it must not stop for good because of a bad moment.
 */
export function retryTime(book: RevisionBook, revision: string, applied: string | undefined): number | undefined {
  const f = book.failures[revision];
  if (!f) return undefined;
  return revision === applied ? f.at + retryDelay(f.attempts) : f.retryAt;
}

export function chooseTarget(newest: NewestRevision | undefined, applied: string | undefined, book: RevisionBook, now: number): Target {
  const newestRetry = newest?.valid ? retryTime(book, newest.revision, applied) : undefined;
  if (newest?.valid && (newestRetry === undefined || now >= newestRetry)) return { mode: 'rollout', revision: newest.revision, canPlan: true };
  const because = !newest ? 'no-source' : !newest.valid ? 'invalid' : newestRetry === Infinity ? 'failed' : 'backoff';
  const appliedRetry = applied ? retryTime(book, applied, applied) : undefined;
  const canPlan = appliedRetry === undefined || now >= appliedRetry;
  const retryAt = [newestRetry, canPlan ? undefined : appliedRetry].filter((t): t is number => t !== undefined && t !== Infinity).sort((a, b) => a - b)[0];
  const halted = newest !== undefined && book.failures[newest.revision]?.halted === true;
  const mode = !applied || because === 'backoff' || halted ? 'hold' : 'rollout';
  return { mode, ...(applied ? { revision: applied } : {}), because, canPlan, ...(retryAt !== undefined ? { retryAt } : {}) };
}

/**
 * After a restart: a revision the store says was rejected or rolled back (and is not the
 * applied one) stays failed.
 */
export function bookFromStore(attempted: { revision: string; outcome: string; error?: string } | undefined, applied: string | undefined, now: number): RevisionBook {
  if (!attempted || attempted.revision === applied) return EMPTY_BOOK;
  const kind: FailureKind | undefined = attempted.outcome === 'invalid' ? 'invalid' : attempted.outcome === 'rolled-back' ? 'stalled' : undefined;
  if (!kind) return EMPTY_BOOK;
  return recordFailure(EMPTY_BOOK, attempted.revision, { kind, error: attempted.error ?? attempted.outcome }, now);
}
