/**
 * Flow diagrams for pull requests: per changed tab (or subflow), a Mermaid flowchart that
 * GitHub draws by itself — the tab's nodes with their names and types, their wires, groups
 * as boxes, added nodes green, removed red, changed amber (with the properties that changed),
 * unchanged context grey. A big tab shows only its changed nodes and their neighbours one
 * wire away, and says how many it left out.
 *
 * Pure. What GitHub would refuse is avoided by construction, and the tests parse every
 * diagram with Mermaid itself (test/core/mermaid.test.ts):
 *   - only syntax Mermaid has had for years (GitHub's copy may lag the npm release);
 *   - within Mermaid's defaults: maxTextSize 50,000 (we stay under DIAGRAM_LIMITS.maxChars)
 *     and maxEdges 500 (DIAGRAM_LIMITS.maxEdges);
 *   - Mermaid ids are ours (n0, g0, …), never a Node-RED id; every label is a quoted string
 *     whose risky characters are entity codes (#35; for #), so a node name cannot end the
 *     string, open HTML, start a Markdown string or an %%{init}%% directive, or close the
 *     ```mermaid fence around it (a backtick is #96;).
 */
import type { ContainerDiff, InstanceDiff } from './diff.js';
import type { FlowNode } from './model.js';

/** What a diagram needs of a node; everything else (code, credentials, settings) stays out of the report. */
export interface SketchNode {
  id: string;
  type: string;
  z: string;
  name?: string;
  /** The group the node is in. */
  g?: string;
  wires?: string[][];
  /** link out / link call: the link in nodes it reaches. */
  links?: string[];
}

/** Both sides of an instance, only the nodes of its changed tabs and subflows. */
export interface InstanceFlows {
  desired: SketchNode[];
  observed: SketchNode[];
}

/** Per instance name. */
export type DiagramFlows = Record<string, InstanceFlows>;

export const DIAGRAM_LIMITS = {
  /** Mermaid's default maxTextSize is 50,000; three diagrams fit one GitHub comment. */
  maxChars: 20_000,
  /** Mermaid's default maxEdges is 500. */
  maxEdges: 400,
  maxNodes: 120,
  /** A tab with at most this many nodes is drawn whole; a bigger one as the changes and their neighbours. */
  wholeTab: 40,
  /** Characters of a name or type shown in a node. */
  labelChars: 48,
};
export type DiagramLimits = typeof DIAGRAM_LIMITS;

export interface TabDiagram {
  /** The flowchart, without the ```mermaid fence. */
  text: string;
  /** Mermaid id → Node-RED id of every node and group drawn. */
  ids: Record<string, string>;
  /** Nodes and groups drawn, and in the tab. */
  drawn: number;
  total: number;
  /** Changed (added, removed, changed) nodes that could not be drawn; the text lists them. */
  leftOutChanged: number;
  /** Only the changed nodes and their neighbours are drawn. */
  neighbourhood: boolean;
}

/** The flows the diagrams of these diffs are drawn from, cut down to their changed tabs. */
export function diagramFlows(
  diffs: readonly InstanceDiff[],
  desired: readonly { name: string; flowList: readonly FlowNode[] }[],
  observed: readonly { name: string; flows?: readonly FlowNode[] | null }[],
): DiagramFlows {
  const want = new Map(desired.map((d) => [d.name, d.flowList]));
  const live = new Map(observed.map((o) => [o.name, o.flows ?? []]));
  const out: DiagramFlows = {};
  for (const d of diffs) {
    if (d.action === 'unchanged') continue;
    const tabs = new Set(d.containers.filter((c) => c.kind !== 'config').map((c) => c.id));
    if (tabs.size === 0) continue;
    out[d.name] = { desired: sketch(want.get(d.name) ?? [], tabs), observed: sketch(live.get(d.name) ?? [], tabs) };
  }
  return out;
}

