/**
 * One reconcile pass, in three stages:
 *   observe — the source (newest revision, loaded and validated) and what runs;
 *   decide  — core/decide.ts: desired × observed × the revision record → status, plan, repairs;
 *   act     — the executor runs exactly that: urgent repairs, else the plan, else housekeeping.
 * Status is derived from the decision on every pass; nothing of it is carried over.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { decide, type Decision } from '../core/decide.js';
import { usesMqtt } from '../core/instance-env.js';
import { deadReplicas, type LiveInstance } from '../core/live.js';
import type { RepoReader } from '../core/load.js';
import { diagramFlows } from '../core/mermaid.js';
import { backoffDelay, recordRestart, settleRestarts, type RestartBook } from '../core/restarts.js';
import { bookFromStore, chooseTarget, EMPTY_BOOK, recordFailure, recordSuccess, type RevisionBook, type Target } from '../core/revisions.js';
import { deriveStatus, type FleetStatus } from '../core/status.js';
import type { ActDeps } from './actions.js';
import { preflight, PreflightError, sharedContextWarning, usesKubernetes, usesSharedContext } from './apply.js';
import type { RolloutEvent } from './events.js';
import { executeRepairs, executeRollout, type RolloutResult } from './executor.js';
import { observeFleet } from './observe.js';
import type { FleetRuntime, FleetSource, MetricsSink, Reporter, StateStore } from './ports.js';
import { RolloutRecorder } from './recorder.js';
import { RevisionLoader, type LoadedRevision, type SourceReading } from './revisions.js';

export interface ReconcilerOptions {
  source: FleetSource;
  runtime: FleetRuntime;
  store: StateStore;
  log: Logger;
  /** Where secret references are resolved. */
  env: NodeJS.ProcessEnv;
  library?: RepoReader;
  metrics?: MetricsSink;
  reporter?: Reporter;
  now?: () => Date;
  /** Status changed (the page's live updates). */
  changed(status: FleetStatus): void;
  /** Checked between waves: false stops a rollout at its next safe point. */
  mayContinue(): boolean;
  isLeader(): boolean;
}

/** What a pass did, for the metrics: synced, drift, held, invalid, no-source (nothing to do); repaired, repair-failed, housekeeping, housekeeping-failed, rolled-out, failed, superseded, interrupted. */
export type PassResult = string;

export class Reconciler {
  readonly revisions: RevisionLoader;
  status: FleetStatus;
  private book: RevisionBook = EMPTY_BOOK;
  private restarts: RestartBook = {};
  /** Repairs that failed, backing off (see Repair.failureKey). */
  private repairFailures: RestartBook = {};
  private readonly reported = { drift: new Set<string>(), crashLoop: new Set<string>(), rejected: new Set<string>() };
  /** The newest revision that validated: a rollout of another one stops between waves. */
  private newestValid?: string;
  private newestSeq = 0;
  /** The rollout under way: repairs of other instances need not wait for it (repairAside). */
  private rolling?: { fleet: string; desired: LoadedRevision; instances: Set<string> };
  private asideBusy = false;
  /** When the pass wants to run again at the latest (a backoff ends, a standby expires). */
  wakeAt?: number;
  /** What the last pass observed and the revision it compared with (read-only, for the status page's drawings). */
  observed?: { live: readonly LiveInstance[]; desired?: LoadedRevision };
  /** What ran when the last rollouts started, by revision (the plan page draws a rollout against it); the newest few. */
  readonly rolloutBase = new Map<string, readonly LiveInstance[]>();
  private readonly now: () => Date;

  constructor(private readonly opts: ReconcilerOptions) {
    this.now = opts.now ?? (() => new Date());
    this.revisions = new RevisionLoader(opts.source, opts.library, this.now);
    this.status = { source: { kind: opts.source.kind, location: opts.source.describe() }, sync: 'Unknown', reason: 'NoRevision', message: 'starting', leader: false, instances: [], rollout: null, validation: [], drift: [] };
  }

