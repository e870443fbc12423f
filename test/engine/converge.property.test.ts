/**
 * Level-triggered convergence, as a property: whatever runs — instances absent, on either
 * colour, with a dead routed colour, a dead or vanished switch, leftovers, warm standbys of
 * the same or another release, flows changed from the editor, instances no longer in the
 * fleet — observe → decide → act on a faithful fake ends, within a few passes, on a world
 * that decides "nothing to do": every desired instance Synced (a drifted one stays Drifted,
 * untouched, when selfHeal is off), nothing left over, nothing failed on the way.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decide, type Decision, type DesiredFleet } from '../../src/core/decide.js';
import { deployableFlows, flowsRev } from '../../src/core/flows.js';
import { gateTopicFor } from '../../src/core/instance-env.js';
import type { DesiredInstance, FlowNode } from '../../src/core/model.js';
import { recordRestart, type RestartBook } from '../../src/core/restarts.js';
import type { Color } from '../../src/core/rollout.js';
import { applyFleet } from '../../src/engine/apply.js';
import { executeRepairs, executeRollout } from '../../src/engine/executor.js';
import { observeFleet } from '../../src/engine/observe.js';
import { desiredFleet } from '../helpers/engine-fixtures.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';

const NOW = Date.parse('2027-03-01T12:00:00Z');
const MAX_PASSES = 8;
const NAMES = ['alpha', 'beta', 'gamma', 'delta'];
const EXTRAS = ['old-one', 'old-two'];
const COLORS: readonly Color[] = ['blue', 'green'];

// ------------------------------------------------------------------ the desired fleet

interface FleetGen {
  texts: string[];
  selfHeal: boolean;
  strategy: 'blue-green' | 'recreate';
  gate: boolean;
}

const text = fc.oneof(fc.constantFrom('v1', 'v2', 'v3'), fc.string({ maxLength: 6 }));
const fleetGen: fc.Arbitrary<FleetGen> = fc.record({
  texts: fc.array(text, { minLength: 1, maxLength: 4 }),
  selfHeal: fc.boolean(),
  strategy: fc.constantFrom('blue-green', 'recreate'),
  gate: fc.boolean(),
});

/** Flows that use the deploy gate: lib:deploy-gate among the references, its nodes in the list. */
function gated(d: DesiredInstance): DesiredInstance {
  const flowList = [...d.flowList, { id: `tower-gate-${d.name}`, type: 'function', z: `${d.name}-tab`, name: 'gate', func: 'return msg;', x: 300, y: 100, wires: [] }];
  return { ...d, flows: [...d.flows, 'lib:deploy-gate'], drainTimeout: '0ms', flowList, rev: flowsRev(deployableFlows(flowList)) };
}

function buildFleet(g: FleetGen): DesiredFleet {
  const f = desiredFleet({ instances: Object.fromEntries(g.texts.map((t, i) => [NAMES[i]!, t])), selfHeal: g.selfHeal, strategy: g.strategy });
  const instances = g.gate ? f.instances.map(gated) : [...f.instances];
  return { fleet: { ...f.fleet, instances }, instances };
}

// ------------------------------------------------------------------ what runs

/** What a colour runs, relative to the desired instance: exactly it, or other flows, a moved node, another config. */
type Runs = 'desired' | { text: string; dx: number; env: boolean };
interface ColorGen {
  runs: Runs;
  status: 'running' | 'exited' | 'created';
  parked: 'no' | 'future' | 'past';
  recorded: boolean;
}
interface InstanceGen {
  present: boolean;
  colors: [ColorGen | null, ColorGen | null];
  switch: 'up' | 'down' | 'gone';
  routed: Color | null;
  applied: Color | null;
  edit: 'none' | 'functional' | 'layout';
  gate: 'open' | 'closed' | 'none';
}

const runsGen: fc.Arbitrary<Runs> = fc.oneof(
  { weight: 3, arbitrary: fc.constant('desired' as const) },
  { weight: 2, arbitrary: fc.record({ text: fc.constantFrom('v1', 'v2', 'v3'), dx: fc.constantFrom(0, 40), env: fc.boolean() }) },
);
const colorGen: fc.Arbitrary<ColorGen> = fc.record({
  runs: runsGen,
  status: fc.constantFrom('running', 'running', 'running', 'exited', 'created'),
  parked: fc.constantFrom('no', 'no', 'future', 'past'),
  recorded: fc.constantFrom(true, true, true, false),
});
const instanceGen: fc.Arbitrary<InstanceGen> = fc.record({
  present: fc.constantFrom(true, true, true, false),
  colors: fc.tuple(fc.option(colorGen, { nil: null }), fc.option(colorGen, { nil: null })),
  switch: fc.constantFrom('up', 'up', 'up', 'down', 'gone'),
  routed: fc.constantFrom('blue', 'green', 'blue', null),
  applied: fc.constantFrom('blue', 'green', null),
  edit: fc.constantFrom('none', 'none', 'functional', 'layout'),
  gate: fc.constantFrom('open', 'closed', 'none'),
});