/** The first node of each id (as the diff counts them), when it is in one of the tabs. */
function sketch(nodes: readonly FlowNode[], tabs: ReadonlySet<string>): SketchNode[] {
  const seen = new Set<string>();
  const out: SketchNode[] = [];
  for (const n of nodes) {
    if (n === null || typeof n !== 'object' || typeof n.id !== 'string' || seen.has(n.id)) continue;
    seen.add(n.id);
    if (typeof n.z !== 'string' || !tabs.has(n.z)) continue;
    const s: SketchNode = { id: n.id, type: typeof n.type === 'string' ? n.type : '', z: n.z };
    if (typeof n.name === 'string' && n.name) s.name = n.name.slice(0, 200);
    if (typeof n.g === 'string') s.g = n.g;
    if (Array.isArray(n.wires)) s.wires = n.wires.map((port) => (Array.isArray(port) ? port.filter((t): t is string => typeof t === 'string') : []));
    if (Array.isArray(n.links) && (n.type === 'link out' || n.type === 'link call')) s.links = n.links.filter((t): t is string => typeof t === 'string');
    out.push(s);
  }
  return out;
}

type Mark = 'added' | 'removed' | 'changed' | 'context';

interface Member {
  node: SketchNode;
  /** The observed version, when it is in this tab. */
  old?: SketchNode;
  mark: Mark;
  properties?: string[];
  group: boolean;
}

interface Edge {
  from: string;
  to: string;
  /** Output port, -1 for a link node's virtual wire. */
  port: number;
  inNew: boolean;
  inOld: boolean;
}

/** The diagram of one changed tab or subflow; undefined for configuration nodes or when none of its nodes is known. */
export function tabDiagram(c: ContainerDiff, flows: InstanceFlows, limits: DiagramLimits = DIAGRAM_LIMITS): TabDiagram | undefined {
  if (c.kind === 'config') return undefined;
  const marks = new Map<string, { mark: Mark; properties?: string[] }>();
  for (const n of c.added) marks.set(n.id, { mark: 'added' });
  for (const n of c.removed) marks.set(n.id, { mark: 'removed' });
  for (const n of c.changed) marks.set(n.id, { mark: 'changed', properties: n.properties });

  const desiredIds = new Set(flows.desired.map((n) => n.id));
  const oldById = new Map(flows.observed.filter((n) => n.z === c.id).map((n) => [n.id, n]));
  const members = new Map<string, Member>();
  const add = (node: SketchNode, old: SketchNode | undefined) => {
    const m = marks.get(node.id);
    members.set(node.id, { node, ...(old ? { old } : {}), mark: m?.mark ?? 'context', ...(m?.properties ? { properties: m.properties } : {}), group: node.type === 'group' });
  };
  for (const n of flows.desired) if (n.z === c.id) add(n, oldById.get(n.id));
  // Removed nodes only: one that moved to another tab is drawn there.
  for (const n of flows.observed) if (n.z === c.id && !desiredIds.has(n.id)) add(n, n);
  if (members.size === 0) return undefined;

  const edges = wiresOf(members);
  const all = [...members.values()];
  const marked = all.filter((m) => m.mark !== 'context');
  const missing = [...marks.keys()].filter((id) => !members.has(id)).length;
  const neighbourhood = all.length > limits.wholeTab;
  let order: Member[];
  if (!neighbourhood) {
    order = [...marked, ...all.filter((m) => m.mark === 'context')];
  } else {
    const isMarked = (id: string) => members.get(id)!.mark !== 'context';
    const near = new Set<string>();
    for (const e of edges.values()) {
      if (isMarked(e.from)) near.add(e.to);
      if (isMarked(e.to)) near.add(e.from);
    }
    order = [...marked, ...all.filter((m) => m.mark === 'context' && near.has(m.node.id))];
  }
  // Fewer nodes until the text and the wires fit Mermaid's limits; the changed ones come first.
  let k = Math.min(order.length, limits.maxNodes);
  for (;;) {
    const chosen = new Set(order.slice(0, k).map((m) => m.node.id));
    const out = emit(all, chosen, edges, members, limits);
    if ((out.text.length <= limits.maxChars && out.edges <= limits.maxEdges) || k <= 1) {
      const drawn = Object.keys(out.ids).length;
      const markedDrawn = Object.values(out.ids).filter((id) => members.get(id)!.mark !== 'context').length;
      return { text: out.text, ids: out.ids, drawn, total: all.length, leftOutChanged: marked.length - markedDrawn + missing, neighbourhood };
    }
    k = Math.max(1, Math.floor(k * 0.8));
  }
}

