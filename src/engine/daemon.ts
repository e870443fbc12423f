/**
 * The daemon: one level-triggered reconcile loop that keeps the fleet equal to its source
 * (a Git branch or a directory), forever.
 *
 * Triggers (the poll timer, a verified webhook, a file change, SIGHUP) only enqueue; queued
 * triggers collapse into one. Every pass reads the newest desired state and the observed
 * state and drives one toward the other — it never branches on what triggered it.
 *
 * Revisions: `attempted` is the newest revision a rollout was started for (or rejected);
 * `applied` the newest the whole fleet runs, verified. A revision that failed stays failed —
 * the fleet keeps (or goes back to) the last applied one — until a newer revision arrives:
 *   - invalid (validation errors), or rolled back because the new flows failed their checks
 *     (VERIFY, AUDIT): permanent for that revision;
 *   - failed while starting (DRAIN, DEPLOY: a port in use, an engine down) or before it
 *     (a missing secret): transient, retried with exponential backoff, at most 3 times.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Diagnostic } from '../core/diagnostics.js';
import { diffFleet, type InstanceDiff } from '../core/diff.js';
import { loadRepository, type LoadedRepository, type RepoReader } from '../core/load.js';
import { buildPlan, type Plan } from '../core/plan.js';
import type { Phase } from '../core/rollout.js';
import { applyFleet, collectGarbage, observe, PreflightError, repairGates, repairSwitches, type FleetRuntime } from './apply.js';
import { usesMqtt } from '../core/instance-env.js';
import type { RolloutEvent, RolloutResult } from './executor.js';
import { toObservedFleet, type LiveInstance } from './observe.js';
import type { RolloutOutcome, RolloutRecord, StateStore } from './store.js';
import type { FleetMetrics } from '../server/metrics.js';
import type { CommitInfo, FleetSource } from '../adapters/git/source.js';
import type { GithubReporter } from '../adapters/github/reporter.js';

export type { CommitInfo, FleetSource };

/** Leadership among daemons pointed at the same fleet (Redis lease), or always true. */
export interface Leadership {
  /** Resolves when this daemon leads (or when stopping); never throws. */
  acquire(isStopping: () => boolean): Promise<boolean>;
  /** False once leadership was lost (the lease expired, a newer fencing token exists). */
  stillLeader(): Promise<boolean>;
  /** The same, from what is known locally, without asking: checked between waves. */
  isLeader(): boolean;
  release(): Promise<void>;
}

export interface DaemonOptions {
  source: FleetSource;
  runtime: FleetRuntime;
  store: StateStore;
  log: Logger;
  /** Poll interval; each wait is jittered ±10 %. */
  intervalMs: number;
  /** Where secret references are resolved. */
  env: NodeJS.ProcessEnv;
  library?: RepoReader;
  leadership?: Leadership;
  metrics?: FleetMetrics;
  /** Commit statuses and check runs (GitHub); never blocks: it queues. */
  reporter?: Pick<GithubReporter, 'rolloutStarted' | 'rolloutFinished' | 'revisionRejected'>;
  now?: () => Date;
}

export type SyncStatus = 'Synced' | 'OutOfSync' | 'Progressing' | 'Unknown';

export interface InstanceStatus {
  name: string;
  color?: string;
  port?: number;
  rev?: string;
  health: string;
  healthMessage: string;
  drift: boolean;
  standby?: string;
  nodeRedVersion?: string;
  runtime?: string;
  lastDeploy?: string;
}

export interface RolloutProgress {
  id: string;
  revision?: string;
  startedAt: string;
  waves: { index: number; instances: string[]; state: 'pending' | 'running' | 'healthy' | 'failed' }[];
  instances: Record<string, { phase?: Phase; path?: string; outcome?: string; error?: string; wave: number }>;
}

export interface DaemonStatus {
  fleet?: string;
  source: { kind: string; location: string; lastFetchAt?: string; newestRevision?: string; error?: string };
  desiredRevision?: string;
  attemptedRevision?: string;
  appliedRevision?: string;
  attempted?: { revision: string; at: string; outcome: RolloutOutcome; error?: string };
  commit?: CommitInfo;
  sync: SyncStatus;
  leader: boolean;
  instances: InstanceStatus[];
  rollout: RolloutProgress | null;
  lastError?: string;
  validation: Diagnostic[];
  drift: string[];
  lastPassAt?: string;
}

