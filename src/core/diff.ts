/**
 * Desired against observed: per instance create / update / delete / unchanged; per tab the
 * nodes added, removed and changed, with the properties that changed; the runtime
 * configuration changes that need a new process; and whether a flow change is cosmetic —
 * one Node-RED applies without restarting any node, so the rollout may deploy it in place.
 */
import { canonicalJson, contentHash, defineLazyString, deployableFlows } from './flows.js';
import { maskUrlPassword, SECRET_NAME } from './redact.js';
import {
  isSecretRef,
  type DesiredInstance,
  type EnvValue,
  type FlowNode,
  type ObservedFleet,
  type ObservedInstance,
  type RuntimeConfig,
  type Strategy,
} from './model.js';

export type UpdateStrategy = Strategy | 'in-place';
export type InstanceAction = 'create' | 'update' | 'delete' | 'unchanged';
export type ChangeClass = 'none' | 'cosmetic' | 'functional';

export interface NodeRef {
  id: string;
  type: string;
  name?: string;
}

export interface NodeChange extends NodeRef {
  properties: string[];
  cosmetic: boolean;
}

export interface ContainerDiff {
  id: string;
  kind: 'tab' | 'subflow' | 'config';
  label: string;
  change: 'added' | 'removed' | 'changed';
  cosmetic: boolean;
  /** Properties of the tab or subflow node itself that changed. */
  properties: string[];
  added: NodeRef[];
  removed: NodeRef[];
  changed: NodeChange[];
}

export interface ConfigChange {
  field: string;
  from?: string;
  to?: string;
}

export interface FlowsDiff {
  change: ChangeClass;
  containers: ContainerDiff[];
  counts: { added: number; removed: number; changed: number };
}

export interface InstanceDiff extends FlowsDiff {
  name: string;
  action: InstanceAction;
  /** For updates: how the change is applied. */
  strategy?: UpdateStrategy;
  config: ConfigChange[];
  desiredRev?: string;
  observedRev?: string;
  /** Set when the live flows could not be read: the update is then treated as functional. */
  note?: string;
}

const NO_FLOW_CHANGE: FlowsDiff = { change: 'none', containers: [], counts: { added: 0, removed: 0, changed: 0 } };

