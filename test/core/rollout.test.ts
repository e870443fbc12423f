import { describe, expect, it } from 'vitest';
import { initialState, isFinal, step, type Action, type Observation, type RolloutPath, type SwapState } from '../../src/core/rollout.js';

const fmt = (a: Action) => ('color' in a ? `${a.type}:${a.color}${'kind' in a ? `:${a.kind}` : ''}` : a.type);

/**
 * Drives a rollout: every batch of actions "completes" unless failAt names an action
 * (type:color) that fails; returns the actions in order and the final state.
 */
function run(path: RolloutPath, active: 'blue' | 'green' | undefined, opts: { failAt?: string; after?: Observation } = {}) {
  let state: SwapState = initialState('storage', path, active);
  const log: string[] = [];
  let obs: Observation = { type: 'begin' };
  let failed = false;
  for (let guard = 0; guard < 50; guard++) {
    const { next, actions } = step(state, obs);
    state = next;
    if (isFinal(state)) break;
    if (actions.length === 0 && state.outcome === 'awaiting-cleanup') {
      if (!opts.after) break;
      obs = opts.after;
      opts = { ...opts, after: undefined };
      continue;
    }
    const completed: Action[] = [];
    obs = { type: 'completed' };
    for (const a of actions) {
      log.push(`${state.phase} ${fmt(a)}`);
      if (!failed && opts.failAt === fmt(a)) {
        failed = true;
        obs = { type: 'failed', error: `${fmt(a)} broke`, completed };
        break;
      }
      completed.push(a);
    }
  }
  return { log, state };
}

describe('blue-green', () => {
  it('goes DRAIN → DEPLOY → VERIFY → RESUME → AUDIT, and cleans up only when the rollout succeeded', () => {
    const { log, state } = run('blue-green', 'blue', { after: { type: 'rollout-succeeded' } });
    expect(log).toEqual([
      'DRAIN ensureSwitch',
      'DRAIN retire:green',
      'DEPLOY start:green',
      'VERIFY checkRev:green',
      'VERIFY smoke:green:http',
      'VERIFY openGate:green',
      'VERIFY smoke:green:mqtt',
      'RESUME route:green',
      'RESUME closeGate:blue',
      'RESUME drain:blue',
      'AUDIT audit:green',
      'CLEANUP release:blue',
    ]);
    expect(state).toMatchObject({ outcome: 'succeeded', switched: true, target: 'green', active: 'blue' });
  });

  it('waits for the rest of the rollout with the old colour still there', () => {
    const { state } = run('blue-green', 'green');
    expect(state).toMatchObject({ outcome: 'awaiting-cleanup', phase: 'CLEANUP', target: 'blue', switched: true });
  });

  it.each<[string, string[]]>([
    // failures before the switch: the target goes, the active colour is untouched
    ['start:green', ['DEPLOY remove:green']],
    ['checkRev:green', ['VERIFY remove:green']],
    ['smoke:green:http', ['VERIFY remove:green']],
    ['smoke:green:mqtt', ['VERIFY closeGate:green', 'VERIFY remove:green']],
    // failures after the switch: switch back first
    ['drain:blue', ['RESUME route:blue', 'RESUME openGate:blue', 'RESUME closeGate:green', 'RESUME remove:green']],
    ['audit:green', ['AUDIT route:blue', 'AUDIT openGate:blue', 'AUDIT closeGate:green', 'AUDIT remove:green']],
  ])('a failure at %s rolls back with exactly %j', (failAt, rollback) => {
    const { log, state } = run('blue-green', 'blue', { failAt });
    const at = log.findIndex((l) => l.endsWith(` ${failAt}`));
    expect(log.slice(at + 1)).toEqual(rollback);
    expect(state).toMatchObject({ outcome: 'rolled-back', error: `${failAt} broke` });
  });

  it('a failure while retiring the parked colour changes nothing', () => {
    const { log, state } = run('blue-green', 'blue', { failAt: 'retire:green' });
    expect(log).toEqual(['DRAIN ensureSwitch', 'DRAIN retire:green']);
    expect(state.outcome).toBe('rolled-back');
  });

  it('a rollback that fails is reported as failed, with both errors', () => {
    let state = initialState('s', 'blue-green', 'blue');
    state = step(state, { type: 'begin' }).next;
    state = step(state, { type: 'completed' }).next; // DRAIN done
    const r = step(state, { type: 'failed', error: 'green crashed', completed: [{ type: 'start', color: 'green' }] });
    expect(r.actions.map(fmt)).toEqual(['remove:green']);
    const final = step(r.next, { type: 'failed', error: 'cannot remove', completed: [] }).next;
    expect(final).toMatchObject({ outcome: 'failed', error: 'green crashed; rolling back failed too: cannot remove' });
  });

  it('rolls back an instance that already succeeded when another wave fails (rollback-all)', () => {
    const { log, state } = run('blue-green', 'blue', { after: { type: 'rollback', reason: 'wave 2 failed' } });
    expect(log.slice(-4)).toEqual(['CLEANUP route:blue', 'CLEANUP openGate:blue', 'CLEANUP closeGate:green', 'CLEANUP remove:green']);
    expect(state).toMatchObject({ outcome: 'rolled-back', error: 'wave 2 failed' });
  });

  it('a failed cleanup does not undo a good rollout', () => {
    const { state } = run('blue-green', 'blue', { after: { type: 'rollout-succeeded' }, failAt: 'release:blue' });
    expect(state).toMatchObject({ outcome: 'succeeded', error: 'cleanup: release:blue broke' });
  });
});