interface Desired {
  revision: string;
  repo: LoadedRepository;
  commit?: CommitInfo;
}

const MAX_TRANSIENT_RETRIES = 3;

export class Daemon extends EventEmitter {
  private readonly opts: DaemonOptions;
  private readonly log: Logger;
  private stopping = false;
  private wake?: () => void;
  private queued = false;
  private running?: Promise<void>;
  /** The newest revision that validated; a rollout for an older one stops between waves. */
  private newestValid?: string;
  private lastGood?: Desired;
  private candidate?: Desired;
  /** Revisions that must not be retried, and how many times transient failures were retried. */
  private readonly failed = new Map<string, { permanent: boolean; attempts: number; retryAt: number; error: string }>();
  private backoffMs = 0;
  private reportedDrift = new Set<string>();
  readonly state: DaemonStatus;

  constructor(opts: DaemonOptions) {
    super();
    this.opts = opts;
    this.log = opts.log;
    this.state = { source: { kind: opts.source.kind, location: opts.source.describe() }, sync: 'Unknown', leader: false, instances: [], rollout: null, validation: [], drift: [] };
  }

  /** Queues a reconcile pass; many triggers before the pass starts collapse into one. */
  trigger(reason: string): void {
    if (!this.queued) this.log.debug({ reason }, 'reconcile queued');
    this.queued = true;
    this.wake?.();
    // During a rollout, learn about newer revisions now: the rollout stops at its next safe point.
    if (this.state.rollout) void this.peekNewest();
  }

  private peeking = false;

  private async peekNewest(): Promise<void> {
    if (this.peeking) return;
    this.peeking = true;
    try {
      const fetched = await this.opts.source.fetch();
      if (fetched.revision === this.newestValid || this.failed.get(fetched.revision)?.permanent) return;
      // Only a newer revision that validates may stop the rollout: an invalid one changes nothing.
      const { reader } = await this.opts.source.checkout(fetched.revision);
      if (!loadRepository(reader, { ...(this.opts.library ? { library: this.opts.library } : {}) }).valid) return;
      this.log.info({ revision: fetched.revision.slice(0, 12) }, 'a newer revision arrived during the rollout');
      this.newestValid = fetched.revision;
    } catch {
      // unreachable: the next pass says so
    } finally {
      this.peeking = false;
    }
  }

  start(): Promise<void> {
    const watcher = this.opts.source.watch?.(() => this.trigger('source changed'));
    this.running = this.loop().finally(() => watcher?.close());
    return this.running;
  }

