/**
 * The executor runs exactly what decide returned: a plan one wave at a time (the instances
 * of a wave in parallel; the plan already split waves by maxParallel), with the plan's
 * failure policy, or a list of repairs. It decides nothing the plan did not say.
 */
import type { LiveInstance } from '../core/live.js';
import type { DesiredInstance, OnFailure } from '../core/model.js';
import type { Plan } from '../core/plan.js';
import type { Repair } from '../core/repairs.js';
import type { Phase, SwapState } from '../core/rollout.js';
import { InstanceActions, type ActDeps } from './actions.js';
import { describeError, InstanceRunner, type InstanceResult } from './runner.js';

export type { InstanceResult } from './runner.js';

export interface RolloutDeps extends ActDeps {
  /** The trace: each instance's state before its actions run (see InstanceRunner). */
  journal?: ConstructorParameters<typeof InstanceRunner>[5]['journal'];
}

export interface RolloutResult {
  ok: boolean;
  /** Stopped between waves (a newer revision, a stop, a lost lease); what ran is kept. */
  superseded?: boolean;
  /** The first failure, in words, and what the loop should do about it. */
  failure?: { instance: string; phase?: Phase; error: string; kind: 'stalled' | 'retryable' };
  instances: InstanceResult[];
  ms: number;
}

export async function executeRollout(plan: Plan, desired: readonly DesiredInstance[], live: readonly LiveInstance[], deps: RolloutDeps): Promise<RolloutResult> {
  const started = Date.now();
  const byName = new Map(desired.map((d) => [d.name, d]));
  const liveByName = new Map(live.map((l) => [l.name, l]));
  const results: InstanceResult[] = [];
  const runners = new Map<string, InstanceRunner>();
  deps.onEvent({ type: 'rollout-start', waves: plan.waves.length, instances: plan.waves.reduce((n, w) => n + w.steps.length, 0) });

  let failure: RolloutResult['failure'];
  let failedWave = -1;
  let superseded = false;
  for (const wave of plan.waves) {
    if (wave.index > 0 && deps.shouldContinue && !deps.shouldContinue()) {
      superseded = true;
      break;
    }
    deps.onEvent({ type: 'wave-start', wave: wave.index, instances: wave.steps.map((s) => s.instance) });
    const outcomes = await Promise.all(
      wave.steps.map(async (s) => {
        if (!s.route) throw new Error(`the plan has no route for ${s.instance}: plans are made by decide()`);
        const runner = new InstanceRunner(s.instance, wave.index, s.route, byName.get(s.instance), liveByName.get(s.instance), deps);
        runners.set(s.instance, runner);
        const r = await runner.run({ type: 'begin' });
        results.push(r);
        deps.onEvent({ type: 'instance-end', wave: wave.index, instance: s.instance, outcome: r.state.outcome, ...(r.state.error ? { error: r.state.error } : {}), ms: r.ms });
        return r;
      }),
    );
    const bad = outcomes.find((r) => r.state.outcome !== 'awaiting-cleanup' && r.state.outcome !== 'succeeded');
    deps.onEvent({ type: 'wave-end', wave: wave.index, ok: !bad });
    if (bad) {
      failure = { instance: bad.instance, ...(bad.state.failedPhase ? { phase: bad.state.failedPhase } : {}), error: bad.state.error ?? bad.state.outcome, kind: bad.failureKind ?? 'retryable' };
      failedWave = wave.index;
      break;
    }
  }

  const waiting = [...runners.values()].filter((r) => r.state.outcome === 'awaiting-cleanup');
  const back = failure ? rollbackSet(plan.onFailure, waiting, failedWave) : [];
  if (failure && back.length) {
    const reason = `${plan.onFailure}: ${failure.instance} failed${failure.phase ? ` in ${failure.phase}` : ''}`;
    deps.onEvent({ type: 'rollback-start', reason, instances: back.map((r) => r.instance) });
    await Promise.all(back.map((r) => r.run({ type: 'rollback', reason })));
  }
  const keep = waiting.filter((r) => !back.includes(r));
  if (keep.length) {
    deps.onEvent({ type: 'cleanup', instances: keep.map((r) => r.instance) });
    await Promise.all(keep.map((r) => r.run({ type: 'rollout-succeeded' })));
  }
  // Report the final state of every instance (rollbacks and cleanups changed them).
  for (const r of results) {
    const runner = runners.get(r.instance)!;
    r.state = runner.state as SwapState;
    r.phases = runner.phases;
  }
  const ms = Date.now() - started;
  deps.onEvent({ type: 'rollout-end', ok: !failure, ms });
  return { ok: !failure, ...(superseded ? { superseded } : {}), ...(failure ? { failure } : {}), instances: results, ms };
}

/** The instances a failure sends back, by the plan's onFailure. */
function rollbackSet(policy: OnFailure, waiting: InstanceRunner[], failedWave: number): InstanceRunner[] {
  if (policy === 'rollback-all') return waiting;
  if (policy === 'rollback-wave') return waiting.filter((r) => r.wave === failedWave);
  return [];
}

export interface RepairResult {
  repair: Repair;
  ok: boolean;
  error?: string;
  ms: number;
}

/**
 * Makes repairs: each instance's in order, instances in parallel. A repair that fails is
 * reported and left for a later pass; the loop counts it against its key, so it backs off.
 */
export async function executeRepairs(repairs: readonly Repair[], desired: readonly DesiredInstance[], live: readonly LiveInstance[], deps: ActDeps): Promise<RepairResult[]> {
  const byInstance = new Map<string, Repair[]>();
  for (const r of repairs) byInstance.set(r.instance, [...(byInstance.get(r.instance) ?? []), r]);
  const desiredByName = new Map(desired.map((d) => [d.name, d]));
  const liveByName = new Map(live.map((l) => [l.name, l]));
  const results = await Promise.all(
    [...byInstance.entries()].map(async ([instance, list]) => {
      const actions = new InstanceActions(instance, desiredByName.get(instance), liveByName.get(instance), deps, undefined, true);
      const out: RepairResult[] = [];
      for (const repair of list) {
        const started = Date.now();
        let error: string | undefined;
        for (const action of repair.actions) {
          try {
            await actions.perform(action);
          } catch (err) {
            error = actions.redact(describeError(action, err));
            break;
          }
        }
        const result = { repair, ok: !error, ...(error ? { error } : {}), ms: Date.now() - started };
        deps.onEvent({ type: 'repair', instance, kind: repair.kind, reason: repair.reason, ok: result.ok, ...(error ? { error } : {}), ms: result.ms });
        out.push(result);
      }
      return out;
    }),
  );
  return results.flat();
}