function runsOf(d: DesiredInstance, runs: Runs): DesiredInstance {
  if (runs === 'desired') return d;
  const flowList = d.flowList.map((n) => (n.type === 'function' && n.name === 'answer' ? { ...n, func: `return ${JSON.stringify(runs.text)};`, x: Number(n.x) + runs.dx } : n));
  return { ...d, flowList, rev: flowsRev(deployableFlows(flowList)), config: { ...d.config, env: runs.env ? { MODE: 'other' } : d.config.env } };
}

/** Plants an instance's state in the fake; returns the flows the editor left on the routed colour, if it edited them. */
function plantInstance(rt: FakeRuntime, d: DesiredInstance, g: InstanceGen): FlowNode[] | undefined {
  if (!g.present) return undefined;
  COLORS.forEach((color, i) => {
    const c = g.colors[i];
    if (!c) return;
    const parkedUntil = c.parked === 'future' ? NOW + 60_000 : c.parked === 'past' ? NOW - 1_000 : undefined;
    rt.plant(d.name, color, runsOf(d, c.runs), { status: c.status, record: c.recorded, ...(parkedUntil !== undefined ? { parkedUntil } : {}) });
  });
  if (g.switch !== 'gone') rt.plantSwitch(d.name, d.port, g.routed ?? undefined, g.switch === 'up');
  if (g.applied) rt.setApplied(d.name, g.applied);
  if (g.routed && g.gate !== 'none') rt.retained.set(gateTopicFor('test', d.name, g.routed), g.gate);
  // The editor changes the colour the switch serves.
  if (!g.routed || g.edit === 'none' || g.switch === 'gone' || !rt.color(d.name, g.routed)) return undefined;
  rt.edit(d.name, g.routed, (flows) =>
    g.edit === 'layout' ? flows.map((n) => (n.type === 'function' ? { ...n, y: Number(n.y) + 25 } : n)) : [...flows, { id: 'by-hand', type: 'debug', z: `${d.name}-tab`, x: 500, y: 100, wires: [] }],
  );
  return rt.color(d.name, g.routed)!.flows;
}

// ------------------------------------------------------------------ the loop

interface Run {
  decision?: Decision;
  passes: number;
  /** What each pass did, for the counterexample. */
  trail: string[];
  failures: string[];
}

/** observe → decide → act, as apply does, until decide says wait (or MAX_PASSES). */
async function converge(rt: FakeRuntime, f: DesiredFleet): Promise<Run> {
  let restarts: RestartBook = {};
  const run: Run = { passes: 0, trail: [], failures: [] };
  const deps = { fleet: 'test', desiredFleet: f.fleet, runtime: rt, secretsEnv: {}, now: () => new Date(NOW), onEvent: () => {} };
  for (; run.passes < MAX_PASSES; run.passes++) {
    const live = await observeFleet(rt, 'test');
    const decision = decide({ desired: f, mode: 'rollout', canPlan: true, live, restarts, now: NOW });
    if (decision.next === 'wait') return { ...run, decision };
    if (decision.next === 'rollout') {
      run.trail.push(`rollout ${decision.plan.waves.flatMap((w) => w.steps.map((s) => `${s.instance}:${s.route?.path}->${s.route?.target}`)).join(' ')}`);
      const result = await executeRollout(decision.plan, f.instances, live, deps);
      if (!result.ok) run.failures.push(`rollout: ${result.failure?.instance} ${result.failure?.phase}: ${result.failure?.error}`);
      continue;
    }
    const due = decision.repairs.filter((r) => decision.next === 'housekeeping' || r.urgent);
    run.trail.push(`${decision.next} ${due.map((r) => `${r.instance}:${r.kind}`).join(' ')}`);
    for (const r of await executeRepairs(due, f.instances, live, deps)) {
      if (!r.ok) run.failures.push(`repair ${r.repair.instance}:${r.repair.kind}: ${r.error}`);
      if (r.repair.restartKey) restarts = recordRestart(restarts, r.repair.restartKey, NOW);
    }
  }
  return run;
}

// ------------------------------------------------------------------ the property


interface WorldGen {
  fleet: FleetGen;
  instances: InstanceGen[];
  extras: InstanceGen[];
}
const worldGen: fc.Arbitrary<WorldGen> = fc.record({
  fleet: fleetGen,
  instances: fc.array(instanceGen, { minLength: 4, maxLength: 4 }),
  extras: fc.array(instanceGen, { minLength: 2, maxLength: 2 }),
});