  /** SIGTERM: the current rollout stops at its next safe point (between waves); then the loop ends. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.running;
  }

  private now(): Date {
    return this.opts.now ? this.opts.now() : new Date();
  }

  private async loop(): Promise<void> {
    const leadership = this.opts.leadership;
    while (!this.stopping) {
      if (leadership) {
        this.state.leader = false;
        this.emit('status');
        if (!(await leadership.acquire(() => this.stopping))) break;
        this.log.info('leading: this daemon acts on the fleet');
      }
      this.state.leader = true;
      try {
        await this.recover();
      } catch (err) {
        this.state.lastError = (err as Error).message;
        this.log.error({ err: (err as Error).message }, 'cannot recover the previous rollout; reconciling from what runs');
      }
      while (!this.stopping) {
        if (leadership && !(await leadership.stillLeader())) {
          this.log.warn('leadership lost: another daemon acts on the fleet now');
          break;
        }
        this.queued = false;
        const started = performance.now();
        let result: string;
        try {
          result = await this.pass();
          this.backoffMs = 0;
        } catch (err) {
          result = 'error';
          this.backoffMs = Math.min(Math.max(this.backoffMs * 2, 1_000), 5 * 60_000);
          this.state.lastError = (err as Error).message;
          this.log.error({ err: (err as Error).message, retryInMs: this.backoffMs }, 'reconcile failed');
        }
        this.opts.metrics?.reconcile(result, (performance.now() - started) / 1000);
        this.opts.metrics?.fromStatus(this.state);
        this.state.lastPassAt = this.now().toISOString();
        this.emit('status');
        await this.waitForTrigger(this.backoffMs || this.jittered(this.opts.intervalMs));
      }
    }
    await leadership?.release();
  }

  private jittered(ms: number): number {
    return Math.round(ms * (0.9 + Math.random() * 0.2));
  }

  private waitForTrigger(ms: number): Promise<void> {
    if (this.queued || this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    });
  }

  /** A rollout that was running when the daemon died is closed in the history; the next pass repairs from live state. */
  private async recover(): Promise<void> {
    const fleet = this.opts.runtime.state.readRegistry().fleet;
    if (!fleet) return;
    this.state.fleet = fleet;
    // A revision rejected or rolled back before a restart stays failed after it.
    const { attempted, applied } = await this.opts.store.revisions(fleet);
    if (attempted && attempted.revision !== applied?.revision && (attempted.outcome === 'rolled-back' || attempted.outcome === 'invalid')) {
      this.failed.set(attempted.revision, { permanent: true, attempts: MAX_TRANSIENT_RETRIES + 1, retryAt: Infinity, error: attempted.error ?? attempted.outcome });
    }
    const open = await this.opts.store.openRollout(fleet);
    if (!open) return;
    const where = Object.entries(open.states)
      .map(([instance, s]) => `${instance} in ${(s as { phase?: string }).phase ?? '?'}`)
      .join(', ');
    const error = `interrupted: the daemon stopped during the rollout (${where || 'before any instance'}); the next pass repairs from what runs`;
    await this.opts.store.finishRollout(open.rollout.id, 'interrupted', this.now().toISOString(), error);
    if (open.rollout.revision) this.opts.reporter?.rolloutFinished({ revision: open.rollout.revision, outcome: 'interrupted', error, instances: [], ms: Date.now() - Date.parse(open.rollout.startedAt) });
    await this.opts.store.audit({ at: this.now().toISOString(), fleet, actor: 'tower', action: 'rollout-interrupted', ...(open.rollout.revision ? { revision: open.rollout.revision } : {}), detail: open.states });
    this.log.warn({ rollout: open.rollout.id, revision: open.rollout.revision }, error);
    // The revision is retried: an interruption says nothing about the flows.
  }

  /** CPU and memory of every running colour, from the drivers: read when the metrics are scraped, not on every pass. */
  async recordUsage(): Promise<void> {
    const metrics = this.opts.metrics;
    const fleet = this.state.fleet;
    if (!metrics || !fleet) return;
    metrics.resetUsage();
    for (const driver of Object.values(this.opts.runtime.drivers)) {
      if (!driver?.usage) continue;
      for (const c of await driver.list(fleet).catch(() => [])) {
        if (c.status !== 'running') continue;
        const u = await driver.usage(c).catch(() => undefined);
        if (u) metrics.usage(c.instance, c.color, u.cpuSeconds, u.rssBytes);
      }
    }
  }

