/**
 * One reconcile pass: read the desired fleet, observe what runs, diff, plan, roll out, and
 * clean up what no longer belongs. `tower apply` runs it once; the daemon runs it in a loop.
 */
import Dockerode from 'dockerode';
import { diffFleet, type InstanceDiff } from '../core/diff.js';
import type { Diagnostic } from '../core/diagnostics.js';
import type { DesiredInstance, Fleet, RuntimeConfig } from '../core/model.js';
import { buildPlan, type Plan } from '../core/plan.js';
import type { Color } from '../core/rollout.js';
import { consumerClientIdFor, gateTopicFor, usesMqtt } from '../core/instance-env.js';
import { NodeRedAdmin } from '../adapters/nodered/admin.js';
import { brokerFromUrl, ensureEmbeddedBroker, stopEmbeddedBroker, type BrokerEndpoint } from '../adapters/mqtt/embedded-broker.js';
import { deployGate, type DeployGate } from '../adapters/mqtt/gate.js';
import { dockerDriver } from '../adapters/runtime/docker.js';
import { installedNodeRed, nodeRedVersionMatches, processDriver } from '../adapters/runtime/process.js';
import type { RuntimeDriver } from '../adapters/runtime/types.js';
import { builtinSwitch } from '../adapters/switch/builtin.js';
import type { TrafficSwitch } from '../adapters/switch/types.js';
import { executeRollout, type EngineDeps, type RolloutEvent, type RolloutResult } from './executor.js';
import { observeFleet, toObservedFleet, type LiveInstance } from './observe.js';
import { resolveEnv } from './secrets.js';
import { StateDir } from './state-dir.js';

export interface FleetRuntime {
  state: StateDir;
  drivers: Partial<Record<RuntimeConfig['runtime'], RuntimeDriver>>;
  driverFor(runtime: RuntimeConfig['runtime']): RuntimeDriver;
  trafficSwitch: TrafficSwitch;
  broker?: BrokerEndpoint;
  gate?: DeployGate;
  /** Connects to the fleet's broker (MQTT_URL), or starts the embedded one; once. */
  ensureBroker(): Promise<BrokerEndpoint>;
  admin(url: string): NodeRedAdmin;
  close(): Promise<void>;
}

export interface RuntimeOptions {
  stateDir: string;
  env: NodeJS.ProcessEnv;
  /** Start (or connect to) the broker right away rather than when a fleet first needs it. */
  needsBroker?: boolean;
  log?: (line: string) => void;
}

/** Wires the adapters for a state directory: drivers, switch, broker, gate. */
export async function openRuntime(options: RuntimeOptions): Promise<FleetRuntime> {
  const state = new StateDir(options.stateDir);
  const admin = state.adminCredentials();
  // One client per Node-RED: every login is a session Node-RED stores, so reuse the token.
  const admins = new Map<string, NodeRedAdmin>();
  const drivers: FleetRuntime['drivers'] = { process: processDriver({ stateDir: state.root }) };
  if (options.env.DOCKER_HOST || usesDocker(state)) {
    drivers.docker = dockerDriver({ docker: new Dockerode(), stateDir: state.root });
  }
  const rt: FleetRuntime = {
    state,
    drivers,
    driverFor(runtime) {
      if (runtime === 'docker' && !drivers.docker) drivers.docker = dockerDriver({ docker: new Dockerode(), stateDir: state.root });
      return drivers[runtime]!;
    },
    trafficSwitch: builtinSwitch({ stateDir: state.root }),
    async ensureBroker() {
      if (!rt.broker) {
        rt.broker = options.env.MQTT_URL ? brokerFromUrl(options.env.MQTT_URL) : await ensureEmbeddedBroker(state.path('broker'), options.log);
        rt.gate = deployGate({ url: rt.broker.url });
      } else if (rt.broker.embedded) {
        // It is ours to keep running: start it again (same port) if it died.
        await ensureEmbeddedBroker(state.path('broker'), options.log);
      }
      return rt.broker;
    },
    admin(url) {
      let client = admins.get(url);
      if (!client) {
        client = new NodeRedAdmin({ baseUrl: url, credentials: admin, timeoutMs: 10_000 });
        admins.set(url, client);
      }
      return client;
    },
    async close() {
      await rt.gate?.end();
    },
  };
  // A broker given by URL costs nothing to know about; the gate client connects on first use.
  if (options.env.MQTT_URL || options.needsBroker) await rt.ensureBroker();
  return rt;
}

function usesDocker(state: StateDir): boolean {
  return Object.values(state.readRegistry().instances).some((i) => Object.values(i.colors).some((c) => c?.config.runtime === 'docker'));
}

export interface ApplyInput {
  fleet: Fleet;
  instances: DesiredInstance[];
  diagnostics: Diagnostic[];
  revision?: string;
}

export interface ApplyOutcome {
  plan: Plan;
  diffs: InstanceDiff[];
  live: Map<string, LiveInstance>;
  result?: RolloutResult;
}

