/**
 * Every list and text in the status is bounded, and what is left out is counted ("and N
 * more"): the helpers on their own, then deriveStatus fed a 5,000-instance fleet whose every
 * instance is missing, 5,000 diagnostics and megabyte-long errors.
 */
import { describe, expect, it } from 'vitest';
import { capList, capText, joinCapped } from '../../src/core/bounds.js';
import { decide } from '../../src/core/decide.js';
import type { Diagnostic } from '../../src/core/diagnostics.js';
import { chooseTarget, EMPTY_BOOK, recordFailure } from '../../src/core/revisions.js';
import { deriveStatus, STATUS_LIMITS, type StatusInput } from '../../src/core/status.js';
import { desiredFleet } from '../helpers/engine-fixtures.js';

const NOW = 1_800_000_000_000;
const MB = 1024 * 1024;

describe('capText', () => {
  it.each([
    ['short', 10, 'short'],
    ['exactly10!', 10, 'exactly10!'],
    ['eleven chars', 10, 'eleven cha… (and 2 more characters)'],
    ['x'.repeat(12_345), 5, 'xxxxx… (and 12,340 more characters)'],
    ['', 0, ''],
  ])('case %#: cut at %i characters', (text, max, want) => {
    expect(capText(text, max)).toBe(want);
  });

  it('never splits a surrogate pair', () => {
    const text = `ab${'😀'.repeat(10)}`;
    for (let max = 1; max < text.length; max++) {
      const cut = capText(text, max);
      expect(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(cut), `a lone surrogate when cut at ${max}: ${cut}`).toBe(false);
      expect(cut.length).toBeLessThanOrEqual(max + ' … (and 99 more characters)'.length);
    }
  });
});

describe('capList and joinCapped', () => {
  it('keeps the first items and counts the rest', () => {
    expect(capList([1, 2, 3, 4], 2)).toEqual({ shown: [1, 2], more: 2 });
    expect(capList([1, 2], 5)).toEqual({ shown: [1, 2], more: 0 });
  });

  it('joins the first items, each cut, and says how many more', () => {
    const items = Array.from({ length: 5_000 }, (_, i) => `instance-${i}: ${'e'.repeat(i === 0 ? 1_000 : 10)}`);
    const text = joinCapped(items, { max: 3, itemChars: 30, separator: '\n', what: () => 'problems' });
    const lines = text.split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toBe(`instance-0: ${'e'.repeat(18)}… (and 982 more characters)`);
    expect(lines[3]).toBe('and 4,997 more problems');
    expect(joinCapped(['a', 'b'], { max: 3, itemChars: 30, separator: '; ' })).toBe('a; b');
  });

  it('quotes no more items than fit in maxChars, the count of the rest included', () => {
    const items = Array.from({ length: 1_000 }, (_, i) => `problem number ${String(i).padStart(4, '0')} here`); // 24 characters each
    const text = joinCapped(items, { max: 20, itemChars: 100, separator: '\n', what: (n) => (n === 1 ? 'problem' : 'problems'), maxChars: 150 });
    expect(text.length).toBeLessThanOrEqual(150);
    expect(text.split('\n')).toEqual(['problem number 0000 here', 'problem number 0001 here', 'problem number 0002 here', 'problem number 0003 here', 'problem number 0004 here', 'and 995 more problems']);
    expect(joinCapped(['x'.repeat(50), 'y'], { max: 5, itemChars: 100, separator: '\n', what: (n) => (n === 1 ? 'problem' : 'problems'), maxChars: 40 })).toBe('and 2 more problems');
    expect(joinCapped(['a', 'b'], { max: 5, itemChars: 100, separator: ', ', maxChars: 4 })).toBe('a, b');
  });
});