  /** After a restart: failed revisions stay failed; a rollout the daemon died in is closed as interrupted. */
  async recover(): Promise<void> {
    const fleet = this.opts.runtime.registry.read().fleet;
    if (!fleet) return;
    const { attempted, applied } = await this.opts.store.revisions(fleet);
    this.book = bookFromStore(attempted, applied?.revision, this.now().getTime());
    const open = await this.opts.store.openRollout(fleet);
    if (!open) return;
    const where = Object.entries(open.states).map(([instance, s]) => `${instance} in ${(s as { phase?: string }).phase ?? '?'}`).join(', ');
    const error = `interrupted: the daemon stopped during the rollout (${where || 'before any instance'}); the next pass repairs from what runs`;
    const at = this.now().toISOString();
    await this.opts.store.finishRollout(open.rollout.id, 'interrupted', at, error);
    if (open.rollout.revision) this.opts.reporter?.rolloutFinished({ revision: open.rollout.revision, outcome: 'interrupted', error, instances: [], ms: Date.parse(at) - Date.parse(open.rollout.startedAt) });
    await this.opts.store.audit({ at, fleet, actor: 'tower', action: 'rollout-interrupted', ...(open.rollout.revision ? { revision: open.rollout.revision } : {}), detail: open.states });
    this.opts.log.warn({ rollout: open.rollout.id, revision: open.rollout.revision }, error);
  }

  /** A reading of the source (from a pass, or a peek during a rollout) says which revision is newest. */
  noteNewest(reading: SourceReading): void {
    if (reading.seq < this.newestSeq || !reading.newest?.valid) return;
    this.newestSeq = reading.seq;
    if (this.newestValid !== reading.newest.revision && this.status.rollout) this.opts.log.info({ revision: reading.newest.revision.slice(0, 12) }, 'a newer revision arrived during the rollout');
    this.newestValid = reading.newest.revision;
  }

  /** A pass that broke before it could decide: the status says so, and claims nothing. */
  failed(message: string): void {
    this.status = { ...this.status, sync: 'Unknown', reason: 'PassFailed', message: `the last pass failed: ${message}`, lastError: message };
  }

