/**
 * Deploy plans: which instances change in which wave, and why each waits.
 *
 * A plan orders the whole fleet (sequential, waves, or a DAG of dependencies); the diff says
 * which instances actually change. Waves are computed over the whole fleet and unchanged
 * instances are then left out — they do not appear in any wave, and waves left empty are
 * dropped — so an instance never overtakes one it is ordered after, even through an
 * unchanged instance between them. Instances removed from fleet.yaml are pruned in a final
 * wave, after everything else has rolled out.
 */
import type { Diagnostic } from './diagnostics.js';
import type { InstanceDiff, UpdateStrategy } from './diff.js';
import type { DeployPlan, Fleet, OnFailure, PlanOrder, PlanSpec } from './model.js';
import type { Color, RolloutPath } from './rollout.js';
import type { AbSpec, CanarySpec } from './canary.js';
import type { PathSegment } from './yaml-source.js';

export type StepAction = 'create' | 'update' | 'delete';

export interface PlanStep {
  instance: string;
  action: StepAction;
  /** create: start; update: blue-green | in-place | recreate; delete: drain. */
  strategy: 'start' | UpdateStrategy | 'drain';
  /** Instances of earlier waves this step waits for (direct dependencies or the previous wave). */
  after: string[];
  /** Why the step is in this wave, in words: "after storage", "first wave". */
  reason: string;
  /** How the instance gets there, from what runs (decide sets it; the executor follows it). */
  route?: Route;
  /** strategy canary: its steps and analysis, for the plan to show. */
  canary?: CanarySpec;
  /** strategy ab: its variants, weight and duration. */
  ab?: AbSpec;
}

/** The path of an instance's rollout, and the colours it goes from and to. */
export interface Route {
  path: RolloutPath;
  /** The colour serving before the rollout. */
  active?: Color;
  /** The colour serving after it. */
  target?: Color;
  /** A switch serves the stable port already (a create that fails leaves it be). */
  switchExists?: boolean;
  /** canary: the target runs the desired flows already (a canary under way when Tower restarted, or a warm standby). */
  warm?: boolean;
  /** canary: the target's share of new connections as the switch applies it now; the canary resumes at this step. */
  resumeWeight?: number;
}

export interface PlanWave {
  index: number;
  steps: PlanStep[];
}

export interface Plan {
  name: string;
  source: string;
  order: PlanOrder;
  maxParallel: number;
  onFailure: OnFailure;
  waves: PlanWave[];
  /** Instances that need nothing; they appear in no wave. */
  unchanged: string[];
  hasChanges: boolean;
}

export const DEFAULT_MAX_PARALLEL = 4;
export const DEFAULT_ON_FAILURE: OnFailure = 'rollback-all';

type Locate = (path: readonly PathSegment[], key?: boolean) => { file: string; line: number; col: number };

