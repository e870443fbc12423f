/**
 * The rollout recorder: one listener for the executor's events that feeds everything that
 * reports a rollout — the store (history, trace, audit, attempted revision), GitHub, the
 * metrics, the logs and the live progress on the page. The loop creates one per rollout.
 */
import type { Logger } from 'pino';
import { capText } from '../core/bounds.js';
import type { Plan } from '../core/plan.js';
import type { PlanReport } from '../core/render.js';
import type { SwapState } from '../core/rollout.js';
import { STATUS_LIMITS, type RolloutOutcome, type RolloutProgress } from '../core/status.js';
import type { RolloutEvent } from './events.js';
import type { RolloutResult } from './executor.js';
import type { CommitInfo, MetricsSink, Reporter, RolloutRecord, StateStore } from './ports.js';

export interface RecorderDeps {
  store: StateStore;
  reporter?: Reporter;
  metrics?: MetricsSink;
  log: Logger;
  now(): Date;
  /** Called whenever the progress changed. */
  changed(): void;
}

export interface RolloutIntent {
  id: string;
  fleet: string;
  revision: string;
  commit?: CommitInfo;
  plan: Plan;
  report: PlanReport;
  /**
   * A rollout of a new revision is reported (attempted revision, commit status); one that
   * re-converges the applied revision (re-creating, self-healing) is only recorded.
   */
  newRevision: boolean;
  actor: string;
}

export interface RolloutEnd {
  outcome: RolloutOutcome;
  error?: string;
  /** What the loop should do about a failure. */
  kind?: 'stalled' | 'retryable';
}

export class RolloutRecorder {
  readonly progress: RolloutProgress;
  readonly log: Logger;
  private readonly startedAt: string;

  constructor(
    private readonly deps: RecorderDeps,
    private readonly intent: RolloutIntent,
  ) {
    this.startedAt = deps.now().toISOString();
    this.log = deps.log.child({ rollout: intent.id, revision: intent.revision.slice(0, 12) });
    this.progress = {
      id: intent.id,
      revision: intent.revision,
      startedAt: this.startedAt,
      waves: intent.plan.waves.map((w) => ({ index: w.index, instances: w.steps.map((s) => s.instance), state: 'pending' })),
      instances: Object.fromEntries(intent.plan.waves.flatMap((w) => w.steps.map((s) => [s.instance, { wave: w.index }]))),
    };
  }

  async begin(): Promise<void> {
    const { store, reporter } = this.deps;
    const { intent } = this;
    const record: Omit<RolloutRecord, 'outcome' | 'finishedAt'> = {
      id: intent.id,
      fleet: intent.fleet,
      revision: intent.revision,
      ...(intent.commit?.author ? { author: intent.commit.author } : {}),
      ...(intent.commit?.message ? { message: capText(intent.commit.message, STATUS_LIMITS.commitMessageChars) } : {}),
      startedAt: this.startedAt,
      plan: { order: intent.plan.order, onFailure: intent.plan.onFailure, waves: intent.plan.waves.map((w) => ({ index: w.index, steps: w.steps })) },
    };
    await store.beginRollout(record);
    await store.audit({ at: this.startedAt, fleet: intent.fleet, actor: intent.actor, action: 'rollout-started', revision: intent.revision, detail: { waves: intent.plan.waves.length } });
    if (intent.newRevision) {
      await store.setAttempted(intent.fleet, { revision: intent.revision, at: this.startedAt, outcome: 'running' });
      reporter?.rolloutStarted({ revision: intent.revision, plan: intent.report });
    }
    this.log.info({ waves: intent.plan.waves.length, actor: intent.actor }, 'rollout started');
    this.deps.changed();
  }

  /** The trace: each instance's state, before its next actions run. */
  journal = async (instance: string, state: SwapState): Promise<void> => {
    await this.deps.store.saveInstanceState(this.intent.id, instance, state);
  };

