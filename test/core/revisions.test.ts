import { describe, expect, it } from 'vitest';
import { backoffDelay, recordRestart, restartVerdict, settleRestarts, type RestartBook } from '../../src/core/restarts.js';
import { bookFromStore, chooseTarget, EMPTY_BOOK, MAX_REMEMBERED, recordFailure, recordSuccess, type RevisionBook } from '../../src/core/revisions.js';

const T0 = 1_800_000_000_000;

describe('restart backoff', () => {
  it.each([
    [0, 0],
    [1, 1_000],
    [2, 2_000],
    [3, 4_000],
    [10, 300_000],
  ])('after %i restarts waits %i ms', (restarts, delay) => {
    expect(backoffDelay(restarts)).toBe(delay);
  });

  it('restarts at once the first time, then waits, and calls the third restart in a row CrashLoop', () => {
    let book: RestartBook = {};
    const at = (ms: number) => restartVerdict(book['web/blue'], T0 + ms);
    expect(at(0)).toMatchObject({ due: true, crashLoop: false, restarts: 0 });
    book = recordRestart(book, 'web/blue', T0);
    expect(at(500)).toMatchObject({ due: false, at: T0 + 1_000, crashLoop: false });
    expect(at(1_000).due).toBe(true);
    book = recordRestart(book, 'web/blue', T0 + 1_000);
    book = recordRestart(book, 'web/blue', T0 + 3_000);
    expect(at(3_001)).toMatchObject({ due: false, at: T0 + 7_000, crashLoop: true, restarts: 3 });
  });

  it('forgets a colour that ran stably since its last restart, or that is gone', () => {
    const book = recordRestart(recordRestart({}, 'web/blue', T0), 'api/green', T0);
    const state = (key: string): 'running' | 'gone' => (key === 'web/blue' ? 'running' : 'gone');
    expect(Object.keys(settleRestarts(book, state, T0 + 60_000))).toEqual(['web/blue']);
    expect(settleRestarts(book, state, T0 + 120_000)).toEqual({});
    expect(Object.keys(settleRestarts(book, (): 'dead' => 'dead', T0 + 600_000))).toEqual(['web/blue', 'api/green']);
  });
});

describe('revision tracker', () => {
  const newest = (revision: string, valid = true): { revision: string; valid: boolean } => ({ revision, valid });

  it('rolls out the newest valid revision', () => {
    expect(chooseTarget(newest('b'), 'a', EMPTY_BOOK, T0)).toEqual({ mode: 'rollout', revision: 'b', canPlan: true });
  });

  it.each([
    ['invalid', newest('b', false), EMPTY_BOOK, 'invalid'],
    ['unreadable source', undefined, EMPTY_BOOK, 'no-source'],
    ['rolled back by its checks', newest('b'), recordFailure(EMPTY_BOOK, 'b', { kind: 'stalled', error: 'smoke' }, T0), 'failed'],
    ['rejected', newest('b'), recordFailure(EMPTY_BOOK, 'b', { kind: 'invalid', error: 'x' }, T0), 'failed'],
    ['waiting for its retry', newest('b'), recordFailure(EMPTY_BOOK, 'b', { kind: 'retryable', error: 'port' }, T0), 'backoff'],
  ] as [string, { revision: string; valid: boolean } | undefined, RevisionBook, string][])('targets the applied revision when the newest is %s', (_what, n, book, because) => {
    // Waiting for a retry, it holds what runs; otherwise what a failed rollout left goes back to the applied revision.
    expect(chooseTarget(n, 'a', book, T0 + 1)).toMatchObject({ mode: because === 'backoff' ? 'hold' : 'rollout', revision: 'a', because, canPlan: true });
  });

  it('holds what a halted rollout left, and nothing is rolled out without an applied revision', () => {
    const halted = recordFailure(EMPTY_BOOK, 'b', { kind: 'stalled', error: 'smoke', halted: true }, T0);
    expect(chooseTarget(newest('b'), 'a', halted, T0 + 1)).toMatchObject({ mode: 'hold', revision: 'a', because: 'failed' });
    expect(chooseTarget(newest('b', false), undefined, EMPTY_BOOK, T0)).toMatchObject({ mode: 'hold', because: 'invalid' });
  });

  it('retries a retryable failure after 30 s, 1 min, 2 min, then gives up', () => {
    let book = EMPTY_BOOK;
    let now = T0;
    for (const delay of [30_000, 60_000, 120_000]) {
      book = recordFailure(book, 'b', { kind: 'retryable', error: 'port in use' }, now);
      expect(chooseTarget(newest('b'), 'a', book, now + delay - 1)).toMatchObject({ mode: 'hold', because: 'backoff', retryAt: now + delay });
      now += delay;
      expect(chooseTarget(newest('b'), 'a', book, now).mode).toBe('rollout');
    }
    book = recordFailure(book, 'b', { kind: 'retryable', error: 'port in use' }, now);
    expect(chooseTarget(newest('b'), 'a', book, now + 3_600_000)).toMatchObject({ mode: 'rollout', revision: 'a', because: 'failed' });
  });

  it('always retries the applied revision itself, with backoff, and plans nothing meanwhile', () => {
    const book = recordFailure(EMPTY_BOOK, 'a', { kind: 'stalled', error: 'smoke' }, T0);
    expect(chooseTarget(newest('a'), 'a', book, T0 + 1)).toMatchObject({ mode: 'hold', because: 'backoff', canPlan: false, retryAt: T0 + 30_000 });
    expect(chooseTarget(newest('a'), 'a', book, T0 + 30_000)).toEqual({ mode: 'rollout', revision: 'a', canPlan: true });
    // holding on it because a newer one failed: re-creations wait for the same backoff
    const both = recordFailure(book, 'b', { kind: 'stalled', error: 'smoke' }, T0);
    expect(chooseTarget(newest('b'), 'a', both, T0 + 1)).toMatchObject({ mode: 'rollout', revision: 'a', because: 'failed', canPlan: false, retryAt: T0 + 30_000 });
  });

  it('forgets a failure on success, and remembers at most a bounded number', () => {
    let book = recordFailure(EMPTY_BOOK, 'b', { kind: 'retryable', error: 'x' }, T0);
    book = recordSuccess(book, 'b');
    expect(book.failures).toEqual({});
    for (let i = 0; i < MAX_REMEMBERED + 10; i++) book = recordFailure(book, `r${i}`, { kind: 'invalid', error: 'x' }, T0 + i);
    expect(Object.keys(book.failures)).toHaveLength(MAX_REMEMBERED);
    expect(book.failures[`r${MAX_REMEMBERED + 9}`]).toBeDefined();
    expect(book.failures.r0).toBeUndefined();
  });

  it('keeps a revision rejected or rolled back before a restart failed after it', () => {
    expect(chooseTarget(newest('b'), 'a', bookFromStore({ revision: 'b', outcome: 'rolled-back', error: 'smoke' }, 'a', T0), T0)).toMatchObject({ mode: 'rollout', revision: 'a', because: 'failed' });
    expect(chooseTarget(newest('b'), 'a', bookFromStore({ revision: 'b', outcome: 'interrupted' }, 'a', T0), T0).mode).toBe('rollout');
  });
});