/** A status of `n` instances, nothing running: every instance is Missing. */
function hugeStatus(n: number, extra: Partial<StatusInput> = {}) {
  const instances = Object.fromEntries(Array.from({ length: n }, (_, i) => [`i${i}`, 'v1']));
  const fleet = desiredFleet({ instances });
  const diagnostics: Diagnostic[] = Array.from({ length: n }, (_, i) => ({
    severity: i % 2 ? 'warning' : 'error',
    code: 'DanglingWire',
    file: `flows/i${i}.json`,
    line: i + 1,
    col: 1,
    message: `wire to nowhere ${'w'.repeat(i === 1 ? MB : 20)}`,
    hint: 'h'.repeat(i === 0 ? MB : 10),
    instances: i === 0 ? fleet.instances.map((d) => d.name) : [`i${i}`],
  }));
  const failure = fleet.instances.map((d) => `${d.name}: environment variable SECRET_${d.name} is not set`).join('\n');
  const book = recordFailure(EMPTY_BOOK, 'b', { kind: 'retryable', error: failure }, NOW);
  const target = chooseTarget({ revision: 'b', valid: true }, 'a', book, NOW);
  const decision = decide({ desired: fleet, mode: target.mode, canPlan: target.canPlan, live: [], restarts: {}, now: NOW });
  return deriveStatus({
    fleet: 'huge',
    source: { kind: 'git', location: 'x', error: `git fetch failed: ${'f'.repeat(MB)}` },
    newest: { revision: 'b', valid: true, diagnostics, commit: { revision: 'b', author: 'a', email: 'e', message: 'm'.repeat(MB), date: '2026-01-01T00:00:00Z' } },
    applied: 'a',
    attempted: { revision: 'b', at: '2026-01-01T00:00:00Z', outcome: 'failed', error: failure },
    target,
    failure,
    decision,
    live: [],
    ports: new Map(),
    leader: true,
    iso: (ms) => new Date(ms).toISOString(),
    ...extra,
  });
}

describe('deriveStatus bounds', () => {
  it('keeps a 5,000-instance failure with 5,000 diagnostics and megabyte texts small, and counts what it left out', () => {
    const s = hugeStatus(5_000);
    const size = JSON.stringify(s).length;
    // The instances are the fleet and stay; everything else is bounded.
    const withoutInstances = JSON.stringify({ ...s, instances: [], drift: [] }).length;
    expect(withoutInstances).toBeLessThan(200_000);
    expect(size).toBeLessThan(2 * MB);
    expect(s.instances).toHaveLength(5_000);

    expect(s.reason).toBe('RetryPending');
    expect(s.message.length).toBeLessThanOrEqual(STATUS_LIMITS.messageChars + 40);
    expect(s.message).toMatch(/more characters\)$/);
    expect(s.lastError!.length).toBeLessThanOrEqual(STATUS_LIMITS.messageChars + 40);
    expect(s.lastError).toMatch(/^i0: environment variable SECRET_i0 is not set\n/);
    expect(s.attempted!.error!.length).toBeLessThanOrEqual(STATUS_LIMITS.messageChars + 40);
    expect(s.source.error!.length).toBeLessThanOrEqual(STATUS_LIMITS.messageChars + 40);
    expect(s.commit!.message.length).toBeLessThanOrEqual(STATUS_LIMITS.commitMessageChars + 40);

    // Errors first, 100 of them, and the rest counted by severity.
    expect(s.validation).toHaveLength(STATUS_LIMITS.diagnostics);
    expect(s.validation.every((d) => d.severity === 'error')).toBe(true);
    expect(s.validationOmitted).toEqual({ errors: 2_400, warnings: 2_500 });
    expect(s.validation[0]!.hint!.length).toBeLessThanOrEqual(STATUS_LIMITS.diagnosticMessageChars + 40);
    expect(s.validation[0]!.instances).toHaveLength(STATUS_LIMITS.diagnosticInstances + 1);
    expect(s.validation[0]!.instances!.at(-1)).toBe('and 4,980 more');
    for (const i of s.instances) expect(i.message.length).toBeLessThanOrEqual(STATUS_LIMITS.instanceMessageChars + 40);
  });

  it('quotes five instances in the fleet message and counts the others', () => {
    const fleet = desiredFleet({ instances: Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`i${i}`, 'v1'])) });
    const target = chooseTarget({ revision: 'a', valid: true }, 'a', EMPTY_BOOK, NOW);
    const decision = decide({ desired: fleet, mode: target.mode, canPlan: target.canPlan, live: [], restarts: {}, now: NOW });
    const s = deriveStatus({ fleet: 'f', source: { kind: 'directory', location: '/x' }, newest: { revision: 'a', valid: true, diagnostics: [] }, applied: 'a', target, decision, live: [], ports: new Map(), leader: true, iso: (ms) => new Date(ms).toISOString() });
    expect(s.reason).toBe('Missing');
    expect(s.message).toMatch(/^Missing: i0 \(.*\); i1 .*; i4 \(.*\); and 7 more$/);
  });

  it('leaves a small status as it was: no omission counted', () => {
    const s = hugeStatus(3, { source: { kind: 'git', location: 'x' } });
    expect(s.validation.map((d) => d.file)).toEqual(['flows/i0.json', 'flows/i2.json', 'flows/i1.json']); // errors first
    expect(s.validation[2]!.message).toMatch(/more characters\)$/); // the 1 MB one, cut
    expect(s.validationOmitted).toBeUndefined();
    expect(s.source.error).toBeUndefined();
  });
});
