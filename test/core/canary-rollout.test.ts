import { describe, expect, it } from 'vitest';
import { chooseRoute } from '../../src/core/decide.js';
import type { LiveInstance } from '../../src/core/live.js';
import type { DesiredInstance } from '../../src/core/model.js';
import { initialState, isFinal, step, type Action, type CanaryPlan, type Observation, type SwapState } from '../../src/core/rollout.js';

const fmt = (a: Action) => `${a.type}${'color' in a ? `:${a.color}` : ''}${'weight' in a ? `:${a.weight}` : ''}${'step' in a ? `#${a.step}` : ''}${'kind' in a ? `:${a.kind}` : ''}`;
const STEPS = [{ step: 0, weight: 10 }, { step: 1, weight: 50 }, { step: 2, weight: 100 }];

/** Drives a canary rollout from blue to green; failAt names an action that fails. */
function run(canary: CanaryPlan, opts: { failAt?: string; after?: Observation } = {}) {
  let state: SwapState = initialState('api', 'canary', 'blue', 'green', true, canary);
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

describe('rollout path canary', () => {
  it('deploys and verifies as blue-green, then moves traffic step by step, each step analysed, and routes at the end', () => {
    const { log, state } = run({ steps: STEPS, warm: false }, { after: { type: 'rollout-succeeded' } });
    expect(log).toEqual([
      'DRAIN ensureSwitch', 'DRAIN retire:green',
      'DEPLOY start:green',
      'VERIFY checkRev:green', 'VERIFY smoke:green:http', 'VERIFY openGate:green', 'VERIFY smoke:green:mqtt',
      'RESUME split:green:10', 'RESUME analyse:green#0', 'RESUME split:green:50', 'RESUME analyse:green#1', 'RESUME split:green:100', 'RESUME analyse:green#2',
      'RESUME route:green', 'RESUME closeGate:blue', 'RESUME drain:blue',
      'AUDIT audit:green',
      'CLEANUP release:blue',
    ]);
    expect(state.outcome).toBe('succeeded');
  });

  it('a failed analysis routes everything back to the baseline, drains the canary and removes it', () => {
    const { log, state } = run({ steps: STEPS, warm: false }, { failAt: 'analyse:green#0' });
    expect(log.slice(log.indexOf('RESUME analyse:green#0'))).toEqual(['RESUME analyse:green#0', 'RESUME route:blue', 'RESUME closeGate:green', 'RESUME drain:green', 'RESUME remove:green']);
    expect(state).toMatchObject({ outcome: 'rolled-back', failedPhase: 'RESUME', error: 'analyse:green#0 broke' });
  });

  it('a canary the switch still splits to resumes at its weight, without deploying again', () => {
    const { log, state } = run({ steps: STEPS.slice(1), warm: true });
    expect(log).toEqual([
      'VERIFY checkRev:green', 'VERIFY smoke:green:http', 'VERIFY openGate:green', 'VERIFY smoke:green:mqtt',
      'RESUME split:green:50', 'RESUME analyse:green#1', 'RESUME split:green:100', 'RESUME analyse:green#2',
      'RESUME route:green', 'RESUME closeGate:blue', 'RESUME drain:blue', 'AUDIT audit:green',
    ]);
    expect(state.outcome).toBe('awaiting-cleanup');
    // Failing after a resume still takes the canary away.
    const failed = run({ steps: STEPS.slice(1), warm: true }, { failAt: 'analyse:green#1' });
    expect(failed.log.slice(-4)).toEqual(['RESUME route:blue', 'RESUME closeGate:green', 'RESUME drain:green', 'RESUME remove:green']);
  });

  it('rolled back by a later wave (onFailure), a promoted canary goes back like a blue-green', () => {
    const { log } = run({ steps: STEPS, warm: false }, { after: { type: 'rollback', reason: 'rollback-all: x failed' } });
    expect(log.slice(-5)).toEqual(['CLEANUP route:blue', 'CLEANUP openGate:blue', 'CLEANUP closeGate:green', 'CLEANUP drain:green', 'CLEANUP remove:green']);
  });
});

describe('chooseRoute for strategy canary', () => {
  const desired = { name: 'api', rev: 'r2', config: { runtime: 'process', nodeRedVersion: '4.1', env: {}, resources: {}, settings: {}, context: 'memory', port: 2001 } } as unknown as DesiredInstance;
  const colour = (color: 'blue' | 'green', rev: string) => ({ color, runtime: 'process' as const, status: 'running' as const, port: 3000, url: 'http://x', rev, config: desired.config });
  const live = (canaryWeight?: number): LiveInstance => ({
    name: 'api', colors: { blue: colour('blue', 'r1'), green: colour('green', 'r2') }, flows: [], adminUp: true,
    switch: { kind: 'builtin', running: true, port: 2001, url: 'http://x', routed: 'blue', ...(canaryWeight !== undefined ? { canaryWeight } : {}) },
  });
  const planStep = { instance: 'api', action: 'update' as const, strategy: 'canary' as const, after: [], reason: '' };

  it('resumes at the weight the switch applies when the target runs the desired flows', () => {
    expect(chooseRoute(planStep, desired, live(50))).toEqual({ path: 'canary', active: 'blue', target: 'green', warm: true, resumeWeight: 50 });
    expect(chooseRoute(planStep, { ...desired, rev: 'r3' }, live(50))).toEqual({ path: 'canary', active: 'blue', target: 'green' });
    expect(chooseRoute(planStep, desired, live())).toEqual({ path: 'canary', active: 'blue', target: 'green', warm: true });
  });
});

describe('rollout path ab', () => {
  it('deploys and verifies, splits at the weight, runs the experiment, and always goes back', () => {
    let state: SwapState = initialState('api', 'ab', 'blue', 'green', true, { steps: [{ step: 0, weight: 30 }], warm: false });
    const log: string[] = [];
    let obs: Observation = { type: 'begin' };
    for (let guard = 0; guard < 20 && !isFinal(state); guard++) {
      const { next, actions } = step(state, obs);
      state = next;
      obs = { type: 'completed' };
      const completed: Action[] = [];
      for (const a of actions) {
        log.push(`${state.phase} ${fmt(a)}`);
        if (a.type === 'experiment') {
          obs = { type: 'failed', error: 'experiment over', completed };
          break;
        }
        completed.push(a);
      }
    }
    expect(log.slice(log.indexOf('RESUME split:green:30'))).toEqual(['RESUME split:green:30', 'RESUME experiment:green', 'RESUME route:blue', 'RESUME closeGate:green', 'RESUME drain:green', 'RESUME remove:green']);
    expect(state.outcome).toBe('rolled-back');
  });
});

describe('a canary left behind (its rollout ended without Tower)', () => {
  it('is routed away from before it is drained and removed', async () => {
    const { desiredFleet, liveOf } = await import('../helpers/engine-fixtures.js');
    const { liveness } = await import('../../src/core/repairs.js');
    const d = desiredFleet({ instances: { web: 'v1' } }).instances[0]!;
    const l = liveOf(d, { colors: { blue: {}, green: {} } });
    const split = { ...l, switch: { ...l.switch!, canaryWeight: 10 } };
    const leftover = (live: LiveInstance) => liveness({ live, port: d.port, restarts: {}, now: 0 }).repairs.find((r) => r.kind === 'remove-leftover')!.actions.map(fmt);
    expect(leftover(split)).toEqual(['route:blue', 'closeGate:green', 'drain:green', 'remove:green']);
    expect(leftover(l)).toEqual(['closeGate:green', 'drain:green', 'remove:green']);
  });
});
