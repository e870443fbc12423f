/**
 * The models of the instance and plan pages, gathered from what the daemon exposes read-only
 * (its last observation, the revisions it loads, what ran when a rollout started) and from
 * the runtime (colours, usage, logs). Nothing here acts on the fleet.
 *
 * Bounded for strangers: a plan page is only made for a revision the daemon knows (newest,
 * attempted, applied, rolling out, in the recent history, or the head of a pull request it
 * planned) — never a checkout of any sha a
 * URL names — and at most PLAN_LOADS revisions are loaded at once. Logs and usage are waited
 * for at most VIEW_TIMEOUT_MS.
 */
import { diffFlows } from '../core/diff.js';
import type { LiveInstance } from '../core/live.js';
import { boundDiagnostics, type FleetStatus } from '../core/status.js';
import type { RolloutRecord } from '../engine/ports.js';
import type { LoadedRevision } from '../engine/revisions.js';
import type { ColorView, InstancePageModel } from './instance-page.js';
import type { PlanPageModel } from './plan-page.js';
import { OUTCOME, type Tone } from './page/html.js';
import type { HealthSample } from './health-ring.js';

export interface PageSources {
  /** The last pass's observation and the revision it compared with. */
  observed(): { live: readonly LiveInstance[]; desired?: LoadedRevision } | undefined;
  loadRevision(revision: string): Promise<LoadedRevision>;
  /** What ran when the rollout of this revision started (the newest few rollouts). */
  rolloutBase(revision: string): readonly LiveInstance[] | undefined;
  /** The head of an open pull request that Tower planned, when `sha` names one (a prefix). */
  pullRequestHead?(sha: string): string | undefined;
  colors?(instance: string): Promise<ColorView[]>;
  /** The last lines of the instance's Node-RED log, secrets redacted. */
  logs?(instance: string, lines: number): Promise<{ color?: string; lines: string[] }>;
}

export const VIEW_TIMEOUT_MS = 5_000;
export const LOG_LINES_ON_PAGE = 100;
/** Revisions loaded for plan pages at once. */
export const PLAN_LOADS = 4;

export class TooBusy extends Error {}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export async function instanceModel(name: string, ctx: { status: FleetStatus; version: string; history: RolloutRecord[]; health: readonly HealthSample[]; sources?: PageSources }): Promise<InstancePageModel | undefined> {
  const { status, sources } = ctx;
  const instance = status.instances.find((i) => i.name === name);
  if (!instance) return undefined;
  const observed = sources?.observed();
  const live = observed?.live.find((l) => l.name === name);
  const desired = observed?.desired?.repo.instances.find((i) => i.name === name);
  const [colors, log] = await Promise.all([
    sources?.colors ? within(sources.colors(name), VIEW_TIMEOUT_MS, 'the runtime').catch(() => [] as ColorView[]) : Promise.resolve([] as ColorView[]),
    sources?.logs ? within(sources.logs(name, LOG_LINES_ON_PAGE), VIEW_TIMEOUT_MS, 'the log').catch((err: Error) => ({ lines: [] as string[], error: err.message })) : Promise.resolve(undefined),
  ]);
  return {
    version: ctx.version,
    ...(status.fleet ? { fleet: status.fleet } : {}),
    instance,
    colors,
    ...(live ? { flows: { live: live.flows, ...(instance.drift && desired ? { git: desired.flowList, revision: observed!.desired!.revision } : {}) } } : {}),
    history: ctx.history.filter((r) => r.instances?.[name]).slice(0, 10),
    ...(log ? { log } : {}),
    health: ctx.health,
    ...(status.rollout?.revision && status.rollout.waves.some((w) => w.instances.includes(name)) ? { rollingOut: status.rollout.revision } : {}),
  };
}

/** The full revision the daemon knows that `sha` names (a prefix of at least 7 hex digits), or undefined. */
export function knownRevision(sha: string, status: FleetStatus, history: readonly RolloutRecord[]): string | undefined {
  if (!/^[0-9a-f]{7,64}$/i.test(sha)) return undefined;
  const want = sha.toLowerCase();
  const known = [status.rollout?.revision, status.desiredRevision, status.attemptedRevision, status.appliedRevision, status.source.newestRevision, ...history.map((r) => r.revision)];
  return known.find((r): r is string => typeof r === 'string' && r.toLowerCase().startsWith(want));
}

