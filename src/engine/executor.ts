/**
 * Executes a plan: one wave at a time, the instances of a wave in parallel (the plan already
 * split waves by maxParallel), each instance driven through the pure rollout state machine
 * (src/core/rollout.ts). This file only carries out the actions the machine decides.
 */
import { createHash } from 'node:crypto';
import { canonicalJson, contentHash } from '../core/flows.js';
import { parseDuration } from '../core/duration.js';
import { consumerClientIdFor, towerEnvironment, gateTopicFor } from '../core/instance-env.js';
import type { InstanceDiff } from '../core/diff.js';
import type { DesiredInstance, Fleet, FlowNode, OnFailure, RuntimeConfig } from '../core/model.js';
import type { Plan, PlanStep } from '../core/plan.js';
import { initialState, isFinal, otherColor, step, type Action, type Color, type Observation, type Phase, type RolloutPath, type SwapState } from '../core/rollout.js';
import { NodeRedAdmin } from '../adapters/nodered/admin.js';
import type { BrokerEndpoint } from '../adapters/mqtt/embedded-broker.js';
import type { DeployGate } from '../adapters/mqtt/gate.js';
import { runSmokeChecks } from '../adapters/smoke.js';
import type { AdminCredentials, ColorSpec, RuntimeDriver } from '../adapters/runtime/types.js';
import type { TrafficSwitch } from '../adapters/switch/types.js';
import { freePort } from '../adapters/net.js';
import type { LiveInstance } from './observe.js';
import { resolveEnv, secretValues } from './secrets.js';
import type { StateDir } from './state-dir.js';

export type RolloutEvent =
  | { type: 'rollout-start'; waves: number; instances: number }
  | { type: 'wave-start'; wave: number; instances: string[] }
  | { type: 'phase'; wave: number; instance: string; phase: Phase; path: RolloutPath }
  | { type: 'instance-end'; wave: number; instance: string; outcome: SwapState['outcome']; error?: string; ms: number }
  | { type: 'wave-end'; wave: number; ok: boolean }
  | { type: 'rollback-start'; reason: string; instances: string[] }
  | { type: 'cleanup'; instances: string[] }
  | { type: 'warning'; instance?: string; message: string }
  | { type: 'rollout-end'; ok: boolean; ms: number };

export interface EngineDeps {
  fleet: Fleet;
  state: StateDir;
  driverFor(runtime: RuntimeConfig['runtime']): RuntimeDriver;
  trafficSwitch: TrafficSwitch;
  broker?: BrokerEndpoint;
  gate?: DeployGate;
  /** Where instances with context: shared keep flow and global context (REDIS_URL). */
  redisUrl?: string;
  admin: AdminCredentials;
  /** A cached Admin API client for a URL (one login per Node-RED), when the caller has one. */
  adminClient?: (url: string) => NodeRedAdmin;
  /** Where secret references ({ fromEnv }) are resolved. */
  secretsEnv: NodeJS.ProcessEnv;
  /** The Git revision being applied, when known. */
  revision?: string;
  onEvent(event: RolloutEvent): void;
  now?: () => Date;
  /** How long a started colour may take to answer its Admin API. */
  readyTimeoutMs?: number;
  /**
   * The rollout journal: called with an instance's state before its next actions run, and
   * awaited — so that a reconciler killed at any point knows what was under way.
   */
  journal?: (instance: string, state: SwapState, path: RolloutPath) => Promise<void>;
  /** Checked between waves: false stops the rollout there (a newer revision supersedes it). */
  shouldContinue?: () => boolean;
}

export interface InstanceResult {
  instance: string;
  wave: number;
  path: RolloutPath;
  state: SwapState;
  ms: number;
  /** Per phase: when it started and how long it took (ms). */
  phases: { phase: Phase; ms: number }[];
}

export interface RolloutResult {
  ok: boolean;
  /** Stopped between waves because a newer revision arrived; what ran is kept. */
  superseded?: boolean;
  /** The first failure, in words. */
  failure?: { instance: string; phase?: Phase; error: string };
  instances: InstanceResult[];
  ms: number;
}