  /** One reconcile pass; returns what it did, for the metrics: synced, rolled-out, failed, drift, invalid, no-source. */
  private async pass(): Promise<string> {
    const rt = this.opts.runtime;
    await this.refreshDesired();
    const desired = this.chooseDesired();
    if (!desired) {
      this.state.sync = 'Unknown';
      return this.state.validation.some((d) => d.severity === 'error') ? 'invalid' : 'no-source';
    }
    const fleet = desired.repo.fleet!;
    this.state.fleet = fleet.name;
    this.state.desiredRevision = desired.revision;
    if (rt.state.readRegistry().fleet !== fleet.name) rt.state.updateRegistry((r) => void (r.fleet = fleet.name));

    if (usesMqtt(desired.repo.instances)) await rt.ensureBroker();
    const live = await observe(rt, fleet.name);
    const switches = await repairSwitches(rt, live);
    if (switches.length) this.log.warn({ instances: switches }, 'restarted traffic switches that had stopped');
    const repaired = await repairGates(rt, fleet.name, live);
    if (repaired.length) this.log.warn({ repaired }, 're-opened deploy gates of routed colours');
    const diffs = diffFleet(desired.repo.instances, toObservedFleet(live));
    const plan = buildPlan(fleet, diffs);
    const revisions = await this.opts.store.revisions(fleet.name);
    this.state.appliedRevision = revisions.applied?.revision;
    this.state.attemptedRevision = revisions.attempted?.revision;
    this.state.attempted = revisions.attempted;
    this.updateInstances(live, diffs, desired);

    if (!plan.hasChanges) {
      const leftovers = await collectGarbage(rt, fleet.name, this.now(), (e) => this.onEvent(e), live);
      if (leftovers.length) this.log.warn({ removed: leftovers }, 'removed leftovers');
      this.state.sync = 'Synced';
      this.reportedDrift.clear();
      if (revisions.applied?.revision !== desired.revision) {
        await this.opts.store.setApplied(fleet.name, { revision: desired.revision, at: this.now().toISOString() });
        this.state.appliedRevision = desired.revision;
        this.lastGood = desired;
        this.opts.metrics?.appliedRevisionAt(this.now());
        // The fleet runs this revision without a rollout (nothing in it changes the fleet): say so on the commit.
        this.opts.reporter?.rolloutFinished({ revision: desired.revision, outcome: 'succeeded', instances: [], ms: 0 });
      }
      return 'synced';
    }

    this.state.sync = 'OutOfSync';
    const isDrift = revisions.applied?.revision === desired.revision;
    if (isDrift) {
      const drifted = diffs.filter((d) => d.action !== 'unchanged').map((d) => d.name);
      const fresh = drifted.filter((n) => !this.reportedDrift.has(n));
      if (fresh.length) {
        fresh.forEach((n) => this.reportedDrift.add(n));
        this.log.warn({ instances: fresh, revision: desired.revision, selfHeal: fleet.selfHeal }, 'drift: live flows differ from what Tower applied');
        await this.opts.store.audit({ at: this.now().toISOString(), fleet: fleet.name, actor: 'drift', action: 'drift-detected', revision: desired.revision, detail: { instances: fresh } });
      }
      if (!fleet.selfHeal) return 'drift';
    }
    const outcome = await this.rollout(desired, plan, diffs, isDrift);
    return outcome === 'succeeded' ? 'rolled-out' : 'failed';
  }

  /** Fetches the source and loads the newest revision when it is new. */
  private async refreshDesired(): Promise<void> {
    const source = this.opts.source;
    let fetched: { revision: string; changed: boolean };
    try {
      fetched = await source.fetch();
      this.state.source.error = undefined;
    } catch (err) {
      // Unreachable: keep running the last good revision, and say so.
      this.state.source.error = (err as Error).message;
      this.log.warn({ err: (err as Error).message }, 'source unreachable; the fleet keeps running the last good revision');
      if (!this.lastGood) await this.loadApplied();
      return;
    }
    this.state.source.lastFetchAt = this.now().toISOString();
    this.state.source.newestRevision = fetched.revision;
    if (this.candidate?.revision === fetched.revision || this.lastGood?.revision === fetched.revision) {
      this.newestValid = fetched.revision;
      return;
    }
    // Rejected once is rejected for good: do not check it out, log it and report it again.
    if (this.failed.get(fetched.revision)?.permanent) return;
    const { reader, commit } = await source.checkout(fetched.revision);
    const repo = loadRepository(reader, { ...(this.opts.library ? { library: this.opts.library } : {}) });
    const loaded: Desired = { revision: fetched.revision, repo, ...(commit ? { commit } : {}) };
    this.state.validation = repo.diagnostics;
    if (!repo.valid || !repo.fleet) {
      const errors = repo.diagnostics.filter((d) => d.severity === 'error');
      const first = errors[0];
      const error = `invalid: ${errors.length} error${errors.length === 1 ? '' : 's'}${first ? `, first: ${first.file}:${first.line}:${first.col}: ${first.message}` : ''}`;
      this.failed.set(fetched.revision, { permanent: true, attempts: 1, retryAt: Infinity, error });
      const fleet = repo.fleet?.name ?? this.state.fleet;
      this.log.error({ revision: fetched.revision, errors: errors.length }, `revision rejected, nothing changes: ${error}`);
      this.opts.reporter?.revisionRejected({ revision: fetched.revision, diagnostics: repo.diagnostics });
      if (fleet) {
        await this.opts.store.setAttempted(fleet, { revision: fetched.revision, at: this.now().toISOString(), outcome: 'invalid', error });
        await this.opts.store.audit({ at: this.now().toISOString(), fleet, actor: 'tower', action: 'revision-rejected', revision: fetched.revision, detail: { errors: errors.slice(0, 20) } });
      }
      this.candidate = undefined;
      if (!this.lastGood) await this.loadApplied();
      return;
    }
    this.candidate = loaded;
    this.newestValid = fetched.revision;
    this.state.commit = commit;
  }