function stateOf(revision: string, status: FleetStatus, history: readonly RolloutRecord[]): { state: string; tone: Tone; error?: string } {
  if (status.rollout?.revision === revision) return { state: 'rolling out', tone: 'info' };
  const a = status.attempted;
  if (a?.revision === revision && a.outcome !== 'succeeded' && a.outcome !== 'running') {
    return { state: a.outcome === 'invalid' ? 'rejected' : (OUTCOME[a.outcome]?.[2] ?? a.outcome), tone: a.outcome === 'superseded' || a.outcome === 'interrupted' ? 'warn' : 'bad', ...(a.error ? { error: a.error } : {}) };
  }
  if (status.appliedRevision === revision) return { state: 'applied', tone: 'ok' };
  const r = history.find((h) => h.revision === revision);
  if (r) return { state: OUTCOME[r.outcome]?.[2] ?? r.outcome, tone: r.outcome === 'succeeded' ? 'ok' : r.outcome === 'running' ? 'info' : 'warn', ...(r.error ? { error: r.error } : {}) };
  return { state: 'pull request head, not rolled out', tone: 'neutral' };
}

export class PlanViews {
  private readonly loading = new Map<string, Promise<LoadedRevision>>();

  constructor(private readonly sources: PageSources) {}

  /** The plan page's model; undefined when the daemon knows no such revision. Throws TooBusy when PLAN_LOADS revisions are loading. */
  async model(sha: string, ctx: { status: FleetStatus; version: string; history: RolloutRecord[] }): Promise<PlanPageModel | undefined> {
    const revision = knownRevision(sha, ctx.status, ctx.history) ?? (/^[0-9a-f]{7,64}$/i.test(sha) ? this.sources.pullRequestHead?.(sha) : undefined);
    if (!revision) return undefined;
    const loaded = await this.load(revision);
    const base = this.sources.rolloutBase(revision);
    const against = base ?? this.sources.observed()?.live ?? [];
    const liveByName = new Map(against.map((l) => [l.name, l]));
    const instances: PlanPageModel['instances'] = loaded.repo.instances.map((d) => {
      const l = liveByName.get(d.name);
      liveByName.delete(d.name);
      const progress = ctx.status.rollout?.revision === revision ? ctx.status.rollout.instances[d.name] : undefined;
      const action = !l || (l.flows === null && Object.keys(l.colors).length === 0) ? 'create' : l.flows === null || diffFlows(d.flowList, l.flows).change !== 'none' ? 'update' : 'unchanged';
      return { name: d.name, action, desired: d.flowList, live: l ? l.flows : [], ...(progress ? { progress: progress.outcome ?? progress.phase ?? 'waiting' } : {}) };
    });
    // Instances that run but are not in the revision: deleted by it (when it is valid).
    if (loaded.valid) for (const l of liveByName.values()) instances.push({ name: l.name, action: 'delete', desired: [], live: l.flows });
    const { validation } = boundDiagnostics(loaded.repo.diagnostics);
    return {
      version: ctx.version,
      ...(ctx.status.fleet ? { fleet: ctx.status.fleet } : {}),
      revision,
      ...(loaded.commit ? { commit: loaded.commit } : {}),
      ...stateOf(revision, ctx.status, ctx.history),
      diagnostics: validation,
      against: base ? 'rollout-start' : 'live',
      instances,
    };
  }

  private load(revision: string): Promise<LoadedRevision> {
    const current = this.loading.get(revision);
    if (current) return current;
    if (this.loading.size >= PLAN_LOADS) throw new TooBusy(`${PLAN_LOADS} revisions are loading already; try again in a moment`);
    const p = within(this.sources.loadRevision(revision), 30_000, 'the source').finally(() => this.loading.delete(revision));
    this.loading.set(revision, p);
    return p;
  }
}