export function configHash(config: RuntimeConfig): string {
  return createHash('sha256').update(canonicalJson(config)).digest('hex');
}

export async function executeRollout(plan: Plan, diffs: readonly InstanceDiff[], desired: readonly DesiredInstance[], live: Map<string, LiveInstance>, deps: EngineDeps): Promise<RolloutResult> {
  const started = Date.now();
  const byName = new Map(desired.map((d) => [d.name, d]));
  const diffByName = new Map(diffs.map((d) => [d.name, d]));
  const results: InstanceResult[] = [];
  const runners = new Map<string, InstanceRunner>();
  deps.onEvent({ type: 'rollout-start', waves: plan.waves.length, instances: plan.waves.reduce((n, w) => n + w.steps.length, 0) });

  let failure: RolloutResult['failure'];
  let failedWave = -1;
  let superseded = false;
  for (const wave of plan.waves) {
    if (wave.index > 0 && deps.shouldContinue && !deps.shouldContinue()) {
      superseded = true;
      break;
    }
    deps.onEvent({ type: 'wave-start', wave: wave.index, instances: wave.steps.map((s) => s.instance) });
    const outcomes = await Promise.all(
      wave.steps.map(async (s) => {
        const runner = new InstanceRunner(s, wave.index, byName.get(s.instance), diffByName.get(s.instance)!, live.get(s.instance), deps);
        runners.set(s.instance, runner);
        const r = await runner.run({ type: 'begin' });
        results.push(r);
        deps.onEvent({ type: 'instance-end', wave: wave.index, instance: s.instance, outcome: r.state.outcome, ...(r.state.error ? { error: r.state.error } : {}), ms: r.ms });
        return r;
      }),
    );
    const bad = outcomes.find((r) => r.state.outcome !== 'awaiting-cleanup' && r.state.outcome !== 'succeeded');
    deps.onEvent({ type: 'wave-end', wave: wave.index, ok: !bad });
    if (bad) {
      failure = { instance: bad.instance, ...(bad.state.failedPhase ? { phase: bad.state.failedPhase } : {}), error: bad.state.error ?? bad.state.outcome };
      failedWave = wave.index;
      break;
    }
  }

  const waiting = [...runners.values()].filter((r) => r.state.outcome === 'awaiting-cleanup');
  if (failure) {
    const policy: OnFailure = plan.onFailure;
    const back = policy === 'rollback-all' ? waiting : policy === 'rollback-wave' ? waiting.filter((r) => r.wave === failedWave) : [];
    if (back.length) {
      const reason = `${policy}: ${failure.instance} failed${failure.phase ? ` in ${failure.phase}` : ''}`;
      deps.onEvent({ type: 'rollback-start', reason, instances: back.map((r) => r.instance) });
      await Promise.all(back.map((r) => r.run({ type: 'rollback', reason })));
    }
    const keep = waiting.filter((r) => !back.includes(r));
    if (keep.length) {
      deps.onEvent({ type: 'cleanup', instances: keep.map((r) => r.instance) });
      await Promise.all(keep.map((r) => r.run({ type: 'rollout-succeeded' })));
    }
  } else if (waiting.length) {
    deps.onEvent({ type: 'cleanup', instances: waiting.map((r) => r.instance) });
    await Promise.all(waiting.map((r) => r.run({ type: 'rollout-succeeded' })));
  }
  // Report the final state of every instance (rollbacks and cleanups changed them).
  for (const r of results) {
    const runner = runners.get(r.instance)!;
    r.state = runner.state;
    r.phases = runner.phases;
  }
  const ms = Date.now() - started;
  deps.onEvent({ type: 'rollout-end', ok: !failure, ms });
  return { ok: !failure, ...(superseded ? { superseded } : {}), ...(failure ? { failure } : {}), instances: results, ms };
}

