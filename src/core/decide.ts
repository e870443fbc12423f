/**
 * decide: the one function that says what the engine does. Desired (a revision's fleet, or
 * none) × what runs × the restart book → per instance a verdict, the plan of a rollout with
 * each step's path, and the repairs to make. `tower plan`, `tower apply`, the daemon and
 * pull-request plans all call it; the executor runs exactly what it returns.
 *
 * Per instance the difference is sorted by what it needs:
 *   - missing (nothing serves it: never started, destroyed, routed colour gone): created
 *     again — always, whatever selfHeal says;
 *   - down (switch or routed colour dead): repaired (src/core/repairs.ts) before anything else;
 *   - drifted (the live flows differ from what Tower deployed, e.g. an editor deploy):
 *     reported; put back only with selfHeal;
 *   - out of date (Tower deployed something else than the desired revision): a rollout —
 *     unless the engine holds (the newest revision is invalid or failed).
 */
import { diffConfig, diffFleet, type InstanceDiff } from './diff.js';
import { configHash } from './flows.js';
import { assessInstance, type Health } from './health.js';
import { isAbsent, isRunning, otherColorOf, replicaReadiness, type LiveInstance } from './live.js';
import type { DesiredInstance, Fleet, ObservedInstance } from './model.js';
import { buildPlan, DEFAULT_MAX_PARALLEL, DEFAULT_ON_FAILURE, type Plan, type PlanStep, type Route } from './plan.js';
import { liveness, type Liveness, type Repair } from './repairs.js';
import type { RestartBook, RestartPolicy } from './restarts.js';
import type { Color } from './rollout.js';

export interface DesiredFleet {
  fleet: Fleet;
  instances: readonly DesiredInstance[];
}

export interface DecideInput {
  /** The fleet of the target revision; absent when there is none (nothing valid applied yet). */
  desired?: DesiredFleet;
  /** rollout: converge on desired. hold: keep what runs alive and whole, roll nothing out. */
  mode: 'rollout' | 'hold';
  /** Plans may run now (false while the target revision waits for its retry). */
  canPlan: boolean;
  live: readonly LiveInstance[];
  restarts: RestartBook;
  /** Repairs that failed (see Repair.failureKey), backing off. */
  repairFailures?: RestartBook;
  /** ms since the epoch. */
  now: number;
  policy?: RestartPolicy;
}

/** Why an instance is (not) in sync; PascalCase, reused as status reason and metric label. */
export const CONDITIONS = ['Synced', 'Missing', 'Dead', 'CrashLoop', 'Degraded', 'OutOfDate', 'Drifted', 'NotInFleet', 'Unknown'] as const;
export type Condition = (typeof CONDITIONS)[number];

export interface InstanceVerdict {
  name: string;
  condition: Condition;
  message: string;
  health: Health;
  /** The live flows differ from what Tower deployed. */
  drift: boolean;
  /** In this pass's plan. */
  planned: boolean;
  routed?: Color;
  /** The other colour, when it runs (a warm standby). */
  standby?: Color;
  restarts: number;
  nextRestartAt?: number;
  /** Desired against live, whether or not the plan acts on it. */
  diff?: InstanceDiff;
}

export type NextStep =
  | 'repair' // urgent repairs: serving depends on them
  | 'rollout' // the plan
  | 'housekeeping' // leftovers and expired standbys
  | 'wait'; // nothing to do

export interface Decision {
  instances: InstanceVerdict[];
  /** The diffs the plan acts on; an instance left alone this pass shows as unchanged. */
  diffs: InstanceDiff[];
  plan: Plan;
  /** Every repair that is due now; `next` says which of them to make. */
  repairs: Repair[];
  next: NextStep;
  /** When something waits for its time (a restart's backoff, a standby's keepWarm), in ms since the epoch. */
  wakeAt?: number;
}

/** How soon an instance that does not answer is looked at again. */
export const RECHECK_MS = 2_000;

