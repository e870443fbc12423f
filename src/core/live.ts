/**
 * What runs, as plain data: the observation the engine makes each pass (drivers, switches,
 * gates, Node-RED's Admin API, and what Tower recorded when it started each colour) and the
 * one input `decide` reads besides the desired fleet. Adapters fill it; nothing here does I/O.
 *
 * Two words are kept apart everywhere: `rev` is Node-RED's flow hash (sha256 of the flow
 * list), `revision` is a commit of the fleet repository.
 */
import type { FlowNode, RuntimeConfig, RuntimeKind, SwitchKind } from './model.js';
import type { Color } from './rollout.js';

export const COLORS: readonly Color[] = ['blue', 'green'];

/** How a colour that stopped by itself ended, when the driver knows. */
export interface ExitInfo {
  at: string;
  code: number | null;
  signal: string | null;
  reason: string;
}

/** One colour (blue or green) of an instance. */
export interface LiveColor {
  color: Color;
  runtime: RuntimeKind;
  status: 'created' | 'running' | 'exited' | 'unknown';
  port: number;
  /** Base URL of its Node-RED (Admin API and HTTP nodes). */
  url: string;
  /** The flows rev Tower started it with, or last deployed to it in place. */
  rev: string;
  /** The runtime config it was started with (Tower's record); absent, or partly known, when unknown. */
  config?: Partial<RuntimeConfig>;
  /** Parked warm (for an instant swap back) until this time, in ms since the epoch. */
  parkedUntil?: number;
  startedAt?: string;
  exit?: ExitInfo;
  /** Each replica, when the colour has several (absent: the colour is its one replica). The colour runs while any does. */
  replicas?: LiveReplica[];
}

/** One replica of a colour (replicas: N): its index 1..N, where it answers, and whether it runs. */
export interface LiveReplica {
  index: number;
  url: string;
  port?: number;
  status: LiveColor['status'];
  /** Why it does not run. */
  reason?: string;
  /** What names its deploy gate and MQTT session when its runtime cannot give it its index (kubernetes: the pod's name). */
  key?: string;
  /** Its Admin API answered this pass (looked at for the routed colour only). */
  ready?: boolean;
}

/** Replicas that do not run, of a colour that has several. */
export function deadReplicas(c: LiveColor | undefined): LiveReplica[] {
  return (c?.replicas ?? []).filter((r) => r.status !== 'running');
}

/**
 * Whether the colour's runtime restarts its dead replicas itself: a Deployment's pods are
 * Kubernetes' to restart (the kubelet restarts a container, the ReplicaSet replaces a pod), so
 * Tower only reports them; the process and docker drivers' replicas are Tower's to restart.
 */
export function runtimeRestartsReplicas(c: Pick<LiveColor, 'runtime'>): boolean {
  return c.runtime === 'kubernetes';
}

/** How many replicas of a colour that has several are ready (run, and answered when asked) — "2/3". */
export function replicaReadiness(c: LiveColor | undefined): { ready: number; total: number } | undefined {
  if (!c?.replicas?.length) return undefined;
  return { ready: c.replicas.filter((r) => r.status === 'running' && r.ready !== false).length, total: c.replicas.length };
}

/** The traffic switch that serves the instance's stable address. */
export interface LiveSwitch {
  /** Which switch serves it: builtin or nginx. */
  kind: SwitchKind;
  running: boolean;
  port: number;
  /** The stable address, e.g. http://127.0.0.1:1881. */
  url: string;
  /** The colour it sends new requests to; absent until the first route. */
  routed?: Color;
  /** The other colour's share of new connections, percent, while a canary splits them (the routed colour has the rest). */
  canaryWeight?: number;
}

export interface LiveInstance {
  name: string;
  /** The stable port Tower recorded for the instance (it may no longer be in fleet.yaml). */
  port?: number;
  switch?: LiveSwitch;
  colors: Partial<Record<Color, LiveColor>>;
  /** The routed colour's flows as its Node-RED reports them; null when it does not answer. */
  flows: FlowNode[] | null;
  /** The routed colour's rev as its Node-RED reports it. */
  rev?: string;
  /** The routed colour's Admin API answered. */
  adminUp: boolean;
  /**
   * Present when the routed colour consumes MQTT through the deploy gate: is the gate open? `gone`: the keys (pod
   * names) of its replicas that no longer exist but left a gate state, and so maybe a persistent session, on the broker.
   */
  gate?: { open: boolean; gone?: string[] };
  /** Whether the instance's flows use the deploy gate, as read from a running colour; absent when none could be read. */
  gated?: boolean;
  /** What Tower last applied and verified on this instance. */
  applied?: { color: Color; rev: string; config: RuntimeConfig; at: string; revision?: string };
}

export function otherColorOf(color: Color): Color {
  return color === 'blue' ? 'green' : 'blue';
}

export function isRunning(c: LiveColor | undefined): c is LiveColor & { status: 'running' } {
  return c?.status === 'running';
}

/** Nothing of the instance exists: no switch, no colour. */
export function isAbsent(l: LiveInstance | undefined): boolean {
  return !l || (!l.switch && Object.keys(l.colors).length === 0);
}

/** The instance's gate is in use (its flows include lib:deploy-gate). */
export function flowsUseGate(flows: readonly FlowNode[] | null | undefined): boolean {
  return Boolean(flows?.some((n) => n.id.startsWith('tower-gate-')));
}