export async function observe(rt: FleetRuntime, fleet: string): Promise<Map<string, LiveInstance>> {
  return observeFleet({ fleet, drivers: Object.values(rt.drivers), trafficSwitch: rt.trafficSwitch, admin: rt.admin, registry: rt.state.readRegistry() });
}

/** Plans against what runs; rolls the plan out unless dryRun. */
export async function applyFleet(
  rt: FleetRuntime,
  input: ApplyInput,
  options: {
    dryRun?: boolean;
    env: NodeJS.ProcessEnv;
    onEvent(e: RolloutEvent): void;
    now?: () => Date;
    journal?: EngineDeps['journal'];
    shouldContinue?: EngineDeps['shouldContinue'];
  },
): Promise<ApplyOutcome> {
  const now = options.now ?? (() => new Date());
  rt.state.updateRegistry((r) => void (r.fleet = input.fleet.name));
  if (!options.dryRun && usesMqtt(input.instances)) await rt.ensureBroker();
  if (!options.dryRun) await reapExpiredStandbys(rt, input.fleet.name, now());
  const live = await observe(rt, input.fleet.name);
  if (!options.dryRun) {
    const switches = await repairSwitches(rt, live);
    if (switches.length) options.onEvent({ type: 'warning', message: `restarted the traffic switches of ${switches.join(', ')}` });
    const repaired = await repairGates(rt, input.fleet.name, live);
    if (repaired.length) options.onEvent({ type: 'warning', message: `re-opened the deploy gates of ${repaired.join(', ')}` });
  }
  const diffs = diffFleet(input.instances, toObservedFleet(live));
  const plan = buildPlan(input.fleet, diffs);
  if (options.dryRun) return { plan, diffs, live };
  preflight(plan, input.instances, options.env);
  const shared = input.instances.filter((i) => i.config.context === 'shared').map((i) => i.name);
  if (shared.length && !options.env.REDIS_URL) {
    options.onEvent({ type: 'warning', message: `${shared.join(', ')} ask${shared.length === 1 ? 's' : ''} for shared context, but REDIS_URL is not set: context stays in each colour's memory and is lost on a swap` });
  }
  const result = await executeRollout(plan, diffs, input.instances, live, {
    fleet: input.fleet,
    state: rt.state,
    driverFor: (r) => rt.driverFor(r),
    trafficSwitch: rt.trafficSwitch,
    ...(rt.broker ? { broker: rt.broker } : {}),
    ...(rt.gate ? { gate: rt.gate } : {}),
    ...(options.env.REDIS_URL ? { redisUrl: options.env.REDIS_URL } : {}),
    admin: rt.state.adminCredentials(),
    adminClient: (url) => rt.admin(url),
    secretsEnv: options.env,
    ...(input.revision ? { revision: input.revision } : {}),
    onEvent: options.onEvent,
    now,
    ...(options.journal ? { journal: options.journal } : {}),
    ...(options.shouldContinue ? { shouldContinue: options.shouldContinue } : {}),
  });
  await collectGarbage(rt, input.fleet.name, now(), options.onEvent);
  return { plan, diffs, live, result };
}

/** Thrown before anything changes when the rollout could not succeed (e.g. a secret is missing). */
export class PreflightError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
    this.name = 'PreflightError';
  }
}

/** Checks, before the first action, what would otherwise fail in the middle of a rollout. */
function preflight(plan: Plan, instances: readonly DesiredInstance[], env: NodeJS.ProcessEnv): void {
  const changing = new Set(plan.waves.flatMap((w) => w.steps.filter((s) => s.action !== 'delete').map((s) => s.instance)));
  const problems: string[] = [];
  for (const i of instances) {
    if (!changing.has(i.name)) continue;
    try {
      resolveEnv(i.name, i.config.env, env);
    } catch (err) {
      problems.push((err as Error).message);
    }
    if (i.config.runtime === 'process') {
      const installed = installedNodeRed().version;
      if (!nodeRedVersionMatches(installed, i.config.nodeRedVersion)) {
        problems.push(`instance ${i.name} asks for Node-RED ${i.config.nodeRedVersion}, but the process runtime has Node-RED ${installed}; set nodeRedVersion to match, or use runtime: docker with that version's image`);
      }
    }
  }
  if (problems.length) throw new PreflightError(problems);
}

/** Stops parked colours whose keepWarm has run out. */
export async function reapExpiredStandbys(rt: FleetRuntime, fleet: string, at: Date): Promise<string[]> {
  const reaped: string[] = [];
  const registry = rt.state.readRegistry();
  const switches = await rt.trafficSwitch.list();
  for (const [name, rec] of Object.entries(registry.instances)) {
    const routed = switches.find((s) => s.instance === name)?.active?.color;
    for (const color of ['blue', 'green'] as Color[]) {
      const c = rec.colors[color];
      if (!c?.keepWarmUntil || color === routed || new Date(c.keepWarmUntil) > at) continue;
      await rt.driverFor(c.config.runtime).remove({ fleet, instance: name, color });
      if (rt.gate) {
        await rt.gate.clear(gateTopicFor(fleet, name, color)).catch(() => {});
        await rt.gate.endSession(consumerClientIdFor(fleet, name, color)).catch(() => {});
      }
      rt.state.updateRegistry((r) => void delete r.instances[name]?.colors[color]);
      reaped.push(`${name}/${color}`);
    }
  }
  return reaped;
}