export function decide(input: DecideInput): Decision {
  const { desired, live, now } = input;
  const desiredByName = new Map((desired?.instances ?? []).map((d) => [d.name, d]));
  const liveByName = new Map(live.map((l) => [l.name, l]));
  const observed = live.map(observedOf).filter((o): o is ObservedInstance => o !== undefined);
  const diffs = desired ? diffFleet(desired.instances, { instances: observed }) : [];
  const diffByName = new Map(diffs.map((d) => [d.name, d]));
  const names = [...desiredByName.keys(), ...[...liveByName.keys()].filter((n) => !desiredByName.has(n)).sort()];

  const instances: InstanceVerdict[] = [];
  const repairs: Repair[] = [];
  let wakeAt: number | undefined;
  const wake = (t: number | undefined) => {
    // Only what lies ahead: what is due now is acted on (or, having failed, waits for the poll).
    if (t !== undefined && Number.isFinite(t) && t > now) wakeAt = Math.min(wakeAt ?? Infinity, t);
  };
  for (const name of names) {
    const d = desiredByName.get(name);
    const l = liveByName.get(name);
    const port = d?.port ?? l?.port;
    const lv = l && !isAbsent(l) ? liveness({ live: l, ...(port !== undefined ? { port } : {}), restarts: input.restarts, ...(input.repairFailures ? { failures: input.repairFailures } : {}), now, ...(input.policy ? { policy: input.policy } : {}) }) : undefined;
    repairs.push(...(lv?.repairs ?? []));
    wake(lv?.nextRestartAt);
    for (const c of Object.values(l?.colors ?? {})) if (c.color !== l?.switch?.routed) wake(c.parkedUntil);
    const verdict = verdictOf(input, name, d, l, lv, diffByName.get(name));
    // Something that does not answer may be starting, or just died unseen: look again soon.
    if (verdict.condition === 'Degraded' && !lv?.repairs.length) wake(now + RECHECK_MS);
    instances.push(verdict);
  }

  const acted = new Set(instances.filter((i) => i.planned).map((i) => i.name));
  const plannedDiffs = diffs.map((d) => (acted.has(d.name) ? d : { ...d, action: 'unchanged' as const }));
  const plan = desired ? withRoutes(buildPlan(desired.fleet, plannedDiffs), desiredByName, liveByName) : emptyPlan();
  const urgent = repairs.some((r) => r.urgent);
  const next: NextStep = urgent ? 'repair' : plan.hasChanges ? 'rollout' : repairs.length ? 'housekeeping' : 'wait';
  return { instances, diffs: plannedDiffs, plan, repairs, next, ...(wakeAt !== undefined ? { wakeAt } : {}) };
}

function verdictOf(input: DecideInput, name: string, d: DesiredInstance | undefined, l: LiveInstance | undefined, lv: Liveness | undefined, diff: InstanceDiff | undefined): InstanceVerdict {
  const routed = l?.switch?.routed;
  const standby = routed && isRunning(l?.colors[otherColorOf(routed)]) ? otherColorOf(routed) : undefined;
  const base = {
    name,
    drift: false,
    planned: false,
    ...(routed ? { routed } : {}),
    ...(standby ? { standby } : {}),
    restarts: lv?.restarts ?? 0,
    ...(lv?.nextRestartAt !== undefined ? { nextRestartAt: lv.nextRestartAt } : {}),
    ...(diff ? { diff } : {}),
    health: healthOf(l, lv, input.now),
  };
  const rolling = input.mode === 'rollout' && input.canPlan;

  if (!input.desired) return { ...base, condition: 'Unknown', message: 'no valid revision to compare with' };
  if (!d) {
    if (isAbsent(l)) return { ...base, condition: 'Synced', message: 'removed' };
    return { ...base, condition: 'NotInFleet', message: rolling ? 'not in fleet.yaml: pruned' : 'not in the applied fleet.yaml; kept while the newest revision is not rolled out', planned: rolling };
  }
  if (isMissing(l, lv)) return { ...base, condition: 'Missing', message: 'nothing serves this instance: it is created again', planned: input.canPlan };
  const wantsSwitch = d.switch ?? 'builtin';
  if (l?.switch && l.switch.kind !== wantsSwitch) {
    // Moving the stable port to another switch takes it down for a moment: only on request.
    return { ...base, condition: 'OutOfDate', message: `served by the ${l.switch.kind} switch, but fleet.yaml asks for ${wantsSwitch}: to move it, remove the instance from fleet.yaml and add it back (or tower destroy)` };
  }

  const down = lv?.down ?? false;
  /** Down: repaired first; rolled out meanwhile only when out of date (the fix may be in the new revision). */
  const downVerdict = (outOfDate: boolean): InstanceVerdict => ({ ...base, condition: lv?.crashLoop ? 'CrashLoop' : 'Dead', message: `${lv?.message ?? 'down'}${outOfDate ? '; out of date' : ''}`, planned: outOfDate && rolling });
  // With the switch gone, the colour that runs is served again first; what it runs is for the next pass.
  if (down && (!l?.switch || !diff || diff.action === 'unchanged')) return downVerdict(false);
  if (!diff || diff.action === 'unchanged') {
    if (base.health.status !== 'Healthy') return { ...base, condition: 'Degraded', message: base.health.message };
    return { ...base, condition: 'Synced', message: 'runs the desired flows' };
  }
  // What Tower deployed: the routed colour's record, or — that colour gone — what it applied last.
  const record = routed ? (l?.colors[routed] ?? l?.applied) : undefined;
  const deployedDesired = record !== undefined && record.rev === d.rev && record.config !== undefined && diffConfig(d.config, record.config).length === 0;
  if (deployedDesired) {
    // Tower deployed exactly this; what differs was changed by someone else (or cannot be read).
    if (down) return downVerdict(false);
    if (diff.note !== undefined) return { ...base, condition: 'Degraded', message: base.health.message };
    const heal = input.desired.fleet.selfHeal && input.canPlan;
    return { ...base, condition: 'Drifted', drift: true, planned: heal, message: heal ? 'the live flows differ from what Tower deployed: Git is put back (selfHeal)' : 'the live flows differ from what Tower deployed (someone deployed from the editor?); selfHeal is off' };
  }
  if (down) return downVerdict(true);
  const why = input.mode === 'hold' ? 'held: the newest revision is not rolled out' : input.canPlan ? 'rolled out' : 'waits for the retry of its revision';
  return { ...base, condition: 'OutOfDate', message: `out of date: ${why}`, planned: rolling };
}