  /** One pass; the source's last reading is reused when it is younger than sourceMaxAgeMs (default: always fetch). */
  async pass(options: { sourceMaxAgeMs?: number } = {}): Promise<PassResult> {
    const { runtime: rt, store } = this.opts;
    const now = this.now();
    // observe: the source
    const reading = await this.revisions.newest(options.sourceMaxAgeMs ?? 0);
    this.noteSource(reading);
    const newest = reading.newest;
    if (newest && !newest.valid) await this.reject(newest);
    this.noteNewest(reading);
    const fleet = newest?.repo.fleet?.name ?? this.status.fleet ?? rt.registry.read().fleet;
    if (!fleet) return this.publish({ target: chooseTarget(undefined, undefined, this.book, now.getTime()), reading, live: [] }, newest ? 'invalid' : 'no-source');
    if (rt.registry.read().fleet !== fleet) rt.registry.update((r) => void (r.fleet = fleet));
    const revs = await store.revisions(fleet);
    const applied = revs.applied?.revision;
    const target = chooseTarget(newest ? { revision: newest.revision, valid: newest.valid } : undefined, applied, this.book, now.getTime());
    const desired = await this.desiredFor(target, newest);
    // observe: what runs
    if (desired && usesMqtt(desired.repo.instances)) await rt.ensureBroker();
    if (desired && usesSharedContext(desired.repo.instances)) await rt.ensureSharedContext();
    if (desired && usesKubernetes(desired.repo.instances)) rt.useCluster?.(fleet, desired.repo.fleet?.kubernetes);
    const live = await observeFleet(rt, fleet);
    this.observed = { live, ...(desired ? { desired } : {}) };
    this.restarts = settleRestarts(this.restarts, (key) => restartState(live, key), now.getTime());
    // decide
    const decision = decide({ ...(desired ? { desired: { fleet: desired.repo.fleet!, instances: desired.repo.instances } } : {}), mode: target.mode, canPlan: target.canPlan, live, restarts: this.restarts, repairFailures: this.repairFailures, now: now.getTime() });
    this.wakeAt = [decision.wakeAt, target.retryAt].filter((t): t is number => t !== undefined).sort((a, b) => a - b)[0];
    const converged = decision.next !== 'repair' && decision.next !== 'rollout' && decision.instances.every((i) => i.condition === 'Synced');
    let appliedNow = applied;
    if (converged && target.mode === 'rollout' && target.revision && applied !== target.revision) {
      // The fleet runs the newest revision without anything to roll out (nothing in it changes the fleet).
      await store.setApplied(fleet, { revision: target.revision, at: now.toISOString() });
      appliedNow = target.revision;
      this.book = recordSuccess(this.book, target.revision);
      this.opts.metrics?.appliedRevisionAt(now);
      this.opts.reporter?.rolloutFinished({ revision: target.revision, outcome: 'succeeded', instances: [], ms: 0 });
    }
    const ctx = { target, reading, live, decision, fleet, applied: appliedNow, attempted: revs.attempted };
    this.publish(ctx);
    await this.noteConditions(fleet, decision, target);
    // act
    switch (decision.next) {
      case 'repair':
        return (await this.repair(decision, desired, live, fleet, true)) ? 'repaired' : 'repair-failed';
      case 'housekeeping':
        return (await this.repair(decision, desired, live, fleet, false)) ? 'housekeeping' : 'housekeeping-failed';
      case 'rollout':
        return this.rollout(decision, desired!, live, fleet, applied, ctx);
      case 'wait':
        return target.mode === 'hold' ? (target.because === 'invalid' ? 'invalid' : 'held') : decision.instances.some((i) => i.drift) ? 'drift' : 'synced';
    }
  }