/** Checks a plan against the fleet's instance names: unknown names, coverage, cycles. */
export function validatePlan(spec: PlanSpec, names: readonly string[], locate: Locate): Diagnostic[] {
  const out: Diagnostic[] = [];
  const known = new Set(names);
  const push = (code: Diagnostic['code'], path: PathSegment[], message: string, hint?: string, severity: Diagnostic['severity'] = 'error', key = false) => {
    const at = locate(path, key);
    out.push({ severity, code, file: at.file, line: at.line, col: at.col, message, hint });
  };
  const unknown = (name: string, path: PathSegment[], key = false) =>
    push('UnknownInstance', path, `"${name}" is not an instance of this fleet`, names.length ? `instances: ${names.join(', ')}` : undefined, 'error', key);

  const order = spec.order;
  // An order that is no string is the schema's to report; "ignored with order: [object Object]" says nothing.
  if (typeof order !== 'string') return out;
  if (order !== 'waves' && spec.waves !== undefined) push('PlanFieldIgnored', ['waves'], `spec.waves is ignored with order: ${order}`, 'use order: waves, or remove spec.waves', 'warning', true);
  if (order !== 'dag' && spec.dependsOn !== undefined) push('PlanFieldIgnored', ['dependsOn'], `spec.dependsOn is ignored with order: ${order}`, 'use order: dag, or remove spec.dependsOn', 'warning', true);
  if (order !== 'sequential' && spec.sequence !== undefined) push('PlanFieldIgnored', ['sequence'], `spec.sequence is ignored with order: ${order}`, 'use order: sequential, or remove spec.sequence', 'warning', true);
  if (order === 'sequential' && spec.maxParallel !== undefined && spec.maxParallel !== 1) push('PlanFieldIgnored', ['maxParallel'], 'spec.maxParallel is ignored with order: sequential (one instance at a time)', 'use order: waves or dag to change several instances at once', 'warning', true);

  const listCoverage = (lists: unknown[][], field: 'waves' | 'sequence', pathOf: (i: number, j: number) => PathSegment[]) => {
    const seen = new Map<string, PathSegment[]>();
    lists.forEach((list, i) =>
      list.forEach((name, j) => {
        if (typeof name !== 'string') return;
        const path = pathOf(i, j);
        if (!known.has(name)) return unknown(name, path);
        const first = seen.get(name);
        if (first) {
          const at = locate(first);
          return push('InstanceInPlanTwice', path, `"${name}" is already in ${field} at line ${at.line}`, 'list each instance once');
        }
        seen.set(name, path);
      }),
    );
    const missing = names.filter((n) => !seen.has(n));
    if (missing.length) {
      const what = missing.map((n) => `"${n}"`).join(', ');
      push(
        'InstanceNotInPlan',
        [field],
        `${what} ${missing.length > 1 ? 'are' : 'is'} in fleet.yaml but in no ${field === 'waves' ? 'wave' : 'place of the sequence'}; Tower will not guess when ${missing.length > 1 ? 'they roll' : 'it rolls'} out`,
        field === 'waves' ? `add ${missing.length > 1 ? 'them' : 'it'} to a wave, e.g. a last one: [${missing.join(', ')}]` : `add ${missing.join(', ')} to spec.sequence`,
        'error',
        true,
      );
    }
  };

  if (order === 'waves' && Array.isArray(spec.waves)) {
    listCoverage(spec.waves.map((w) => (Array.isArray(w) ? w : [])), 'waves', (i, j) => ['waves', i, j]);
  }
  if (order === 'sequential' && Array.isArray(spec.sequence)) {
    listCoverage([spec.sequence], 'sequence', (_i, j) => ['sequence', j]);
  }
  if (order === 'dag' && isRecord(spec.dependsOn)) {
    const deps = spec.dependsOn;
    for (const [name, list] of Object.entries(deps)) {
      if (!known.has(name)) unknown(name, ['dependsOn', name], true);
      if (!Array.isArray(list)) continue;
      list.forEach((dep, j) => {
        if (typeof dep === 'string' && !known.has(dep)) unknown(dep, ['dependsOn', name, j]);
      });
    }
    for (const cycle of findCycles(deps)) {
      push('DependencyCycle', ['dependsOn', cycle[0]!], `circular dependency detected: ${cycle.join(' -> ')}`, 'remove one of these dependencies', 'error', true);
    }
  }
  return out;
}

/**
 * Every elementary cycle reachable in the graph, each reported once, starting from its
 * smallest name so the output is deterministic: ["a", "b", "a"].
 */