/** Nothing serves the instance and no repair will make it: it is to be created. */
function isMissing(l: LiveInstance | undefined, lv: Liveness | undefined): boolean {
  if (isAbsent(l)) return true;
  const routed = l!.switch?.routed;
  if (l!.switch) return (!routed || !l!.colors[routed]) && !lv?.down; // gone, unless a standby takes over
  return !lv?.down; // no switch and no colour to restore it on
}

function healthOf(l: LiveInstance | undefined, lv: Liveness | undefined, now: number): Health {
  if (!l || isAbsent(l)) return { status: 'Missing', message: 'nothing runs for this instance' };
  const routed = l.switch?.routed;
  const anyRunning = Object.values(l.colors).some(isRunning);
  const h = assessInstance({ switchUp: l.switch?.running ?? false, ...(routed ? { routedTo: routed } : {}), activeRunning: routed ? isRunning(l.colors[routed]) : !l.switch && anyRunning, ...(routed && l.colors[routed]?.exit ? { activeExit: l.colors[routed]!.exit!.reason } : {}), adminUp: l.adminUp });
  if (lv?.crashLoop && lv.down) {
    const next = lv.nextRestartAt !== undefined ? `; next restart in ${Math.max(0, Math.ceil((lv.nextRestartAt - now) / 1000))} s` : '; restarting';
    return { status: 'Degraded', message: `CrashLoop: restarted ${lv.restarts} times${next} — ${lv.message ?? h.message}` };
  }
  // A colour serving with fewer replicas than it has is degraded: capacity is down, and a repair is under way.
  const replicas = routed && h.status === 'Healthy' ? replicaReadiness(l.colors[routed]) : undefined;
  if (replicas && replicas.ready < replicas.total) return { status: 'Degraded', message: `${replicas.ready}/${replicas.total} replicas ready${lv?.message ? ` — ${lv.message}` : ''}` };
  return h;
}

/** What the diff compares with: the routed colour's flows as Node-RED reports them, and the config Tower started it with. */
function observedOf(l: LiveInstance): ObservedInstance | undefined {
  if (isAbsent(l)) return undefined;
  const routed = l.switch?.routed;
  const c = routed ? l.colors[routed] : undefined;
  const readable = isRunning(c) && l.adminUp;
  return { name: l.name, flows: readable ? l.flows : null, ...(readable && l.rev ? { rev: l.rev } : {}), ...(c?.config ? { config: c.config } : {}) };
}

function withRoutes(plan: Plan, desired: Map<string, DesiredInstance>, live: Map<string, LiveInstance>): Plan {
  return { ...plan, waves: plan.waves.map((w) => ({ ...w, steps: w.steps.map((s) => ({ ...s, route: chooseRoute(s, desired.get(s.instance), live.get(s.instance)) })) })) };
}

/** Which way an instance goes, from its plan step and what runs. */
export function chooseRoute(step: PlanStep, desired: DesiredInstance | undefined, live: LiveInstance | undefined): Route {
  const routed = live?.switch?.routed;
  const active = routed && live?.colors[routed] ? routed : undefined;
  if (step.action === 'delete') return { path: 'delete', active: active ?? 'blue', target: active ?? 'blue' };
  if (!live?.switch || !active) return { path: 'create', target: routed ?? 'blue', ...(live?.switch ? { switchExists: true } : {}) };
  if (step.strategy === 'in-place' && isRunning(live.colors[active])) return { path: 'in-place', active, target: active };
  const other = otherColorOf(active);
  if (step.strategy === 'recreate') return { path: 'recreate', active, target: other };
  const standby = live.colors[other];
  const warm = Boolean(desired && isRunning(standby) && standby.rev === desired.rev && standby.config && configHash(standby.config) === configHash(desired.config));
  if (step.strategy === 'canary' || step.strategy === 'ab') {
    // Level-triggered: a canary the switch still splits to resumes at the weight it has (an experiment starts its duration again).
    const weight = warm ? live.switch.canaryWeight : undefined;
    return { path: step.strategy, active, target: other, ...(warm ? { warm } : {}), ...(weight ? { resumeWeight: weight } : {}) };
  }
  if (warm) return { path: 'swap', active, target: other };
  return { path: 'blue-green', active, target: other };
}

function emptyPlan(): Plan {
  return { name: 'none', source: '(no valid revision)', order: 'sequential', maxParallel: DEFAULT_MAX_PARALLEL, onFailure: DEFAULT_ON_FAILURE, waves: [], unchanged: [], hasChanges: false };
}