/** Which way an instance goes, from its plan step, its diff and what runs. */
export function choosePath(step: PlanStep, diff: InstanceDiff, desired: DesiredInstance | undefined, live: LiveInstance | undefined): { path: RolloutPath; active?: Color; target?: Color } {
  if (step.action === 'delete') return { path: 'delete', active: live?.active ?? 'blue' };
  const active = live?.active;
  if (step.action === 'create' || !live?.switch || !active) return { path: 'create', target: active ? otherColor(active) : 'blue' };
  if (step.strategy === 'in-place') return { path: 'in-place', active };
  if (step.strategy === 'recreate') return { path: 'recreate', active };
  const standby = live.standby ? live.colors[live.standby] : undefined;
  const record = live.standby ? live.record?.colors[live.standby] : undefined;
  // The registry knows about in-place deploys; the driver's record keeps the rev the colour started with.
  const standbyRev = record?.rev ?? standby?.rev;
  if (desired && standby && standbyRev === desired.rev && record?.config && configHash(record.config) === configHash(desired.config)) {
    return { path: 'swap', active, target: live.standby };
  }
  void diff;
  return { path: 'blue-green', active };
}

class InstanceRunner {
  state: SwapState;
  readonly instance: string;
  readonly phases: { phase: Phase; ms: number }[] = [];
  private phaseStarted = Date.now();
  private readonly started = Date.now();
  private readonly path: RolloutPath;
  /** Ports of the colours this run knows of. */
  private readonly ports: Partial<Record<Color, number>> = {};
  /** The flows the active colour ran before an in-place deploy, to restore them. */
  private previousFlows?: FlowNode[];
  /** When each colour's MQTT gate closed: work it had taken (and acknowledged) may still run. */
  private readonly gateClosedAt: Partial<Record<Color, number>> = {};

  constructor(
    private readonly stepInfo: PlanStep,
    readonly wave: number,
    private readonly desired: DesiredInstance | undefined,
    diff: InstanceDiff,
    private readonly live: LiveInstance | undefined,
    private readonly deps: EngineDeps,
  ) {
    this.instance = stepInfo.instance;
    const choice = choosePath(stepInfo, diff, desired, live);
    this.path = choice.path;
    this.state = initialState(this.instance, choice.path, choice.active, choice.target);
    for (const c of ['blue', 'green'] as const) {
      const r = live?.colors[c];
      if (r) this.ports[c] = r.port;
    }
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
    return { instance: this.instance, wave: this.wave, path: this.path, state: this.state, ms: Date.now() - this.started, phases: this.phases };
  }

  /**
   * The journal is what crash recovery reads; if it cannot be written (the store is down),
   * the rollout still goes on — abandoning an instance half-switched would be worse.
   */
  private async writeJournal(state: SwapState): Promise<void> {
    if (!this.deps.journal) return;
    try {
      await this.deps.journal(this.instance, state, this.path);
    } catch (err) {
      this.deps.onEvent({ type: 'warning', instance: this.instance, message: `cannot write the rollout journal: ${(err as Error).message}` });
    }
  }

  private enterPhase(phase: Phase, previous: Phase, first: boolean): void {
    if (!first) this.closePhase(previous);
    this.phaseStarted = Date.now();
    this.deps.onEvent({ type: 'phase', wave: this.wave, instance: this.instance, phase, path: this.path });
  }

  private closePhase(phase: Phase = this.state.phase): void {
    const last = this.phases[this.phases.length - 1];
    const ms = Date.now() - this.phaseStarted;
    if (last && last.phase === phase) last.ms += ms;
    else this.phases.push({ phase, ms });
    this.phaseStarted = Date.now();
  }

  private async execute(actions: Action[]): Promise<Observation> {
    const completed: Action[] = [];
    for (const action of actions) {
      try {
        await this.perform(action);
        completed.push(action);
      } catch (err) {
        return { type: 'failed', error: this.scrub(describeError(action, err)), completed };
      }
    }
    return { type: 'completed' };
  }

  /**
   * The driver of a colour: a colour that runs already is handled by the runtime it runs
   * on (fleet.yaml may have moved the instance to another runtime); a new one by the desired.
   */
  private driverOf(color: Color): RuntimeDriver {
    const running = this.live?.colors[color]?.runtime;
    const runtime = color !== this.state.target && running ? running : (this.desired?.config.runtime ?? running ?? 'process');
    return this.deps.driverFor(runtime);
  }

