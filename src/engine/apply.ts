/**
 * `tower apply`: the same observe → decide → act as the daemon, run until there is nothing
 * left to do (or a rollout failed): urgent repairs, then the plan, then housekeeping.
 */
import { joinCapped } from '../core/bounds.js';
import { decide, type Decision } from '../core/decide.js';
import type { Diagnostic } from '../core/diagnostics.js';
import { usesMqtt } from '../core/instance-env.js';
import type { DesiredInstance, Fleet } from '../core/model.js';
import type { Plan } from '../core/plan.js';
import { recordRestart, type RestartBook } from '../core/restarts.js';
import type { ActDeps } from './actions.js';
import type { RolloutEvent } from './events.js';
import { executeRepairs, executeRollout, type RepairResult, type RolloutDeps, type RolloutResult } from './executor.js';
import { observeFleet } from './observe.js';
import type { FleetRuntime } from './ports.js';
import { resolveCredentials, resolveEnv } from './secrets.js';

export interface ApplyInput {
  fleet: Fleet;
  instances: DesiredInstance[];
  diagnostics: Diagnostic[];
  revision?: string;
}

export interface ApplyOutcome {
  /** The decision whose plan was rolled out (or the first one, when there was nothing to roll out). */
  decision: Decision;
  result?: RolloutResult;
  repairs: RepairResult[];
}

export interface ApplyOptions {
  dryRun?: boolean;
  env: NodeJS.ProcessEnv;
  onEvent(e: RolloutEvent): void;
  now?: () => Date;
  journal?: RolloutDeps['journal'];
  shouldContinue?: RolloutDeps['shouldContinue'];
}

/** Passes until nothing is left to do; a bound keeps a fleet that does not settle from looping. */
const MAX_PASSES = 6;

export async function applyFleet(rt: FleetRuntime, input: ApplyInput, options: ApplyOptions): Promise<ApplyOutcome> {
  const now = options.now ?? (() => new Date());
  const fleet = input.fleet.name;
  if (!options.dryRun) {
    rt.registry.update((r) => void (r.fleet = fleet));
    if (usesMqtt(input.instances)) await rt.ensureBroker();
    if (usesSharedContext(input.instances)) await rt.ensureSharedContext();
  }
  if (usesKubernetes(input.instances)) rt.useCluster?.(fleet, input.fleet.kubernetes);
  const deps: ActDeps = { fleet, desiredFleet: input.fleet, runtime: rt, secretsEnv: options.env, ...(input.revision ? { revision: input.revision } : {}), now, onEvent: options.onEvent };
  let restarts: RestartBook = {};
  let shown: Decision | undefined;
  let result: RolloutResult | undefined;
  const repairs: RepairResult[] = [];
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    const live = await observeFleet(rt, fleet);
    const decision = decide({ desired: { fleet: input.fleet, instances: input.instances }, mode: 'rollout', canPlan: true, live, restarts, now: now().getTime() });
    shown ??= decision;
    if (decision.next === 'rollout' && !result) shown = decision;
    if (options.dryRun || decision.next === 'wait') break;
    if (decision.next === 'rollout') {
      if (result) break; // one rollout per apply: a plan that keeps coming back is for the next apply to show
      await preflight(decision.plan, input.instances, options.env, rt);
      const warning = sharedContextWarning(input.instances, rt);
      if (warning) options.onEvent({ type: 'warning', message: warning });
      result = await executeRollout(decision.plan, input.instances, live, { ...deps, ...(options.journal ? { journal: options.journal } : {}), ...(options.shouldContinue ? { shouldContinue: options.shouldContinue } : {}) });
      if (!result.ok) break;
      continue;
    }
    const due = decision.repairs.filter((r) => decision.next === 'housekeeping' || r.urgent);
    const done = await executeRepairs(due, input.instances, live, deps);
    for (const r of done) if (r.repair.restartKey) restarts = recordRestart(restarts, r.repair.restartKey, now().getTime());
    repairs.push(...done);
    const removed = done.filter((r) => r.ok && (r.repair.kind === 'remove-leftover' || r.repair.kind === 'reap-standby')).map((r) => r.repair.instance);
    if (removed.length) options.onEvent({ type: 'warning', message: `removed leftovers: ${removed.join(', ')}` });
  }
  return { decision: shown!, ...(result ? { result } : {}), repairs };
}

