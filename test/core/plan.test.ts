import { describe, expect, it } from 'vitest';
import type { InstanceDiff } from '../../src/core/diff.js';
import type { Fleet, PlanSpec } from '../../src/core/model.js';
import { buildPlan, findCycles, validatePlan } from '../../src/core/plan.js';

const NAMES = ['ingest', 'embeddings', 'storage', 'query', 'errors'];

function fleetWith(spec: PlanSpec, names = NAMES): Fleet {
  return {
    name: 'f',
    labels: {},
    selfHeal: false,
    plan: { name: 'p', source: 'plans/p.yaml', spec },
    instances: names.map((name, i) => ({
      name,
      port: 2000 + i,
      flows: [],
      smoke: [],
      strategy: 'blue-green',
      labels: {},
      keepWarm: '2m',
      drainTimeout: '30s',
      config: { runtime: 'process', nodeRedVersion: '4.1', env: {}, resources: {}, settings: {}, context: 'memory', port: 2000 + i },
    })),
  };
}

function diffs(actions: Record<string, InstanceDiff['action']>): InstanceDiff[] {
  return Object.entries(actions).map(([name, action]) => ({
    name,
    action,
    ...(action === 'update' ? { strategy: 'blue-green' as const } : {}),
    change: action === 'unchanged' ? 'none' : 'functional',
    containers: [],
    counts: { added: 0, removed: 0, changed: 0 },
    config: [],
  }));
}

const allUpdate = diffs(Object.fromEntries(NAMES.map((n) => [n, 'update'])));
const waves = (p: ReturnType<typeof buildPlan>) => p.waves.map((w) => w.steps.map((s) => s.instance));

describe('buildPlan', () => {
  it.each<[string, PlanSpec, string[][]]>([
    ['sequential in fleet order', { order: 'sequential' }, [['ingest'], ['embeddings'], ['storage'], ['query'], ['errors']]],
    ['sequential in the given sequence', { order: 'sequential', sequence: ['errors', 'query', 'storage', 'embeddings', 'ingest'] }, [['errors'], ['query'], ['storage'], ['embeddings'], ['ingest']]],
    ['waves', { order: 'waves', waves: [['ingest', 'embeddings', 'errors'], ['storage'], ['query']] }, [['ingest', 'embeddings', 'errors'], ['storage'], ['query']]],
    ['waves split by maxParallel', { order: 'waves', waves: [['ingest', 'embeddings', 'errors'], ['storage', 'query']], maxParallel: 2 }, [['ingest', 'embeddings'], ['errors'], ['storage', 'query']]],
    ['dag levels', { order: 'dag', dependsOn: { storage: ['embeddings'], query: ['storage', 'embeddings'] } }, [['ingest', 'embeddings', 'errors'], ['storage'], ['query']]],
    ['dag with maxParallel', { order: 'dag', dependsOn: { query: ['storage'] }, maxParallel: 2 }, [['ingest', 'embeddings'], ['storage', 'errors'], ['query']]],
  ])('%s', (_what, spec, expected) => {
    const plan = buildPlan(fleetWith(spec), allUpdate);
    expect(waves(plan)).toEqual(expected);
    expect(plan.waves.map((w) => w.index)).toEqual(expected.map((_, i) => i));
    // deterministic
    expect(buildPlan(fleetWith(spec), allUpdate)).toEqual(plan);
  });

  it('says why each instance waits', () => {
    const plan = buildPlan(fleetWith({ order: 'dag', dependsOn: { storage: ['embeddings'], query: ['storage', 'embeddings'] } }), allUpdate);
    const reasons = Object.fromEntries(plan.waves.flatMap((w) => w.steps.map((s) => [s.instance, s.reason])));
    expect(reasons).toEqual({
      ingest: 'no dependencies',
      embeddings: 'no dependencies',
      errors: 'no dependencies',
      storage: 'after embeddings',
      query: 'after storage, embeddings',
    });
    const seq = buildPlan(fleetWith({ order: 'sequential' }), allUpdate);
    expect(seq.waves[1]!.steps[0]).toMatchObject({ instance: 'embeddings', after: ['ingest'], reason: 'after ingest' });
  });

  it('leaves unchanged instances out, drops empty waves, and keeps transitive order', () => {
    const d = diffs({ ingest: 'unchanged', embeddings: 'update', storage: 'unchanged', query: 'update', errors: 'unchanged' });
    const plan = buildPlan(fleetWith({ order: 'dag', dependsOn: { storage: ['embeddings'], query: ['storage'] } }), d);
    expect(waves(plan)).toEqual([['embeddings'], ['query']]);
    expect(plan.unchanged).toEqual(['ingest', 'storage', 'errors']);
    expect(plan.waves[1]!.steps[0]!.reason).toBe('after embeddings: an earlier level of the DAG');
  });

  it('prunes deleted instances in a last wave, and has no changes when nothing changes', () => {
    const d = [...diffs({ ingest: 'create', embeddings: 'unchanged' }), ...diffs({ old: 'delete' })];
    const plan = buildPlan(fleetWith({ order: 'waves', waves: [['ingest', 'embeddings']] }, ['ingest', 'embeddings']), d);
    expect(plan.waves.map((w) => w.steps.map((s) => `${s.action}:${s.instance}:${s.strategy}`))).toEqual([['create:ingest:start'], ['delete:old:drain']]);
    const none = buildPlan(fleetWith({ order: 'sequential' }, ['ingest']), diffs({ ingest: 'unchanged' }));
    expect(none.hasChanges).toBe(false);
    expect(none.waves).toEqual([]);
  });

  it('uses defaults: maxParallel 4 (1 for sequential) and rollback-all', () => {
    expect(buildPlan(fleetWith({ order: 'waves', waves: [NAMES] }), allUpdate)).toMatchObject({ maxParallel: 4, onFailure: 'rollback-all' });
    expect(buildPlan(fleetWith({ order: 'sequential', maxParallel: 3 }), allUpdate).maxParallel).toBe(1);
  });
});