  private ref(color: Color) {
    return { fleet: this.deps.fleet.name, instance: this.instance, color };
  }

  /** Resolved secret values of this instance, kept out of every error text (smoke checks quote responses). */
  private secrets?: string[];

  private scrub(text: string): string {
    if (!this.secrets) {
      try {
        this.secrets = this.desired ? secretValues(this.desired.config.env, resolveEnv(this.instance, this.desired.config.env, this.deps.secretsEnv)) : [];
      } catch {
        this.secrets = [];
      }
    }
    let out = text;
    for (const secret of this.secrets) out = out.split(secret).join('[redacted]');
    return out;
  }

  /** One client per colour and port: each login is a session Node-RED stores, so reuse its token. */
  private readonly admins = new Map<string, NodeRedAdmin>();

  private adminFor(color: Color): NodeRedAdmin {
    const port = this.ports[color];
    if (!port) throw new Error(`no ${color} colour runs for ${this.instance}`);
    const url = `http://127.0.0.1:${port}`;
    if (this.deps.adminClient) return this.deps.adminClient(url);
    let admin = this.admins.get(url);
    if (!admin) {
      admin = new NodeRedAdmin({ baseUrl: url, credentials: this.deps.admin, timeoutMs: 10_000 });
      this.admins.set(url, admin);
    }
    return admin;
  }

  private usesGate(): boolean {
    return Boolean(this.deps.gate) && (this.desired?.flows.includes('lib:deploy-gate') ?? Boolean(this.live?.flows?.some((n) => n.id.startsWith('tower-gate-'))));
  }

