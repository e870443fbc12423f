/**
 * The fleet's status, as the API, the page, the metrics and GitHub show it — derived, never
 * remembered: each pass computes it afresh from the decision (what runs against the target
 * revision) and the revision record. Nothing in it is left over from an earlier pass.
 *
 * `Synced` means: the newest revision validates and is the applied one, and every instance
 * runs it, healthy.
 */
import { capList, capText, count, joinCapped } from './bounds.js';
import type { Diagnostic } from './diagnostics.js';
import type { Condition, Decision } from './decide.js';
import { replicaReadiness, type LiveInstance } from './live.js';
import type { Phase } from './rollout.js';
import type { TrafficSummary } from './traffic.js';
import type { Target } from './revisions.js';

export type RolloutOutcome = 'running' | 'succeeded' | 'failed' | 'rolled-back' | 'superseded' | 'interrupted' | 'invalid';
export type SyncStatus = 'Synced' | 'OutOfSync' | 'Progressing' | 'Unknown';

export interface InstanceStatus {
  name: string;
  color?: string;
  port?: number;
  rev?: string;
  health: string;
  healthMessage: string;
  /** Why the instance is (not) in sync: Synced, Missing, Dead, CrashLoop, Degraded, OutOfDate, Drifted, NotInFleet, Unknown. */
  condition: Condition;
  message: string;
  drift: boolean;
  standby?: string;
  /** Replicas of the routed colour ready, of how many (only when it has several). */
  replicas?: { ready: number; total: number };
  /** The other colour's share of new connections while a canary splits them (read from the switch, each pass). */
  canaryWeight?: number;
  /** Restarts since it last ran stably. */
  restarts: number;
  nextRestartAt?: string;
  nodeRedVersion?: string;
  runtime?: string;
  lastDeploy?: string;
}

export interface RolloutProgress {
  id: string;
  revision?: string;
  startedAt: string;
  waves: { index: number; instances: string[]; state: 'pending' | 'running' | 'healthy' | 'failed' }[];
  instances: Record<string, { phase?: Phase; path?: string; outcome?: string; error?: string; wave: number; canary?: CanaryProgress }>;
}

/** A canary under way: the step, the weight the switch applies, both colours' numbers since the step began. */
export interface CanaryProgress {
  step: number;
  steps: number;
  weight: number;
  canary: TrafficSummary;
  baseline: TrafficSummary;
  verdict: 'pass' | 'fail' | 'wait';
  reason: string;
  /** strategy ab: the variants' names (the baseline's, then the canary's). */
  variants?: [string, string];
}

export interface SourceStatus {
  kind: string;
  location: string;
  lastFetchAt?: string;
  newestRevision?: string;
  error?: string;
}

/** The commit a revision names. */
export interface CommitInfo {
  revision: string;
  author: string;
  email: string;
  message: string;
  /** Author date, ISO 8601. */
  date: string;
}

export interface FleetStatus {
  fleet?: string;
  source: SourceStatus;
  /** The newest revision of the source. */
  desiredRevision?: string;
  attemptedRevision?: string;
  appliedRevision?: string;
  attempted?: { revision: string; at: string; outcome: RolloutOutcome; error?: string };
  commit?: CommitInfo;
  sync: SyncStatus;
  /** Why, in one PascalCase word (Converged, InvalidRevision, RevisionFailed, RetryPending, CrashLoop, Missing, Dead, ...). */
  reason: string;
  /** Why, in words. */
  message: string;
  leader: boolean;
  instances: InstanceStatus[];
  rollout: RolloutProgress | null;
  lastError?: string;
  /** The diagnostics of the newest revision (errors first, at most STATUS_LIMITS.diagnostics): empty as soon as it validates. */
  validation: Diagnostic[];
  /** The diagnostics left out of `validation`, counted ("and N more"); absent when none were. */
  validationOmitted?: { errors: number; warnings: number };
  drift: string[];
  lastPassAt?: string;
}