  /** After a restart (or when the newest revision is bad), the desired state is the last applied revision. */
  private async loadApplied(): Promise<void> {
    const fleet = this.state.fleet ?? this.opts.runtime.state.readRegistry().fleet;
    if (!fleet) return;
    const applied = (await this.opts.store.revisions(fleet)).applied;
    if (!applied) return;
    try {
      const { reader, commit } = await this.opts.source.checkout(applied.revision);
      const repo = loadRepository(reader, { ...(this.opts.library ? { library: this.opts.library } : {}) });
      if (repo.valid) this.lastGood = { revision: applied.revision, repo, ...(commit ? { commit } : {}) };
    } catch (err) {
      this.log.warn({ err: (err as Error).message, revision: applied.revision }, 'cannot check out the last applied revision');
    }
  }

  private chooseDesired(): Desired | undefined {
    const c = this.candidate;
    if (c) {
      const f = this.failed.get(c.revision);
      if (!f || (!f.permanent && f.attempts <= MAX_TRANSIENT_RETRIES && Date.now() >= f.retryAt)) return c;
    }
    return this.lastGood;
  }

  private async rollout(desired: Desired, plan: Plan, diffs: InstanceDiff[], selfHeal: boolean): Promise<RolloutOutcome> {
    const rt = this.opts.runtime;
    const fleet = desired.repo.fleet!;
    const store = this.opts.store;
    const id = randomUUID();
    const startedAt = this.now().toISOString();
    const log = this.log.child({ rollout: id, revision: desired.revision.slice(0, 12) });
    const record: Omit<RolloutRecord, 'outcome' | 'finishedAt'> = {
      id,
      fleet: fleet.name,
      revision: desired.revision,
      ...(desired.commit?.author ? { author: desired.commit.author } : {}),
      ...(desired.commit?.message ? { message: desired.commit.message } : {}),
      startedAt,
      plan: { order: plan.order, onFailure: plan.onFailure, waves: plan.waves.map((w) => ({ index: w.index, steps: w.steps })) },
    };
    await store.beginRollout(record);
    await store.audit({ at: startedAt, fleet: fleet.name, actor: selfHeal ? 'self-heal' : 'tower', action: 'rollout-started', revision: desired.revision, detail: { waves: plan.waves.length } });
    if (!selfHeal) {
      await store.setAttempted(fleet.name, { revision: desired.revision, at: startedAt, outcome: 'running' });
      this.opts.reporter?.rolloutStarted({ revision: desired.revision, plan: { fleet: fleet.name, revision: desired.revision, valid: true, plan, instances: diffs, diagnostics: desired.repo.diagnostics } });
    }
    this.state.sync = 'Progressing';
    this.state.rollout = {
      id,
      revision: desired.revision,
      startedAt,
      waves: plan.waves.map((w) => ({ index: w.index, instances: w.steps.map((s) => s.instance), state: 'pending' })),
      instances: Object.fromEntries(plan.waves.flatMap((w) => w.steps.map((s) => [s.instance, { wave: w.index }]))),
    };
    this.emit('status');
    log.info({ waves: plan.waves.length, selfHeal }, 'rollout started');

    let result: RolloutResult | undefined;
    let error: string | undefined;
    let transient = false;
    try {
      const outcome = await applyFleet(
        rt,
        { fleet, instances: desired.repo.instances, diagnostics: desired.repo.diagnostics, revision: desired.revision },
        {
          env: this.opts.env,
          now: () => this.now(),
          onEvent: (e) => this.onEvent(e, log),
          journal: async (instance, state) => {
            await store.saveInstanceState(id, instance, state);
          },
          shouldContinue: () => !this.stopping && !this.superseded(desired.revision) && (this.opts.leadership?.isLeader() ?? true),
        },
      );
      result = outcome.result;
    } catch (err) {
      error = (err as Error).message;
      transient = true; // nothing was changed (preflight) or the pass broke before acting: retry later
      if (!(err instanceof PreflightError)) log.error({ err: error }, 'rollout could not run');
    }

    try {
      return await this.finish(id, desired, selfHeal, startedAt, result, error, transient, log);
    } finally {
      this.state.rollout = null;
      this.emit('status');
      // Level-triggered: look again at once, to confirm convergence (or repair what failed).
      this.trigger('after rollout');
    }
  }

