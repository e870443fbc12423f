/**
 * The executor on the in-memory runtime: the failure policies (rollback-all, rollback-wave,
 * halt), supersede between waves, each path decide chooses, and the liveness repairs —
 * asserted on what the fake world ends with (what the stable address serves, which colours
 * exist and why), not on the calls made.
 */
import { describe, expect, it } from 'vitest';
import { decide, type DesiredFleet } from '../../src/core/decide.js';
import { deployableFlows, flowsRev } from '../../src/core/flows.js';
import type { DesiredInstance, OnFailure } from '../../src/core/model.js';
import { recordRestart, type RestartBook } from '../../src/core/restarts.js';
import type { Color } from '../../src/core/rollout.js';
import type { RolloutEvent } from '../../src/engine/events.js';
import { executeRepairs, executeRollout, type RolloutDeps } from '../../src/engine/executor.js';
import { observeFleet } from '../../src/engine/observe.js';
import { desiredFleet, type FleetSpec } from '../helpers/engine-fixtures.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';

const NOW = Date.parse('2027-03-01T12:00:00Z');
const KEEP_WARM_MS = 2 * 60_000; // the fixtures' keepWarm

/** A desired fleet whose instances have one HTTP smoke check (so a failing smoke fails VERIFY). */
function fleet(spec: FleetSpec): DesiredFleet {
  const f = desiredFleet(spec);
  const instances = f.instances.map((d) => ({ ...d, smoke: [{ name: 'answers', http: { path: '/answer' } }] }));
  return { fleet: { ...f.fleet, instances }, instances };
}

/** The same instance with other flows (or the same flows moved on the canvas). */
function variant(d: DesiredInstance, change: { text?: string; dx?: number; env?: Record<string, string> }): DesiredInstance {
  const flowList = d.flowList.map((n) => (n.type === 'function' ? { ...n, ...(change.text ? { func: `return ${JSON.stringify(change.text)};` } : {}), x: Number(n.x) + (change.dx ?? 0) } : n));
  return { ...d, flowList, rev: flowsRev(deployableFlows(flowList)), config: { ...d.config, env: change.env ?? d.config.env } };
}

/** Every instance runs `runs` on blue, routed, applied. */
function seed(rt: FakeRuntime, runs: readonly DesiredInstance[], color: Color = 'blue'): void {
  for (const d of runs) {
    rt.plant(d.name, color, d);
    rt.plantSwitch(d.name, d.port, color);
    rt.setApplied(d.name, color);
  }
}

async function decideOn(rt: FakeRuntime, f: DesiredFleet, restarts: RestartBook = {}, now = NOW) {
  const live = await observeFleet(rt, 'test');
  return { live, decision: decide({ desired: f, mode: 'rollout', canPlan: true, live, restarts, now }) };
}

function depsFor(rt: FakeRuntime, f: DesiredFleet, events: RolloutEvent[], now = NOW) {
  return { fleet: 'test', desiredFleet: f.fleet, runtime: rt, secretsEnv: {}, now: () => new Date(now), onEvent: (e: RolloutEvent) => void events.push(e) };
}

async function roll(rt: FakeRuntime, f: DesiredFleet, extra: Partial<RolloutDeps> = {}) {
  const { live, decision } = await decideOn(rt, f);
  const events: RolloutEvent[] = [];
  const result = await executeRollout(decision.plan, f.instances, live, { ...depsFor(rt, f, events), ...extra });
  return { decision, result, events };
}

const routes = (d: ReturnType<typeof decide>) => d.plan.waves.flatMap((w) => w.steps.map((s) => `${s.instance}:${s.route?.path}:${s.route?.active ?? '-'}->${s.route?.target}`));
const keepWarmUntil = (rt: FakeRuntime, instance: string, color: Color) => rt.registry.read().instances[instance]?.colors[color]?.keepWarmUntil;

