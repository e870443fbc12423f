/**
 * Small builders of desired fleets and observations for the tests of decide, the executor
 * and the loop: a fleet of instances whose one function node answers a text, and what runs
 * described in a line per instance.
 */
import { deployableFlows, flowsRev } from '../../src/core/flows.js';
import type { LiveColor, LiveInstance } from '../../src/core/live.js';
import type { DesiredInstance, Fleet, FlowNode, PlanSpec, RuntimeConfig } from '../../src/core/model.js';
import type { DesiredFleet } from '../../src/core/decide.js';
import type { Color } from '../../src/core/rollout.js';

export const BASE_PORT = 41_000;

export function flowsFor(name: string, text: string): FlowNode[] {
  return [
    { id: `${name}-tab`, type: 'tab', label: name },
    { id: `${name}-fn`, type: 'function', z: `${name}-tab`, name: 'answer', func: `return ${JSON.stringify(text)};`, x: 100, y: 100, wires: [] },
  ];
}

export function configFor(port: number, env: Record<string, string> = {}): RuntimeConfig {
  return { runtime: 'process', nodeRedVersion: '4.1', env, resources: {}, settings: {}, context: 'memory', port };
}

export interface FleetSpec {
  /** instance name → the text its flow answers */
  instances: Record<string, string>;
  selfHeal?: boolean;
  plan?: PlanSpec;
  /** instance name → env (changes the config) */
  env?: Record<string, Record<string, string>>;
  strategy?: 'blue-green' | 'recreate';
}

export function desiredFleet(spec: FleetSpec): DesiredFleet {
  const names = Object.keys(spec.instances);
  const instances: DesiredInstance[] = names.map((name, i) => {
    const port = BASE_PORT + i;
    const flowList = flowsFor(name, spec.instances[name]!);
    return {
      name,
      port,
      flows: [`flows/${name}.json`],
      smoke: [],
      strategy: spec.strategy ?? 'blue-green',
      labels: {},
      keepWarm: '2m',
      drainTimeout: '1s',
      config: configFor(port, spec.env?.[name]),
      flowList,
      rev: flowsRev(deployableFlows(flowList)),
    };
  });
  const fleet: Fleet = { name: 'test', labels: {}, selfHeal: spec.selfHeal ?? false, instances, plan: { name: 'p', source: 'test', spec: spec.plan ?? { order: 'sequential' } } };
  return { fleet, instances };
}

export interface ColorSpec {
  status?: LiveColor['status'];
  /** The desired instance whose flows (and config) the colour was started with; default the instance itself. */
  runs?: DesiredInstance;
  parkedUntil?: number;
}

export interface LiveSpec {
  switch?: 'up' | 'down' | 'gone';
  routed?: Color | null;
  colors: Partial<Record<Color, ColorSpec>>;
  /** The routed colour's live flows, when someone changed them; default what it was started with. */
  liveFlows?: FlowNode[];
  adminUp?: boolean;
  gate?: { open: boolean };
  /** Whether the flows use the deploy gate; default: read from the routed colour's flows when it answers. */
  gated?: boolean;
}

/** What runs for a desired instance, from a short description. */
export function liveOf(d: DesiredInstance, spec: LiveSpec): LiveInstance {
  const colors: Partial<Record<Color, LiveColor>> = {};
  let port = d.port + 100;
  for (const color of ['blue', 'green'] as Color[]) {
    const c = spec.colors[color];
    if (!c) continue;
    const runs = c.runs ?? d;
    colors[color] = {
      color,
      runtime: 'process',
      status: c.status ?? 'running',
      port: ++port,
      url: `http://127.0.0.1:${port}`,
      rev: runs.rev,
      config: runs.config,
      ...(c.parkedUntil !== undefined ? { parkedUntil: c.parkedUntil } : {}),
    };
  }
  const routed = spec.routed === null ? undefined : (spec.routed ?? 'blue');
  const routedColor = routed ? colors[routed] : undefined;
  const readable = routedColor?.status === 'running' && spec.adminUp !== false;
  const flows = readable ? (spec.liveFlows ?? (spec.colors[routed!]?.runs ?? d).flowList) : null;
  return {
    name: d.name,
    ...(spec.switch === 'gone' ? {} : { switch: { kind: 'builtin', running: spec.switch !== 'down', port: d.port, url: `http://127.0.0.1:${d.port}`, ...(routed ? { routed } : {}) } }),
    colors,
    flows,
    ...(flows ? { rev: flowsRev(deployableFlows(flows)) } : {}),
    adminUp: readable,
    ...(spec.gate ? { gate: spec.gate } : {}),
    ...(spec.gated !== undefined ? { gated: spec.gated } : flows ? { gated: flows.some((n) => n.id.startsWith('tower-gate-')) } : {}),
  };
}

/** The instance running exactly what is desired, blue routed. */
export function synced(d: DesiredInstance): LiveInstance {
  return liveOf(d, { colors: { blue: {} } });
}
