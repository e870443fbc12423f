/**
 * The daemon: one level-triggered loop that keeps the fleet equal to its source, forever.
 *
 * Triggers — the poll timer, a verified webhook, a saved file, SIGHUP, a colour that exits
 * (the drivers notice within a second) — only queue a pass; queued triggers collapse into
 * one. Every pass observes, decides and acts from scratch (src/engine/reconciler.ts); it
 * never branches on what triggered it. Errors back off (1 s to 5 min); a pass also runs when
 * something waits for its time (a restart's backoff, a revision's retry, a standby's expiry).
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { RepoReader } from '../core/load.js';
import type { FleetStatus } from '../core/status.js';
import type { FleetRuntime, FleetSource, Leadership, MetricsSink, Reporter, RuntimeDriver, StateStore, TrafficSwitch } from './ports.js';
import { Reconciler } from './reconciler.js';
import type { LiveInstance } from '../core/live.js';
import type { LoadedRevision } from './revisions.js';

/** After these, the next pass runs at once (to confirm what was done); after the others — a failed repair included, lest it loop — at the next trigger or wake-up. */
const AGAIN_AT_ONCE = new Set(['repaired', 'housekeeping', 'rolled-out', 'failed', 'superseded', 'interrupted']);

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
  metrics?: MetricsSink & { resetUsage(): void; usage(instance: string, color: string, cpuSeconds: number, rssBytes: number): void };
  /** Commit statuses and check runs (GitHub); never blocks: it queues. */
  reporter?: Reporter;
  now?: () => Date;
}

export class Daemon extends EventEmitter {
  private readonly opts: DaemonOptions;
  private readonly log: Logger;
  private readonly reconciler: Reconciler;
  private stopping = false;
  private wake?: () => void;
  private queued = false;
  private running?: Promise<void>;
  private backoffMs = 0;
  private leader = false;
  private rollingOut = false;
  private peeking = false;
  /** The drivers and switches watched, each with how to stop watching it (and the fleet it watches). */
  private readonly watched = new Map<RuntimeDriver | TrafficSwitch, { stop: () => void; fleet?: string }>();
  /** A pass must fetch the source: a trigger said so, or the poll interval has passed since the last fetch. */
  private fetchDue = true;
  private lastFetchAt = 0;

  constructor(opts: DaemonOptions) {
    super();
    this.opts = opts;
    this.log = opts.log;
    this.reconciler = new Reconciler({
      source: opts.source,
      runtime: opts.runtime,
      store: opts.store,
      log: opts.log,
      env: opts.env,
      ...(opts.library ? { library: opts.library } : {}),
      ...(opts.metrics ? { metrics: opts.metrics } : {}),
      ...(opts.reporter ? { reporter: opts.reporter } : {}),
      ...(opts.now ? { now: opts.now } : {}),
      changed: (s) => {
        this.rollingOut = s.rollout !== null;
        this.emit('status');
      },
      mayContinue: () => !this.stopping && (this.opts.leadership?.isLeader() ?? true),
      isLeader: () => this.leader,
    });
  }

  /** The status as the last pass derived it (with the rollout's live progress). */
  get state(): FleetStatus {
    const blocked = this.leader ? undefined : this.opts.leadership?.blockedBy?.();
    // A daemon that cannot take its lease acts on nothing: the status says why instead of "starting".
    if (blocked && this.reconciler.status.reason === 'NoRevision') return { ...this.reconciler.status, leader: false, sync: 'Unknown', reason: 'NoLeader', message: `not leading: ${blocked}`, lastError: blocked };
    return { ...this.reconciler.status, leader: this.leader };
  }

  /** Read-only views for the status page's drawings: the last observation, a revision's flows, what ran when a rollout started. */
  get observed(): Reconciler['observed'] {
    return this.reconciler.observed;
  }

  loadRevision(revision: string): Promise<LoadedRevision> {
    return this.reconciler.revisions.load(revision);
  }

  rolloutBase(revision: string): readonly LiveInstance[] | undefined {
    return this.reconciler.rolloutBase.get(revision);
  }

  /**
   * Queues a reconcile pass; many triggers before the pass starts collapse into one. `source`
   * false (a colour exited): the pass need not ask the remote again if it did so lately.
   */
  trigger(reason: string, source = true): void {
    if (!this.queued) this.log.debug({ reason }, 'reconcile queued');
    this.queued = true;
    if (source) this.fetchDue = true;
    this.wake?.();
    // During a rollout, learn about newer revisions now (the rollout stops at its next safe
    // point), and repair what dies outside it now.
    if (this.rollingOut && source) void this.peekNewest();
    if (this.rollingOut && !source) void this.reconciler.repairAside();
  }

  private async peekNewest(): Promise<void> {
    if (this.peeking) return;
    this.peeking = true;
    try {
      this.reconciler.noteNewest(await this.reconciler.revisions.newest());
    } finally {
      this.peeking = false;
    }
  }