export function diffFleet(desired: readonly DesiredInstance[], observed: ObservedFleet | undefined): InstanceDiff[] {
  const live = new Map<string, ObservedInstance>((observed?.instances ?? []).map((o) => [o.name, o]));
  const out: InstanceDiff[] = [];
  for (const d of desired) {
    out.push(diffInstance(d, live.get(d.name)));
    live.delete(d.name);
  }
  for (const o of [...live.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    const flows = diffFlows([], o.flows ?? []);
    out.push({ name: o.name, action: 'delete', ...flows, config: [], observedRev: o.rev });
  }
  return out;
}

export function diffInstance(desired: DesiredInstance, observed: ObservedInstance | undefined): InstanceDiff {
  if (!observed) {
    const flows = diffFlows(desired.flowList, []);
    // desiredRev last, as before; read from desired only when someone reads it.
    return defineLazyString({ name: desired.name, action: 'create', ...flows, change: 'functional', config: [] } as InstanceDiff, 'desiredRev', () => desired.rev);
  }
  const config = diffConfig(desired.config, observed.config);
  let flows: FlowsDiff;
  let note: string | undefined;
  if (observed.flows === null) {
    flows = { ...NO_FLOW_CHANGE, change: 'functional' };
    note = 'the live flows could not be read; all flows are deployed';
  } else if (observed.rev !== undefined && observed.rev === desired.rev) {
    flows = NO_FLOW_CHANGE; // Node-RED's rev matches: exactly the list we would deploy.
  } else {
    flows = diffFlows(desired.flowList, observed.flows);
  }
  const base = { name: desired.name, config, desiredRev: desired.rev, observedRev: observed.rev, ...(note ? { note } : {}) };
  if (flows.change === 'none' && config.length === 0) return { ...base, action: 'unchanged', ...flows };
  const strategy: UpdateStrategy = config.length === 0 && flows.change === 'cosmetic' ? 'in-place' : desired.strategy;
  return { ...base, action: 'update', strategy, ...flows };
}

/**
 * Node-level diff of two flow lists. Cosmetic follows Node-RED's own rules for what a
 * deploy restarts (@node-red/runtime flows/util diffNodes/diffConfigs): x and y never
 * count; for groups neither do w, h, style and nodes; for tabs only env and disabled
 * count. Comment nodes do nothing at runtime, so any change to them is cosmetic too.
 */
export function diffFlows(desiredFlows: readonly FlowNode[], observedFlows: readonly FlowNode[]): FlowsDiff {
  const desired = deployableFlows(desiredFlows);
  const observed = deployableFlows(observedFlows);
  if (desired.length === observed.length && contentHash(desired) === contentHash(observed)) return NO_FLOW_CHANGE;

  const newSide = side(desired);
  const oldSide = side(observed);
  const containers = new Map<string, ContainerDiff>();
  const container = (id: string, s: Side, other: Side): ContainerDiff => {
    let c = containers.get(id);
    if (!c) {
      const node = s.byId.get(id) ?? other.byId.get(id);
      c = {
        id,
        kind: id === '' ? 'config' : node?.type === 'subflow' ? 'subflow' : 'tab',
        label: containerLabel(id, node),
        change: 'changed',
        cosmetic: true,
        properties: [],
        added: [],
        removed: [],
        changed: [],
      };
      containers.set(id, c);
    }
    return c;
  };

  for (const node of desired) {
    const before = oldSide.byId.get(node.id);
    const isContainer = node.type === 'tab' || node.type === 'subflow';
    if (!before) {
      if (isContainer) {
        const c = container(node.id, newSide, oldSide);
        c.change = 'added';
        c.cosmetic = false;
      } else {
        const c = container(newSide.containerOf(node), newSide, oldSide);
        c.added.push(ref(node));
        if (node.type !== 'comment') c.cosmetic = false;
      }
      continue;
    }
    const properties = changedProperties(before, node);
    if (properties.length === 0) continue;
    const cosmetic = properties.every((p) => isCosmetic(node, before, p));
    if (isContainer) {
      const c = container(node.id, newSide, oldSide);
      c.properties = properties;
      if (!cosmetic) c.cosmetic = false;
    } else {
      const c = container(newSide.containerOf(node), newSide, oldSide);
      c.changed.push({ ...ref(node), properties, cosmetic });
      if (!cosmetic) c.cosmetic = false;
    }
  }
  for (const node of observed) {
    if (newSide.byId.has(node.id)) continue;
    if (node.type === 'tab' || node.type === 'subflow') {
      const c = container(node.id, oldSide, newSide);
      c.change = 'removed';
      c.cosmetic = false;
    } else {
      const c = container(oldSide.containerOf(node), oldSide, newSide);
      c.removed.push(ref(node));
      if (node.type !== 'comment') c.cosmetic = false;
    }
  }

  const list = [...containers.values()];
  if (list.length === 0) return NO_FLOW_CHANGE; // only order differed
  const counts = { added: 0, removed: 0, changed: 0 };
  for (const c of list) {
    counts.added += c.added.length;
    counts.removed += c.removed.length;
    counts.changed += c.changed.length;
  }
  // Tabs and subflows in the order the desired flows list them, removed ones after, config last.
  const rank = (c: ContainerDiff) => (c.kind === 'config' ? Number.MAX_SAFE_INTEGER : (newSide.order.get(c.id) ?? newSide.order.size + (oldSide.order.get(c.id) ?? 0)));
  list.sort((a, b) => rank(a) - rank(b));
  return { change: list.every((c) => c.cosmetic) ? 'cosmetic' : 'functional', containers: list, counts };
}

interface Side {
  byId: Map<string, FlowNode>;
  /** Position of each tab or subflow (and implicit tab) in the list. */
  order: Map<string, number>;
  containerOf(node: FlowNode): string;
}

function side(nodes: readonly FlowNode[]): Side {
  const byId = new Map<string, FlowNode>();
  const order = new Map<string, number>();
  for (const n of nodes) {
    if (!byId.has(n.id)) byId.set(n.id, n);
    if ((n.type === 'tab' || n.type === 'subflow') && !order.has(n.id)) order.set(n.id, order.size);
  }
  const containerOf = (node: FlowNode): string => {
    const z = typeof node.z === 'string' ? node.z : '';
    if (z === '') return '';
    if (!order.has(z)) order.set(z, order.size); // a tab Node-RED creates implicitly (selection export)
    return z;
  };
  return { byId, order, containerOf };
}

function containerLabel(id: string, node: FlowNode | undefined): string {
  if (id === '') return 'Configuration nodes';
  if (!node) return `implicit tab ${id}`;
  const text = typeof node.label === 'string' && node.label ? node.label : typeof node.name === 'string' && node.name ? node.name : id;
  return node.type === 'subflow' ? `subflow ${text}` : text;
}

function ref(node: FlowNode): NodeRef {
  const name = typeof node.name === 'string' && node.name ? node.name : undefined;
  return name ? { id: node.id, type: node.type, name } : { id: node.id, type: node.type };
}

function changedProperties(before: FlowNode, after: FlowNode): string[] {
  if (JSON.stringify(before) === JSON.stringify(after)) return [];
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  const out: string[] = [];
  for (const k of keys) {
    if (k === 'id') continue;
    if (canonicalJson(before[k]) !== canonicalJson(after[k])) out.push(k);
  }
  return out.sort();
}

const LAYOUT = new Set(['x', 'y']);
const GROUP_LAYOUT = new Set(['x', 'y', 'w', 'h', 'style', 'nodes']);
const TAB_FUNCTIONAL = new Set(['env', 'disabled']);

function isCosmetic(after: FlowNode, before: FlowNode, property: string): boolean {
  if (property === 'type' || after.type !== before.type) return false;
  switch (after.type) {
    case 'tab':
      return !TAB_FUNCTIONAL.has(property);
    case 'group':
      return GROUP_LAYOUT.has(property);
    case 'comment':
      return true;
    default:
      return LAYOUT.has(property);
  }
}

/** Runtime configuration changes; each needs a new Node-RED process. Values of secret-looking env vars are never shown. */
export function diffConfig(desired: RuntimeConfig, observed: Partial<RuntimeConfig> | undefined): ConfigChange[] {
  if (!observed) return [];
  const changes: ConfigChange[] = [];
  const scalar = (field: keyof RuntimeConfig) => {
    if (!(field in observed)) return;
    const a = observed[field];
    const b = desired[field];
    if (canonicalJson(a) !== canonicalJson(b)) changes.push({ field, ...(a !== undefined ? { from: show(a) } : {}), ...(b !== undefined ? { to: show(b) } : {}) });
  };
  scalar('runtime');
  scalar('nodeRedVersion');
  scalar('image');
  scalar('context');
  scalar('port');
  if (observed.env) mapDiff('env', observed.env, desired.env, changes, showEnv);
  if (observed.resources) mapDiff('resources', observed.resources, desired.resources, changes, show);
  if (observed.settings) mapDiff('settings', observed.settings, desired.settings, changes, show);
  // References only, never values: a changed reference is a new colour; a changed secret value is not seen.
  if (observed.credentials || desired.credentials) mapDiff('credentials', flatRefs(observed.credentials), flatRefs(desired.credentials), changes, (v) => showEnv(v, ''));
  return changes;
}

function mapDiff<T>(
  field: string,
  before: Record<string, T>,
  after: Record<string, T>,
  out: ConfigChange[],
  render: (value: T, key: string) => string,
): void {
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  for (const k of keys) {
    const a = before[k];
    const b = after[k];
    if (canonicalJson(a) === canonicalJson(b)) continue;
    out.push({ field: `${field}.${k}`, ...(a !== undefined ? { from: render(a, k) } : {}), ...(b !== undefined ? { to: render(b, k) } : {}) });
  }
}

function flatRefs(refs: RuntimeConfig['credentials']): Record<string, EnvValue> {
  const out: Record<string, EnvValue> = {};
  for (const [node, fields] of Object.entries(refs ?? {})) for (const [field, ref] of Object.entries(fields)) out[`${node}.${field}`] = ref;
  return out;
}

function showEnv(value: EnvValue, key: string): string {
  if (isSecretRef(value)) return 'fromEnv' in value ? `fromEnv ${value.fromEnv}` : `fromFile ${value.fromFile}`;
  if (SECRET_NAME.test(key)) return '(redacted)';
  return JSON.stringify(typeof value === 'string' ? maskUrlPassword(value) : value);
}

function show(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}
