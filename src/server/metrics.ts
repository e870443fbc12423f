/**
 * Prometheus metrics of the daemon (prom-client), with Prometheus naming: a private registry
 * per daemon, so tests and several daemons in one process never share counters.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { CONDITIONS } from '../core/decide.js';
import type { FleetStatus } from '../core/status.js';
import type { TrafficSummary } from '../core/traffic.js';
import type { MetricsSink } from '../engine/ports.js';

export class FleetMetrics implements MetricsSink {
  readonly registry = new Registry();
  private readonly reconciles: Counter<'result'>;
  private readonly reconcileDuration: Histogram<'result'>;
  private readonly phaseDuration: Histogram<'phase' | 'path'>;
  private readonly deployments: Counter<'outcome'>;
  private readonly instanceUp: Gauge<'instance' | 'color'>;
  private readonly instanceHealth: Gauge<'instance' | 'status'>;
  private readonly drift: Gauge<'instance'>;
  private readonly condition: Gauge<'instance' | 'condition'>;
  private readonly crashLoop: Gauge<'instance'>;
  private readonly restarts: Counter<'instance' | 'what' | 'kind'>;
  private readonly appliedAt: Gauge;
  private readonly inSync: Gauge;
  private readonly leads: Gauge;
  private readonly cpu: Counter<'instance' | 'color'>;
  private readonly memory: Gauge<'instance' | 'color'>;
  private readonly canaryWeight: Gauge<'instance' | 'color'>;
  private readonly canarySuccess: Gauge<'instance' | 'color' | 'role'>;
  private readonly canaryLatency: Gauge<'instance' | 'color' | 'role' | 'quantile'>;
  private readonly canaryRequests: Gauge<'instance' | 'color' | 'role'>;

  constructor() {
    // A coarse event-loop monitor: the default samples every 10 ms and keeps an idle daemon awake.
    collectDefaultMetrics({ register: this.registry, prefix: 'tower_process_', eventLoopMonitoringPrecision: 1000 });
    // prom-client names these gauges *_total, which Prometheus reserves for counters (promtool
    // says so); the same figures remain, by type, as tower_process_nodejs_active_{handles,requests,resources}.
    for (const what of ['handles', 'requests', 'resources']) this.registry.removeSingleMetric(`tower_process_nodejs_active_${what}_total`);
    const r = [this.registry];
    this.reconciles = new Counter({ name: 'tower_reconciles_total', help: 'Reconcile passes, by result: synced, drift, held, invalid, no-source (nothing to do); repaired, repair-failed, housekeeping, housekeeping-failed, rolled-out, failed, superseded, interrupted; error.', labelNames: ['result'], registers: r });
    this.reconcileDuration = new Histogram({
      name: 'tower_reconcile_duration_seconds',
      help: 'Duration of reconcile passes.',
      labelNames: ['result'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers: r,
    });
    this.phaseDuration = new Histogram({
      name: 'tower_rollout_phase_duration_seconds',
      help: 'Duration of rollout phases per instance (DRAIN, DEPLOY, VERIFY, RESUME, AUDIT, CLEANUP).',
      labelNames: ['phase', 'path'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
      registers: r,
    });
    this.deployments = new Counter({ name: 'tower_deployments_total', help: 'Rollouts, by outcome (succeeded, rolled-back, failed, superseded, interrupted).', labelNames: ['outcome'], registers: r });
    this.instanceUp = new Gauge({ name: 'tower_instance_up', help: '1 when the colour serves the instance (routed and running), 0 otherwise.', labelNames: ['instance', 'color'], registers: r });
    this.instanceHealth = new Gauge({ name: 'tower_instance_health', help: '1 for the instance’s current health status, 0 for the others.', labelNames: ['instance', 'status'], registers: r });
    this.drift = new Gauge({ name: 'tower_instance_drift', help: '1 when the instance’s live flows differ from what Tower applied.', labelNames: ['instance'], registers: r });
    this.condition = new Gauge({ name: 'tower_instance_condition', help: '1 for the instance’s current condition (Synced, Missing, Dead, CrashLoop, Degraded, OutOfDate, Drifted, NotInFleet, Unknown), 0 for the others.', labelNames: ['instance', 'condition'], registers: r });
    this.crashLoop = new Gauge({ name: 'tower_instance_crashloop', help: '1 while a colour of the instance keeps dying and its restarts back off.', labelNames: ['instance'], registers: r });
    this.restarts = new Counter({ name: 'tower_instance_restarts_total', help: 'Repairs that started a dead colour or switch again, by what (blue, green, switch) and kind (restart, restore-switch, restart-switch).', labelNames: ['instance', 'what', 'kind'], registers: r });
    this.appliedAt = new Gauge({ name: 'tower_applied_revision_timestamp_seconds', help: 'When the fleet last converged on a revision (Unix time).', registers: r });
    this.inSync = new Gauge({ name: 'tower_fleet_in_sync', help: '1 when the fleet runs the desired revision.', registers: r });
    this.leads = new Gauge({ name: 'tower_leader', help: '1 while this daemon leads its fleet (acts on it), 0 while it stands by; of several replicas, exactly one should be 1.', registers: r });
    // A counter (it only grows while the colour runs; a restart resets it, as Prometheus expects of
    // counters), set from the driver's reading at each scrape: reset, then increased to that total.
    this.cpu = new Counter({ name: 'tower_nodered_cpu_seconds_total', help: 'CPU time used by a Node-RED colour (from the runtime driver).', labelNames: ['instance', 'color'], registers: r });
    this.canaryWeight = new Gauge({ name: 'tower_canary_weight', help: 'The canary colour’s (or an A/B experiment’s second variant’s) share of new connections, percent, while it runs.', labelNames: ['instance', 'color'], registers: r });
    this.canarySuccess = new Gauge({ name: 'tower_canary_success_ratio', help: 'Share of requests answered 2xx/3xx over the current canary step, per colour (role canary or baseline; for an A/B experiment, the variant’s name), as the switch counted them.', labelNames: ['instance', 'color', 'role'], registers: r });
    this.canaryLatency = new Gauge({ name: 'tower_canary_latency_seconds', help: 'Latency at the switch over the current canary step, per colour, by quantile (0.5, 0.99).', labelNames: ['instance', 'color', 'role', 'quantile'], registers: r });
    this.canaryRequests = new Gauge({ name: 'tower_canary_requests', help: 'Requests each colour served over the current canary step.', labelNames: ['instance', 'color', 'role'], registers: r });
    this.memory = new Gauge({ name: 'tower_nodered_memory_bytes', help: 'Resident memory of a Node-RED colour (from the runtime driver).', labelNames: ['instance', 'color'], registers: r });
  }

  reconcile(result: string, seconds: number): void {
    this.reconciles.inc({ result });
    this.reconcileDuration.observe({ result }, seconds);
  }

  phase(phase: string, path: string, seconds: number): void {
    this.phaseDuration.observe({ phase, path }, seconds);
  }

  deployment(outcome: string): void {
    this.deployments.inc({ outcome });
  }

  restart(instance: string, what: string, kind: string): void {
    this.restarts.inc({ instance, what, kind });
  }

  appliedRevisionAt(at: Date): void {
    this.appliedAt.set(at.getTime() / 1000);
  }

  /** A canary step's reading; the gauges are forgotten when no canary runs (fromStatus). */
  canary(instance: string, color: 'blue' | 'green', weight: number, canary: TrafficSummary, baseline: TrafficSummary, variants?: [string, string]): void {
    this.forgetCanary(instance);
    this.canaryWeight.set({ instance, color }, weight);
    const other = color === 'blue' ? 'green' : 'blue';
    // An A/B experiment's roles are its variants' names.
    const roles = variants ?? ['baseline', 'canary'];
    for (const [role, c, t] of [[roles[1], color, canary], [roles[0], other, baseline]] as const) {
      this.canaryRequests.set({ instance, color: c, role }, t.requests);
      if (t.successRate !== undefined) this.canarySuccess.set({ instance, color: c, role }, t.successRate);
      if (t.p50Ms !== undefined) this.canaryLatency.set({ instance, color: c, role, quantile: '0.5' }, t.p50Ms / 1000);
      if (t.p99Ms !== undefined) this.canaryLatency.set({ instance, color: c, role, quantile: '0.99' }, t.p99Ms / 1000);
    }
  }

  private forgetCanary(instance?: string): void {
    for (const g of [this.canaryWeight, this.canarySuccess, this.canaryLatency, this.canaryRequests] as Gauge<string>[]) {
      if (instance === undefined) g.reset();
      else g.remove({ instance });
    }
  }

  /** Sets the per-instance gauges from the daemon's status (called after each pass). */
  fromStatus(status: FleetStatus): void {
    this.instanceUp.reset();
    this.instanceHealth.reset();
    this.drift.reset();
    this.condition.reset();
    this.crashLoop.reset();
    for (const i of status.instances) {
      const serving = i.health !== 'Missing' && i.condition !== 'Dead' && i.condition !== 'CrashLoop' && i.condition !== 'Missing';
      for (const color of ['blue', 'green']) this.instanceUp.set({ instance: i.name, color }, i.color === color && serving ? 1 : 0);
      for (const c of CONDITIONS) this.condition.set({ instance: i.name, condition: c }, i.condition === c ? 1 : 0);
      this.crashLoop.set({ instance: i.name }, i.condition === 'CrashLoop' ? 1 : 0);
      for (const s of ['Healthy', 'Progressing', 'Degraded', 'Suspended', 'Missing', 'Unknown']) this.instanceHealth.set({ instance: i.name, status: s }, i.health === s ? 1 : 0);
      this.drift.set({ instance: i.name }, i.drift ? 1 : 0);
    }
    this.inSync.set(status.sync === 'Synced' ? 1 : 0);
    if (!status.rollout) this.forgetCanary(); // a pass outside a rollout: no canary runs
  }

  /** Set at each scrape: a standby runs no passes, and a leader may lose its lease between two. */
  leader(leads: boolean): void {
    this.leads.set(leads ? 1 : 0);
  }

  /** Forgets every colour's CPU and memory: colours that are gone must not report their last values. */
  resetUsage(): void {
    this.cpu.reset();
    this.memory.reset();
  }

  usage(instance: string, color: string, cpuSeconds: number, rssBytes: number): void {
    this.cpu.inc({ instance, color }, cpuSeconds);
    this.memory.set({ instance, color }, rssBytes);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