/** Wires (and link nodes' virtual wires) between nodes of the tab, on either side. */
function wiresOf(members: ReadonlyMap<string, Member>): Map<string, Edge> {
  const edges = new Map<string, Edge>();
  const put = (from: string, to: string, port: number, side: 'inNew' | 'inOld') => {
    const target = members.get(to);
    if (!target || target.group) return;
    const key = `${port}\u0000${from}\u0000${to}`;
    const e = edges.get(key) ?? { from, to, port, inNew: false, inOld: false };
    e[side] = true;
    edges.set(key, e);
  };
  const from = (n: SketchNode | undefined, side: 'inNew' | 'inOld') => {
    if (!n) return;
    n.wires?.forEach((targets, port) => targets.forEach((t) => put(n.id, t, port, side)));
    n.links?.forEach((t) => put(n.id, t, -1, side));
  };
  for (const m of members.values()) {
    if (m.group) continue;
    if (m.mark !== 'removed') from(m.node, 'inNew');
    from(m.old, 'inOld');
  }
  return edges;
}

const CLASS_DEFS = [
  '  classDef added fill:#dafbe1,stroke:#1a7f37,color:#0f3d1c,stroke-width:2px',
  '  classDef removed fill:#ffebe9,stroke:#cf222e,color:#67060c,stroke-width:2px,stroke-dasharray:5 3',
  '  classDef changed fill:#fff8c5,stroke:#9a6700,color:#3b2300,stroke-width:2px',
  '  classDef context fill:#f6f8fa,stroke:#d0d7de,color:#6e7781',
  '  classDef grp fill:none,stroke:#8c959f,color:#6e7781,stroke-dasharray:3 3',
];

const LINK_STYLE = {
  added: 'stroke:#1a7f37,stroke-width:2px',
  removed: 'stroke:#cf222e,stroke-width:2px',
  context: 'stroke:#8c959f',
};

const SYMBOL: Record<Mark, string> = { added: '+ ', removed: '− ', changed: '~ ', context: '' };

