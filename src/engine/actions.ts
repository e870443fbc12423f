/**
 * The actions the rollout state machine (src/core/rollout.ts) and the liveness repairs
 * (src/core/repairs.ts) decide, each carried out by one small handler. A handler reaches a
 * colour only through the URL its driver reported (never a hard-coded address), and gives
 * typed errors back (TowerError: stalled or retryable).
 */
import { parseDuration } from '../core/duration.js';
import { contentHash } from '../core/flows.js';
import { consumerClientIdFor, gateTopicFor, replicaEnvironments, towerEnvironment, type ReplicaKey } from '../core/instance-env.js';
import type { LiveInstance } from '../core/live.js';
import { flowsUseGate } from '../core/live.js';
import { isSecretRef, type DesiredInstance, type Fleet, type FlowNode } from '../core/model.js';
import type { Action, Color } from '../core/rollout.js';
import { TowerError, type ColorSpec, type FleetRuntime, type ReplicaView, type RuntimeDriver } from './ports.js';
import { resolveCredentials, resolveEnv, secretValues } from './secrets.js';
import { withCredentials } from '../core/credentials.js';
import { brokerSecrets, fleetBrokerCredentials } from '../core/broker-credentials.js';
import { redactor } from '../core/redact.js';
import type { RolloutEvent } from './events.js';
import type { TrafficSummary } from '../core/traffic.js';
import { analyseStep, endSplitTo, runExperiment, splitTraffic } from './canary.js';
import { auditReplicas, distinctPorts, known, type KnownColor } from './replicas.js';

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
  /** The colours this run knows: where they are (each replica, when several) and what runs them. */
  readonly colors: Partial<Record<Color, KnownColor>> = {};
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
    for (const c of Object.values(live?.colors ?? {})) this.colors[c.color] = known(c);
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

  /** Every replica's Admin API (one URL for a colour of one replica): the actions that act on Node-RED act on each. */
  replicaUrls(color: Color): { index: number; url: string }[] {
    this.urlOf(color);
    const c = this.colors[color]!;
    return c.replicas?.length ? c.replicas.map((r) => ({ index: r.index, url: r.url })) : [{ index: 1, url: c.url }];
  }

  /** What names the replicas a colour has or had (their gates and MQTT sessions: index, or pod name), as far as this run knows. */
  replicaIndexes(color: Color): ReplicaKey[] {
    const c = this.colors[color];
    const count = Math.max(c?.replicas?.length ?? 1, this.desired?.config.replicas ?? 1);
    return c?.replicas?.length ? c.replicas.map((r) => r.key ?? r.index) : Array.from({ length: count }, (_, i) => i + 1);
  }

  /** The desired flows or the flows that run use the deploy gate (they differ while a rollout adds or drops it). */
  usesGate(): boolean {
    if (!this.deps.runtime.gate) return false;
    return Boolean(this.desired?.flows.includes('lib:deploy-gate')) || flowsUseGate(this.live?.flows) || this.live?.gated === true;
  }

  topic(color: Color, replica: ReplicaKey = 1): string {
    return gateTopicFor(this.deps.fleet, this.instance, color, replica);
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
    const replicas = desired.config.replicas ?? 1;
    const ports = await distinctPorts(rt, replicas);
    const port = ports[0]!;
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
      drainMs: this.drainMs(),
      // Colours of one instance share one context namespace, so context survives the swap.
      ...(desired.config.context === 'shared' && rt.redisUrl ? { sharedContext: { url: rt.redisUrl, prefix: `tower:${deps.fleet}:${this.instance}` } } : {}),
      ...(replicas > 1 ? { replicas, replicaPorts: ports.slice(1), replicaEnv: replicaEnvironments(deps.fleet, this.instance, color, replicas) } : {}),
    };
    for (const warning of this.fleetBroker().warnings) this.warn(warning);
    // A new colour starts with its MQTT consumers off: clear any retained "open" from before.
    if (this.usesGate()) await Promise.all(this.replicaIndexes(color).map((k) => rt.gate!.clear(this.topic(color, k))));
    await this.endSession(color); // a colour that crashed with its gate open left a session collecting work
    const driver = this.driverOf(color);
    const created = await driver.create(spec);
    this.colors[color] = known(created);
    rt.registry.update((r) => {
      const rec = (r.instances[this.instance] ??= { port: desired.port, colors: {} });
      rec.port = desired.port;
      rec.colors[color] = { port: created.port, rev: desired.rev, flowsHash: spec.flowsHash, config: desired.config, startedAt: deps.now().toISOString() };
    });
    const started = await driver.start(this.ref(color));
    this.colors[color] = known(started);
    await this.untilReady(color);
  }

  /**
   * Until the colour's Node-RED answers its Admin API, every replica of it — or fails fast when
   * a replica exits meanwhile (a crash at boot is not worth waiting readyTimeout for).
   */
  async untilReady(color: Color): Promise<void> {
    await Promise.all(this.replicaUrls(color).map(({ index, url }) => this.replicaReady(color, index, url)));
  }

  private async replicaReady(color: Color, index: number, url: string): Promise<void> {
    const timeoutMs = this.deps.readyTimeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    const admin = this.deps.runtime.admin(url);
    const who = this.colors[color]?.replicas ? `${color} replica ${index}` : color;
    for (;;) {
      const failed = await admin.waitUntilReady(Math.max(1, Math.min(1_000, deadline - Date.now()))).then(
        () => undefined,
        (err: Error) => err,
      );
      if (!failed) return;
      const c = await this.driverOf(color).inspect(this.ref(color));
      const replica = c?.replicas?.find((r) => r.index === index);
      const status = replica ? replica.status : c?.status;
      if (status !== 'running') throw new TowerError(`${who} exited while starting (${replica?.reason ?? c?.exit?.reason ?? 'gone'})`, 'ExitedWhileStarting');
      if (Date.now() >= deadline) throw new TowerError(`Node-RED (${who}) not ready after ${timeoutMs} ms: ${failed.message}${c?.notReady ? ` (${c.notReady})` : ''}`, 'NotReady');
    }
  }

  /** Closes the gate of every replica that runs; one that does not has nothing to hand over: it would start closed. */
  async closeGate(color: Color, tolerant: boolean): Promise<void> {
    if (!this.usesGate()) return;
    const gate = this.deps.runtime.gate!;
    const c = await this.driverOf(color).inspect(this.ref(color));
    const replicas: { key: ReplicaKey; status: ReplicaView['status'] }[] = c?.replicas?.map((r) => ({ key: r.key ?? r.index, status: r.status })) ?? this.replicaIndexes(color).map((key) => ({ key, status: key === 1 && c ? c.status : 'exited' }));
    const closing = replicas.filter((r) => r.status === 'running');
    await Promise.all(
      replicas.filter((r) => r.status !== 'running').map(async (r) => {
        await gate.clear(this.topic(color, r.key));
        await this.endReplicaSession(color, r.key);
      }),
    );
    if (!closing.length) return;
    try {
      await Promise.all(closing.map((r) => gate.close(this.topic(color, r.key))));
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

  /** Ends the broker sessions of a colour (each replica's) that no longer runs, so nothing collects work for it. */
  async endSession(color: Color): Promise<void> {
    if (!this.usesGate()) return;
    await Promise.all(this.replicaIndexes(color).map((k) => this.endReplicaSession(color, k)));
  }

  /**
   * Replicas named by their pods that are gone: their gates are cleared and their sessions ended — not those that
   * run now (asked again: a session ended under a running consumer would cut it off). All of them when the colour is.
   */
  async forgetReplicas(color: Color, keys?: string[]): Promise<void> {
    const gate = this.deps.runtime.gate;
    const listed = keys ?? (gate?.replicaKeys ? await gate.replicaKeys(this.topic(color)) : []);
    if (!gate || !listed.length) return;
    const now = await this.driverOf(color).inspect(this.ref(color));
    const present = new Set([...(now?.replicas?.map((r) => r.key) ?? []), ...(now?.leaving ?? [])]);
    await Promise.all(listed.filter((k) => !present.has(k)).map(async (k) => {
      await gate.clear(this.topic(color, k));
      await this.endReplicaSession(color, k);
    }));
  }

  private async endReplicaSession(color: Color, replica: ReplicaKey): Promise<void> {
    try {
      await this.deps.runtime.gate!.endSession(consumerClientIdFor(this.deps.fleet, this.instance, color, replica));
    } catch (err) {
      this.warn(`cannot end the MQTT session of ${color}${replica !== 1 ? ` replica ${replica}` : ''}: ${(err as Error).message}`);
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
    if (this.usesGate()) await Promise.all(this.replicaIndexes(color).map((k) => this.deps.runtime.gate!.clear(this.topic(color, k))));
    await this.endSession(color);
    // Pods the colour had before (replaced by Kubernetes) left their gates and sessions too.
    if (this.usesGate() && this.colors[color]?.replicas?.some((r) => r.key)) await this.forgetReplicas(color);
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
    // The driver starts what does not run: one dead replica, or the whole colour.
    const r = await a.driverOf(color).start(a.ref(color));
    a.colors[color] = known(r);
    await a.untilReady(color);
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
    a.previousFlows = (await a.deps.runtime.admin(a.urlOf(color)).getFlows()).flows;
    const record = a.deps.runtime.registry.read().instances[a.instance]?.colors[color];
    if (record) a.previousRecord = { rev: record.rev, flowsHash: record.flowsHash };
    const flows = a.deployedFlows();
    for (const { url } of a.replicaUrls(color)) {
      const admin = a.deps.runtime.admin(url);
      await admin.setFlows(flows, { rev: (await admin.getFlows()).rev, type: 'nodes' });
    }
  },
  async restoreInPlace(a, { color }) {
    if (!a.previousFlows) return;
    for (const { url } of a.replicaUrls(color)) {
      const admin = a.deps.runtime.admin(url);
      await admin.setFlows(a.previousFlows, { rev: (await admin.getFlows()).rev, type: 'nodes' });
    }
    // What Tower deployed is again what it deployed before: the instance is out of date, not drifted.
    const before = a.previousRecord;
    if (before) a.deps.runtime.registry.update((r) => void Object.assign(r.instances[a.instance]?.colors[color] ?? {}, before));
  },
  async checkRev(a, { color }) {
    // Ready means every replica runs the desired flows.
    const several = a.replicaUrls(color).length > 1;
    for (const { index, url } of a.replicaUrls(color)) {
      const got = await a.deps.runtime.admin(url).getFlows();
      if (got.rev !== a.desired!.rev) throw new TowerError(`Node-RED (${color}${several ? ` replica ${index}` : ''}) runs flows rev ${got.rev.slice(0, 12)}, expected ${a.desired!.rev.slice(0, 12)}`, 'RevMismatch', 'stalled');
    }
  },
  async smoke(a, { color, kind }) {
    const rt = a.deps.runtime;
    const checks = (a.desired?.smoke ?? []).filter((c) => (kind === 'http' ? c.http : c.mqtt));
    if (checks.length === 0) return;
    if (kind === 'mqtt' && !rt.broker) throw new TowerError('MQTT smoke checks need a broker (MQTT_URL or the embedded one)', 'NoBroker', 'stalled');
    // HTTP checks ask every replica; MQTT checks go through the broker to whichever replica takes the work.
    const targets = kind === 'http' ? a.replicaUrls(color) : [{ index: 1, url: a.urlOf(color) }];
    const several = targets.length > 1;
    for (const { index, url } of targets) {
      const results = await rt.smoke({ baseUrl: url, checks, ...(rt.broker ? { mqtt: rt.broker } : {}), defaultTimeoutMs: 5_000, redact: a.redact });
      const failed = results.filter((r) => !r.ok);
      if (failed.length) throw new TowerError(`${several ? `replica ${index}: ` : ''}${failed.map((f) => `"${f.name}": ${f.message}`).join('; ')}`, 'SmokeFailed', 'stalled');
    }
  },
  async openGate(a, { color }) {
    // Each replica confirms its own gate: open resolves once every replica's consumers are subscribed.
    if (a.usesGate()) await Promise.all(a.replicaIndexes(color).map((k) => a.deps.runtime.gate!.open(a.topic(color, k))));
  },
  async closeGate(a, { color }) {
    await a.closeGate(color, false);
  },
  forgetReplicas: (a, { color, keys }) => a.forgetReplicas(color, keys),
  async route(a, { color }) {
    const c = a.colors[color];
    if (!c) throw new TowerError(`no ${color} colour to route to`, 'ColorMissing');
    const ports = c.replicas?.map((r) => r.port).filter((p): p is number => p !== undefined) ?? [];
    await a.sw().route(a.instance, { color, port: c.port, ...(ports.length > 1 ? { ports } : {}) });
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
    const desired = a.desired!;
    if (a.replicaUrls(color).length > 1) {
      await auditReplicas(a, color, stable);
    } else {
      const got = await rt.admin(stable).getFlows();
      if (got.rev !== desired.rev) throw new TowerError(`the stable address ${stable} serves rev ${got.rev.slice(0, 12)}, expected ${desired.rev.slice(0, 12)}`, 'AuditFailed', 'stalled');
    }
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
