/**
 * decide on what observe reads from the in-memory runtime: a table of worlds (built with the
 * fake's seed and fault hooks) and what the pass decides for them — the condition, the route
 * of the plan step, the repairs. Beside test/core/decide.test.ts, which feeds decide hand-made
 * observations: here the observation is the engine's own, so what observe takes from the
 * driver, the switch, the registry, the gate and the Admin API is in the loop.
 */
import { describe, expect, it } from 'vitest';
import { decide, type DesiredFleet } from '../../src/core/decide.js';
import { deployableFlows, flowsRev } from '../../src/core/flows.js';
import { gateTopicFor } from '../../src/core/instance-env.js';
import type { DesiredInstance } from '../../src/core/model.js';
import { observeFleet } from '../../src/engine/observe.js';
import { desiredFleet } from '../helpers/engine-fixtures.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';

const NOW = Date.parse('2027-03-01T12:00:00Z');

function withFlows(d: DesiredInstance, change: (n: DesiredInstance['flowList'][number]) => DesiredInstance['flowList'][number], extra: Partial<DesiredInstance> = {}): DesiredInstance {
  const flowList = d.flowList.map(change);
  return { ...d, ...extra, flowList, rev: flowsRev(deployableFlows(flowList)) };
}

/** web runs `runs` on blue, routed and applied. */
function serving(rt: FakeRuntime, runs: DesiredInstance): void {
  rt.plant('web', 'blue', runs);
  rt.plantSwitch('web', runs.port, 'blue');
  rt.setApplied('web', 'blue');
}

interface Row {
  world: string;
  selfHeal?: boolean;
  gated?: boolean;
  build(rt: FakeRuntime, desired: DesiredInstance, older: DesiredInstance): void;
  condition: string;
  steps?: string[];
  repairs?: string[];
  next: string;
}

const moved = (d: DesiredInstance) => withFlows(d, (n) => (n.type === 'function' ? { ...n, x: 140 } : n));

const ROWS: Row[] = [
  { world: 'runs the desired flows', build: (rt, d) => serving(rt, d), condition: 'Synced', next: 'wait' },
  { world: 'nothing runs', build: () => {}, condition: 'Missing', steps: ['web:create:blue'], next: 'rollout' },
  { world: 'runs an older revision', build: (rt, _d, old) => serving(rt, old), condition: 'OutOfDate', steps: ['web:blue-green:green'], next: 'rollout' },
  { world: 'runs the desired flows moved on the canvas', build: (rt, d) => serving(rt, moved(d)), condition: 'OutOfDate', steps: ['web:in-place:blue'], next: 'rollout' },
  {
    world: 'runs the desired flows, deployed in place (the registry has the new rev, the driver the one it started with)',
    build: (rt, d) => {
      serving(rt, moved(d));
      rt.edit('web', 'blue', () => d.flowList);
      rt.registry.update((r) => void (r.instances.web!.colors.blue!.rev = d.rev));
    },
    condition: 'Synced',
    next: 'wait',
  },
  { world: 'older revision routed, desired one parked warm', build: (rt, d, old) => (serving(rt, old), rt.plant('web', 'green', d, { parkedUntil: NOW + 1_000 })), condition: 'OutOfDate', steps: ['web:swap:green'], next: 'rollout' },
  {
    world: 'flows from the editor nested too deep to compare',
    build: (rt, d) => {
      serving(rt, d);
      let deep: unknown = 'bottom';
      for (let i = 0; i < 600; i++) deep = [deep];
      rt.edit('web', 'blue', (f) => [...f, { id: 'deep', type: 'function', z: 'web-tab', deep }]);
    },
    condition: 'Degraded',
    next: 'wait',
  },
  { world: 'routed colour killed', build: (rt, d) => (serving(rt, d), rt.kill('web', 'blue')), condition: 'Dead', repairs: ['web:restart:urgent'], next: 'repair' },
  {
    world: 'routed colour killed, a warm standby of the same release',
    build: (rt, d) => (serving(rt, d), rt.plant('web', 'green', d, { parkedUntil: NOW + 1_000 }), rt.kill('web', 'blue')),
    condition: 'Dead',
    repairs: ['web:failover:urgent'],
    next: 'repair',
  },
  { world: 'switch killed', build: (rt, d) => (serving(rt, d), rt.killSwitch('web')), condition: 'Dead', repairs: ['web:restart-switch:urgent'], next: 'repair' },
  { world: 'switch deleted', build: (rt, d) => (serving(rt, d), rt.deleteSwitch('web')), condition: 'Dead', repairs: ['web:restore-switch:urgent'], next: 'repair' },
  { world: 'switch deleted, the colour killed', build: (rt, d) => (serving(rt, d), rt.deleteSwitch('web'), rt.kill('web', 'blue')), condition: 'Dead', repairs: ['web:restore-switch:urgent'], next: 'repair' },
  { world: 'switch routes to a colour that is gone', build: (rt, d, old) => (rt.plant('web', 'blue', old), rt.plantSwitch('web', d.port, 'green')), condition: 'Missing', steps: ['web:create:green'], repairs: ['web:remove-leftover'], next: 'rollout' },
  { world: 'an editor deploy, selfHeal off', build: (rt, d) => (serving(rt, d), rt.edit('web', 'blue', (f) => [...f, { id: 'hand', type: 'debug' }])), condition: 'Drifted', next: 'wait' },
  { world: 'an editor deploy, selfHeal on', selfHeal: true, build: (rt, d) => (serving(rt, d), rt.edit('web', 'blue', (f) => [...f, { id: 'hand', type: 'debug' }])), condition: 'Drifted', steps: ['web:blue-green:green'], next: 'rollout' },
  { world: 'an editor moved a node, selfHeal on', selfHeal: true, build: (rt, d) => (serving(rt, d), rt.edit('web', 'blue', (f) => f.map((n) => ({ ...n, y: 7 })))), condition: 'Drifted', steps: ['web:in-place:blue'], next: 'rollout' },
  { world: 'a leftover of an interrupted rollout', build: (rt, d, old) => (serving(rt, d), rt.plant('web', 'green', old)), condition: 'Synced', repairs: ['web:remove-leftover'], next: 'housekeeping' },
  { world: 'a standby whose keepWarm ran out', build: (rt, d, old) => (serving(rt, d), rt.plant('web', 'green', old, { parkedUntil: NOW - 1 })), condition: 'Synced', repairs: ['web:reap-standby'], next: 'housekeeping' },
  { world: 'a warm standby that died', build: (rt, d, old) => (serving(rt, d), rt.plant('web', 'green', old, { parkedUntil: NOW + 1_000, status: 'exited' })), condition: 'Synced', repairs: ['web:restart'], next: 'housekeeping' },
  { world: 'the gate of the routed colour closed', gated: true, build: (rt, d) => (serving(rt, d), rt.retained.set(gateTopicFor('test', 'web', 'blue'), 'closed')), condition: 'Synced', repairs: ['web:reopen-gate:urgent'], next: 'repair' },
  { world: 'the gate of the routed colour open', gated: true, build: (rt, d) => (serving(rt, d), rt.retained.set(gateTopicFor('test', 'web', 'blue'), 'open')), condition: 'Synced', next: 'wait' },
  {
    world: 'the routed colour runs the desired flows, but Tower has no record of it',
    build: (rt, d) => (rt.plant('web', 'blue', d, { record: false }), rt.plantSwitch('web', d.port, 'blue')),
    condition: 'Synced',
    next: 'wait',
  },
];