  private async perform(action: Action): Promise<void> {
    const d = this.deps;
    switch (action.type) {
      case 'ensureSwitch': {
        const port = this.desired?.port ?? this.live?.switch?.listenPort;
        if (!port) throw new Error('no stable port known');
        await d.trafficSwitch.ensure(this.instance, port);
        return;
      }
      case 'retire': {
        const existing = await this.driverOf(action.color).inspect(this.ref(action.color));
        if (!existing) return;
        await this.closeGate(action.color, true);
        await this.discard(action.color);
        return;
      }
      case 'start':
        await this.startColor(action.color);
        return;
      case 'restart': {
        const r = await this.driverOf(action.color).start(this.ref(action.color));
        this.ports[action.color] = r.port;
        await this.adminFor(action.color).waitUntilReady(d.readyTimeoutMs ?? 30_000);
        return;
      }
      case 'stop':
        await this.finishTakenWork(action.color);
        await this.driverOf(action.color).stop(this.ref(action.color));
        return;
      case 'remove':
        await this.closeGate(action.color, true);
        await this.discard(action.color);
        return;
      case 'deployInPlace': {
        const admin = this.adminFor(action.color);
        const live = await admin.getFlows();
        this.previousFlows = live.flows as FlowNode[];
        await admin.setFlows(this.desired!.flowList, { rev: live.rev, type: 'nodes' });
        return;
      }
      case 'restoreInPlace': {
        if (!this.previousFlows) return;
        const admin = this.adminFor(action.color);
        const live = await admin.getFlows();
        await admin.setFlows(this.previousFlows, { rev: live.rev, type: 'nodes' });
        return;
      }
      case 'checkRev': {
        const got = await this.adminFor(action.color).getFlows();
        if (got.rev !== this.desired!.rev) {
          throw new Error(`Node-RED (${action.color}) runs flows rev ${got.rev.slice(0, 12)}, expected ${this.desired!.rev.slice(0, 12)}`);
        }
        return;
      }
      case 'smoke': {
        const checks = (this.desired?.smoke ?? []).filter((c) => (action.kind === 'http' ? c.http : c.mqtt));
        if (checks.length === 0) return;
        if (action.kind === 'mqtt' && !d.broker) throw new Error('MQTT smoke checks need a broker (MQTT_URL or the embedded one)');
        const port = this.ports[action.color];
        const results = await runSmokeChecks({ baseUrl: `http://127.0.0.1:${port}`, checks, ...(d.broker ? { mqtt: { url: d.broker.url } } : {}), defaultTimeoutMs: 5_000 });
        const failed = results.filter((r) => !r.ok);
        if (failed.length) throw new Error(failed.map((f) => `"${f.name}": ${f.message}`).join('; '));
        return;
      }
      case 'openGate':
        if (d.gate && this.usesGate()) await d.gate.open(gateTopicFor(d.fleet.name, this.instance, action.color));
        return;
      case 'closeGate':
        await this.closeGate(action.color, false);
        return;
      case 'route': {
        const port = this.ports[action.color];
        if (!port) throw new Error(`no ${action.color} colour to route to`);
        await d.trafficSwitch.route(this.instance, { color: action.color, port });
        d.state.updateRegistry((r) => {
          const rec = (r.instances[this.instance] ??= { port: this.desired?.port ?? 0, colors: {} });
          const color = rec.colors[action.color];
          if (color) rec.applied = { color: action.color, rev: color.rev, flowsHash: color.flowsHash, config: color.config, at: now(d).toISOString(), ...(d.revision ? { revision: d.revision } : {}) };
        });
        return;
      }
      case 'unroute':
        return; // the switch keeps the old route; with the old colour stopped it answers 502 until the new one is routed
      case 'drain': {
        const timeout = parseDuration(this.desired?.drainTimeout ?? '30s');
        const r = await d.trafficSwitch.drain(this.instance, action.color, timeout);
        if (!r.drained) d.onEvent({ type: 'warning', instance: this.instance, message: `${r.inflight} request(s) still in flight on ${action.color} after ${timeout} ms; it keeps running until cleanup, so they can finish` });
        return;
      }
      case 'audit': {
        // Through the stable address: the switch must reach the new colour, which runs the desired rev.
        const stableUrl = `http://127.0.0.1:${this.desired!.port}`;
        const stable = d.adminClient ? d.adminClient(stableUrl) : new NodeRedAdmin({ baseUrl: stableUrl, credentials: d.admin, timeoutMs: 10_000 });
        const got = await stable.getFlows();
        if (got.rev !== this.desired!.rev) throw new Error(`the stable address 127.0.0.1:${this.desired!.port} serves rev ${got.rev.slice(0, 12)}, expected ${this.desired!.rev.slice(0, 12)}`);
        if (this.path === 'in-place') {
          d.state.updateRegistry((r) => {
            const rec = r.instances[this.instance];
            const color = rec?.colors[action.color];
            if (rec && color) {
              color.rev = this.desired!.rev;
              color.flowsHash = contentHash(this.desired!.flowList);
              rec.applied = { color: action.color, rev: color.rev, flowsHash: color.flowsHash, config: color.config, at: now(d).toISOString(), ...(d.revision ? { revision: d.revision } : {}) };
            }
          });
        }
        return;
      }
      case 'release': {
        const keepWarm = parseDuration(this.desired?.keepWarm ?? '0s');
        if (keepWarm <= 0) {
          await this.discard(action.color);
          return;
        }
        const until = new Date(now(d).getTime() + keepWarm).toISOString();
        d.state.updateRegistry((r) => {
          const color = r.instances[this.instance]?.colors[action.color];
          if (color) color.keepWarmUntil = until;
        });
        return;
      }
      case 'removeSwitch':
        await d.trafficSwitch.remove(this.instance);
        if (this.path === 'delete') d.state.updateRegistry((r) => void delete r.instances[this.instance]);
        return;
    }
  }

