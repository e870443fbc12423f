/**
 * A flow drawing as server-rendered SVG, one sheet per tab or subflow, for pages read without
 * JavaScript: each node a box at its x/y (Node-RED's x/y is the middle of the node), wires as
 * curves from the output port to the input, link nodes joined by dashed lines, groups as
 * boxes behind. Marked nodes carry their mark as a class and in words (<title>), never in
 * colour alone. Bounded: at most SHEET_LIMITS of everything, and each sheet says what it left out.
 */
import { html, plural, type SafeHtml } from './html.js';
import type { DrawNode, FlowDrawing, Mark } from './flows.js';

export const SHEET_LIMITS = {
  sheets: 12,
  nodesPerSheet: 400,
  wiresPerSheet: 800,
  /** Characters of a label drawn in a box. */
  labelChars: 32,
} as const;

export interface MarkWords {
  added: string;
  removed: string;
  changed: string;
}

interface Box {
  node: DrawNode;
  x: number;
  y: number;
  w: number;
  h: number;
  outputs: number;
}

const ICON_ONLY = new Set(['link in', 'link out', 'junction']);

function labelOf(n: DrawNode): string {
  return n.name ?? n.label ?? n.type;
}

function box(n: DrawNode): Box | undefined {
  if (n.x === undefined || n.y === undefined) return undefined;
  const outputs = n.wires?.length ?? 0;
  const small = n.l === false || (n.l === undefined && ICON_ONLY.has(n.type));
  const text = Math.min(labelOf(n).length, SHEET_LIMITS.labelChars);
  const w = n.type === 'junction' ? 10 : small ? 30 : Math.max(100, Math.round(text * 7.2 + 40));
  const h = n.type === 'junction' ? 10 : Math.max(30, outputs * 13 + 4);
  return { node: n, x: n.x - w / 2, y: n.y - h / 2, w, h, outputs };
}

function clip(text: string): string {
  return text.length > SHEET_LIMITS.labelChars ? `${text.slice(0, SHEET_LIMITS.labelChars - 1)}…` : text;
}

/** Every tab and subflow with nodes, as an SVG sheet each; nodes of unknown tabs on a sheet of their own. */
export function flowSheets(d: FlowDrawing, words: MarkWords): SafeHtml {
  const containers = d.nodes.filter((n) => n.type === 'tab' || n.type === 'subflow');
  const byZ = new Map<string, DrawNode[]>();
  for (const n of d.nodes) {
    if (n.type === 'tab' || n.type === 'subflow' || n.z === undefined) continue;
    const list = byZ.get(n.z) ?? [];
    list.push(n);
    byZ.set(n.z, list);
  }
  const order = [...containers.map((c) => c.id), ...[...byZ.keys()].filter((z) => !containers.some((c) => c.id === z))];
  const shown = order.slice(0, SHEET_LIMITS.sheets);
  const hidden = order.slice(SHEET_LIMITS.sheets);
  const hiddenNodes = hidden.reduce((sum, z) => sum + (byZ.get(z)?.length ?? 0), 0);
  return html`${shown.map((z) => sheet(containers.find((c) => c.id === z), z, byZ.get(z) ?? [], d.marks, words))}
${hidden.length ? html`<p class="muted" data-left-out="sheets">${plural(hidden.length, 'more tab')} with ${plural(hiddenNodes, 'node')} not drawn here.</p>` : ''}
${d.leftOut ? html`<p class="muted" data-left-out="nodes">${plural(d.leftOut, 'node')} of ${d.total.toLocaleString('en-US')} not drawn: over the page's limit.</p>` : ''}`;
}

