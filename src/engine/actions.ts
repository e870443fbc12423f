/**
 * The actions the rollout state machine (src/core/rollout.ts) and the liveness repairs
 * (src/core/repairs.ts) decide, each carried out by one small handler. A handler reaches a
 * colour only through the URL its driver reported (never a hard-coded address), and gives
 * typed errors back (TowerError: stalled or retryable).
 */
import { parseDuration } from '../core/duration.js';
import { contentHash } from '../core/flows.js';
import { consumerClientIdFor, gateTopicFor, towerEnvironment } from '../core/instance-env.js';
import type { LiveInstance } from '../core/live.js';
import { flowsUseGate } from '../core/live.js';
import { isSecretRef, type DesiredInstance, type Fleet, type FlowNode, type RuntimeKind } from '../core/model.js';
import type { Action, Color } from '../core/rollout.js';
import { TowerError, type ColorSpec, type FleetRuntime, type RuntimeDriver } from './ports.js';
import { resolveCredentials, resolveEnv, secretValues } from './secrets.js';
import { withCredentials } from '../core/credentials.js';
import { brokerSecrets, fleetBrokerCredentials } from '../core/broker-credentials.js';
import { redactor } from '../core/redact.js';
import type { RolloutEvent } from './events.js';
import type { TrafficSummary } from '../core/traffic.js';
import { analyseStep, endSplitTo, runExperiment, splitTraffic } from './canary.js';

export interface ActDeps {
  fleet: string;
  /** The fleet of the desired revision: the environment of a new colour names its peers. */
  desiredFleet?: Fleet;
  runtime: FleetRuntime;
  /** Where secret references ({ fromEnv }) are resolved. */
  secretsEnv: NodeJS.ProcessEnv;
  /** The Git revision being applied, when known. */
  revision?: string;
  now(): Date;
  onEvent(event: RolloutEvent): void;
  /** How long a started colour may take to answer its Admin API. */
  readyTimeoutMs?: number;
  /** Checked between waves (and by an A/B experiment as it runs): false stops the rollout there (a newer revision supersedes it, the daemon stops). */
  shouldContinue?: () => boolean;
}

/** One instance's actions in one rollout or repair: what they learn along the way. */
export class InstanceActions {
  /** The colours this run knows: where they are and what runs them. */
  readonly colors: Partial<Record<Color, { port: number; url: string; runtime: RuntimeKind }>> = {};
  /** The flows the active colour ran before an in-place deploy, and Tower's record of them, to restore both. */
  previousFlows?: FlowNode[];
  previousRecord?: { rev: string; flowsHash: string };
  /** canary: the baseline's numbers of the last step that had enough of them, for steps that leave it too little traffic. */
  canaryReference?: TrafficSummary;
  /** When each colour's gate closed: MQTT work it had taken (and acknowledged) may still run. */
  readonly gateClosedAt: Partial<Record<Color, number>> = {};

  constructor(
    readonly instance: string,
    readonly desired: DesiredInstance | undefined,
    readonly live: LiveInstance | undefined,
    readonly deps: ActDeps,
    /** The colour a rollout starts: it runs on the desired runtime, whatever the other one runs on. */
    readonly target?: Color,
    /** A repair keeps what runs (its port); a rollout changes it. */
    readonly repairing = false,
  ) {
    for (const c of Object.values(live?.colors ?? {})) this.colors[c.color] = { port: c.port, url: c.url, runtime: c.runtime };
  }

  private redactSecrets?: (text: string) => string;

  /** Takes this instance's secrets (its env references, resolved) out of a text, in the encodings they travel in. */
  redact = (text: string): string => {
    if (!this.redactSecrets) {
      let secrets: string[] = [];
      try {
        secrets = this.desired ? [...secretValues(this.desired.config.env, resolveEnv(this.instance, this.desired.config.env, this.deps.secretsEnv)), ...Object.values(this.credentials()).flatMap((f) => Object.values(f))] : [];
      } catch {
        // a secret that cannot be resolved was never given to the instance
      }
      this.redactSecrets = redactor([...secrets, ...brokerSecrets(this.deps.runtime.broker)]);
    }
    return this.redactSecrets(text);
  };