function fleetFor(row: Row): DesiredFleet {
  const f = desiredFleet({ instances: { web: 'v2' }, selfHeal: row.selfHeal ?? false });
  if (!row.gated) return f;
  const d = f.instances[0]!;
  const gated = { ...withFlows(d, (n) => n), flows: [...d.flows, 'lib:deploy-gate'] };
  gated.flowList = [...gated.flowList, { id: 'tower-gate-web', type: 'function', z: 'web-tab', func: 'return msg;' }];
  gated.rev = flowsRev(deployableFlows(gated.flowList));
  return { fleet: { ...f.fleet, instances: [gated] }, instances: [gated] };
}

describe('decide on observed fake worlds', () => {
  async function check(row: Row): Promise<void> {
    const f = fleetFor(row);
    const desired = f.instances[0]!;
    const older = withFlows(desired, (n) => (n.type === 'function' && n.name === 'answer' ? { ...n, func: 'return "v1";' } : n));
    const rt = new FakeRuntime('test', { gate: true });
    row.build(rt, desired, older);
    const live = await observeFleet(rt, 'test');
    const d = decide({ desired: f, mode: 'rollout', canPlan: true, live, restarts: {}, now: NOW });
    expect(d.instances.map((v) => `${v.name}:${v.condition}`)).toEqual([`web:${row.condition}`]);
    expect(d.plan.waves.flatMap((w) => w.steps.map((s) => `${s.instance}:${s.route?.path}:${s.route?.target}`))).toEqual(row.steps ?? []);
    expect(d.repairs.map((r) => `${r.instance}:${r.kind}${r.urgent ? ':urgent' : ''}`)).toEqual(row.repairs ?? []);
    expect(d.next).toBe(row.next);
  }

  it.each(ROWS)('$world → $condition, $next', check);

  it('an instance not in the fleet is pruned, its switch last', async () => {
    const f = desiredFleet({ instances: { web: 'v2' } });
    const rt = new FakeRuntime();
    serving(rt, f.instances[0]!);
    const gone = { ...desiredFleet({ instances: { old: 'x' } }).instances[0]!, port: 41_500 };
    rt.plant('old', 'green', gone);
    rt.plantSwitch('old', gone.port, 'green');
    const d = decide({ desired: f, mode: 'rollout', canPlan: true, live: await observeFleet(rt, 'test'), restarts: {}, now: NOW });
    expect(d.instances.map((v) => `${v.name}:${v.condition}`)).toEqual(['web:Synced', 'old:NotInFleet']);
    expect(d.plan.waves.flatMap((w) => w.steps.map((s) => `${s.instance}:${s.route?.path}:${s.route?.active}`))).toEqual(['old:delete:green']);
  });
});
