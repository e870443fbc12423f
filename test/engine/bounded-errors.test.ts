/**
 * Error texts the engine makes and stores are bounded: a preflight of 5,000 instances that
 * all miss a secret, and a rollout that failed with a megabyte of error text, end as short
 * texts that say how much was left out — in the history, the audit trail and the attempted
 * revision of a real (embedded) store.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore, type OpenedStore } from '../../src/adapters/store/index.js';
import type { Plan } from '../../src/core/plan.js';
import { STATUS_LIMITS } from '../../src/core/status.js';
import { PREFLIGHT_MESSAGE_CHARS, PREFLIGHT_PROBLEMS_SHOWN, PreflightError } from '../../src/engine/apply.js';
import { RolloutRecorder } from '../../src/engine/recorder.js';

const MB = 1024 * 1024;

describe('PreflightError', () => {
  it('quotes the first problems and counts the rest: 5,000 missing secrets make a short message', () => {
    const problems = Array.from({ length: 5_000 }, (_, i) => `instance-${i}: environment variable KEY_${i} is not set (env.API_KEY fromEnv)`);
    const err = new PreflightError(problems, 'retryable');
    expect(err.problems).toHaveLength(5_000); // tower apply prints them all
    const lines = err.message.split('\n');
    expect(err.message.length).toBeLessThanOrEqual(PREFLIGHT_MESSAGE_CHARS);
    expect(lines.length).toBeGreaterThan(10);
    expect(lines.length).toBeLessThanOrEqual(PREFLIGHT_PROBLEMS_SHOWN + 1);
    expect(lines.slice(0, -1)).toEqual(problems.slice(0, lines.length - 1));
    // Whatever is quoted, the rest is counted: together they are all 5,000.
    expect(lines.at(-1)).toBe(`and ${(5_000 - (lines.length - 1)).toLocaleString('en-US')} more problems`);
  });

  it('cuts one enormous problem, and keeps a short list whole', () => {
    const err = new PreflightError([`ingest: ${'x'.repeat(MB)}`, 'query: image missing'], 'stalled');
    expect(err.message.length).toBeLessThan(600);
    expect(err.message).toMatch(/more characters\)\nquery: image missing$/);
    expect(new PreflightError(['a', 'b'], 'retryable').message).toBe('a\nb');
    expect(new PreflightError(Array.from({ length: PREFLIGHT_PROBLEMS_SHOWN + 1 }, (_, i) => `p${i}`), 'retryable').message).toMatch(/\nand 1 more problem$/);
  });
});

describe('RolloutRecorder', () => {
  let dir: string | undefined;
  let store: OpenedStore | undefined;
  afterEach(async () => {
    await store?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('stores a bounded error and commit message, however long the failure was', async () => {
    dir = mkdtempSync(join(tmpdir(), 'tower-recorder-'));
    store = await openStore({ dir });
    await store.migrate();
    const plan: Plan = { name: 'p', source: 'test', order: 'sequential', maxParallel: 1, onFailure: 'rollback-all', waves: [], unchanged: [], hasChanges: true };
    const now = () => new Date('2026-01-01T00:00:00Z');
    const recorder = new RolloutRecorder(
      { store, log: pino({ level: 'silent' }), now, changed: () => {} },
      { id: 'r1', fleet: 'f', revision: 'b'.repeat(40), commit: { revision: 'b'.repeat(40), author: 'a', email: 'e', message: `subject\n\n${'body '.repeat(MB / 5)}`, date: now().toISOString() }, plan, report: { fleet: 'f', valid: true, plan, instances: [], diagnostics: [] }, newRevision: true, actor: 'tower' },
    );
    await recorder.begin();
    const end = await recorder.finish(undefined, `the rollout could not run: ${'e'.repeat(3 * MB)}`, false);
    expect(end.outcome).toBe('failed');
    expect(end.error!.length).toBeLessThanOrEqual(STATUS_LIMITS.messageChars + 40);
    expect(end.error).toMatch(/^the rollout could not run: e+… \(and 3,1\d\d,\d\d\d more characters\)$/);

    const [record] = await store.history('f', 1);
    expect(record!.error).toBe(end.error);
    expect(record!.message!.length).toBeLessThanOrEqual(STATUS_LIMITS.commitMessageChars + 40);
    expect(record!.message).toMatch(/^subject\n\nbody /);
    expect((await store.revisions('f')).attempted?.error).toBe(end.error);
    const audit = await store.auditTrail('f', 5);
    expect(JSON.stringify(audit).length).toBeLessThan(10_000);
  });
});