  private async desiredFor(target: Target, newest: LoadedRevision | undefined): Promise<LoadedRevision | undefined> {
    if (!target.revision) return undefined;
    if (newest?.revision === target.revision) return newest.valid ? newest : undefined;
    try {
      const loaded = await this.revisions.load(target.revision);
      return loaded.valid ? loaded : undefined;
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message, revision: target.revision }, 'cannot check out the applied revision; only repairs are made');
      return undefined;
    }
  }

  private noteSource(reading: SourceReading): void {
    const s = this.status.source;
    if (reading.error) this.opts.log.warn({ err: reading.error }, 'source unreachable; the fleet keeps running what it runs');
    if (!reading.fetchedAt && !reading.error) return; // the last reading, reused
    this.status.source = { kind: s.kind, location: s.location, ...(reading.fetchedAt ? { lastFetchAt: reading.fetchedAt.toISOString() } : s.lastFetchAt ? { lastFetchAt: s.lastFetchAt } : {}), ...(reading.newest ? { newestRevision: reading.newest.revision } : {}), ...(reading.error ? { error: reading.error } : {}) };
  }

  /** An invalid revision changes nothing; it is said once, in the store, the log and on the commit. */
  private async reject(newest: LoadedRevision): Promise<void> {
    const errors = newest.repo.diagnostics.filter((d) => d.severity === 'error');
    const first = errors[0];
    const error = `invalid: ${errors.length} error${errors.length === 1 ? '' : 's'}${first ? `, first: ${first.file}:${first.line}:${first.col}: ${first.message}` : ''}`;
    this.book = recordFailure(this.book, newest.revision, { kind: 'invalid', error }, this.now().getTime());
    if (this.reported.rejected.has(newest.revision)) return;
    this.reported.rejected.add(newest.revision);
    this.opts.log.error({ revision: newest.revision, errors: errors.length }, `revision rejected, nothing changes: ${error}`);
    this.opts.reporter?.revisionRejected({ revision: newest.revision, diagnostics: newest.repo.diagnostics });
    const fleet = newest.repo.fleet?.name ?? this.status.fleet ?? this.opts.runtime.registry.read().fleet;
    if (!fleet) return;
    const at = this.now().toISOString();
    await this.opts.store.setAttempted(fleet, { revision: newest.revision, at, outcome: 'invalid', error });
    await this.opts.store.audit({ at, fleet, actor: 'tower', action: 'revision-rejected', revision: newest.revision, detail: { errors: errors.slice(0, 20) } });
  }

  /** Drift and CrashLoop are events as well as conditions: logged and audited once per episode. */
  private async noteConditions(fleet: string, decision: Decision, target: Target): Promise<void> {
    const episode = async (kind: 'drift' | 'crashLoop', names: string[], message: string, action: string) => {
      const seen = this.reported[kind];
      const fresh = names.filter((n) => !seen.has(n));
      for (const n of [...seen]) if (!names.includes(n)) seen.delete(n);
      if (!fresh.length) return;
      fresh.forEach((n) => seen.add(n));
      this.opts.log.warn({ instances: fresh, revision: target.revision }, message);
      await this.opts.store.audit({ at: this.now().toISOString(), fleet, actor: kind === 'drift' ? 'drift' : 'tower', action, ...(target.revision ? { revision: target.revision } : {}), detail: { instances: fresh } });
    };
    await episode('drift', decision.instances.filter((i) => i.drift).map((i) => i.name), 'drift: live flows differ from what Tower applied', 'drift-detected');
    await episode('crashLoop', decision.instances.filter((i) => i.condition === 'CrashLoop').map((i) => i.name), 'CrashLoop: a colour keeps dying; restarts back off', 'crash-loop');
  }

  private publish(ctx: { target: Target; reading: SourceReading; live: LiveInstance[]; decision?: Decision; fleet?: string; applied?: string; attempted?: FleetStatus['attempted'] }, result?: PassResult): PassResult {
    const newest = ctx.reading.newest;
    const failure = newest ? this.book.failures[newest.revision]?.error : undefined;
    this.status = deriveStatus({
      ...(ctx.fleet ? { fleet: ctx.fleet } : {}),
      source: this.status.source,
      ...(newest ? { newest: { revision: newest.revision, valid: newest.valid, diagnostics: newest.repo.diagnostics, ...(newest.commit ? { commit: newest.commit } : {}) } } : {}),
      ...(ctx.applied ? { applied: ctx.applied } : {}),
      ...(ctx.attempted ? { attempted: ctx.attempted } : {}),
      target: ctx.target,
      ...(failure ? { failure } : {}),
      ...(ctx.decision ? { decision: ctx.decision } : {}),
      live: ctx.live,
      ports: new Map((newest?.valid ? newest.repo.instances : []).map((i) => [i.name, i.port])),
      leader: this.opts.isLeader(),
      rollout: null,
      lastPassAt: this.now().toISOString(),
      iso: (ms) => new Date(ms).toISOString(),
    });
    this.opts.changed(this.status);
    return result ?? 'synced';
  }

  private actDeps(fleet: string, desired: LoadedRevision | undefined, onEvent: (e: RolloutEvent) => void): ActDeps {
    return { fleet, ...(desired ? { desiredFleet: desired.repo.fleet!, revision: desired.revision } : {}), runtime: this.opts.runtime, secretsEnv: this.opts.env, now: this.now, onEvent };
  }

  /** Makes the decided repairs; true when all of them worked. */
  private async repair(decision: Decision, desired: LoadedRevision | undefined, live: LiveInstance[], fleet: string, urgent: boolean): Promise<boolean> {
    const repairs = decision.repairs.filter((r) => !urgent || r.urgent);
    const log = this.opts.log;
    const results = await executeRepairs(repairs, desired?.repo.instances ?? [], live, this.actDeps(fleet, desired, (e) => {
      if (e.type === 'repair') log[e.ok ? 'warn' : 'error']({ instance: e.instance, repair: e.kind, reason: e.reason, ms: e.ms, ...(e.error ? { err: e.error } : {}) }, e.ok ? `repaired ${e.instance}: ${e.kind}` : `repair of ${e.instance} failed: ${e.kind}`);
      else if (e.type === 'warning') log.warn({ ...(e.instance ? { instance: e.instance } : {}) }, e.message);
    }));
    const at = this.now().getTime();
    for (const r of results) {
      const { restartKey: restarted, failureKey } = r.repair;
      if (restarted) {
        this.restarts = recordRestart(this.restarts, restarted, at);
        this.opts.metrics?.restart(r.repair.instance, restarted.slice(r.repair.instance.length + 1), r.repair.kind);
        // Should this one fail (it exits again), the next try is due after its backoff: wake for it.
        this.wakeUntil(at + backoffDelay(this.restarts[restarted]!.restarts));
      } else if (failureKey && !r.ok) {
        this.repairFailures = recordRestart(this.repairFailures, failureKey, at);
        this.wakeUntil(at + backoffDelay(this.repairFailures[failureKey]!.restarts));
      } else if (failureKey) {
        const { [failureKey]: _done, ...rest } = this.repairFailures;
        this.repairFailures = rest;
      }
    }
    if (results.length) await this.opts.store.audit({ at: this.now().toISOString(), fleet, actor: 'repair', action: urgent ? 'repaired' : 'housekeeping', detail: results.map((r) => ({ instance: r.repair.instance, kind: r.repair.kind, ok: r.ok, ...(r.error ? { error: r.error } : {}) })) });
    return results.every((r) => r.ok);
  }

  private async rollout(decision: Decision, desired: LoadedRevision, live: LiveInstance[], fleet: string, applied: string | undefined, ctx: Parameters<Reconciler['publish']>[0]): Promise<PassResult> {
    const repo = desired.repo;
    const newRevision = desired.revision !== applied;
    try {
      await preflight(decision.plan, repo.instances, this.opts.env, this.opts.runtime);
    } catch (err) {
      if (!(err instanceof PreflightError)) throw err;
      this.book = recordFailure(this.book, desired.revision, { kind: err.kind, error: err.message }, this.now().getTime());
      this.opts.log.error({ problems: err.problems.slice(0, 20), more: Math.max(0, err.problems.length - 20) }, 'nothing was changed: the rollout would fail half way');
      if (newRevision) await this.opts.store.setAttempted(fleet, { revision: desired.revision, at: this.now().toISOString(), outcome: 'failed', error: err.message });
      this.publish(ctx);
      return 'failed';
    }
    const warning = sharedContextWarning(repo.instances, this.opts.runtime);
    if (warning) this.opts.log.warn(warning);
    const recorder = new RolloutRecorder(
      { store: this.opts.store, log: this.opts.log, now: this.now, ...(this.opts.reporter ? { reporter: this.opts.reporter } : {}), ...(this.opts.metrics ? { metrics: this.opts.metrics } : {}), changed: () => this.progressed(recorder) },
      { id: randomUUID(), fleet, revision: desired.revision, ...(desired.commit ? { commit: desired.commit } : {}), plan: decision.plan, report: { fleet, revision: desired.revision, valid: true, plan: decision.plan, instances: decision.diffs, diagnostics: repo.diagnostics, flows: diagramFlows(decision.diffs, repo.instances, live) }, newRevision, actor: newRevision ? 'tower' : decision.instances.some((i) => i.planned && i.drift) ? 'self-heal' : 'repair' },
    );
    await recorder.begin();
    this.rolloutBase.delete(desired.revision);
    this.rolloutBase.set(desired.revision, live);
    while (this.rolloutBase.size > 2) this.rolloutBase.delete(this.rolloutBase.keys().next().value!);
    let result: RolloutResult | undefined;
    let thrown: string | undefined;
    this.rolling = { fleet, desired, instances: new Set(decision.plan.waves.flatMap((w) => w.steps.map((st) => st.instance))) };
    try {
      result = await executeRollout(decision.plan, repo.instances, live, { ...this.actDeps(fleet, desired, recorder.onEvent), journal: recorder.journal, shouldContinue: () => this.opts.mayContinue() && !this.superseded(desired.revision) });
    } catch (err) {
      thrown = (err as Error).message;
      recorder.log.error({ err: thrown }, 'rollout could not run');
    } finally {
      this.rolling = undefined;
    }
    const end = await recorder.finish(result, thrown, !this.opts.mayContinue());
    const now = this.now();
    if (end.outcome === 'succeeded') {
      if (newRevision) await this.opts.store.setApplied(fleet, { revision: desired.revision, at: now.toISOString() });
      this.book = recordSuccess(this.book, desired.revision);
      this.opts.metrics?.appliedRevisionAt(now);
    } else if (end.kind) {
      // A rollout that halted leaves what it changed: the engine holds, rather than take it back.
      const halted = decision.plan.onFailure === 'halt' && end.outcome !== 'failed';
      this.book = recordFailure(this.book, desired.revision, { kind: end.kind, error: end.error ?? end.outcome, ...(halted ? { halted } : {}) }, now.getTime());
    }
    this.status.rollout = null;
    this.opts.changed(this.status);
    return end.outcome === 'succeeded' ? 'rolled-out' : end.outcome === 'superseded' || end.outcome === 'interrupted' ? end.outcome : 'failed';
  }

  /**
   * During a rollout, the instances it does not touch are kept alive all the same: a colour or
   * switch of theirs that dies is repaired at once, not when the rollout is over.
   */
  async repairAside(): Promise<void> {
    const r = this.rolling;
    if (!r || this.asideBusy) return;
    this.asideBusy = true;
    try {
      const live = await observeFleet(this.opts.runtime, r.fleet);
      const desired = { fleet: r.desired.repo.fleet!, instances: r.desired.repo.instances };
      const decision = decide({ desired, mode: 'hold', canPlan: false, live, restarts: this.restarts, repairFailures: this.repairFailures, now: this.now().getTime() });
      const repairs = decision.repairs.filter((x) => x.urgent && !r.instances.has(x.instance));
      if (repairs.length) await this.repair({ ...decision, repairs }, r.desired, live, r.fleet, true);
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'cannot repair beside the rollout; the next pass will');
    } finally {
      this.asideBusy = false;
    }
  }

  private wakeUntil(at: number): void {
    this.wakeAt = Math.min(this.wakeAt ?? Infinity, at);
  }

  private progressed(recorder: RolloutRecorder): void {
    this.status = { ...this.status, rollout: recorder.progress, sync: 'Progressing' };
    this.opts.changed(this.status);
  }

  /** A newer revision validated and has not failed for good: the rollout of `revision` stops between waves. */
  private superseded(revision: string): boolean {
    const n = this.newestValid;
    if (n === undefined || n === revision) return false;
    const f = this.book.failures[n];
    return !f || (f.retryAt !== Infinity && this.now().getTime() >= f.retryAt); // it would be rolled out now
  }
}

/** For the restart book: does the colour (or switch) a key names still run, or is it gone? */
function restartState(live: readonly LiveInstance[], key: string): 'running' | 'dead' | 'gone' {
  const slash = key.lastIndexOf('/');
  const l = live.find((x) => x.name === key.slice(0, slash));
  const what = key.slice(slash + 1);
  if (!l) return 'gone';
  // A switch that is gone while colours run is dead, not gone: restoring it keeps backing off.
  if (what === 'switch') return !l.switch ? (Object.keys(l.colors).length ? 'dead' : 'gone') : l.switch.running ? 'running' : 'dead';
  const c = l.colors[what as 'blue' | 'green'];
  // A colour with a dead replica is not running stably: its restarts keep counting until every replica runs.
  return !c ? 'gone' : c.status === 'running' && deadReplicas(c).length === 0 ? 'running' : 'dead';
}