export function findCycles(dependsOn: Record<string, unknown>): string[][] {
  const edges = new Map<string, string[]>();
  for (const [name, list] of Object.entries(dependsOn)) {
    edges.set(name, Array.isArray(list) ? [...new Set(list.filter((d): d is string => typeof d === 'string'))].sort() : []);
  }
  const cycles = new Map<string, string[]>();
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  // Depth-first, with a stack of its own instead of recursion: a chain of 50,000 dependsOn
  // entries fits in fleet.yaml, and would exhaust the call stack.
  const frames: { node: string; next: number }[] = [];
  const enter = (node: string) => {
    state.set(node, 'visiting');
    stack.push(node);
    frames.push({ node, next: 0 });
  };
  for (const root of [...edges.keys()].sort()) {
    if (state.has(root)) continue;
    enter(root);
    while (frames.length > 0) {
      const frame = frames[frames.length - 1]!;
      const out = edges.get(frame.node) ?? [];
      if (frame.next < out.length) {
        const next = out[frame.next++]!;
        if (state.get(next) === 'visiting') {
          const loop = stack.slice(stack.indexOf(next));
          const start = loop.indexOf([...loop].sort()[0]!);
          const rotated = [...loop.slice(start), ...loop.slice(0, start)];
          const key = rotated.join('\0');
          if (!cycles.has(key)) cycles.set(key, [...rotated, rotated[0]!]);
        } else if (!state.has(next)) {
          enter(next);
        }
        continue;
      }
      frames.pop();
      stack.pop();
      state.set(frame.node, 'done');
    }
  }
  return [...cycles.values()].sort((a, b) => a.join().localeCompare(b.join()));
}

/** A logical stage of the plan over the whole fleet, before unchanged instances are left out. */
interface Stage {
  instances: string[];
}

/**
 * Orders the changes of a diff into waves. Assumes the plan was validated (validatePlan);
 * an invalid plan falls back to fleet order rather than throwing.
 */
export function buildPlan(fleet: Fleet, diffs: readonly InstanceDiff[]): Plan {
  const plan: DeployPlan = fleet.plan;
  const spec = plan.spec;
  const order = spec.order;
  // The schema allows 1..256; anything else (an unvalidated plan) must not split waves by 0 forever.
  const requested = spec.maxParallel;
  const maxParallel = order === 'sequential' ? 1 : typeof requested === 'number' && Number.isInteger(requested) && requested >= 1 ? requested : DEFAULT_MAX_PARALLEL;
  const onFailure = spec.onFailure ?? DEFAULT_ON_FAILURE;
  const fleetOrder = fleet.instances.map((i) => i.name);
  const position = new Map(fleetOrder.map((n, i) => [n, i]));
  const byName = new Map(diffs.map((d) => [d.name, d]));
  const canaryOf = new Map(fleet.instances.filter((i) => i.canary).map((i) => [i.name, i.canary!]));
  const abOf = new Map(fleet.instances.filter((i) => i.ab).map((i) => [i.name, i.ab!]));
  const changed = (name: string) => {
    const d = byName.get(name);
    return d !== undefined && d.action !== 'unchanged' && d.action !== 'delete';
  };

  const stages = stagesOf(spec, fleetOrder);
  const deps = order === 'dag' && isRecord(spec.dependsOn) ? spec.dependsOn : {};

  const waves: PlanWave[] = [];
  let previous: string[] = [];
  const whyHere = (name: string, splitByMaxParallel: boolean, first: boolean): { after: string[]; reason: string } => {
    if (splitByMaxParallel) return { after: previous, reason: `maxParallel ${maxParallel}: after ${previous.join(', ')}` };
    if (order === 'dag') {
      const declared = Array.isArray(deps[name]) ? (deps[name] as unknown[]).filter(isString) : [];
      const direct = declared.filter(changed);
      if (direct.length) return { after: direct, reason: `after ${direct.join(', ')}` };
      if (first) return { after: [], reason: declared.length ? `its dependencies (${declared.join(', ')}) are unchanged` : 'no dependencies' };
      return { after: previous, reason: `after ${previous.join(', ')}: an earlier level of the DAG` };
    }
    if (first) return { after: [], reason: 'first wave' };
    return { after: previous, reason: `after ${previous.join(', ')}` };
  };
  for (const stage of stages) {
    const members = stage.instances.filter(changed).sort((a, b) => (position.get(a) ?? 0) - (position.get(b) ?? 0));
    for (let start = 0; start < members.length; start += maxParallel) {
      const batch = members.slice(start, start + maxParallel);
      const steps = batch.map((name): PlanStep => {
        const d = byName.get(name)!;
        const { after, reason } = whyHere(name, start > 0, waves.length === 0);
        const strategy = stepStrategy(d);
        const canary = strategy === 'canary' ? canaryOf.get(name) : undefined;
        const ab = strategy === 'ab' ? abOf.get(name) : undefined;
        return { instance: name, action: d.action as StepAction, strategy, after, reason, ...(canary ? { canary } : {}), ...(ab ? { ab } : {}) };
      });
      waves.push({ index: waves.length, steps });
      previous = batch;
    }
  }

  const deletions = diffs.filter((d) => d.action === 'delete').map((d) => d.name).sort();
  for (let start = 0; start < deletions.length; start += maxParallel) {
    const batch = deletions.slice(start, start + maxParallel);
    waves.push({
      index: waves.length,
      steps: batch.map((name) => ({ instance: name, action: 'delete', strategy: 'drain', after: previous, reason: 'removed from fleet.yaml; pruned after the rollout' })),
    });
    previous = batch;
  }

  const unchanged = diffs.filter((d) => d.action === 'unchanged').map((d) => d.name).sort((a, b) => (position.get(a) ?? 0) - (position.get(b) ?? 0));
  return { name: plan.name, source: plan.source, order, maxParallel, onFailure, waves, unchanged, hasChanges: waves.length > 0 };
}

