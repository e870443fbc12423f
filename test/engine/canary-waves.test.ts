/**
 * Canaries in waves, through the executor on the in-memory runtime (a switch that splits and
 * counts, as the builtin one does): a canary holds its wave until it is promoted, a failed
 * one fails its wave, and onFailure sends a promoted canary back as it does a blue-green.
 */
import { describe, expect, it } from 'vitest';
import { decide, type DesiredFleet } from '../../src/core/decide.js';
import type { DesiredInstance } from '../../src/core/model.js';
import type { Color } from '../../src/core/rollout.js';
import { emptyTraffic, type ColorTraffic } from '../../src/core/traffic.js';
import type { RolloutEvent } from '../../src/engine/events.js';
import { executeRollout } from '../../src/engine/executor.js';
import { observeFleet } from '../../src/engine/observe.js';
import type { WeightedUpstream } from '../../src/engine/ports.js';
import { desiredFleet } from '../helpers/engine-fixtures.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';

const CANARY = { steps: [{ weight: 20, pauseMs: 150 }, { weight: 100, pauseMs: 0 }], analysis: { successRateMin: 0.99, compareToBaseline: false, minRequests: 10 } };

/** The fake switch learns to split; each reading of its counters adds 50 requests, shared by weight; `failing` colours answer 10 % with 500. */
function splittingSwitch(rt: FakeRuntime, failing: Set<string>, flakyReads = 0) {
  const splits = new Map<string, WeightedUpstream[]>();
  const counters = new Map<string, Record<Color, ColorTraffic>>();
  const sw = rt.trafficSwitch;
  const route = sw.route.bind(sw);
  sw.route = async (instance, upstream) => (splits.delete(instance), route(instance, upstream));
  sw.split = async (instance, upstreams) => {
    if (upstreams) splits.set(instance, upstreams);
    else splits.delete(instance);
    rt.calls.push(`split ${instance} ${upstreams?.map((u) => `${u.color}:${u.weight}`).join(',') ?? 'end'}`);
    return (await sw.status(instance))!;
  };
  let reads = 0;
  sw.stats = async (instance) => {
    if (reads++ < flakyReads) throw new Error('switch for instance a: control GET /stats: ECONNREFUSED (restarting)');
    const c = counters.get(instance) ?? { blue: emptyTraffic(), green: emptyTraffic() };
    counters.set(instance, c);
    for (const u of splits.get(instance) ?? []) {
      const n = Math.round((50 * u.weight) / 100);
      const bad = failing.has(`${instance}/${u.color}`) ? Math.round(n / 10) : 0;
      Object.assign(c[u.color], { requests: c[u.color].requests + n, ok: c[u.color].ok + n - bad, serverErrors: c[u.color].serverErrors + bad });
      c[u.color].latency[40]! += n;
    }
    return { since: 'fake', colors: structuredClone(c) };
  };
}

function fleets(waves: string[][], onFailure: 'rollback-all' | 'halt' = 'rollback-all') {
  const canaried = (f: DesiredFleet): DesiredFleet => {
    const instances = f.instances.map((d): DesiredInstance => ({ ...d, smoke: [{ name: 'answers', http: { path: '/answer' } }], ...(d.name === 'a' ? { strategy: 'canary' as const, canary: CANARY } : {}) }));
    return { fleet: { ...f.fleet, instances }, instances };
  };
  const names = waves.flat();
  return {
    old: canaried(desiredFleet({ instances: Object.fromEntries(names.map((n) => [n, 'v1'])) })),
    next: canaried(desiredFleet({ instances: Object.fromEntries(names.map((n) => [n, 'v2'])), plan: { order: 'waves', waves, onFailure } })),
  };
}

async function roll(waves: string[][], options: { failing?: string[]; failSmoke?: string; onFailure?: 'rollback-all' | 'halt'; flakyReads?: number } = {}) {
  const { old, next } = fleets(waves, options.onFailure);
  const rt = new FakeRuntime();
  for (const d of old.instances) {
    rt.plant(d.name, 'blue', d);
    rt.plantSwitch(d.name, d.port, 'blue');
    rt.setApplied(d.name, 'blue');
  }
  splittingSwitch(rt, new Set(options.failing ?? []), options.flakyReads);
  if (options.failSmoke) rt.failSmoke(options.failSmoke, 'green');
  const live = await observeFleet(rt, 'test');
  const decision = decide({ desired: next, mode: 'rollout', canPlan: true, live, restarts: {}, now: Date.now() });
  const events: RolloutEvent[] = [];
  const result = await executeRollout(decision.plan, next.instances, live, { fleet: 'test', desiredFleet: next.fleet, runtime: rt, secretsEnv: {}, now: () => new Date(), onEvent: (e) => void events.push(e) });
  const order = events.flatMap((e) => (e.type === 'instance-end' ? [`end ${e.instance}`] : e.type === 'wave-end' ? [`wave ${e.wave + 1} ${e.ok ? 'ok' : 'failed'}`] : e.type === 'canary' && e.verdict.verdict !== 'wait' ? [`canary ${e.instance} ${e.weight}% ${e.verdict.verdict}`] : []));
  return { rt, result, order, decision };
}