describe('failure policies', () => {
  const NAMES = ['a', 'b', 'c', 'd'];
  const WAVES = [['a'], ['b', 'c'], ['d']];
  type Fault = 'start' | 'rev' | 'smoke';
  const FAULTS: Record<Fault, { phase: string; kind: 'stalled' | 'retryable'; error: RegExp }> = {
    start: { phase: 'DEPLOY', kind: 'retryable', error: /start green: cannot start \w\/green: port \d+ on 127\.0\.0\.1 is already in use/ },
    rev: { phase: 'VERIFY', kind: 'stalled', error: /checkRev green: Node-RED \(green\) runs flows rev/ },
    smoke: { phase: 'VERIFY', kind: 'stalled', error: /smoke green: "answers": expected status 200/ },
  };
  /** Which instances end on the new flows, by policy and by the instance that fails. */
  const NEW: Record<OnFailure, Record<string, string[]>> = {
    'rollback-all': { a: [], c: [], d: [] },
    'rollback-wave': { a: [], c: ['a'], d: ['a', 'b', 'c'] },
    halt: { a: [], c: ['a', 'b'], d: ['a', 'b', 'c'] },
  };
  const cases = (['blue-green', 'recreate'] as const).flatMap((strategy) =>
    (Object.keys(NEW) as OnFailure[]).flatMap((policy) => ['a', 'c', 'd'].flatMap((failing) => (Object.keys(FAULTS) as Fault[]).map((fault) => ({ strategy, policy, failing, fault })))),
  );

  it.each(cases)('$strategy, $policy, $failing fails ($fault)', async ({ strategy, policy, failing, fault }) => {
    const old = fleet({ instances: Object.fromEntries(NAMES.map((n) => [n, 'v1'])), strategy });
    const next = fleet({ instances: Object.fromEntries(NAMES.map((n) => [n, 'v2'])), strategy, plan: { order: 'waves', waves: WAVES, onFailure: policy } });
    const rt = new FakeRuntime();
    seed(rt, old.instances);
    if (fault === 'start') rt.failStart(failing, 'green');
    if (fault === 'rev') rt.answerWrongRev(failing, 'green');
    if (fault === 'smoke') rt.failSmoke(failing, 'green');

    const { decision, result, events } = await roll(rt, next);
    expect(routes(decision)).toEqual(NAMES.map((n) => `${n}:${strategy}:blue->green`));
    expect(result.ok).toBe(false);
    expect(result.failure).toMatchObject({ instance: failing, phase: FAULTS[fault].phase, kind: FAULTS[fault].kind });
    expect(result.failure!.error).toMatch(FAULTS[fault].error);
    expect(result.instances.find((r) => r.instance === failing)!.state.outcome).toBe('rolled-back');

    const onNew = NEW[policy][failing]!;
    const failedWave = WAVES.findIndex((w) => w.includes(failing));
    // The policy sends back those that had succeeded and are not kept; the failing one went back by itself.
    const succeeded = WAVES.slice(0, failedWave + 1).flat().filter((n) => n !== failing);
    const rollback = events.find((e) => e.type === 'rollback-start');
    expect(rollback?.type === 'rollback-start' ? [...rollback.instances].sort() : []).toEqual(succeeded.filter((n) => !onNew.includes(n)));
    for (const [i, name] of NAMES.entries()) {
      const served = await rt.serving(name);
      if (onNew.includes(name)) {
        expect(served, name).toMatchObject({ color: 'green', rev: next.instances[i]!.rev });
        if (strategy === 'blue-green') expect(keepWarmUntil(rt, name, 'blue'), `${name}: the old colour is parked`).toBe(new Date(NOW + KEEP_WARM_MS).toISOString());
        else expect(rt.color(name, 'blue'), `${name}: recreate removes the old colour`).toBeUndefined();
      } else {
        expect(served, name).toMatchObject({ color: 'blue', rev: old.instances[i]!.rev });
        expect(rt.color(name, 'green'), `${name}: the new colour is gone`).toBeUndefined();
        expect(rt.color(name, 'blue')?.status, `${name}: the old colour runs (again)`).toBe('running');
      }
    }
    expect(rt.orphans(NOW)).toEqual([]);
    // Waves after the failing one were never started.
    for (const name of WAVES.slice(failedWave + 1).flat()) expect(rt.calls.filter((c) => c.includes(`${name}/`))).toEqual([]);

    // The next pass sees the same thing: those on the new flows are in sync, the others out of date.
    const { decision: after } = await decideOn(rt, next);
    expect(after.instances.map((v) => `${v.name}:${v.condition}`)).toEqual(NAMES.map((n) => `${n}:${onNew.includes(n) ? 'Synced' : 'OutOfDate'}`));
    expect(after.repairs).toEqual([]);
  });

  // BUG (src/engine/actions.ts, handlers audit and restoreInPlace): AUDIT writes the new rev into
  // the registry's record of the colour; a rollback by the policy puts the old flows back in
  // place but not the record. The next pass then compares the old live flows with a record
  // that claims the new rev: "Drifted (someone deployed from the editor?)", left alone without
  // selfHeal — the instance is no longer rolled out, on any retry of the revision.
  it('an in-place instance rolled back by the policy is out of date again, not drifted', async () => {
    const old = fleet({ instances: { a: 'v1', b: 'v1' } });
    const plain = fleet({ instances: { a: 'v1', b: 'v2' }, plan: { order: 'sequential', onFailure: 'rollback-all' } });
    const instances = [variant(plain.instances[0]!, { dx: 40 }), plain.instances[1]!];
    const next = { fleet: { ...plain.fleet, instances }, instances };
    const rt = new FakeRuntime();
    seed(rt, old.instances);
    rt.failStart('b', 'green');
    const { decision, result } = await roll(rt, next);
    expect(routes(decision)).toEqual(['a:in-place:blue->blue', 'b:blue-green:blue->green']);
    expect(result.instances.map((r) => `${r.instance}:${r.state.outcome}`)).toEqual(['a:rolled-back', 'b:rolled-back']);
    expect(await rt.serving('a')).toMatchObject({ color: 'blue', rev: old.instances[0]!.rev });
    const { decision: after } = await decideOn(rt, next);
    expect(after.instances.map((v) => `${v.name}:${v.condition}`)).toEqual(['a:OutOfDate', 'b:OutOfDate']);
    expect(routes(after)).toEqual(['a:in-place:blue->blue', 'b:blue-green:blue->green']);
  });

  // BUG (src/core/rollout.ts rollbackActions, case 'swap'; src/engine/actions.ts route →
  // recordApplied): routing to the standby clears its keepWarmUntil; the rollback routes back
  // and — as its comment says — means to "park it again rather than remove it", but emits no
  // park. The standby is left neither routed nor parked: the next pass removes it as a leftover.
  it('a warm standby swapped to, then rolled back by the policy, is parked again', async () => {
    const f = fleet({ instances: { a: 'v1', b: 'v2' }, plan: { order: 'sequential', onFailure: 'rollback-all' } });
    const rt = new FakeRuntime();
    seed(rt, [variant(f.instances[0]!, { text: 'v0' }), variant(f.instances[1]!, { text: 'v1' })]);
    rt.plant('a', 'green', f.instances[0]!, { parkedUntil: NOW + 60_000 });
    rt.failStart('b', 'green');
    const { decision, result } = await roll(rt, f);
    expect(routes(decision)).toEqual(['a:swap:blue->green', 'b:blue-green:blue->green']);
    expect(result.instances.map((r) => `${r.instance}:${r.state.outcome}`)).toEqual(['a:rolled-back', 'b:rolled-back']);
    expect((await rt.serving('a'))?.color).toBe('blue');
    expect(rt.color('a', 'green')?.status).toBe('running');
    expect(rt.orphans(NOW)).toEqual([]);
    expect((await decideOn(rt, f)).decision.repairs).toEqual([]);
  });

  it('a start failure in a recreate brings the stopped colour back and routes to it again', async () => {
    const old = fleet({ instances: { web: 'v1' }, strategy: 'recreate' });
    const next = fleet({ instances: { web: 'v2' }, strategy: 'recreate' });
    const rt = new FakeRuntime();
    seed(rt, old.instances);
    rt.failStart('web', 'green');
    const { decision, result } = await roll(rt, next);
    expect(routes(decision)).toEqual(['web:recreate:blue->green']);
    expect(result.failure).toMatchObject({ instance: 'web', phase: 'DEPLOY', kind: 'retryable' });
    expect(await rt.serving('web')).toMatchObject({ color: 'blue', rev: old.instances[0]!.rev });
    expect(rt.color('web', 'green')).toBeUndefined();
    expect(rt.calls).toEqual(expect.arrayContaining(['stop web/blue', 'start web/blue']));
  });

  it('a failing smoke check after an in-place deploy puts the flows it ran back', async () => {
    const old = fleet({ instances: { web: 'v1' } });
    const moved = { ...old, instances: [variant(old.instances[0]!, { dx: 40 })] };
    const rt = new FakeRuntime();
    seed(rt, old.instances);
    rt.failSmoke('web');
    const { decision, result } = await roll(rt, moved);
    expect(routes(decision)).toEqual(['web:in-place:blue->blue']);
    expect(result.failure).toMatchObject({ instance: 'web', phase: 'VERIFY', kind: 'stalled' });
    expect(await rt.serving('web')).toMatchObject({ color: 'blue', rev: old.instances[0]!.rev });
    expect(rt.registry.read().instances.web!.colors.blue!.rev).toBe(old.instances[0]!.rev);
    expect(rt.calls.filter((c) => c === 'setFlows web/blue')).toHaveLength(2); // deployed, then restored
  });
});

