/**
 * Flows as drawings, for the instance and plan pages: what a drawing needs of each node
 * (positions, wires, names — never code, settings or credentials: the page is public on its
 * port), bounded, with the nodes that differ from the other side marked.
 *
 * The browser draws it with FlowFuse's flow renderer (the page's script hands it this
 * projection); without JavaScript, flow-svg.ts draws the same projection server-side.
 */
import { diffFlows } from '../../core/diff.js';
import type { FlowNode } from '../../core/model.js';

/** Marks as the diff says them, from the drawn side: added (only here), removed (only on the other side; drawn as a ghost), changed. */
export type Mark = 'added' | 'removed' | 'changed';

export interface DrawPort {
  x: number;
  y: number;
  wires: { id: string; port?: number }[];
}

/** A node as the renderer reads it (Node-RED's own field names), cut down to what is drawn. */
export interface DrawNode {
  id: string;
  type: string;
  z?: string;
  name?: string;
  /** Tabs: their title. */
  label?: string;
  x?: number;
  y?: number;
  w?: number;
  h?: number;
  g?: string;
  wires?: string[][];
  links?: string[];
  /** Label shown (false: an icon-sized node). */
  l?: boolean;
  /** Disabled node. */
  d?: boolean;
  /** Tabs: disabled. */
  disabled?: boolean;
  /** Groups: their members and the few style keys the renderer reads. */
  nodes?: string[];
  style?: Record<string, string>;
  /** Subflow definitions: their input and output ports. */
  in?: DrawPort[];
  out?: DrawPort[];
}

export interface FlowDrawing {
  nodes: DrawNode[];
  marks: Record<string, Mark>;
  /** Nodes (tabs, subflows and config nodes aside) of the drawn side and the ghosts, before the limit. */
  total: number;
  /** Of those, how many are not in `nodes` (over DRAWING_LIMITS.nodes). */
  leftOut: number;
}

export const DRAWING_LIMITS = {
  /** Nodes handed to the renderer (and to the server-side picture) per page. */
  nodes: 2_000,
  nameChars: 120,
  idChars: 64,
  ports: 16,
  wiresPerPort: 64,
  groupMembers: 500,
} as const;