/** Problems quoted in a PreflightError's message (the status, the history, GitHub); the rest are counted. */
export const PREFLIGHT_PROBLEMS_SHOWN = 20;
/** Characters of one problem quoted in the message. */
export const PREFLIGHT_PROBLEM_CHARS = 500;
/** The whole message: it fits in the status's message beside what the status says around it. */
export const PREFLIGHT_MESSAGE_CHARS = 1_500;

/**
 * Thrown before anything changes when the rollout could not succeed (e.g. a secret is missing).
 * `problems` lists every one (`tower apply` prints them all); the message, which becomes the
 * status's lastError and the attempted revision's error, quotes the first few and counts the
 * rest: 5,000 instances missing a secret make a short text, not a 2 MB one.
 */
export class PreflightError extends Error {
  constructor(
    readonly problems: string[],
    /** stalled when the revision must change (a Node-RED version or image the runtime lacks); retryable when the world may (a secret not set yet). */
    readonly kind: 'stalled' | 'retryable',
  ) {
    super(joinCapped(problems, { max: PREFLIGHT_PROBLEMS_SHOWN, itemChars: PREFLIGHT_PROBLEM_CHARS, separator: '\n', what: (n) => (n === 1 ? 'problem' : 'problems'), maxChars: PREFLIGHT_MESSAGE_CHARS }));
    this.name = 'PreflightError';
  }
}

/** Checks, before the first action, what would otherwise fail in the middle of a rollout. */
export async function preflight(plan: Plan, instances: readonly DesiredInstance[], env: NodeJS.ProcessEnv, rt: FleetRuntime): Promise<void> {
  const changing = new Set(plan.waves.flatMap((w) => w.steps.filter((s) => s.action !== 'delete').map((s) => s.instance)));
  const problems: string[] = [];
  let kind: 'stalled' | 'retryable' = 'retryable';
  for (const i of instances) {
    if (!changing.has(i.name)) continue;
    try {
      resolveEnv(i.name, i.config.env, env);
      resolveCredentials(i.name, i.config.credentials, env);
    } catch (err) {
      problems.push((err as Error).message);
    }
    try {
      rt.switchFor(i.switch ?? 'builtin');
    } catch (err) {
      problems.push(`instance ${i.name}: ${(err as Error).message}`);
      kind = 'stalled';
    }
    const cannot = await rt.driverFor(i.config.runtime).cannotRun(i.name, { nodeRedVersion: i.config.nodeRedVersion, ...(i.config.image ? { image: i.config.image } : {}) });
    if (cannot) {
      problems.push(cannot);
      kind = 'stalled';
    }
  }
  if (problems.length) throw new PreflightError(problems, kind);
}

/** Whether any instance runs on Kubernetes: then the runtime is told where (spec.kubernetes) before anything is observed. */
export function usesKubernetes(instances: readonly DesiredInstance[]): boolean {
  return instances.some((i) => i.config.runtime === 'kubernetes');
}

/** Whether any instance keeps its context in Redis (context: shared): then the engine asks the runtime for it first. */
export function usesSharedContext(instances: readonly DesiredInstance[]): boolean {
  return instances.some((i) => i.config.context === 'shared');
}

/** What to say when instances ask for shared context and there is no Redis (after ensureSharedContext: no REDIS_URL, no redis-server). */
export function sharedContextWarning(instances: readonly DesiredInstance[], rt: FleetRuntime): string | undefined {
  const shared = instances.filter((i) => i.config.context === 'shared').map((i) => i.name);
  if (!shared.length || rt.redisUrl) return undefined;
  return (
    `${shared.join(', ')} ask${shared.length === 1 ? 's' : ''} for shared context, but REDIS_URL is not set and redis-server is not installed: ` +
    `context stays in each colour's memory and is lost on a swap. Install redis-server (apt-get install redis-server, or scripts/system-deps.sh runtime) ` +
    `and Tower runs one itself, or set REDIS_URL=redis://host:port`
  );
}