describe('supersede', () => {
  it('stops between waves when shouldContinue says so: what ran is kept and cleaned up', async () => {
    const old = fleet({ instances: { a: 'v1', b: 'v1' } });
    const next = fleet({ instances: { a: 'v2', b: 'v2' } }); // sequential: one wave each
    const rt = new FakeRuntime();
    seed(rt, old.instances);
    let asked = 0;
    const { result } = await roll(rt, next, { shouldContinue: () => (asked++, false) });
    expect(asked).toBe(1); // only between waves, never before the first
    expect(result).toMatchObject({ ok: true, superseded: true });
    expect(result.instances.map((r) => `${r.instance}:${r.state.outcome}`)).toEqual(['a:succeeded']);
    expect(await rt.serving('a')).toMatchObject({ color: 'green', rev: next.instances[0]!.rev });
    expect(await rt.serving('b')).toMatchObject({ color: 'blue', rev: old.instances[1]!.rev });
    expect(rt.color('b', 'green')).toBeUndefined();
    expect(keepWarmUntil(rt, 'a', 'blue')).toBe(new Date(NOW + KEEP_WARM_MS).toISOString());
    expect(rt.orphans(NOW)).toEqual([]);
  });

  it('runs every wave while shouldContinue holds', async () => {
    const old = fleet({ instances: { a: 'v1', b: 'v1' } });
    const next = fleet({ instances: { a: 'v2', b: 'v2' } });
    const rt = new FakeRuntime();
    seed(rt, old.instances);
    const { result } = await roll(rt, next, { shouldContinue: () => true });
    expect(result.ok).toBe(true);
    expect(result.superseded).toBeUndefined();
    expect((await rt.serving('b'))?.rev).toBe(next.instances[1]!.rev);
  });
});