describe('other paths', () => {
  it('swap back to a warm colour skips DRAIN and DEPLOY, and never removes the standby', () => {
    const ok = run('swap', 'green', { after: { type: 'rollout-succeeded' } });
    expect(ok.log[0]).toBe('VERIFY checkRev:blue');
    expect(ok.log).not.toContain('DEPLOY start:blue');
    expect(ok.state.skipped).toEqual(['DRAIN', 'DEPLOY']);
    const bad = run('swap', 'green', { failAt: 'smoke:blue:mqtt' });
    expect(bad.log.slice(-2)).toEqual(['VERIFY closeGate:blue', 'VERIFY park:blue']); // parked again, not removed
  });

  it('in-place: a nodes deploy, verified; rolled back by restoring the previous flows', () => {
    const ok = run('in-place', 'blue', { after: { type: 'rollout-succeeded' } });
    expect(ok.log).toEqual(['DEPLOY deployInPlace:blue', 'VERIFY checkRev:blue', 'VERIFY smoke:blue:http', 'VERIFY smoke:blue:mqtt', 'AUDIT audit:blue']);
    expect(ok.state.outcome).toBe('succeeded');
    expect(run('in-place', 'blue', { failAt: 'checkRev:blue' }).log.slice(-1)).toEqual(['VERIFY restoreInPlace:blue']);
    expect(run('in-place', 'blue', { failAt: 'deployInPlace:blue' }).state.outcome).toBe('rolled-back');
  });

  it('create: switch first, then start blue, verify, route; a failure removes everything it made', () => {
    const ok = run('create', undefined, { after: { type: 'rollout-succeeded' } });
    expect(ok.log).toEqual(['DRAIN ensureSwitch', 'DRAIN retire:blue', 'DEPLOY start:blue', 'VERIFY checkRev:blue', 'VERIFY smoke:blue:http', 'VERIFY openGate:blue', 'VERIFY smoke:blue:mqtt', 'RESUME route:blue', 'AUDIT audit:blue']);
    const bad = run('create', undefined, { failAt: 'smoke:blue:mqtt' });
    expect(bad.log.slice(-3)).toEqual(['VERIFY closeGate:blue', 'VERIFY removeSwitch', 'VERIFY remove:blue']);
  });

  it('delete: close the gate, stop serving (in-flight requests finish), remove both colours', () => {
    const { log, state } = run('delete', 'green');
    expect(log).toEqual(['DRAIN closeGate:green', 'DRAIN removeSwitch', 'CLEANUP remove:blue', 'CLEANUP remove:green']);
    expect(state.outcome).toBe('succeeded');
  });

  it('recreate: stop the old colour before the new one starts; a failure starts the old one again', () => {
    const ok = run('recreate', 'blue', { after: { type: 'rollout-succeeded' } });
    expect(ok.log.indexOf('DRAIN stop:blue')).toBeLessThan(ok.log.indexOf('DEPLOY start:green'));
    expect(ok.log.slice(-1)).toEqual(['CLEANUP remove:blue']);
    const bad = run('recreate', 'blue', { failAt: 'smoke:green:http' });
    expect(bad.log.slice(-4)).toEqual(['VERIFY restart:blue', 'VERIFY route:blue', 'VERIFY openGate:blue', 'VERIFY remove:green']);
  });

  it('recreate: a failure after the stable address went dark routes back to the old colour', () => {
    const bad = run('recreate', 'blue', { failAt: 'drain:blue' });
    expect(bad.log.slice(-2)).toEqual(['DRAIN route:blue', 'DRAIN openGate:blue']);
    expect(bad.state.outcome).toBe('rolled-back');
  });
});

describe('create where a switch already serves', () => {
  it('a rollback leaves the switch it did not create', () => {
    let state = initialState('web', 'create', undefined, 'blue', true);
    let r = step(state, { type: 'begin' });
    state = r.next;
    r = step(state, { type: 'completed' }); // DRAIN done: ensureSwitch, retire
    state = r.next;
    r = step(state, { type: 'failed', error: 'start blue: boom', completed: [] });
    expect(r.actions).toEqual([{ type: 'remove', color: 'blue' }]);
    const fresh = step(step(step(initialState('web', 'create', undefined, 'blue'), { type: 'begin' }).next, { type: 'completed' }).next, { type: 'failed', error: 'x', completed: [] });
    expect(fresh.actions).toContainEqual({ type: 'removeSwitch' });
  });
});
