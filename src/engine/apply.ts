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
import { gateTopicFor } from '../core/instance-env.js';
import { NodeRedAdmin } from '../adapters/nodered/admin.js';
import { brokerFromUrl, ensureEmbeddedBroker, stopEmbeddedBroker, type BrokerEndpoint } from '../adapters/mqtt/embedded-broker.js';
import { deployGate, type DeployGate } from '../adapters/mqtt/gate.js';
import { dockerDriver } from '../adapters/runtime/docker.js';
import { processDriver } from '../adapters/runtime/process.js';
import type { RuntimeDriver } from '../adapters/runtime/types.js';
import { builtinSwitch } from '../adapters/switch/builtin.js';
import type { TrafficSwitch } from '../adapters/switch/types.js';
import { executeRollout, type RolloutEvent, type RolloutResult } from './executor.js';
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
  admin(url: string): NodeRedAdmin;
  close(): Promise<void>;
}

export interface RuntimeOptions {
  stateDir: string;
  env: NodeJS.ProcessEnv;
  /** Start the broker (MQTT_URL or the embedded one) — needed when the fleet uses MQTT. */
  needsBroker: boolean;
  log?: (line: string) => void;
}

/** Wires the adapters for a state directory: drivers, switch, broker, gate. */
export async function openRuntime(options: RuntimeOptions): Promise<FleetRuntime> {
  const state = new StateDir(options.stateDir);
  const admin = state.adminCredentials();
  const drivers: FleetRuntime['drivers'] = { process: processDriver({ stateDir: state.root }) };
  if (options.env.DOCKER_HOST || usesDocker(state)) {
    drivers.docker = dockerDriver({ docker: new Dockerode(), stateDir: state.root });
  }
  let broker: BrokerEndpoint | undefined;
  if (options.env.MQTT_URL) broker = brokerFromUrl(options.env.MQTT_URL);
  else if (options.needsBroker) broker = await ensureEmbeddedBroker(state.path('broker'), options.log);
  const gate = broker ? deployGate({ url: broker.url }) : undefined;
  return {
    state,
    drivers,
    driverFor(runtime) {
      if (runtime === 'docker' && !drivers.docker) drivers.docker = dockerDriver({ docker: new Dockerode(), stateDir: state.root });
      return drivers[runtime]!;
    },
    trafficSwitch: builtinSwitch({ stateDir: state.root }),
    ...(broker ? { broker } : {}),
    ...(gate ? { gate } : {}),
    admin: (url) => new NodeRedAdmin({ baseUrl: url, credentials: admin, timeoutMs: 5_000 }),
    async close() {
      await gate?.end();
    },
  };
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
  options: { dryRun?: boolean; env: NodeJS.ProcessEnv; onEvent(e: RolloutEvent): void; now?: () => Date },
): Promise<ApplyOutcome> {
  const now = options.now ?? (() => new Date());
  rt.state.updateRegistry((r) => void (r.fleet = input.fleet.name));
  if (!options.dryRun) await reapExpiredStandbys(rt, input.fleet.name, now());
  const live = await observe(rt, input.fleet.name);
  const diffs = diffFleet(input.instances, toObservedFleet(live));
  const plan = buildPlan(input.fleet, diffs);
  if (options.dryRun) return { plan, diffs, live };
  preflight(plan, input.instances, options.env);
  const result = await executeRollout(plan, diffs, input.instances, live, {
    fleet: input.fleet,
    state: rt.state,
    driverFor: (r) => rt.driverFor(r),
    trafficSwitch: rt.trafficSwitch,
    ...(rt.broker ? { broker: rt.broker } : {}),
    ...(rt.gate ? { gate: rt.gate } : {}),
    admin: rt.state.adminCredentials(),
    secretsEnv: options.env,
    ...(input.revision ? { revision: input.revision } : {}),
    onEvent: options.onEvent,
    now,
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
export async function collectGarbage(rt: FleetRuntime, fleet: string, at: Date, onEvent: (e: RolloutEvent) => void): Promise<string[]> {
  const removed: string[] = [];
  const live = await observe(rt, fleet);
  const registry = rt.state.readRegistry();
  for (const l of live.values()) {
    for (const color of ['blue', 'green'] as Color[]) {
      const running = l.colors[color];
      if (!running || color === l.switch?.active?.color) continue;
      const parked = registry.instances[l.name]?.colors[color]?.keepWarmUntil;
      if (running.status === 'running' && parked && new Date(parked) > at) continue;
      await rt.driverFor(running.runtime).remove({ fleet, instance: l.name, color });
      rt.state.updateRegistry((r) => void delete r.instances[l.name]?.colors[color]);
      removed.push(`${l.name}/${color}`);
    }
  }
  if (removed.length) onEvent({ type: 'warning', message: `removed leftovers: ${removed.join(', ')}` });
  return removed;
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
      if (rt.gate) await rt.gate.clear(gateTopicFor(fleet, l.name, color));
    }
    removed.push(l.name);
  }
  rt.state.writeRegistry({ fleet, instances: {} });
  stopEmbeddedBroker(rt.state.path('broker'));
  return removed;
}