describe('canaries in waves', () => {
  it('a canary holds its wave until it is promoted; the next wave starts after', async () => {
    const { result, order, decision, rt } = await roll([['a', 'b'], ['c']]);
    expect(decision.plan.waves[0]!.steps.find((s) => s.instance === 'a')!.route).toMatchObject({ path: 'canary', active: 'blue', target: 'green' });
    expect(result.ok).toBe(true);
    expect(order).toEqual(['end b', 'canary a 20% pass', 'canary a 100% pass', 'end a', 'wave 1 ok', 'end c', 'wave 2 ok']);
    expect(rt.calls.filter((c) => c.startsWith('split a') || c.startsWith('route a'))).toEqual(['split a blue:80,green:20', 'split a blue:0,green:100', 'route a green']);
  });

  it('a canary that fails its analysis fails its wave; rollback-all sends the wave back', async () => {
    const { result, order } = await roll([['a', 'b'], ['c']], { failing: ['a/green'] });
    expect(result.ok).toBe(false);
    expect(result.failure).toMatchObject({ instance: 'a', phase: 'RESUME', kind: 'stalled' });
    expect(result.failure!.error).toMatch(/step 1 \(20%\) failed after .*: success rate 90\.0% < 99\.0%/);
    expect(order.slice(0, 3)).toEqual(['end b', 'canary a 20% fail', 'end a']);
    expect(order).not.toContain('end c');
    expect(result.instances.find((r) => r.instance === 'b')!.state.outcome).toBe('rolled-back');
  });

  it('a promoted canary goes back when a later wave fails (rollback-all), and stays with halt', async () => {
    const back = await roll([['a'], ['c']], { failSmoke: 'c' });
    expect(back.result.instances.find((r) => r.instance === 'a')!.state.outcome).toBe('rolled-back');
    expect(back.rt.calls.filter((c) => c.startsWith('route a'))).toEqual(['route a green', 'route a blue']);
    const halted = await roll([['a'], ['c']], { failSmoke: 'c', onFailure: 'halt' });
    expect(halted.result.instances.find((r) => r.instance === 'a')!.state.outcome).toBe('succeeded'); // kept, and cleaned up
    expect(halted.rt.calls.filter((c) => c.startsWith('route a'))).toEqual(['route a green']);
  });
});

describe('reading the switch', () => {
  it('tries a failed reading again before it fails the step (a router being restarted)', async () => {
    expect((await roll([['a']], { flakyReads: 3 })).result.ok).toBe(true);
    const down = await roll([['a']], { flakyReads: 4 });
    expect(down.result.failure?.error).toMatch(/analyse green: switch for instance a: control GET \/stats: ECONNREFUSED/);
  });
});

describe('a failed canary on the commit', () => {
  it('keeps the measured rate within the 140 characters of a GitHub commit status', async () => {
    const { finishedStatus } = await import('../../src/adapters/github/render.js');
    const { result } = await roll([['a']], { failing: ['a/green'] });
    const error = `${result.failure!.instance} in ${result.failure!.phase}: ${result.failure!.error}`;
    const { state, description } = finishedStatus({ revision: 'r', outcome: 'rolled-back', error, instances: [], ms: 1 });
    expect(state).toBe('failure');
    expect(description.length).toBeLessThanOrEqual(140);
    expect(description).toMatch(/^rolled back: a in RESUME: analyse green: step 1 \(20%\) failed after [\d.]+ m?s: success rate 90\.0% < 99\.0%/);
  });
});

describe('an A/B experiment', () => {
  it('ends early when a newer revision arrives (or the daemon stops), and goes back to the first variant', async () => {
    const ab = async (shouldContinue?: () => boolean) => {
      const base = desiredFleet({ instances: { a: 'v1' } });
      const next = desiredFleet({ instances: { a: 'v2' } });
      const withAb = (f: DesiredFleet): DesiredFleet => {
        const instances = f.instances.map((d): DesiredInstance => ({ ...d, strategy: 'ab', ab: { variants: ['control', 'treat'], weight: 40, durationMs: 60_000 } }));
        return { fleet: { ...f.fleet, instances }, instances };
      };
      const rt = new FakeRuntime();
      const old = withAb(base);
      rt.plant('a', 'blue', old.instances[0]!);
      rt.plantSwitch('a', old.instances[0]!.port, 'blue');
      rt.setApplied('a', 'blue');
      splittingSwitch(rt, new Set());
      const live = await observeFleet(rt, 'test');
      const desired = withAb(next);
      const decision = decide({ desired, mode: 'rollout', canPlan: true, live, restarts: {}, now: Date.now() });
      const started = Date.now();
      const result = await executeRollout(decision.plan, desired.instances, live, { fleet: 'test', desiredFleet: desired.fleet, runtime: rt, secretsEnv: {}, now: () => new Date(), onEvent: () => {}, ...(shouldContinue ? { shouldContinue } : {}) });
      return { result, ms: Date.now() - started, rt };
    };
    let asked = 0;
    const early = await ab(() => ++asked < 3);
    expect(early.ms).toBeLessThan(10_000); // not the minute it was declared for
    expect(early.result.failure?.error).toMatch(/A\/B experiment ended early \(a newer revision, or the daemon stopping\) after .* \(treat had 40%\): control \(blue\) \d+ requests, 100\.0% ok.*; treat \(green\) \d+ requests/);
    expect(early.rt.calls.filter((c) => c.startsWith('split a') || c.startsWith('route a'))).toEqual(['split a blue:60,green:40', 'route a blue']);
  });
});