  onEvent = (e: RolloutEvent): void => {
    const r = this.progress;
    const log = this.log;
    switch (e.type) {
      case 'wave-start':
        r.waves[e.wave]!.state = 'running';
        log.info({ wave: e.wave + 1, instances: e.instances }, 'wave started');
        break;
      case 'phase':
        if (r.instances[e.instance]) Object.assign(r.instances[e.instance]!, { phase: e.phase, path: e.path });
        log.info({ instance: e.instance, phase: e.phase, path: e.path }, `phase ${e.phase}`);
        break;
      case 'instance-end':
        if (r.instances[e.instance]) Object.assign(r.instances[e.instance]!, { outcome: e.outcome, ...(e.error ? { error: bounded(e.error) } : {}) });
        log[e.error ? 'error' : 'info']({ instance: e.instance, outcome: e.outcome, ms: e.ms, ...(e.error ? { err: e.error } : {}) }, `instance ${e.outcome}`);
        break;
      case 'wave-end':
        r.waves[e.wave]!.state = e.ok ? 'healthy' : 'failed';
        log.info({ wave: e.wave + 1, ok: e.ok }, e.ok ? 'wave healthy' : 'wave failed');
        break;
      case 'rollback-start':
        for (const name of e.instances) if (r.instances[name]) r.instances[name]!.outcome = 'rolling back';
        log.warn({ instances: e.instances, reason: e.reason }, 'rolling back');
        break;
      case 'cleanup':
        for (const name of e.instances) if (r.instances[name]) r.instances[name]!.phase = 'CLEANUP';
        log.info({ instances: e.instances }, 'cleaning up: old colours are stopped or parked warm');
        break;
      case 'canary': {
        if (r.instances[e.instance]) r.instances[e.instance]!.canary = { step: e.step + 1, steps: e.steps, weight: e.weight, canary: e.canary, baseline: e.baseline, verdict: e.verdict.verdict, reason: bounded(e.verdict.reason), ...(e.variants ? { variants: e.variants } : {}) };
        if (e.verdict.verdict !== 'wait' && !e.variants) log[e.verdict.verdict === 'pass' ? 'info' : 'warn']({ instance: e.instance, step: e.step + 1, weight: e.weight, canary: e.canary, baseline: e.baseline }, `canary step ${e.step + 1} (${e.weight}%): ${e.verdict.verdict}: ${e.verdict.reason}`);
        if (e.verdict.verdict !== 'wait' && e.variants) log.info({ instance: e.instance, weight: e.weight, variants: e.variants }, `A/B experiment over: ${e.verdict.reason}`);
        this.deps.metrics?.canary?.(e.instance, e.color, e.weight, e.canary, e.baseline, e.variants);
        break;
      }
      case 'warning':
        log.warn({ ...(e.instance ? { instance: e.instance } : {}) }, e.message);
        break;
      default:
        break;
    }
    this.deps.changed();
  };

  /** Records how the rollout ended; `stopped` when the loop stopped it (SIGTERM, leadership lost). */
  async finish(result: RolloutResult | undefined, thrown: string | undefined, stopped: boolean): Promise<RolloutEnd> {
    const { store, reporter, metrics } = this.deps;
    const { intent } = this;
    const finishedAt = this.deps.now().toISOString();
    const end = outcomeOf(result, thrown, stopped);
    for (const r of result?.instances ?? []) {
      await store.saveInstanceHistory(intent.id, r.instance, { path: r.path, outcome: r.state.outcome, ...(r.state.error ? { error: bounded(r.state.error) } : {}), phases: r.phases.map((p) => ({ phase: p.phase, startedAt: this.startedAt, ms: p.ms })) });
      for (const p of r.phases) metrics?.phase(p.phase, r.path, p.ms / 1000);
    }
    await store.finishRollout(intent.id, end.outcome, finishedAt, end.error);
    metrics?.deployment(end.outcome);
    await store.audit({ at: finishedAt, fleet: intent.fleet, actor: intent.actor, action: `rollout-${end.outcome}`, revision: intent.revision, ...(end.error ? { detail: { error: end.error } } : {}) });
    if (intent.newRevision) {
      await store.setAttempted(intent.fleet, { revision: intent.revision, at: finishedAt, outcome: end.outcome, ...(end.error ? { error: end.error } : {}) });
      if (end.outcome !== 'running' && end.outcome !== 'invalid') {
        reporter?.rolloutFinished({
          revision: intent.revision,
          outcome: end.outcome,
          ...(end.error ? { error: end.error } : {}),
          instances: (result?.instances ?? []).map((r) => ({ name: r.instance, wave: r.wave, path: r.path, outcome: r.state.outcome, phases: r.phases, ms: r.ms, ...(r.state.error ? { error: bounded(r.state.error) } : {}) })),
          ms: result?.ms ?? Date.parse(finishedAt) - Date.parse(this.startedAt),
        });
      }
    }
    const words: Record<string, string> = { succeeded: 'rollout succeeded: the fleet runs this revision', superseded: 'rollout superseded by a newer revision', interrupted: 'rollout interrupted: the daemon is stopping or lost leadership; what ran is kept' };
    if (end.outcome === 'succeeded' || end.outcome === 'superseded' || end.outcome === 'interrupted') this.log.info({ ms: result?.ms }, words[end.outcome]!);
    else this.log.error({ err: end.error, outcome: end.outcome }, 'rollout failed');
    return end;
  }
}

/**
 * An error text as it is stored (history, audit, attempted revision) and reported (status,
 * GitHub): bounded, with how much was cut. Secrets were taken out where the text was made.
 */
function bounded(error: string): string {
  return capText(error, STATUS_LIMITS.messageChars);
}

function outcomeOf(result: RolloutResult | undefined, thrown: string | undefined, stopped: boolean): RolloutEnd {
  if (!result) return { outcome: 'failed', error: bounded(thrown ?? 'the rollout could not run'), kind: 'retryable' };
  if (result.superseded) return { outcome: stopped ? 'interrupted' : 'superseded' };
  if (result.ok) return { outcome: 'succeeded' };
  const f = result.failure!;
  const error = bounded(`${f.instance}${f.phase ? ` in ${f.phase}` : ''}: ${f.error}`);
  // A rollback that itself failed leaves the fleet needing repair: the next pass sees to it.
  const outcome: RolloutOutcome = result.instances.some((i) => i.state.outcome === 'failed') ? 'failed' : 'rolled-back';
  return { outcome, error, kind: f.kind };
}