describe('paths', () => {
  it('create: nothing runs → blue started, verified and routed behind a new switch', async () => {
    const f = fleet({ instances: { web: 'v1' } });
    const rt = new FakeRuntime();
    const { decision, result } = await roll(rt, f);
    expect(routes(decision)).toEqual(['web:create:-->blue']);
    expect(result.ok).toBe(true);
    expect(await rt.serving('web')).toMatchObject({ color: 'blue', rev: f.instances[0]!.rev });
    expect(rt.routers.get('web')).toMatchObject({ listenPort: f.instances[0]!.port, running: true });
    expect(rt.registry.read().instances.web!.applied).toMatchObject({ color: 'blue', rev: f.instances[0]!.rev });
  });

  it('blue-green: the other colour runs the new flows; the old one is parked warm', async () => {
    const old = fleet({ instances: { web: 'v1' } });
    const next = fleet({ instances: { web: 'v2' } });
    const rt = new FakeRuntime();
    seed(rt, old.instances);
    const { decision, result } = await roll(rt, next);
    expect(routes(decision)).toEqual(['web:blue-green:blue->green']);
    expect(result.ok).toBe(true);
    expect(await rt.serving('web')).toMatchObject({ color: 'green', rev: next.instances[0]!.rev });
    expect(rt.color('web', 'blue')?.status).toBe('running');
    expect(keepWarmUntil(rt, 'web', 'blue')).toBe(new Date(NOW + KEEP_WARM_MS).toISOString());
  });

  it('swap: a warm standby with the desired rev and config is routed to, nothing is created', async () => {
    const f = fleet({ instances: { web: 'v1' } });
    const newer = variant(f.instances[0]!, { text: 'v2' });
    const rt = new FakeRuntime();
    seed(rt, [newer]);
    rt.plant('web', 'green', f.instances[0]!, { parkedUntil: NOW + 60_000 });
    const { decision, result } = await roll(rt, f);
    expect(routes(decision)).toEqual(['web:swap:blue->green']);
    expect(result.ok).toBe(true);
    expect(rt.calls.filter((c) => c.startsWith('create'))).toEqual([]);
    expect(await rt.serving('web')).toMatchObject({ color: 'green', rev: f.instances[0]!.rev });
    expect(keepWarmUntil(rt, 'web', 'green')).toBeUndefined(); // it serves now
    expect(keepWarmUntil(rt, 'web', 'blue')).toBe(new Date(NOW + KEEP_WARM_MS).toISOString());
  });

  it('no swap to a standby with the same rev but another config: it is replaced (blue-green)', async () => {
    const f = fleet({ instances: { web: 'v1' } });
    const rt = new FakeRuntime();
    seed(rt, [variant(f.instances[0]!, { text: 'v2' })]);
    const standby = rt.plant('web', 'green', variant(f.instances[0]!, { env: { MODE: 'other' } }), { parkedUntil: NOW + 60_000 });
    const { decision, result } = await roll(rt, f);
    expect(routes(decision)).toEqual(['web:blue-green:blue->green']);
    expect(result.ok).toBe(true);
    expect(rt.color('web', 'green')!.id).not.toBe(standby.id);
    expect(rt.registry.read().instances.web!.colors.green!.config).toEqual(f.instances[0]!.config);
  });

  it('in-place: a layout-only change is deployed to the routed colour, same port, new rev', async () => {
    const old = fleet({ instances: { web: 'v1' } });
    const moved = { ...old, instances: [variant(old.instances[0]!, { dx: 40 })] };
    const rt = new FakeRuntime();
    seed(rt, old.instances);
    const port = rt.color('web', 'blue')!.port;
    const { decision, result } = await roll(rt, moved);
    expect(routes(decision)).toEqual(['web:in-place:blue->blue']);
    expect(result.ok).toBe(true);
    expect(rt.calls.filter((c) => c.startsWith('create'))).toEqual([]);
    expect(await rt.serving('web')).toMatchObject({ color: 'blue', rev: moved.instances[0]!.rev });
    expect(rt.color('web', 'blue')!.port).toBe(port);
    expect(rt.registry.read().instances.web!.colors.blue!.rev).toBe(moved.instances[0]!.rev);
    const { decision: after } = await decideOn(rt, moved);
    expect(after.next).toBe('wait');
    expect(after.instances[0]!.condition).toBe('Synced');
  });

  it('recreate: the old colour stops before the new one starts, and is removed afterwards', async () => {
    const old = fleet({ instances: { web: 'v1' }, strategy: 'recreate' });
    const next = fleet({ instances: { web: 'v2' }, strategy: 'recreate' });
    const rt = new FakeRuntime();
    seed(rt, old.instances);
    const { decision, result } = await roll(rt, next);
    expect(routes(decision)).toEqual(['web:recreate:blue->green']);
    expect(result.ok).toBe(true);
    expect(rt.calls.indexOf('stop web/blue')).toBeLessThan(rt.calls.indexOf('start web/green'));
    expect(rt.color('web', 'blue')).toBeUndefined();
    expect(await rt.serving('web')).toMatchObject({ color: 'green', rev: next.instances[0]!.rev });
  });

  it('delete: an instance no longer in the fleet loses its switch, its colours and its record', async () => {
    const f = fleet({ instances: { web: 'v1' } });
    const gone = fleet({ instances: { old: 'x' } }).instances[0]!;
    const rt = new FakeRuntime();
    seed(rt, [...f.instances, { ...gone, port: 41_500 }]);
    rt.plant('old', 'green', gone, { parkedUntil: NOW + 60_000 });
    const { decision, result } = await roll(rt, f);
    expect(routes(decision)).toEqual(['old:delete:blue->blue']);
    expect(result.ok).toBe(true);
    expect(rt.routers.has('old')).toBe(false);
    expect([...rt.colors.keys()]).toEqual(['web/blue']);
    expect(rt.registry.read().instances.old).toBeUndefined();
    expect((await decideOn(rt, f)).decision.next).toBe('wait');
  });

  // BUG (src/core/decide.ts chooseRoute): swap is chosen from Tower's record of the standby
  // (registry rev and config), and nothing observes the live flows of a colour the switch does
  // not route to. A colour whose flows were changed from the editor, rolled forward from and
  // parked warm, is swapped back to on a revert within keepWarm: VERIFY finds the other rev,
  // the swap is rolled back and the rollout fails as stalled — a revision a blue-green would
  // roll out is not retried until a new commit. The property test keeps edits on the routed
  // colour of a live switch because of this.
  it('a revert within keepWarm, after rolling forward from hand-edited flows, succeeds', async () => {
    const a = fleet({ instances: { web: 'v1' } });
    const b = fleet({ instances: { web: 'v2' } });
    const rt = new FakeRuntime();
    seed(rt, a.instances);
    rt.edit('web', 'blue', (flows) => [...flows, { id: 'by-hand', type: 'debug', z: 'web-tab', wires: [] }]);
    expect((await decideOn(rt, a)).decision.instances[0]!.condition).toBe('Drifted');
    expect((await roll(rt, b)).result.ok).toBe(true); // green serves v2, the edited blue is parked
    const { result } = await roll(rt, a);
    expect(result.failure).toBeUndefined();
    expect((await rt.serving('web'))?.rev).toBe(a.instances[0]!.rev);
  });
});

