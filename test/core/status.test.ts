import { describe, expect, it } from 'vitest';
import { decide } from '../../src/core/decide.js';
import type { Diagnostic } from '../../src/core/diagnostics.js';
import type { LiveInstance } from '../../src/core/live.js';
import { chooseTarget, EMPTY_BOOK, recordFailure, type RevisionBook } from '../../src/core/revisions.js';
import { deriveStatus } from '../../src/core/status.js';
import { desiredFleet, liveOf, synced } from '../helpers/engine-fixtures.js';

const NOW = 1_800_000_000_000;
const fleet = desiredFleet({ instances: { web: 'v1' } });
const web = fleet.instances[0]!;
const error: Diagnostic = { severity: 'error', code: 'YamlSyntax', file: 'fleet.yaml', line: 3, col: 5, message: 'bad' };

function status(opts: { newest?: { revision: string; valid: boolean; diagnostics: Diagnostic[] }; applied?: string; live: LiveInstance[]; book?: RevisionBook }) {
  const target = chooseTarget(opts.newest, opts.applied, opts.book ?? EMPTY_BOOK, NOW);
  const decision = decide({ desired: fleet, mode: target.mode, canPlan: target.canPlan, live: opts.live, restarts: {}, now: NOW });
  const failure = opts.newest ? opts.book?.failures[opts.newest.revision]?.error : undefined;
  return deriveStatus({
    fleet: 'test',
    source: { kind: 'directory', location: '/x' },
    ...(opts.newest ? { newest: opts.newest } : {}),
    ...(opts.applied ? { applied: opts.applied } : {}),
    target,
    ...(failure ? { failure } : {}),
    decision,
    live: opts.live,
    ports: new Map([['web', web.port]]),
    leader: true,
    iso: (ms) => new Date(ms).toISOString(),
  });
}

describe('derived status', () => {
  it('is Synced only when the newest revision is the applied one and every instance runs it', () => {
    const s = status({ newest: { revision: 'a', valid: true, diagnostics: [] }, applied: 'a', live: [synced(web)] });
    expect(s).toMatchObject({ sync: 'Synced', reason: 'Converged', validation: [], drift: [] });
    expect(s.instances[0]).toMatchObject({ name: 'web', condition: 'Synced', health: 'Healthy', color: 'blue', restarts: 0 });
  });

  it('is not Synced when the newest revision is invalid, and shows its errors', () => {
    const s = status({ newest: { revision: 'b', valid: false, diagnostics: [error] }, applied: 'a', live: [synced(web)] });
    expect(s.sync).toBe('OutOfSync');
    expect(s.reason).toBe('InvalidRevision');
    expect(s.validation).toEqual([error]);
    expect(s.message).toContain('the fleet keeps a');
  });

  it('drops the errors as soon as the newest revision validates, even when it is the applied one again', () => {
    const s = status({ newest: { revision: 'a', valid: true, diagnostics: [] }, applied: 'a', live: [synced(web)] });
    expect(s.validation).toEqual([]);
    expect(s.sync).toBe('Synced');
  });

  it('says a failed revision failed, with its error', () => {
    const book = recordFailure(EMPTY_BOOK, 'b', { kind: 'stalled', error: 'web in VERIFY: smoke failed' }, NOW);
    const s = status({ newest: { revision: 'b', valid: true, diagnostics: [] }, applied: 'a', live: [synced(web)], book });
    expect(s).toMatchObject({ sync: 'OutOfSync', reason: 'RevisionFailed', lastError: 'web in VERIFY: smoke failed' });
  });

  it('is Progressing while a dead colour is repaired, with the instance Dead', () => {
    const s = status({ newest: { revision: 'a', valid: true, diagnostics: [] }, applied: 'a', live: [liveOf(web, { colors: { blue: { status: 'exited' } } })] });
    expect(s.sync).toBe('Progressing');
    expect(s.reason).toBe('Dead');
    expect(s.instances[0]).toMatchObject({ condition: 'Dead', health: 'Degraded' });
  });

  it('is not Synced after the fleet was destroyed, though the store still names an applied revision', () => {
    const s = status({ newest: { revision: 'a', valid: true, diagnostics: [] }, applied: 'a', live: [] });
    expect(s.sync).toBe('Progressing');
    expect(s.reason).toBe('Missing');
    expect(s.instances[0]).toMatchObject({ condition: 'Missing', health: 'Missing' });
  });

  it('reports drift by name', () => {
    const live = liveOf(web, { colors: { blue: {} }, liveFlows: [{ id: 'x', type: 'tab' }] });
    const s = status({ newest: { revision: 'a', valid: true, diagnostics: [] }, applied: 'a', live: [live] });
    expect(s).toMatchObject({ sync: 'OutOfSync', reason: 'Drifted', drift: ['web'] });
  });
});