  /** The desired flows as deployed: with the node credentials fleet.yaml references, resolved now, and the fleet broker's login. */
  deployedFlows(): FlowNode[] {
    return withCredentials(this.desired!.flowList, { ...this.fleetBroker().credentials, ...this.credentials() });
  }

  /** The fleet broker's login for the nodes that point at it, unless fleet.yaml gives them credentials; the flows are not changed. */
  fleetBroker() {
    return fleetBrokerCredentials(this.desired?.flowList ?? [], this.deps.runtime.broker, new Set(Object.keys(this.desired?.config.credentials ?? {})));
  }

  private credentials(): Record<string, Record<string, string>> {
    return this.desired ? resolveCredentials(this.instance, this.desired.config.credentials, this.deps.secretsEnv) : {};
  }

  async perform(action: Action): Promise<void> {
    await (HANDLERS[action.type] as (a: InstanceActions, action: Action) => Promise<void>)(this, action);
  }

  ref(color: Color) {
    return { fleet: this.deps.fleet, instance: this.instance, color };
  }

  driverOf(color: Color): RuntimeDriver {
    const running = this.colors[color]?.runtime;
    const kind = color !== this.target && running ? running : (this.desired?.config.runtime ?? running ?? 'process');
    return this.deps.runtime.driverFor(kind);
  }

  urlOf(color: Color): string {
    const c = this.colors[color];
    if (!c) throw new TowerError(`no ${color} colour runs for ${this.instance}`, 'ColorMissing');
    return c.url;
  }

  /** The desired flows or the flows that run use the deploy gate (they differ while a rollout adds or drops it). */
  usesGate(): boolean {
    if (!this.deps.runtime.gate) return false;
    return Boolean(this.desired?.flows.includes('lib:deploy-gate')) || flowsUseGate(this.live?.flows) || this.live?.gated === true;
  }

  topic(color: Color): string {
    return gateTopicFor(this.deps.fleet, this.instance, color);
  }

  /** The switch that serves (a repair) or is to serve (a rollout) the stable address. */
  sw() {
    const kind = this.repairing ? (this.live?.switch?.kind ?? this.desired?.switch) : (this.desired?.switch ?? this.live?.switch?.kind);
    return this.deps.runtime.switchFor(kind ?? 'builtin');
  }

  /**
   * The stable port: a rollout moves it to the desired one; a repair keeps the one that serves
   * (it must not move the address before the revision that moves it is rolled out).
   */
  stablePort(): number {
    const serving = this.live?.switch?.port ?? this.live?.port;
    const port = this.repairing ? (serving ?? this.desired?.port) : (this.desired?.port ?? serving);
    if (!port) throw new TowerError(`no stable port known for ${this.instance}`, 'NoPort', 'stalled');
    return port;
  }

  keepWarmMs(): number {
    return parseDuration(this.desired?.keepWarm ?? '0s');
  }

  drainMs(): number {
    return parseDuration(this.desired?.drainTimeout ?? '30s');
  }

  warn(message: string): void {
    this.deps.onEvent({ type: 'warning', instance: this.instance, message });
  }

  recordApplied(color: Color): void {
    const { deps } = this;
    deps.runtime.registry.update((r) => {
      const rec = (r.instances[this.instance] ??= { port: this.stablePort(), colors: {} });
      const c = rec.colors[color];
      if (!c) return;
      delete c.keepWarmUntil; // it serves now
      rec.applied = { color, rev: c.rev, flowsHash: c.flowsHash, config: c.config, at: deps.now().toISOString(), ...(deps.revision ? { revision: deps.revision } : {}) };
    });
  }