/** The fake world a generated state describes, and the flows the editor left where it edited. */
function plantWorld(w: WorldGen) {
  const f = buildFleet(w.fleet);
  const rt = new FakeRuntime('test', { gate: true });
  const edited = new Map<string, FlowNode[]>();
  f.instances.forEach((d, i) => {
    const flows = plantInstance(rt, d, w.instances[i]!);
    if (flows) edited.set(d.name, flows);
  });
  // Not gated: an instance no longer in the fleet has no drainTimeout, so removing a gated
  // colour waits the default 30 s of real time for the MQTT work it took.
  const extraFleet = buildFleet({ ...w.fleet, gate: false, texts: ['x', 'y'] });
  EXTRAS.forEach((name, i) => plantInstance(rt, { ...extraFleet.instances[i]!, name, port: 41_500 + i }, w.extras[i]!));
  return { f, rt, edited, gate: w.fleet.gate };
}

/** The world has nothing left to do: every desired instance serves its flows (or stays as the editor left it), nothing else runs. */
async function expectConverged(world: ReturnType<typeof plantWorld>, decision: Decision, context: string): Promise<void> {
  const { f, rt, edited } = world;
  expect(decision.plan.waves, context).toEqual([]);
  expect(decision.repairs, context).toEqual([]);
  for (const d of f.instances) {
    const verdict = decision.instances.find((v) => v.name === d.name)!;
    const served = await rt.serving(d.name);
    if (verdict.condition === 'Drifted' && !f.fleet.selfHeal && edited.has(d.name)) {
      expect(served?.flows, `${d.name} was changed by Tower: ${context}`).toEqual(edited.get(d.name));
      continue;
    }
    expect(`${d.name}:${verdict.condition} ${verdict.message}`, context).toBe(`${d.name}:Synced runs the desired flows`);
    expect(served?.rev, `${d.name} serves another rev: ${context}`).toBe(d.rev);
    expect(rt.routers.get(d.name)?.listenPort).toBe(d.port);
    if (world.gate) expect(rt.retained.get(gateTopicFor('test', d.name, served!.color)), `${d.name}'s gate: ${context}`).toBe('open');
  }
  for (const name of EXTRAS) {
    expect(rt.routers.has(name), `${name} keeps a switch: ${context}`).toBe(false);
    expect([...rt.colors.keys()].filter((k) => k.startsWith(`${name}/`)), context).toEqual([]);
    expect(rt.registry.read().instances[name], context).toBeUndefined();
  }
  expect(decision.instances.map((v) => v.name).sort()).toEqual(f.instances.map((d) => d.name).sort());
  expect(rt.orphans(NOW), context).toEqual([]);
}

const RUNS = Number(process.env.CONVERGE_RUNS ?? 150);

describe('converge (property)', () => {
  it('any observed state converges on what is desired, on a faithful fake', async () => {
    await fc.assert(
      fc.asyncProperty(worldGen, async (w) => {
        const world = plantWorld(w);
        const run = await converge(world.rt, world.f);
        const context = JSON.stringify({ trail: run.trail, failures: run.failures });
        expect(run.decision, `no convergence in ${MAX_PASSES} passes: ${context}`).toBeDefined();
        expect(run.failures, context).toEqual([]);
        expect(run.passes, context).toBeLessThanOrEqual(4);
        await expectConverged(world, run.decision!, context);
      }),
      { numRuns: RUNS },
    );
  });

  it('applyFleet gets there too, in one apply', async () => {
    await fc.assert(
      fc.asyncProperty(worldGen, async (w) => {
        const world = plantWorld(w);
        const { f, rt } = world;
        const out = await applyFleet(rt, { fleet: f.fleet, instances: [...f.instances], diagnostics: [] }, { env: {}, onEvent: () => {}, now: () => new Date(NOW) });
        const failed = out.repairs.filter((r) => !r.ok).map((r) => `repair ${r.repair.instance}:${r.repair.kind}: ${r.error}`);
        const context = JSON.stringify({ failure: out.result?.failure, repairs: out.repairs.map((r) => `${r.repair.instance}:${r.repair.kind}`), failed });
        expect(out.result?.ok ?? true, context).toBe(true);
        expect(failed, context).toEqual([]);
        const live = await observeFleet(rt, 'test');
        await expectConverged(world, decide({ desired: f, mode: 'rollout', canPlan: true, live, restarts: {}, now: NOW }), context);
      }),
      { numRuns: Math.ceil(RUNS / 2) },
    );
  });
});