  private async startColor(color: Color): Promise<void> {
    const d = this.deps;
    const desired = this.desired!;
    const port = await freePort();
    const env = {
      ...resolveEnv(this.instance, desired.config.env, d.secretsEnv),
      ...towerEnvironment(d.fleet, this.instance, color, d.broker),
    };
    const spec: ColorSpec = {
      ...this.ref(color),
      port,
      flows: desired.flowList,
      rev: desired.rev,
      flowsHash: contentHash(desired.flowList),
      env,
      nodeRedVersion: desired.config.nodeRedVersion,
      ...(desired.config.image ? { image: desired.config.image } : {}),
      resources: desired.config.resources,
      settings: desired.config.settings,
      context: desired.config.context,
      labels: desired.labels,
      admin: d.admin,
      // Colours of one instance share one context namespace, so context survives the swap.
      ...(desired.config.context === 'shared' && d.redisUrl ? { sharedContext: { url: d.redisUrl, prefix: `tower:${d.fleet.name}:${this.instance}` } } : {}),
    };
    // A new colour starts with its MQTT consumers off: clear any retained "open" from before.
    if (d.gate && this.usesGate()) await d.gate.clear(gateTopicFor(d.fleet.name, this.instance, color));
    await this.endSession(color); // a colour that crashed with its gate open left a session collecting work
    await this.driverOf(color).create(spec);
    this.ports[color] = port;
    d.state.updateRegistry((r) => {
      const rec = (r.instances[this.instance] ??= { port: desired.port, colors: {} });
      rec.port = desired.port;
      rec.colors[color] = { port, rev: desired.rev, flowsHash: spec.flowsHash, config: desired.config, startedAt: now(d).toISOString() };
    });
    await this.driverOf(color).start(this.ref(color));
    await this.adminFor(color).waitUntilReady(d.readyTimeoutMs ?? 30_000);
  }

  private async closeGate(color: Color, tolerant: boolean): Promise<void> {
    const d = this.deps;
    if (!d.gate || !this.usesGate()) return;
    const running = (await this.driverOf(color).inspect(this.ref(color)))?.status === 'running';
    const topic = gateTopicFor(d.fleet.name, this.instance, color);
    if (!running) {
      await d.gate.clear(topic); // nothing to hand over; make sure it would start closed
      await this.endSession(color);
      return;
    }
    try {
      await d.gate.close(topic);
      this.gateClosedAt[color] = Date.now();
    } catch (err) {
      if (!tolerant) throw err;
    }
  }

  /**
   * Node-RED acknowledges an MQTT message when it arrives, so the broker will not send it
   * again: before a consumer whose gate closed is stopped, give the work it took drainTimeout
   * to finish (HTTP requests were drained by the switch already).
   */
  private async finishTakenWork(color: Color): Promise<void> {
    const closed = this.gateClosedAt[color];
    if (closed === undefined) return;
    const wait = parseDuration(this.desired?.drainTimeout ?? '30s') - (Date.now() - closed);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }

  /**
   * Discards the broker session of a colour that no longer runs: a consumer that crashed
   * with its gate open keeps a persistent session, which would go on collecting messages.
   */
  private async endSession(color: Color): Promise<void> {
    const d = this.deps;
    if (!d.gate || !this.usesGate()) return;
    try {
      await d.gate.endSession(consumerClientIdFor(d.fleet.name, this.instance, color));
    } catch (err) {
      d.onEvent({ type: 'warning', instance: this.instance, message: `cannot end the MQTT session of ${color}: ${(err as Error).message}` });
    }
  }

  /**
   * Removes a colour for good, once its gate is closed: the MQTT work it took finishes, the
   * process or container goes, and so do its retained gate state and its broker session.
   */
  private async discard(color: Color): Promise<void> {
    const d = this.deps;
    await this.finishTakenWork(color);
    await this.driverOf(color).remove(this.ref(color));
    if (d.gate && this.usesGate()) await d.gate.clear(gateTopicFor(d.fleet.name, this.instance, color));
    await this.endSession(color);
    this.forgetColor(color);
  }

  private forgetColor(color: Color): void {
    delete this.ports[color];
    this.deps.state.updateRegistry((r) => {
      const rec = r.instances[this.instance];
      if (rec) delete rec.colors[color];
    });
  }
}

function now(d: EngineDeps): Date {
  return d.now ? d.now() : new Date();
}

function describeError(action: Action, err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const what = 'color' in action ? `${action.type} ${action.color}` : action.type;
  return `${what}: ${message}`;
}