  /** Records how a rollout ended: history, audit, revisions, GitHub, metrics. */
  private async finish(id: string, desired: Desired, selfHeal: boolean, startedAt: string, result: RolloutResult | undefined, error: string | undefined, transient: boolean, log: Logger): Promise<RolloutOutcome> {
    const store = this.opts.store;
    const fleet = desired.repo.fleet!;
    const finishedAt = this.now().toISOString();
    let outcome: RolloutOutcome;
    if (result?.superseded) outcome = this.stopping || !(this.opts.leadership?.isLeader() ?? true) ? 'interrupted' : 'superseded';
    else if (result?.ok) outcome = 'succeeded';
    else if (result) outcome = result.instances.some((i) => i.state.outcome === 'failed') ? 'failed' : 'rolled-back';
    else outcome = 'failed';
    if (result?.failure) {
      error = `${result.failure.instance}${result.failure.phase ? ` in ${result.failure.phase}` : ''}: ${result.failure.error}`;
      transient = result.failure.phase === 'DRAIN' || result.failure.phase === 'DEPLOY';
    }
    for (const r of result?.instances ?? []) {
      await store.saveInstanceHistory(id, r.instance, {
        path: r.path,
        outcome: r.state.outcome,
        ...(r.state.error ? { error: r.state.error } : {}),
        phases: r.phases.map((p) => ({ phase: p.phase, startedAt, ms: p.ms })),
      });
    }
    await store.finishRollout(id, outcome, finishedAt, error);
    this.opts.metrics?.deployment(outcome);
    for (const r of result?.instances ?? []) for (const p of r.phases) this.opts.metrics?.phase(p.phase, r.path, p.ms / 1000);
    await store.audit({ at: finishedAt, fleet: fleet.name, actor: 'tower', action: `rollout-${outcome}`, revision: desired.revision, ...(error ? { detail: { error } } : {}) });
    if (!selfHeal) {
      await store.setAttempted(fleet.name, { revision: desired.revision, at: finishedAt, outcome, ...(error ? { error } : {}) });
      this.opts.reporter?.rolloutFinished({
        revision: desired.revision,
        outcome,
        ...(error ? { error } : {}),
        instances: (result?.instances ?? []).map((r) => ({ name: r.instance, wave: r.wave, path: r.path, outcome: r.state.outcome, phases: r.phases, ms: r.ms, ...(r.state.error ? { error: r.state.error } : {}) })),
        ms: result?.ms ?? Date.parse(finishedAt) - Date.parse(startedAt),
      });
    }

    if (outcome === 'succeeded') {
      await store.setApplied(fleet.name, { revision: desired.revision, at: finishedAt });
      this.lastGood = desired;
      this.failed.delete(desired.revision);
      this.state.lastError = undefined;
      this.reportedDrift.clear();
      this.opts.metrics?.appliedRevisionAt(this.now());
      log.info({ ms: result?.ms }, 'rollout succeeded: the fleet runs this revision');
    } else if (outcome === 'superseded' || outcome === 'interrupted' || (outcome === 'failed' && !result)) {
      if (outcome === 'superseded') log.info('rollout superseded by a newer revision');
      if (outcome === 'interrupted') log.info('rollout interrupted: the daemon is stopping or lost leadership; what ran is kept');
      if (error) this.markFailed(desired.revision, error, transient);
    } else {
      this.markFailed(desired.revision, error ?? outcome, transient);
      log.error({ err: error, outcome }, 'rollout failed');
    }
    return outcome;
  }