describe('repairs', () => {
  /** Urgent repairs, then housekeeping, as the loop makes them, until nothing is due. */
  async function repairAll(rt: FakeRuntime, f: DesiredFleet) {
    let restarts: RestartBook = {};
    const made: string[] = [];
    for (let pass = 0; pass < 6; pass++) {
      const { live, decision } = await decideOn(rt, f, restarts);
      if (decision.next !== 'repair' && decision.next !== 'housekeeping') return { decision, made };
      const due = decision.repairs.filter((r) => decision.next === 'housekeeping' || r.urgent);
      for (const r of await executeRepairs(due, f.instances, live, depsFor(rt, f, []))) {
        made.push(`${r.repair.instance}:${r.repair.kind}:${r.ok ? 'ok' : r.error}`);
        if (r.repair.restartKey) restarts = recordRestart(restarts, r.repair.restartKey, NOW);
      }
    }
    throw new Error('repairs did not settle');
  }

  it('a dead routed colour with a warm standby of the same release: failover, then the dead one is restarted warm', async () => {
    const f = fleet({ instances: { web: 'v1' } });
    const rt = new FakeRuntime();
    seed(rt, f.instances);
    rt.plant('web', 'green', f.instances[0]!, { parkedUntil: NOW + 60_000 });
    rt.kill('web', 'blue');
    const { decision, made } = await repairAll(rt, f);
    expect(made).toEqual(['web:failover:ok', 'web:restart:ok']);
    expect(decision.instances[0]!.condition).toBe('Synced');
    expect((await rt.serving('web'))?.color).toBe('green');
    expect(rt.color('web', 'blue')?.status).toBe('running');
    expect(keepWarmUntil(rt, 'web', 'blue')).toBe(new Date(NOW + 60_000).toISOString());
  });

  it.each([
    ['killed switch', (rt: FakeRuntime) => rt.killSwitch('web'), 'restart-switch'],
    ['deleted switch', (rt: FakeRuntime) => rt.deleteSwitch('web'), 'restore-switch'],
    ['killed routed colour', (rt: FakeRuntime) => rt.kill('web', 'blue'), 'restart'],
  ] as const)('%s: serving again on the same colour', async (_what, fault, kind) => {
    const f = fleet({ instances: { web: 'v1' } });
    const rt = new FakeRuntime();
    seed(rt, f.instances);
    fault(rt);
    expect(await rt.serving('web')).toBeUndefined();
    const { decision, made } = await repairAll(rt, f);
    expect(made).toEqual([`web:${kind}:ok`]);
    expect(decision.next).toBe('wait');
    expect(await rt.serving('web')).toMatchObject({ color: 'blue', rev: f.instances[0]!.rev });
  });

  // BUG (src/core/repairs.ts liveness, the `!sw` branch; src/engine/actions.ts stablePort): an
  // instance no longer in the fleet whose switch vanished gets an urgent restore-switch repair,
  // but decide passes no port for it (LiveInstance carries none; the registry's record has it)
  // and the executor throws "no stable port known". The repair fails on every pass its backoff
  // allows (the prune goes on behind it when rolling out; while holding, it keeps failing).
  it('every repair decided for an instance no longer in the fleet, its switch gone, can be made', async () => {
    const f = fleet({ instances: { web: 'v1' } });
    const gone = { ...fleet({ instances: { old: 'x' } }).instances[0]!, port: 41_500 };
    const rt = new FakeRuntime();
    seed(rt, [...f.instances, gone]);
    rt.deleteSwitch('old');
    const { live, decision } = await decideOn(rt, f);
    expect(decision.repairs.map((r) => `${r.instance}:${r.kind}`)).toEqual(['old:restore-switch']);
    const made = await executeRepairs(decision.repairs, f.instances, live, depsFor(rt, f, []));
    expect(made.map((r) => r.error ?? 'ok')).toEqual(['ok']);
  });

  it('leftover colours are removed, an expired standby is reaped', async () => {
    const f = fleet({ instances: { a: 'v1', b: 'v1' } });
    const rt = new FakeRuntime();
    seed(rt, f.instances);
    rt.plant('a', 'green', f.instances[0]!); // not parked: a leftover of an interrupted rollout
    rt.plant('b', 'green', f.instances[1]!, { parkedUntil: NOW - 1 });
    const { made } = await repairAll(rt, f);
    expect(made.sort()).toEqual(['a:remove-leftover:ok', 'b:reap-standby:ok']);
    expect([...rt.colors.keys()].sort()).toEqual(['a/blue', 'b/blue']);
    expect(rt.orphans(NOW)).toEqual([]);
  });
});