describe('validatePlan', () => {
  const locate = (path: readonly (string | number)[]) => ({ file: 'plans/p.yaml', line: path.length, col: 1 });
  const codes = (spec: PlanSpec) => validatePlan(spec, NAMES, locate).map((d) => `${d.severity}:${d.code}`);

  it.each<[string, PlanSpec, string[]]>([
    ['a complete waves plan', { order: 'waves', waves: [NAMES] }, []],
    ['a missing instance', { order: 'waves', waves: [['ingest', 'embeddings', 'storage', 'query']] }, ['error:InstanceNotInPlan']],
    ['an unknown name', { order: 'waves', waves: [[...NAMES, 'nope']] }, ['error:UnknownInstance']],
    ['a name twice', { order: 'waves', waves: [NAMES, ['query']] }, ['error:InstanceInPlanTwice']],
    ['an incomplete sequence', { order: 'sequential', sequence: ['ingest'] }, ['error:InstanceNotInPlan']],
    ['a dag with unknown names', { order: 'dag', dependsOn: { nope: ['ingest'], query: ['ghost'] } }, ['error:UnknownInstance', 'error:UnknownInstance']],
    ['fields the order ignores', { order: 'dag', dependsOn: {}, waves: [NAMES] }, ['warning:PlanFieldIgnored']],
  ])('%s', (_what, spec, expected) => {
    expect(codes(spec)).toEqual(expected);
  });

  it('prints the cycle path', () => {
    const d = validatePlan({ order: 'dag', dependsOn: { storage: ['query'], query: ['storage'], ingest: ['ingest'] } }, NAMES, locate);
    expect(d.map((x) => x.message)).toEqual(['circular dependency detected: ingest -> ingest', 'circular dependency detected: query -> storage -> query']);
  });

  it('finds every distinct cycle once', () => {
    expect(findCycles({ a: ['b'], b: ['c'], c: ['a'], d: ['a'] })).toEqual([['a', 'b', 'c', 'a']]);
    expect(findCycles({ a: ['b'], b: ['a', 'c'], c: ['b'] })).toEqual([['a', 'b', 'a'], ['b', 'c', 'b']]);
    expect(findCycles({ a: ['b'], b: [] })).toEqual([]);
  });
});