function stepStrategy(d: InstanceDiff): PlanStep['strategy'] {
  if (d.action === 'create') return 'start';
  if (d.action === 'delete') return 'drain';
  return d.strategy ?? 'blue-green';
}

function stagesOf(spec: PlanSpec, fleetOrder: string[]): Stage[] {
  const known = new Set(fleetOrder);
  const dedupe = (lists: string[][]): Stage[] => {
    const seen = new Set<string>();
    const stages = lists.map((list) => ({ instances: list.filter((n) => known.has(n) && !seen.has(n) && seen.add(n)) }));
    const rest = fleetOrder.filter((n) => !seen.has(n));
    if (rest.length) stages.push({ instances: rest }); // only reachable for a plan that failed validation
    return stages;
  };
  switch (spec.order) {
    case 'waves':
      return dedupe(Array.isArray(spec.waves) ? spec.waves.map((w) => (Array.isArray(w) ? w.filter(isString) : [])) : []);
    case 'dag':
      return dedupe(dagLevels(isRecord(spec.dependsOn) ? spec.dependsOn : {}, fleetOrder));
    case 'sequential':
    default: {
      const sequence = Array.isArray(spec.sequence) ? spec.sequence.filter(isString) : fleetOrder;
      return dedupe(sequence.map((n) => [n]));
    }
  }
}

/** Kahn's layering: level n holds the instances whose dependencies all sit in levels < n. */
function dagLevels(dependsOn: Record<string, unknown>, fleetOrder: string[]): string[][] {
  const known = new Set(fleetOrder);
  const deps = new Map<string, Set<string>>();
  for (const n of fleetOrder) {
    const list = dependsOn[n];
    deps.set(n, new Set(Array.isArray(list) ? list.filter((d): d is string => typeof d === 'string' && known.has(d) && d !== n) : []));
  }
  const levels: string[][] = [];
  const placed = new Set<string>();
  while (placed.size < fleetOrder.length) {
    const level = fleetOrder.filter((n) => !placed.has(n) && [...deps.get(n)!].every((d) => placed.has(d)));
    if (level.length === 0) {
      // A cycle (reported by validatePlan): place the rest in fleet order rather than loop.
      levels.push(fleetOrder.filter((n) => !placed.has(n)));
      break;
    }
    level.forEach((n) => placed.add(n));
    levels.push(level);
  }
  return levels;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function isString(v: unknown): v is string {
  return typeof v === 'string';
}