  async startColor(color: Color): Promise<void> {
    const { deps } = this;
    const rt = deps.runtime;
    const desired = this.desired;
    if (!desired) throw new TowerError(`${this.instance} is not in the fleet: nothing to start`, 'NotDesired', 'stalled');
    const port = await rt.freePort();
    const sw = this.sw();
    const env = { ...resolveEnv(this.instance, desired.config.env, deps.secretsEnv), ...(deps.desiredFleet ? towerEnvironment(deps.desiredFleet, this.instance, color, rt.broker, (port, peer) => (sw.peerUrl ? sw.peerUrl(port, peer) : sw.url(port, peer))) : {}) };
    const spec: ColorSpec = {
      ...this.ref(color),
      port,
      flows: this.deployedFlows(),
      rev: desired.rev,
      flowsHash: contentHash(desired.flowList),
      env,
      secretEnv: Object.entries(desired.config.env).filter(([, v]) => isSecretRef(v)).map(([k]) => k),
      nodeRedVersion: desired.config.nodeRedVersion,
      ...(desired.config.image ? { image: desired.config.image } : {}),
      resources: desired.config.resources,
      settings: desired.config.settings,
      context: desired.config.context,
      labels: desired.labels,
      admin: rt.adminCredentials,
      // Colours of one instance share one context namespace, so context survives the swap.
      ...(desired.config.context === 'shared' && rt.redisUrl ? { sharedContext: { url: rt.redisUrl, prefix: `tower:${deps.fleet}:${this.instance}` } } : {}),
    };
    for (const warning of this.fleetBroker().warnings) this.warn(warning);
    // A new colour starts with its MQTT consumers off: clear any retained "open" from before.
    if (this.usesGate()) await rt.gate!.clear(this.topic(color));
    await this.endSession(color); // a colour that crashed with its gate open left a session collecting work
    const driver = this.driverOf(color);
    const created = await driver.create(spec);
    this.colors[color] = { port: created.port, url: created.url, runtime: driver.kind };
    rt.registry.update((r) => {
      const rec = (r.instances[this.instance] ??= { port: desired.port, colors: {} });
      rec.port = desired.port;
      rec.colors[color] = { port: created.port, rev: desired.rev, flowsHash: spec.flowsHash, config: desired.config, startedAt: deps.now().toISOString() };
    });
    const started = await driver.start(this.ref(color));
    this.colors[color] = { port: started.port, url: started.url, runtime: driver.kind };
    await this.untilReady(color, started.url);
  }

  /**
   * Until the colour's Node-RED answers its Admin API — or fails fast when the colour exits
   * meanwhile (a crash at boot is not worth waiting readyTimeout for).
   */
  async untilReady(color: Color, url: string): Promise<void> {
    const timeoutMs = this.deps.readyTimeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    const admin = this.deps.runtime.admin(url);
    for (;;) {
      const failed = await admin.waitUntilReady(Math.max(1, Math.min(1_000, deadline - Date.now()))).then(
        () => undefined,
        (err: Error) => err,
      );
      if (!failed) return;
      const c = await this.driverOf(color).inspect(this.ref(color));
      if (c?.status !== 'running') throw new TowerError(`${color} exited while starting (${c?.exit?.reason ?? 'gone'})`, 'ExitedWhileStarting');
      if (Date.now() >= deadline) throw new TowerError(`Node-RED (${color}) not ready after ${timeoutMs} ms: ${failed.message}`, 'NotReady');
    }
  }

  async closeGate(color: Color, tolerant: boolean): Promise<void> {
    if (!this.usesGate()) return;
    const gate = this.deps.runtime.gate!;
    const running = (await this.driverOf(color).inspect(this.ref(color)))?.status === 'running';
    if (!running) {
      await gate.clear(this.topic(color)); // nothing to hand over; make sure it would start closed
      await this.endSession(color);
      return;
    }
    try {
      await gate.close(this.topic(color));
      this.gateClosedAt[color] = Date.now();
    } catch (err) {
      if (!tolerant) throw err;
    }
  }

