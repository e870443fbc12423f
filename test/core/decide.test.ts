import { describe, expect, it } from 'vitest';
import { decide, type DecideInput } from '../../src/core/decide.js';
import type { LiveInstance } from '../../src/core/live.js';
import { recordRestart, restartKey, type RestartBook } from '../../src/core/restarts.js';
import { desiredFleet, flowsFor, liveOf, synced } from '../helpers/engine-fixtures.js';

const NOW = 1_800_000_000_000;
const fleet = desiredFleet({ instances: { web: 'v1', api: 'v1' } });
const [web, api] = fleet.instances as [(typeof fleet.instances)[0], (typeof fleet.instances)[0]];
const older = desiredFleet({ instances: { web: 'v0', api: 'v0' } });
const [webOld] = older.instances;

function run(live: LiveInstance[], extra: Partial<DecideInput> = {}) {
  return decide({ desired: fleet, mode: 'rollout', canPlan: true, live, restarts: {}, now: NOW, ...extra });
}

const steps = (d: ReturnType<typeof decide>) => d.plan.waves.flatMap((w) => w.steps.map((s) => `${s.instance}:${s.action}:${s.route?.path}:${s.route?.target}`));
const repairs = (d: ReturnType<typeof decide>) => d.repairs.map((r) => `${r.instance}:${r.kind}:${r.actions.map((a) => ('color' in a ? `${a.type}/${a.color}` : a.type)).join(',')}`);
const condition = (d: ReturnType<typeof decide>, name: string) => d.instances.find((i) => i.name === name)?.condition;