/**
 * Removes what no rollout left on purpose: colours that are neither routed nor parked warm
 * (a crashed rollout's leftovers, exited processes), so nothing stays orphaned.
 */
export async function collectGarbage(rt: FleetRuntime, fleet: string, at: Date, onEvent: (e: RolloutEvent) => void, observed?: Map<string, LiveInstance>): Promise<string[]> {
  const removed: string[] = [];
  const live = observed ?? (await observe(rt, fleet));
  const registry = rt.state.readRegistry();
  for (const l of live.values()) {
    for (const color of ['blue', 'green'] as Color[]) {
      const running = l.colors[color];
      if (!running || color === l.switch?.active?.color) continue;
      const parked = registry.instances[l.name]?.colors[color]?.keepWarmUntil;
      if (running.status === 'running' && parked && new Date(parked) > at) continue;
      if (running.status === 'running') {
        // Hand its MQTT work and in-flight requests over before it goes.
        if (rt.gate && usesGate(l)) {
          await rt.gate.close(gateTopicFor(fleet, l.name, color)).catch(() => {});
          await sleep(LEFTOVER_MQTT_DRAIN_MS); // work it had already taken (and acked) finishes
        }
        if (l.switch) await rt.trafficSwitch.drain(l.name, color, 5_000).catch(() => undefined);
      }
      await rt.driverFor(running.runtime).remove({ fleet, instance: l.name, color });
      if (rt.gate && usesGate(l)) {
        await rt.gate.clear(gateTopicFor(fleet, l.name, color));
        await rt.gate.endSession(consumerClientIdFor(fleet, l.name, color)).catch(() => {});
      }
      rt.state.updateRegistry((r) => void delete r.instances[l.name]?.colors[color]);
      removed.push(`${l.name}/${color}`);
    }
  }
  if (removed.length) onEvent({ type: 'warning', message: `removed leftovers: ${removed.join(', ')}` });
  return removed;
}

/** How long a leftover consumer may finish the MQTT work it had taken before it is stopped. */
const LEFTOVER_MQTT_DRAIN_MS = 2_000;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function usesGate(l: LiveInstance): boolean {
  return Boolean(l.flows?.some((n) => n.id.startsWith('tower-gate-')));
}

/**
 * Makes sure the colour the switch routes to consumes its MQTT work: a rollout interrupted
 * between routing back and re-opening a gate would otherwise leave consumption stopped.
 */
export async function repairGates(rt: FleetRuntime, fleet: string, live: Map<string, LiveInstance>): Promise<string[]> {
  const repaired: string[] = [];
  if (!rt.gate) return repaired;
  for (const l of live.values()) {
    if (!l.active || !l.colors[l.active] || l.colors[l.active]!.status !== 'running' || !usesGate(l)) continue;
    const topic = gateTopicFor(fleet, l.name, l.active);
    if ((await rt.gate.state(topic)) === 'open') continue;
    await rt.gate.open(topic);
    repaired.push(`${l.name}/${l.active}`);
  }
  return repaired;
}

/**
 * Restarts the switch of every instance whose router is gone (it resumes its persisted
 * route): the stable address must not stay down until the next change.
 */
export async function repairSwitches(rt: FleetRuntime, live: Map<string, LiveInstance>): Promise<string[]> {
  const repaired: string[] = [];
  for (const l of live.values()) {
    if (!l.switch || l.switch.running || !l.switch.listenPort) continue;
    await rt.trafficSwitch.ensure(l.name, l.switch.listenPort);
    repaired.push(l.name);
  }
  return repaired;
}

/** Stops and removes every instance, switch and the embedded broker this state directory manages. */
export async function destroyAll(rt: FleetRuntime, fleet: string): Promise<string[]> {
  const removed: string[] = [];
  const live = await observe(rt, fleet);
  for (const l of live.values()) {
    if (l.switch) await rt.trafficSwitch.remove(l.name);
    for (const color of ['blue', 'green'] as Color[]) {
      const c = l.colors[color];
      if (!c) continue;
      await rt.driverFor(c.runtime).remove({ fleet, instance: l.name, color });
      if (rt.gate) {
        await rt.gate.clear(gateTopicFor(fleet, l.name, color));
        await rt.gate.endSession(consumerClientIdFor(fleet, l.name, color)).catch(() => {});
      }
    }
    removed.push(l.name);
  }
  rt.state.writeRegistry({ fleet, instances: {} });
  stopEmbeddedBroker(rt.state.path('broker'));
  return removed;
}