function sheet(container: DrawNode | undefined, id: string, members: DrawNode[], marks: Record<string, Mark>, words: MarkWords): SafeHtml {
  const title = container ? `${container.type === 'subflow' ? 'Subflow ' : ''}${container.label ?? container.name ?? id}` : `Tab ${id}`;
  const groups = members.filter((n) => n.type === 'group');
  const boxes: Box[] = [];
  let unplaced = 0;
  for (const n of members) {
    if (n.type === 'group') continue;
    if (boxes.length >= SHEET_LIMITS.nodesPerSheet) continue;
    const b = box(n);
    if (b) boxes.push(b);
    else unplaced++;
  }
  const nodeCount = members.filter((n) => n.type !== 'group').length;
  const notDrawn = nodeCount - boxes.length - unplaced;
  const byId = new Map(boxes.map((b) => [b.node.id, b]));
  const edges: SafeHtml[] = [];
  let wiresLeft = 0;
  for (const b of boxes) {
    b.node.wires?.forEach((targets, port) => {
      for (const t of targets) {
        const to = byId.get(t);
        if (!to) continue;
        if (edges.length >= SHEET_LIMITS.wiresPerSheet) {
          wiresLeft++;
          continue;
        }
        const sx = b.x + b.w;
        const sy = b.y + b.h / 2 + (port - (b.outputs - 1) / 2) * 13;
        const tx = to.x;
        const ty = to.y + to.h / 2;
        const dx = Math.max(30, Math.abs(tx - sx) * 0.5);
        const ghost = marks[b.node.id] === 'removed' || marks[to.node.id] === 'removed';
        edges.push(html`<path class="wire${ghost ? ' wire-removed' : ''}" d="M${sx} ${sy}C${sx + dx} ${sy} ${tx - dx} ${ty} ${tx} ${ty}"/>`);
      }
    });
    if (b.node.type === 'link out' || b.node.type === 'link call') {
      for (const t of b.node.links ?? []) {
        const to = byId.get(t);
        if (to && edges.length < SHEET_LIMITS.wiresPerSheet) edges.push(html`<path class="wire wire-link" d="M${b.x + b.w} ${b.y + b.h / 2}L${to.x} ${to.y + to.h / 2}"/>`);
      }
    }
  }
  // The sheet's extent: every box and group, with a margin.
  const rects = [...boxes.map((b) => [b.x, b.y, b.w, b.h] as const), ...groups.filter((g) => g.x !== undefined && g.y !== undefined).map((g) => [g.x!, g.y!, g.w ?? 0, g.h ?? 0] as const)];
  const minX = Math.min(0, ...rects.map((r) => r[0])) - 20;
  const minY = Math.min(0, ...rects.map((r) => r[1])) - 20;
  const maxX = Math.max(200, ...rects.map((r) => r[0] + r[2])) + 20;
  const maxY = Math.max(60, ...rects.map((r) => r[1] + r[3])) + 20;
  const width = Math.round(maxX - minX);
  const height = Math.round(maxY - minY);
  const changed = members.filter((n) => marks[n.id]).length;
  const tabMark = marks[id];
  const left = [notDrawn ? `${plural(notDrawn, 'node')} over the sheet's limit of ${SHEET_LIMITS.nodesPerSheet}` : '', unplaced ? `${plural(unplaced, 'node')} without a position` : '', wiresLeft ? plural(wiresLeft, 'wire') : ''].filter(Boolean);
  return html`<figure class="sheet${tabMark ? ` sheet-${tabMark}` : ''}" data-tab="${id}" data-nodes="${boxes.length}">
<figcaption><strong>${title}</strong> <span class="muted">${plural(nodeCount, 'node')}${changed ? html`, ${changed} marked` : ''}${tabMark ? html` — ${words[tabMark]}` : ''}</span></figcaption>
<svg class="flow-svg" viewBox="${minX} ${minY} ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${title}: ${plural(boxes.length, 'node')} drawn">
${groups.map((g) => (g.x === undefined || g.y === undefined ? '' : html`<g class="group${marks[g.id] ? ` mark-${marks[g.id]}` : ''}" data-node-id="${g.id}"><title>group ${labelOf(g)}</title><rect x="${g.x}" y="${g.y}" width="${g.w ?? 0}" height="${g.h ?? 0}" rx="4"/>${g.name ? html`<text x="${g.x + 6}" y="${g.y + 14}">${clip(g.name)}</text>` : ''}</g>`))}
${edges}
${boxes.map((b) => {
    const mark = marks[b.node.id];
    const text = labelOf(b.node);
    const small = b.w <= 30;
    return html`<g class="node${mark ? ` mark-${mark}` : ''}${b.node.d ? ' node-disabled' : ''}" data-node-id="${b.node.id}" data-name="${text}"${mark ? html` data-mark="${mark}"` : ''}><title>${text} (${b.node.type})${mark ? html` — ${words[mark]}` : ''}</title><rect x="${b.x}" y="${b.y}" width="${b.w}" height="${b.h}" rx="5"/>${small ? '' : html`<text x="${b.x + 10}" y="${b.y + b.h / 2 + 4}">${clip(text)}</text>`}${mark ? html`<text class="mark-sign" x="${b.x + b.w - 4}" y="${b.y - 3}">${MARK_SIGN[mark]}</text>` : ''}</g>`;
  })}
</svg>
${left.length ? html`<p class="muted small" data-left-out="sheet">Not drawn: ${left.join('; ')}.</p>` : ''}
</figure>`;
}

const MARK_SIGN: Record<Mark, string> = { added: '+', removed: '−', changed: '~' };

/** The legend under a drawing: each mark with its sign and its words on this page. */
export function markLegend(words: MarkWords): SafeHtml {
  return html`<ul class="legend">${(['added', 'changed', 'removed'] as const).map((m) => html`<li><span class="swatch mark-${m}" aria-hidden="true">${MARK_SIGN[m]}</span>${words[m]}</li>`)}</ul>`;
}
