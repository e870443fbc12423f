/**
 * One instance through one rollout: the pure state machine (src/core/rollout.ts) decides,
 * the runner carries out its actions in order, stops at the first that fails and tells the
 * machine what completed. Its state is written to the trace before each batch of actions.
 */
import type { LiveInstance } from '../core/live.js';
import type { DesiredInstance } from '../core/model.js';
import type { Route } from '../core/plan.js';
import { initialState, isFinal, step, type Action, type CanaryPlan, type Observation, type Phase, type RolloutPath, type SwapState } from '../core/rollout.js';
import { InstanceActions, type ActDeps } from './actions.js';
import { TowerError } from './ports.js';

export interface InstanceResult {
  instance: string;
  wave: number;
  path: RolloutPath;
  state: SwapState;
  /** What the loop should do about the failure, when there was one. */
  failureKind?: 'stalled' | 'retryable';
  ms: number;
  phases: { phase: Phase; ms: number }[];
}

/** Actions that test the new flows: when they fail, the same flows would fail again. */
const TESTS_THE_FLOWS = new Set<Action['type']>(['checkRev', 'smoke', 'audit', 'deployInPlace']);

export class InstanceRunner {
  state: SwapState;
  readonly phases: { phase: Phase; ms: number }[] = [];
  failureKind?: 'stalled' | 'retryable';
  private phaseStarted = Date.now();
  private readonly started = Date.now();
  private readonly actions: InstanceActions;

  constructor(
    readonly instance: string,
    readonly wave: number,
    private readonly route: Route,
    private readonly desired: DesiredInstance | undefined,
    live: LiveInstance | undefined,
    private readonly deps: ActDeps & {
      /** The trace: called with the instance's state before its next actions run, and awaited. */
      journal?: (instance: string, state: SwapState) => Promise<void>;
    },
  ) {
    this.state = initialState(instance, route.path, route.active, route.target, route.switchExists, canaryPlan(route, desired));
    this.actions = new InstanceActions(instance, desired, live, deps, this.state.target);
  }

  async run(first: Observation): Promise<InstanceResult> {
    let obs = first;
    for (let guard = 0; guard < 64; guard++) {
      const before = this.state.phase;
      const { next, actions } = step(this.state, obs);
      this.state = next;
      if (next.phase !== before || guard === 0) this.enterPhase(next.phase, before, guard === 0);
      if (isFinal(next)) break;
      if (actions.length === 0) {
        if (next.outcome === 'awaiting-cleanup') break;
        obs = { type: 'completed' };
        continue;
      }
      await this.writeJournal(next);
      obs = await this.execute(actions);
    }
    this.closePhase();
    await this.writeJournal(this.state);
    return {
      instance: this.instance,
      wave: this.wave,
      path: this.route.path,
      state: this.state,
      ...(this.failureKind ? { failureKind: this.failureKind } : {}),
      ms: Date.now() - this.started,
      phases: this.phases,
    };
  }

  private async execute(actions: Action[]): Promise<Observation> {
    const completed: Action[] = [];
    for (const action of actions) {
      try {
        await this.actions.perform(action);
        completed.push(action);
      } catch (err) {
        // The first failure says what kind the rollout's failure is; a failing rollback does not change it.
        this.failureKind ??= err instanceof TowerError ? err.kind : TESTS_THE_FLOWS.has(action.type) ? 'stalled' : 'retryable';
        return { type: 'failed', error: this.actions.redact(describeError(action, err)), completed };
      }
    }
    return { type: 'completed' };
  }

  /**
   * The trace is what a restart reads; if it cannot be written (the store is down), the
   * rollout still goes on — abandoning an instance half-switched would be worse.
   */
  private async writeJournal(state: SwapState): Promise<void> {
    if (!this.deps.journal) return;
    try {
      await this.deps.journal(this.instance, state);
    } catch (err) {
      this.deps.onEvent({ type: 'warning', instance: this.instance, message: `cannot write the rollout trace: ${(err as Error).message}` });
    }
  }

  private enterPhase(phase: Phase, previous: Phase, first: boolean): void {
    if (!first) this.closePhase(previous);
    this.phaseStarted = Date.now();
    this.deps.onEvent({ type: 'phase', wave: this.wave, instance: this.instance, phase, path: this.route.path });
  }

  private closePhase(phase: Phase = this.state.phase): void {
    const last = this.phases[this.phases.length - 1];
    const ms = Date.now() - this.phaseStarted;
    if (last && last.phase === phase) last.ms += ms;
    else this.phases.push({ phase, ms });
    this.phaseStarted = Date.now();
  }
}

/** The steps a canary runs: all of them, or — resuming — from the one at the weight the switch applies. */
function canaryPlan(route: Route, desired: DesiredInstance | undefined): CanaryPlan | undefined {
  if (route.path === 'ab') return { steps: [{ step: 0, weight: desired?.ab?.weight ?? 50 }], warm: route.warm === true };
  if (route.path !== 'canary') return undefined;
  const all = (desired?.canary?.steps ?? []).map((s, step) => ({ step, weight: s.weight }));
  const from = route.resumeWeight ?? 0;
  const rest = all.filter((s) => s.weight >= from);
  return { steps: rest.length ? rest : all.slice(-1), warm: route.warm === true };
}

export function describeError(action: Action, err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const what = 'color' in action ? `${action.type} ${action.color}` : action.type;
  return `${what}: ${message}`;
}