  /**
   * Node-RED acknowledges an MQTT message when it arrives, so the broker will not send it
   * again: before a consumer whose gate closed goes, the work it took may finish (at most
   * `limitMs`, default drainTimeout).
   */
  async finishTakenWork(color: Color, limitMs = this.drainMs()): Promise<void> {
    const closed = this.gateClosedAt[color];
    if (closed === undefined) return;
    const wait = Math.min(limitMs, this.drainMs() - (Date.now() - closed));
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }

  /** Ends the broker session of a colour that no longer runs, so nothing collects work for it. */
  async endSession(color: Color): Promise<void> {
    if (!this.usesGate()) return;
    try {
      await this.deps.runtime.gate!.endSession(consumerClientIdFor(this.deps.fleet, this.instance, color));
    } catch (err) {
      this.warn(`cannot end the MQTT session of ${color}: ${(err as Error).message}`);
    }
  }

  /**
   * Removes a colour for good, once its gate is closed: the MQTT work it took finishes, the
   * process or container goes, and so do its retained gate state, its broker session and
   * Tower's record of it.
   */
  async discard(color: Color, graceMs?: number): Promise<void> {
    await this.finishTakenWork(color, graceMs);
    await this.driverOf(color).remove(this.ref(color));
    if (this.usesGate()) await this.deps.runtime.gate!.clear(this.topic(color));
    await this.endSession(color);
    delete this.colors[color];
    this.deps.runtime.registry.update((r) => void delete r.instances[this.instance]?.colors[color]);
  }

  park(color: Color, until: number): void {
    const iso = new Date(until).toISOString();
    this.deps.runtime.registry.update((r) => {
      const c = r.instances[this.instance]?.colors[color];
      if (c) c.keepWarmUntil = iso;
    });
  }
}

type Handlers = { [K in Action['type']]: (a: InstanceActions, action: Extract<Action, { type: K }>) => Promise<void> };