  start(): Promise<void> {
    const watcher = this.opts.source.watch?.(() => this.trigger('source changed'));
    this.running = this.loop().finally(async () => {
      for (const { stop } of this.watched.values()) stop();
      await watcher?.close();
    });
    return this.running;
  }

  /** SIGTERM: the current rollout stops at its next safe point (between waves); then the loop ends. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.running;
  }

  private async loop(): Promise<void> {
    const leadership = this.opts.leadership;
    while (!this.stopping) {
      if (leadership) {
        this.leader = false;
        this.emit('status');
        if (!(await leadership.acquire(() => this.stopping))) break;
        this.log.info('leading: this daemon acts on the fleet');
      }
      this.leader = true;
      try {
        await this.reconciler.recover();
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'cannot recover the previous rollout; reconciling from what runs');
      }
      while (!this.stopping) {
        if (leadership && !(await leadership.stillLeader())) {
          this.log.warn('leadership lost: another daemon acts on the fleet now');
          break;
        }
        await this.passOnce();
        await this.waitForTrigger(this.nextWaitMs());
      }
    }
    await leadership?.release();
  }

  private async passOnce(): Promise<void> {
    this.queued = false;
    const started = performance.now();
    let result: string;
    try {
      this.watchDrivers();
      const now = Date.now();
      const fetch = this.fetchDue || now - this.lastFetchAt >= this.opts.intervalMs * 0.9;
      this.fetchDue = false;
      if (fetch) this.lastFetchAt = now;
      result = await this.reconciler.pass({ sourceMaxAgeMs: fetch ? 0 : Infinity });
      this.backoffMs = 0;
      // Level-triggered: after acting, look again at once to confirm (or to go on).
      if (AGAIN_AT_ONCE.has(result)) this.queued = true;
    } catch (err) {
      result = 'error';
      this.backoffMs = Math.min(Math.max(this.backoffMs * 2, 1_000), 5 * 60_000);
      const message = (err as Error).message;
      this.reconciler.failed(message);
      this.log.error({ err: message, retryInMs: this.backoffMs }, 'reconcile failed');
    }
    this.log.debug({ result, ms: Math.round(performance.now() - started) }, 'pass done');
    this.opts.metrics?.reconcile(result, (performance.now() - started) / 1000);
    this.opts.metrics?.fromStatus(this.reconciler.status);
    this.emit('status');
  }

  /** Every driver the fleet may run on, and the switch, tell the loop when something exits by itself. */
  private watchDrivers(): void {
    const switches = this.opts.runtime.switches();
    const fleet = this.reconciler.status.fleet ?? this.opts.runtime.registry.read().fleet;
    const drivers = fleet ? this.opts.runtime.drivers() : [];
    // A driver or switch the runtime replaced (spec.kubernetes changed: a new cluster, a new driver),
    // or one watching another fleet, is watched no more: its watch (a pods watch on the API server) would run on.
    for (const [of, w] of this.watched) {
      if (switches.includes(of as TrafficSwitch) || (drivers.includes(of as RuntimeDriver) && w.fleet === fleet)) continue;
      w.stop();
      this.watched.delete(of);
    }
    for (const sw of switches) {
      if (this.watched.has(sw) || !sw.watch) continue;
      const stop = sw.watch((instance) => {
        this.log.warn({ instance }, `the switch of ${instance} stopped`);
        this.trigger(`the switch of ${instance} exited`, false);
      });
      this.watched.set(sw, { stop });
    }
    if (!fleet) return;
    for (const driver of drivers) {
      if (this.watched.has(driver)) continue;
      const stop = driver.watch(fleet, (exit) => {
        this.log.warn({ instance: exit.instance, color: exit.color, code: exit.code, signal: exit.signal }, `${exit.instance}/${exit.color} stopped: ${exit.reason}`);
        this.trigger(`${exit.instance}/${exit.color} exited`, false);
      });
      this.watched.set(driver, { stop, fleet });
    }
  }

  private nextWaitMs(): number {
    if (this.backoffMs) return this.backoffMs;
    const poll = Math.round(this.opts.intervalMs * (0.9 + Math.random() * 0.2));
    const wakeAt = this.reconciler.wakeAt;
    const now = (this.opts.now?.() ?? new Date()).getTime();
    return wakeAt === undefined ? poll : Math.max(0, Math.min(poll, wakeAt - now));
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

  /** CPU and memory of every running colour, from the drivers: read when the metrics are scraped. */
  async recordUsage(): Promise<void> {
    const metrics = this.opts.metrics;
    const fleet = this.reconciler.status.fleet;
    if (!metrics || !fleet) return;
    metrics.resetUsage();
    for (const driver of this.opts.runtime.drivers()) {
      if (!driver.usage) continue;
      for (const c of await driver.list(fleet).catch(() => [])) {
        if (c.status !== 'running') continue;
        const u = await driver.usage(c).catch(() => undefined);
        if (u) metrics.usage(c.instance, c.color, u.cpuSeconds, u.rssBytes);
      }
    }
  }
}