function emit(all: readonly Member[], chosen: ReadonlySet<string>, edges: ReadonlyMap<string, Edge>, members: ReadonlyMap<string, Member>, limits: DiagramLimits): { text: string; ids: Record<string, string>; edges: number } {
  // The groups drawn: the chosen ones and every group around a chosen node.
  const drawn = new Set(chosen);
  for (const id of chosen) {
    const seen = new Set<string>();
    for (let g = members.get(id)!.node.g; g !== undefined && !seen.has(g) && members.get(g)?.group; g = members.get(g)!.node.g) {
      seen.add(g);
      drawn.add(g);
    }
  }
  const mid = new Map<string, string>();
  const children = new Map<string, Member[]>();
  for (const m of all) {
    if (!drawn.has(m.node.id)) continue;
    mid.set(m.node.id, `${m.group ? 'g' : 'n'}${mid.size}`);
    const parent = m.node.g !== undefined && m.node.g !== m.node.id && drawn.has(m.node.g) && members.get(m.node.g)!.group ? m.node.g : '';
    const list = children.get(parent) ?? [];
    list.push(m);
    children.set(parent, list);
  }
  const lines = ['flowchart LR', ...CLASS_DEFS];
  const emitted = new Set<string>();
  const place = (m: Member, depth: number) => {
    if (emitted.has(m.node.id)) return;
    emitted.add(m.node.id);
    const indent = '  '.repeat(Math.min(depth, 8) + 1);
    if (!m.group) {
      lines.push(`${indent}${mid.get(m.node.id)}${shape(m, limits)}`);
      return;
    }
    lines.push(`${indent}subgraph ${mid.get(m.node.id)} ["${SYMBOL[m.mark]}${label(m.node.name ?? 'group', limits.labelChars)}"]`);
    for (const child of children.get(m.node.id) ?? []) place(child, depth + 1);
    lines.push(`${indent}end`);
  };
  for (const m of children.get('') ?? []) place(m, 0);
  // Groups nested in a cycle (a defective file) have no way down from the top: drawn at the top.
  for (const m of all) if (drawn.has(m.node.id)) place(m, 0);

  const styles: Record<'added' | 'removed' | 'context', number[]> = { added: [], removed: [], context: [] };
  let count = 0;
  for (const e of edges.values()) {
    const a = mid.get(e.from);
    const b = mid.get(e.to);
    if (!a || !b || !chosen.has(e.from) || !chosen.has(e.to)) continue;
    const kind = e.inNew && e.inOld ? 'same' : e.inNew ? 'added' : 'removed';
    const source = members.get(e.from)!;
    const ports = Math.max(source.node.wires?.length ?? 0, source.old?.wires?.length ?? 0);
    const arrow = kind === 'removed' ? '-.-x' : e.port < 0 ? '-.->' : kind === 'added' ? '==>' : '-->';
    lines.push(`  ${a} ${arrow}${e.port >= 0 && ports > 1 ? `|${e.port + 1}|` : ''} ${b}`);
    styles[kind === 'same' ? 'context' : kind].push(count++);
  }
  for (const [kind, list] of Object.entries(styles)) if (list.length) lines.push(`  linkStyle ${list.join(',')} ${LINK_STYLE[kind as keyof typeof LINK_STYLE]}`);

  const byClass = new Map<string, string[]>();
  for (const m of all) {
    const id = mid.get(m.node.id);
    if (!id) continue;
    const cls = m.group && m.mark === 'context' ? 'grp' : m.mark;
    byClass.set(cls, [...(byClass.get(cls) ?? []), id]);
  }
  for (const [cls, ids] of byClass) lines.push(`  class ${ids.join(',')} ${cls}`);
  const ids = Object.fromEntries([...mid].map(([id, m]) => [m, id]));
  return { text: lines.join('\n') + '\n', ids, edges: count };
}

/** The node in its Node-RED-like shape: name, type, and for a changed node what changed. */
function shape(m: Member, limits: DiagramLimits): string {
  const { name, type } = m.node;
  const rows = [`${SYMBOL[m.mark]}${label(name ?? (type || 'node'), limits.labelChars)}`];
  if (name && type) rows.push(label(type, limits.labelChars));
  if (m.mark === 'changed' && m.properties?.length) {
    const shown = m.properties.slice(0, 4).join(', ');
    rows.push(label(`changed: ${shown}${m.properties.length > 4 ? `, +${m.properties.length - 4}` : ''}`, limits.labelChars));
  }
  const text = `"${rows.join('<br>')}"`;
  if (type === 'junction') return `((${text}))`;
  if (type === 'link in' || type === 'link out' || type === 'link call') return `([${text}])`;
  if (type === 'comment') return `>${text}]`;
  if (type.startsWith('subflow:')) return `[[${text}]]`;
  return `(${text})`;
}

/** Characters that mean something to Mermaid, HTML or Markdown, as Mermaid's entity codes. */
const RISKY = /["#&<>`%{}\\;|[\]()]/g;
// Control characters and bidirectional overrides do not belong in a drawing.
// eslint-disable-next-line no-control-regex
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]+/g;

/** A node name as the text of a quoted Mermaid label: one line, at most `max` characters, never empty. */
export function label(text: string, max: number): string {
  const flat = text.replace(INVISIBLE, ' ').replace(/\s+/g, ' ').trim();
  const chars = Array.from(flat).map((ch) => (ch.length === 1 && ch >= '\ud800' && ch <= '\udfff' ? '\ufffd' : ch));
  const cut = chars.length > max ? [...chars.slice(0, max - 1), '…'] : chars;
  const out = cut.join('').replace(RISKY, (ch) => `#${ch.charCodeAt(0)};`);
  return out === '' ? ' ' : out;
}