export interface StatusInput {
  fleet?: string;
  source: SourceStatus;
  newest?: { revision: string; valid: boolean; diagnostics: Diagnostic[]; commit?: CommitInfo };
  applied?: string;
  attempted?: FleetStatus['attempted'];
  target: Target;
  /** Why the newest revision is not rolled out, when it failed. */
  failure?: string;
  decision?: Decision;
  live: readonly LiveInstance[];
  ports: ReadonlyMap<string, number>;
  leader: boolean;
  rollout?: RolloutProgress | null;
  lastPassAt?: string;
  /** Formats a time (ms since the epoch) as an ISO string; the core has no clock. */
  iso(ms: number): string;
}

/**
 * What the status carries at most: every list and text in it is bounded, and what is left out
 * is counted ("and N more"). The status is serialised for every API read and event, so its
 * size is paid on every change, by every client.
 */
export const STATUS_LIMITS = {
  /** The fleet's message, lastError, the attempted revision's error, the source's error. */
  messageChars: 2_000,
  /** An instance's message and health message. */
  instanceMessageChars: 500,
  /** A commit message (the page folds its body away). */
  commitMessageChars: 4_000,
  /** Diagnostics shown of the newest revision, errors first. */
  diagnostics: 100,
  diagnosticMessageChars: 1_000,
  /** Instances named on one diagnostic. */
  diagnosticInstances: 20,
  /** Instances quoted in the fleet's message. */
  quotedInstances: 5,
} as const;

/** The order in which an instance's condition speaks for the fleet. */
const WORST_FIRST: Condition[] = ['CrashLoop', 'Missing', 'Dead', 'Degraded', 'OutOfDate', 'Drifted', 'NotInFleet', 'Unknown'];

export function deriveStatus(input: StatusInput): FleetStatus {
  const { decision, newest, target } = input;
  const liveByName = new Map(input.live.map((l) => [l.name, l]));
  const instances: InstanceStatus[] = (decision?.instances ?? []).map((v) => {
    const l = liveByName.get(v.name);
    const routed = v.routed ? l?.colors[v.routed] : undefined;
    const port = input.ports.get(v.name) ?? l?.switch?.port;
    return {
      name: v.name,
      ...(v.routed ? { color: v.routed } : {}),
      ...(port !== undefined ? { port } : {}),
      ...(l?.rev ? { rev: l.rev } : {}),
      health: v.health.status,
      healthMessage: capText(v.health.message, STATUS_LIMITS.instanceMessageChars),
      condition: v.condition,
      message: capText(v.message, STATUS_LIMITS.instanceMessageChars),
      drift: v.drift,
      ...(v.standby ? { standby: v.standby } : {}),
      ...(replicaReadiness(routed) ? { replicas: replicaReadiness(routed)! } : {}),
      ...(l?.switch?.canaryWeight !== undefined ? { canaryWeight: l.switch.canaryWeight } : {}),
      restarts: v.restarts,
      ...(v.nextRestartAt !== undefined ? { nextRestartAt: input.iso(v.nextRestartAt) } : {}),
      ...(l?.applied ? { nodeRedVersion: l.applied.config.nodeRedVersion, lastDeploy: l.applied.at } : {}),
      ...(routed ? { runtime: routed.runtime } : {}),
    };
  });
  const { sync, reason, message } = syncOf(input, instances);
  const cap = (text: string) => capText(text, STATUS_LIMITS.messageChars);
  const lastError = target.because === 'failed' || target.because === 'backoff' ? input.failure : undefined;
  const { validation, omitted } = boundDiagnostics(newest?.diagnostics ?? []);
  const source = input.source.error ? { ...input.source, error: cap(input.source.error) } : input.source;
  const attempted = input.attempted?.error ? { ...input.attempted, error: cap(input.attempted.error) } : input.attempted;
  const commit = newest?.commit ? { ...newest.commit, message: capText(newest.commit.message, STATUS_LIMITS.commitMessageChars) } : undefined;
  return {
    ...(input.fleet ? { fleet: input.fleet } : {}),
    source,
    ...(newest ? { desiredRevision: newest.revision } : {}),
    ...(attempted ? { attemptedRevision: attempted.revision, attempted } : {}),
    ...(input.applied ? { appliedRevision: input.applied } : {}),
    ...(commit ? { commit } : {}),
    sync,
    reason,
    message: cap(message),
    leader: input.leader,
    instances,
    rollout: input.rollout ?? null,
    ...(lastError ? { lastError: cap(lastError) } : {}),
    validation,
    ...(omitted ? { validationOmitted: omitted } : {}),
    drift: instances.filter((i) => i.drift).map((i) => i.name),
    ...(input.lastPassAt ? { lastPassAt: input.lastPassAt } : {}),
  };
}