  /** A newer revision validated, and it has not failed before (a repair of the last good one is not stopped by a known-bad newer one). */
  private superseded(revision: string): boolean {
    const n = this.newestValid;
    return n !== undefined && n !== revision && !this.failed.get(n)?.permanent;
  }

  private markFailed(revision: string, error: string, transient: boolean): void {
    const previous = this.failed.get(revision);
    const attempts = (previous?.attempts ?? 0) + 1;
    const permanent = !transient || attempts > MAX_TRANSIENT_RETRIES;
    const delay = Math.min(30_000 * 2 ** (attempts - 1), 10 * 60_000);
    this.failed.set(revision, { permanent, attempts, retryAt: Date.now() + delay, error });
    this.state.lastError = error;
  }

  private onEvent(e: RolloutEvent, log: Logger = this.log): void {
    const r = this.state.rollout;
    switch (e.type) {
      case 'wave-start':
        if (r) r.waves[e.wave]!.state = 'running';
        log.info({ wave: e.wave + 1, instances: e.instances }, 'wave started');
        break;
      case 'phase':
        if (r?.instances[e.instance]) Object.assign(r.instances[e.instance]!, { phase: e.phase, path: e.path });
        log.info({ instance: e.instance, phase: e.phase, path: e.path }, `phase ${e.phase}`);
        break;
      case 'instance-end':
        if (r?.instances[e.instance]) Object.assign(r.instances[e.instance]!, { outcome: e.outcome, ...(e.error ? { error: e.error } : {}) });
        log[e.error ? 'error' : 'info']({ instance: e.instance, outcome: e.outcome, ms: e.ms, ...(e.error ? { err: e.error } : {}) }, `instance ${e.outcome}`);
        break;
      case 'wave-end':
        if (r) r.waves[e.wave]!.state = e.ok ? 'healthy' : 'failed';
        log.info({ wave: e.wave + 1, ok: e.ok }, e.ok ? 'wave healthy' : 'wave failed');
        break;
      case 'rollback-start':
        if (r) for (const name of e.instances) if (r.instances[name]) r.instances[name]!.outcome = 'rolling back';
        log.warn({ instances: e.instances, reason: e.reason }, 'rolling back');
        break;
      case 'cleanup':
        if (r) for (const name of e.instances) if (r.instances[name]) r.instances[name]!.phase = 'CLEANUP';
        log.info({ instances: e.instances }, 'cleaning up: old colours are stopped or parked warm');
        break;
      case 'warning':
        log.warn({ ...(e.instance ? { instance: e.instance } : {}) }, e.message);
        break;
      default:
        break;
    }
    this.emit('status');
  }

  private updateInstances(live: Map<string, LiveInstance>, diffs: InstanceDiff[], desired: Desired): void {
    const drift = new Set(this.state.appliedRevision === desired.revision ? diffs.filter((d) => d.action !== 'unchanged').map((d) => d.name) : []);
    const registry = this.opts.runtime.state.readRegistry();
    const names = new Set([...desired.repo.instances.map((i) => i.name), ...live.keys()]);
    this.state.instances = [...names].sort().map((name) => {
      const l = live.get(name);
      const d = desired.repo.instances.find((i) => i.name === name);
      const active = l?.active ? l.colors[l.active] : undefined;
      const applied = registry.instances[name]?.applied;
      return {
        name,
        ...(l?.active ? { color: l.active } : {}),
        ...(d ? { port: d.port } : l?.switch ? { port: l.switch.listenPort } : {}),
        ...(l?.rev ? { rev: l.rev } : {}),
        health: l?.health.status ?? 'Missing',
        healthMessage: l?.health.message ?? 'not running yet',
        drift: drift.has(name),
        ...(l?.standby ? { standby: l.standby } : {}),
        ...(applied ? { nodeRedVersion: applied.config.nodeRedVersion, lastDeploy: applied.at } : {}),
        ...(active ? { runtime: active.runtime } : {}),
      };
    });
    this.state.drift = [...drift];
  }
}