const HANDLERS: Handlers = {
  async ensureSwitch(a) {
    await a.sw().ensure(a.instance, a.stablePort());
  },
  async retire(a, { color }) {
    await endSplitTo(a, color);
    if (!(await a.driverOf(color).inspect(a.ref(color)))) return;
    await a.closeGate(color, true);
    await a.discard(color);
  },
  async start(a, { color }) {
    await a.startColor(color);
  },
  async restart(a, { color }) {
    const r = await a.driverOf(color).start(a.ref(color));
    a.colors[color] = { port: r.port, url: r.url, runtime: r.runtime };
    await a.untilReady(color, r.url);
  },
  async stop(a, { color }) {
    await a.finishTakenWork(color);
    await a.driverOf(color).stop(a.ref(color));
  },
  async remove(a, { color, graceMs }) {
    await a.closeGate(color, true);
    await a.discard(color, graceMs);
  },
  async park(a, { color, until }) {
    a.park(color, until ?? a.deps.now().getTime() + a.keepWarmMs());
  },
  async deployInPlace(a, { color }) {
    const admin = a.deps.runtime.admin(a.urlOf(color));
    const live = await admin.getFlows();
    a.previousFlows = live.flows;
    const record = a.deps.runtime.registry.read().instances[a.instance]?.colors[color];
    if (record) a.previousRecord = { rev: record.rev, flowsHash: record.flowsHash };
    await admin.setFlows(a.deployedFlows(), { rev: live.rev, type: 'nodes' });
  },
  async restoreInPlace(a, { color }) {
    if (!a.previousFlows) return;
    const admin = a.deps.runtime.admin(a.urlOf(color));
    const live = await admin.getFlows();
    await admin.setFlows(a.previousFlows, { rev: live.rev, type: 'nodes' });
    // What Tower deployed is again what it deployed before: the instance is out of date, not drifted.
    const before = a.previousRecord;
    if (before) a.deps.runtime.registry.update((r) => void Object.assign(r.instances[a.instance]?.colors[color] ?? {}, before));
  },
  async checkRev(a, { color }) {
    const got = await a.deps.runtime.admin(a.urlOf(color)).getFlows();
    if (got.rev !== a.desired!.rev) throw new TowerError(`Node-RED (${color}) runs flows rev ${got.rev.slice(0, 12)}, expected ${a.desired!.rev.slice(0, 12)}`, 'RevMismatch', 'stalled');
  },
  async smoke(a, { color, kind }) {
    const rt = a.deps.runtime;
    const checks = (a.desired?.smoke ?? []).filter((c) => (kind === 'http' ? c.http : c.mqtt));
    if (checks.length === 0) return;
    if (kind === 'mqtt' && !rt.broker) throw new TowerError('MQTT smoke checks need a broker (MQTT_URL or the embedded one)', 'NoBroker', 'stalled');
    const results = await rt.smoke({ baseUrl: a.urlOf(color), checks, ...(rt.broker ? { mqtt: rt.broker } : {}), defaultTimeoutMs: 5_000, redact: a.redact });
    const failed = results.filter((r) => !r.ok);
    if (failed.length) throw new TowerError(failed.map((f) => `"${f.name}": ${f.message}`).join('; '), 'SmokeFailed', 'stalled');
  },
  async openGate(a, { color }) {
    if (a.usesGate()) await a.deps.runtime.gate!.open(a.topic(color));
  },
  async closeGate(a, { color }) {
    await a.closeGate(color, false);
  },
  async route(a, { color }) {
    const c = a.colors[color];
    if (!c) throw new TowerError(`no ${color} colour to route to`, 'ColorMissing');
    await a.sw().route(a.instance, { color, port: c.port });
    a.recordApplied(color);
  },
  // strategy canary and ab: src/engine/canary.ts
  split: (a, { color, weight }) => splitTraffic(a, color, weight),
  analyse: async (a, { color, step }) => void (await analyseStep(a, color, step, a.deps.runtime.readMetric?.bind(a.deps.runtime))),
  experiment: (a, { color }) => runExperiment(a, color),
  async unroute() {
    // the switch keeps the old route; with the old colour stopped it answers 502 until the new one is routed
  },
  async drain(a, { color }) {
    const timeout = a.drainMs();
    const r = await a.sw().drain(a.instance, color, timeout);
    if (!r.drained) a.warn(`${r.inflight} request(s) still in flight on ${color} after ${timeout} ms; it keeps running until cleanup, so they can finish`);
  },
  async audit(a, { color }) {
    // Through the stable address: the switch must reach the new colour, which runs the desired rev.
    const rt = a.deps.runtime;
    const stable = a.sw().url(a.stablePort(), a.instance);
    const got = await rt.admin(stable).getFlows();
    const desired = a.desired!;
    if (got.rev !== desired.rev) throw new TowerError(`the stable address ${stable} serves rev ${got.rev.slice(0, 12)}, expected ${desired.rev.slice(0, 12)}`, 'AuditFailed', 'stalled');
    // An in-place deploy changed what the colour runs: so does Tower's record of it.
    rt.registry.update((r) => {
      const c = r.instances[a.instance]?.colors[color];
      if (c && c.rev !== desired.rev) Object.assign(c, { rev: desired.rev, flowsHash: contentHash(desired.flowList) });
    });
    a.recordApplied(color);
  },
  async release(a, { color }) {
    const running = await a.driverOf(color).inspect(a.ref(color));
    const keepWarm = a.keepWarmMs();
    if (running?.status !== 'running' || keepWarm <= 0) return a.discard(color);
    // A swap back trusts Tower's record of what the parked colour runs: one changed by hand is not kept.
    const live = await a.deps.runtime.admin(running.url).getFlows().catch(() => undefined);
    const record = a.deps.runtime.registry.read().instances[a.instance]?.colors[color];
    if (!live || !record || live.rev !== record.rev) {
      a.warn(`${color} is not kept warm: ${live ? 'its flows were changed by hand' : 'it does not answer'}`);
      return a.discard(color);
    }
    a.park(color, a.deps.now().getTime() + keepWarm);
  },
  async removeSwitch(a) {
    await a.sw().remove(a.instance);
    if (!a.desired) a.deps.runtime.registry.update((r) => void delete r.instances[a.instance]);
  },
};