/** Errors first, at most STATUS_LIMITS.diagnostics of them, each with its texts bounded; the rest counted. */
export function boundDiagnostics(all: readonly Diagnostic[]): { validation: Diagnostic[]; omitted?: { errors: number; warnings: number } } {
  const ordered = [...all.filter((d) => d.severity === 'error'), ...all.filter((d) => d.severity !== 'error')];
  const { shown, more } = capList(ordered, STATUS_LIMITS.diagnostics);
  const validation = shown.map((d) => {
    const instances = d.instances && d.instances.length > STATUS_LIMITS.diagnosticInstances ? [...d.instances.slice(0, STATUS_LIMITS.diagnosticInstances), `and ${count(d.instances.length - STATUS_LIMITS.diagnosticInstances)} more`] : d.instances;
    return {
      ...d,
      message: capText(d.message, STATUS_LIMITS.diagnosticMessageChars),
      ...(d.hint !== undefined ? { hint: capText(d.hint, STATUS_LIMITS.diagnosticMessageChars) } : {}),
      ...(instances ? { instances } : {}),
    };
  });
  if (!more) return { validation };
  const left = ordered.slice(shown.length);
  const errors = left.filter((d) => d.severity === 'error').length;
  return { validation, omitted: { errors, warnings: left.length - errors } };
}

function syncOf(input: StatusInput, instances: InstanceStatus[]): { sync: SyncStatus; reason: string; message: string } {
  const { newest, target, decision } = input;
  const short = (r: string | undefined) => (r ? r.slice(0, 12) : 'none');
  // Room left for the condition's name in front: the "and N more" is never cut off.
  const quote = (items: string[]) => joinCapped(items, { max: STATUS_LIMITS.quotedInstances, itemChars: STATUS_LIMITS.instanceMessageChars, separator: '; ', maxChars: STATUS_LIMITS.messageChars - 40 });
  if (!newest) return { sync: 'Unknown', reason: input.source.error ? 'SourceUnreachable' : 'NoRevision', message: input.source.error ? `the source cannot be read: ${input.source.error}` : 'no revision has been read yet' };
  const progressing = input.rollout || decision?.next === 'repair' || decision?.next === 'rollout';
  const sync: SyncStatus = progressing ? 'Progressing' : 'OutOfSync';
  if (!newest.valid) {
    const errors = newest.diagnostics.filter((d) => d.severity === 'error').length;
    return { sync, reason: 'InvalidRevision', message: `the newest revision ${short(newest.revision)} is invalid (${errors} error${errors === 1 ? '' : 's'}); the fleet keeps ${short(input.applied)}` };
  }
  if (target.because === 'failed') return { sync, reason: 'RevisionFailed', message: `the newest revision ${short(newest.revision)} failed: ${input.failure ?? 'see the history'}; the fleet keeps ${short(input.applied)}` };
  if (target.because === 'backoff') return { sync, reason: 'RetryPending', message: `the newest revision ${short(newest.revision)} failed and is retried${target.retryAt !== undefined ? ` at ${input.iso(target.retryAt)}` : ''}: ${input.failure ?? ''}` };
  for (const condition of WORST_FIRST) {
    const hit = instances.filter((i) => i.condition === condition);
    if (hit.length) return { sync, reason: condition, message: `${condition}: ${quote(hit.map((i) => `${i.name} (${i.message})`))}` };
  }
  const unhealthy = instances.filter((i) => i.health !== 'Healthy');
  if (unhealthy.length) return { sync, reason: 'Degraded', message: quote(unhealthy.map((i) => `${i.name}: ${i.healthMessage}`)) };
  if (newest.revision !== input.applied) return { sync, reason: 'OutOfDate', message: `the fleet runs ${short(input.applied)}, not the newest revision ${short(newest.revision)}` };
  if (progressing) return { sync, reason: 'Progressing', message: 'repairing' };
  return { sync: 'Synced', reason: 'Converged', message: `every instance runs ${short(newest.revision)}` };
}