/** Group style keys the renderer reads, with values that can only be colours, numbers or a position. */
const STYLE_KEYS = new Set(['stroke', 'stroke-opacity', 'fill', 'fill-opacity', 'label', 'label-position', 'color']);
const STYLE_VALUE = /^[#a-z0-9(),. %-]{0,40}$/i;

/**
 * `shown` drawn, marked against `other` when given: nodes only in `other` come along as
 * ghosts (with their tab, when the tab is gone too), so one picture shows both sides.
 */
export function flowDrawing(shown: readonly FlowNode[], other?: readonly FlowNode[], limit: number = DRAWING_LIMITS.nodes): FlowDrawing {
  const marks: Record<string, Mark> = {};
  const ghosts: FlowNode[] = [];
  if (other) {
    const diff = diffFlows(shown, other);
    const otherById = new Map(other.filter(isNode).map((n) => [n.id, n]));
    for (const c of diff.containers) {
      if (c.kind === 'config') continue;
      if (c.change === 'added') marks[c.id] = 'added';
      if (c.change === 'removed') {
        marks[c.id] = 'removed';
        const tab = otherById.get(c.id);
        if (tab) ghosts.push(tab);
      }
      for (const n of c.added) marks[n.id] = 'added';
      for (const n of c.changed) marks[n.id] = 'changed';
      for (const n of c.removed) {
        marks[n.id] = 'removed';
        const node = otherById.get(n.id);
        if (node) ghosts.push(node);
      }
    }
  }
  const all = [...shown.filter(isNode), ...ghosts];
  const seen = new Set<string>();
  const nodes: DrawNode[] = [];
  let total = 0;
  let drawnCount = 0;
  for (const n of all) {
    if (seen.has(n.id)) continue;
    seen.add(n.id);
    // Tabs, subflows and groups hold nodes; they are not counted as nodes, nor limited.
    const container = n.type === 'tab' || n.type === 'subflow' || n.type === 'group';
    // Configuration nodes have no place on a sheet.
    if (!container && typeof n.z !== 'string') continue;
    if (!container) total++;
    if (!container && drawnCount >= limit) continue;
    if (!container) drawnCount++;
    nodes.push(project(n));
  }
  const placed = placeGroups(nodes);
  const kept = new Set(placed.map((n) => n.id));
  for (const id of Object.keys(marks)) if (!kept.has(id)) delete marks[id];
  const drawn = placed.filter((n) => n.type !== 'tab' && n.type !== 'subflow' && n.type !== 'group').length;
  return { nodes: placed, marks, total, leftOut: total - drawn };
}

/**
 * A group without its box (real exports have them: x and y but no w and h) gets the box of
 * its members, as the editor would draw it; one with neither box nor placed members is left
 * out (the renderer cannot draw a box of unknown size).
 */
function placeGroups(nodes: DrawNode[]): DrawNode[] {
  const broken = nodes.filter((n) => n.type === 'group' && (n.x === undefined || n.y === undefined || n.w === undefined || n.h === undefined));
  if (!broken.length) return nodes;
  const drop = new Set<string>();
  for (const g of broken) {
    const listed = new Set(g.nodes ?? []);
    const members = nodes.filter((n) => (n.g === g.id || listed.has(n.id)) && n.x !== undefined && n.y !== undefined && n.type !== 'group');
    if (!members.length) {
      drop.add(g.id);
      continue;
    }
    const x = Math.min(...members.map((n) => n.x! - 50)) - 20;
    const y = Math.min(...members.map((n) => n.y! - 15)) - 20;
    g.w = Math.max(...members.map((n) => n.x! + 50)) + 20 - x;
    g.h = Math.max(...members.map((n) => n.y! + 15)) + 20 - y;
    g.x = x;
    g.y = y;
  }
  return drop.size ? nodes.filter((n) => !drop.has(n.id)) : nodes;
}

function isNode(n: FlowNode): boolean {
  return n !== null && typeof n === 'object' && typeof n.id === 'string' && typeof n.type === 'string';
}

const str = (v: unknown, max: number): string | undefined => (typeof v === 'string' && v !== '' ? v.slice(0, max) : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? Math.round(Math.max(-1e6, Math.min(1e6, v))) : undefined);
const ids = (v: unknown, max: number): string[] => (Array.isArray(v) ? v.filter((t): t is string => typeof t === 'string').slice(0, max).map((t) => t.slice(0, DRAWING_LIMITS.idChars)) : []);

function project(n: FlowNode): DrawNode {
  const out: DrawNode = { id: n.id.slice(0, DRAWING_LIMITS.idChars), type: n.type.slice(0, DRAWING_LIMITS.nameChars) };
  const set = <K extends keyof DrawNode>(k: K, v: DrawNode[K] | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set('z', str(n.z, DRAWING_LIMITS.idChars));
  set('name', str(n.name, DRAWING_LIMITS.nameChars) ?? fallbackName(n));
  set('label', str(n.label, DRAWING_LIMITS.nameChars));
  set('x', num(n.x));
  set('y', num(n.y));
  set('w', num(n.w));
  set('h', num(n.h));
  set('g', str(n.g, DRAWING_LIMITS.idChars));
  if (typeof n.l === 'boolean') out.l = n.l;
  if (n.d === true) out.d = true;
  if (n.disabled === true) out.disabled = true;
  if (Array.isArray(n.wires)) out.wires = n.wires.slice(0, DRAWING_LIMITS.ports).map((port) => ids(port, DRAWING_LIMITS.wiresPerPort));
  if (Array.isArray(n.links) && n.type.startsWith('link')) out.links = ids(n.links, DRAWING_LIMITS.wiresPerPort);
  if (n.type === 'group') {
    out.nodes = ids(n.nodes, DRAWING_LIMITS.groupMembers);
    const style = n.style && typeof n.style === 'object' ? (n.style as Record<string, unknown>) : {};
    out.style = {};
    for (const [k, v] of Object.entries(style)) {
      if (STYLE_KEYS.has(k) && (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') && STYLE_VALUE.test(String(v))) out.style[k] = String(v);
    }
  }
  // The renderer reads a subflow definition's ports (and fails without them).
  if (n.type === 'subflow') {
    out.in = ports(n.in, false);
    out.out = ports(n.out, true);
  }
  return out;
}

/**
 * What the editor shows for an unnamed node whose label the renderer would build from
 * settings the page does not ship ("[undefined] undefined" otherwise): built here, from the
 * few settings that are no secret (an http in's method and path).
 */
function fallbackName(n: FlowNode): string | undefined {
  switch (n.type) {
    case 'http in':
      return `[${str(n.method, 10) ?? 'get'}] ${str(n.url, DRAWING_LIMITS.nameChars) ?? ''}`.slice(0, DRAWING_LIMITS.nameChars);
    case 'http response':
      return typeof n.statusCode === 'string' && /^\d{3}$/.test(n.statusCode) ? `http (${n.statusCode})` : 'http';
    case 'inject':
      return n.payloadType === 'date' ? 'timestamp' : 'inject';
    case 'change':
    case 'catch':
    case 'link call':
      return n.type;
    default:
      return undefined;
  }
}

function ports(v: unknown, numbered: boolean): DrawPort[] {
  if (!Array.isArray(v)) return [];
  return v.slice(0, DRAWING_LIMITS.ports).map((p: unknown) => {
    const o = p && typeof p === 'object' ? (p as Record<string, unknown>) : {};
    const wires = Array.isArray(o.wires) ? o.wires.slice(0, DRAWING_LIMITS.wiresPerPort) : [];
    return {
      x: num(o.x) ?? 0,
      y: num(o.y) ?? 0,
      wires: wires.flatMap((w: unknown) => {
        const r = w && typeof w === 'object' ? (w as Record<string, unknown>) : {};
        if (typeof r.id !== 'string') return [];
        return [numbered && typeof r.port === 'number' ? { id: r.id.slice(0, DRAWING_LIMITS.idChars), port: num(r.port) ?? 0 } : { id: r.id.slice(0, DRAWING_LIMITS.idChars) }];
      }),
    };
  });
}

/**
 * The drawing as JSON for a `<script type="application/json">` data block: `<` is written
 * \u003c (and & and the line separators escaped), so no text in it can end the block.
 */
export function drawingJson(d: FlowDrawing): string {
  return JSON.stringify({ nodes: d.nodes, marks: d.marks }).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