describe('decide', () => {
  it('does nothing when every instance runs what is desired', () => {
    const d = run([synced(web), synced(api)]);
    expect(d.next).toBe('wait');
    expect(d.instances.map((i) => i.condition)).toEqual(['Synced', 'Synced']);
    expect(steps(d)).toEqual([]);
    expect(d.repairs).toEqual([]);
  });

  it.each(['rollout', 'hold'] as const)('creates a missing instance again (mode %s), whatever selfHeal says', (mode) => {
    const d = run([synced(api)], { mode });
    expect(condition(d, 'web')).toBe('Missing');
    expect(steps(d)).toEqual(['web:create:create:blue']);
    expect(d.next).toBe('rollout');
  });

  it('creates nothing while the revision waits for its retry', () => {
    const d = run([synced(api)], { canPlan: false });
    expect(condition(d, 'web')).toBe('Missing');
    expect(steps(d)).toEqual([]);
    expect(d.next).toBe('wait');
  });

  it('restarts a dead routed colour at once: urgent, before any rollout', () => {
    const d = run([liveOf(web, { colors: { blue: { status: 'exited' } } }), liveOf(api, { colors: { blue: { runs: older.instances[1] } } })]);
    expect(condition(d, 'web')).toBe('Dead');
    expect(repairs(d)).toEqual(['web:restart:restart/blue']);
    expect(d.next).toBe('repair');
    expect(d.instances.find((i) => i.name === 'web')?.health.status).toBe('Degraded');
  });

  it('routes to a warm standby that runs the same rev, then parks the dead colour', () => {
    const d = run([liveOf(web, { colors: { blue: { status: 'exited' }, green: { parkedUntil: NOW + 60_000 } }, gated: false }), synced(api)]);
    expect(repairs(d)).toEqual(['web:failover:route/green,openGate/green,park/blue']);
    expect(d.repairs[0]!.actions[2]).toEqual({ type: 'park', color: 'blue', until: NOW + 60_000 });
  });

  it('restarts rather than fail over when the flows consume MQTT (the dead colour holds their session) or that is unknown', () => {
    for (const gated of [true, undefined]) {
      const d = run([liveOf(web, { colors: { blue: { status: 'exited' }, green: { parkedUntil: NOW + 60_000 } }, ...(gated !== undefined ? { gated } : {}) }), synced(api)]);
      expect(repairs(d)).toEqual(['web:restart:restart/blue']);
    }
  });

  it('fails over when the routed colour is gone altogether and the standby runs what was applied', () => {
    const live = liveOf(web, { colors: { green: { parkedUntil: NOW + 60_000 } }, gated: false });
    const d = run([{ ...live, applied: { color: 'blue', rev: web.rev, config: web.config, at: '' } }, synced(api)]);
    expect(repairs(d)).toEqual(['web:failover:route/green,openGate/green']);
    expect(condition(d, 'web')).toBe('Dead');
    expect(steps(d)).toEqual([]);
  });

  it('restarts rather than fail over to a standby of another rev', () => {
    const d = run([liveOf(web, { colors: { blue: { status: 'exited' }, green: { runs: webOld, parkedUntil: NOW + 60_000 } }, gated: false }), synced(api)]);
    expect(repairs(d)).toEqual(['web:restart:restart/blue']);
  });

  it('backs off a colour that keeps dying and calls it CrashLoop', () => {
    let book: RestartBook = {};
    for (let i = 0; i < 3; i++) book = recordRestart(book, restartKey('web', 'blue'), NOW - 1_000);
    const d = run([liveOf(web, { colors: { blue: { status: 'exited' } } }), synced(api)], { restarts: book });
    expect(condition(d, 'web')).toBe('CrashLoop');
    expect(d.repairs).toEqual([]);
    expect(d.wakeAt).toBe(NOW - 1_000 + 4_000);
    expect(d.instances[0]!.health.message).toMatch(/^CrashLoop: restarted 3 times; next restart in 3 s/);
    // once the backoff has passed, it is restarted again
    expect(repairs(run([liveOf(web, { colors: { blue: { status: 'exited' } } }), synced(api)], { restarts: book, now: NOW + 3_000 }))).toEqual(['web:restart:restart/blue']);
  });

  it('rolls a crash-looping instance out when a newer revision arrives (the fix may be in it)', () => {
    let book: RestartBook = {};
    for (let i = 0; i < 4; i++) book = recordRestart(book, restartKey('web', 'blue'), NOW);
    const d = run([liveOf(web, { colors: { blue: { status: 'exited', runs: webOld } } }), synced(api)], { restarts: book });
    expect(condition(d, 'web')).toBe('CrashLoop');
    expect(steps(d)).toEqual(['web:update:blue-green:green']);
  });

  it('restarts a dead switch, and serves again a stable port whose switch is gone', () => {
    const d = run([liveOf(web, { switch: 'down', colors: { blue: {} } }), liveOf(api, { switch: 'gone', colors: { green: {} } })]);
    expect(repairs(d)).toEqual(['web:restart-switch:ensureSwitch', 'api:restore-switch:ensureSwitch,route/green,openGate/green']);
    expect(d.next).toBe('repair');
  });

  it('re-opens the closed gate of the routed colour', () => {
    const d = run([liveOf(web, { colors: { blue: {} }, gate: { open: false } }), synced(api)]);
    expect(repairs(d)).toEqual(['web:reopen-gate:openGate/blue']);
  });

  it('backs off a repair that failed, and lets the rollout through meanwhile', () => {
    const failures = recordRestart({}, restartKey('web', 'reopen-gate'), NOW - 100);
    const d = run([liveOf(web, { colors: { blue: { runs: webOld } }, gate: { open: false } }), synced(api)], { repairFailures: failures });
    expect(d.repairs).toEqual([]);
    expect(d.next).toBe('rollout');
    expect(d.wakeAt).toBe(NOW + 900);
  });

  it('does not wake for what is due already (no loop when housekeeping fails)', () => {
    const d = run([liveOf(web, { colors: { blue: {}, green: { parkedUntil: NOW - 1 } } }), synced(api)]);
    expect(d.next).toBe('housekeeping');
    expect(d.wakeAt).toBeUndefined();
  });

  it('reports drift and leaves it alone without selfHeal', () => {
    const edited = liveOf(web, { colors: { blue: {} }, liveFlows: flowsFor('web', 'edited by hand') });
    const d = run([edited, synced(api)]);
    expect(condition(d, 'web')).toBe('Drifted');
    expect(d.instances[0]!.drift).toBe(true);
    expect(steps(d)).toEqual([]);
    expect(d.next).toBe('wait');
  });

  it('puts Git back on drift with selfHeal', () => {
    const healing = desiredFleet({ instances: { web: 'v1', api: 'v1' }, selfHeal: true });
    const edited = liveOf(healing.instances[0]!, { colors: { blue: {} }, liveFlows: flowsFor('web', 'edited by hand') });
    const d = decide({ desired: healing, mode: 'rollout', canPlan: true, live: [edited, synced(healing.instances[1]!)], restarts: {}, now: NOW });
    expect(steps(d)).toEqual(['web:update:blue-green:green']);
  });

  it('rolls out what is out of date, and holds it while the newest revision is not rolled out', () => {
    const live = [liveOf(web, { colors: { blue: { runs: webOld } } }), synced(api)];
    expect(condition(run(live), 'web')).toBe('OutOfDate');
    expect(steps(run(live))).toEqual(['web:update:blue-green:green']);
    const held = run(live, { mode: 'hold' });
    expect(condition(held, 'web')).toBe('OutOfDate');
    expect(steps(held)).toEqual([]);
  });

  it('swaps back to a warm standby that runs the desired flows', () => {
    const d = run([liveOf(web, { colors: { blue: { runs: webOld }, green: { parkedUntil: NOW + 1 } } }), synced(api)]);
    expect(steps(d)).toEqual(['web:update:swap:green']);
  });

  it('prunes an instance removed from the fleet, but not while holding', () => {
    const extra = desiredFleet({ instances: { old: 'x' } }).instances[0]!;
    const live = [synced(web), synced(api), synced(extra)];
    expect(steps(run(live))).toEqual(['old:delete:delete:blue']);
    expect(condition(run(live), 'old')).toBe('NotInFleet');
    expect(steps(run(live, { mode: 'hold' }))).toEqual([]);
  });

  it('removes leftovers and expired standbys as housekeeping, and restarts a dead warm standby', () => {
    const d = run([
      liveOf(web, { colors: { blue: {}, green: {} } }),
      liveOf(api, { colors: { blue: {}, green: { parkedUntil: NOW - 1 } } }),
    ]);
    expect(repairs(d)).toEqual(['web:remove-leftover:closeGate/green,drain/green,remove/green', 'api:reap-standby:remove/green']);
    expect(d.next).toBe('housekeeping');
    const standby = run([liveOf(web, { colors: { blue: {}, green: { status: 'exited', parkedUntil: NOW + 5_000 } } }), synced(api)]);
    expect(repairs(standby)).toEqual(['web:restart:restart/green']);
    expect(standby.repairs[0]!.urgent).toBe(false);
    expect(standby.wakeAt).toBe(NOW + 5_000);
  });

  it('creates an instance whose switch routes to a colour that is gone', () => {
    const d = run([liveOf(web, { routed: 'green', colors: { blue: { runs: webOld } } }), synced(api)]);
    expect(condition(d, 'web')).toBe('Missing');
    expect(steps(d)).toEqual(['web:update:create:green']);
  });

  it('looks again soon at an instance whose Node-RED does not answer', () => {
    const d = run([liveOf(web, { colors: { blue: {} }, adminUp: false }), synced(api)]);
    expect(condition(d, 'web')).toBe('Degraded');
    expect(d.next).toBe('wait');
    expect(d.wakeAt).toBe(NOW + 2_000);
  });

  it('has nothing to compare with when no revision is known', () => {
    const d = decide({ mode: 'hold', canPlan: true, live: [synced(web)], restarts: {}, now: NOW });
    expect(condition(d, 'web')).toBe('Unknown');
    expect(d.next).toBe('wait');
  });
});
