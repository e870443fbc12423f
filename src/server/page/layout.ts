/**
 * The document around the instance and plan pages: the fleet page's stylesheet (inline,
 * hashed), the renderer's stylesheet and the scripts as same-origin files (flow-assets.ts).
 * Only the drawings need the scripts; everything else reads the same without them.
 */
import { CSS } from './assets.js';
import { ASSET_PATHS, drawingBlock, RENDERER_STYLE_ID } from './flow-assets.js';
import { drawingJson, type FlowDrawing } from './flows.js';
import { flowSheets, markLegend, type MarkWords } from './flow-svg.js';
import { escapeHtml, html, type SafeHtml } from './html.js';

export function flowPageDocument(title: string, main: SafeHtml, withDrawings: boolean): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>${escapeHtml(title)}</title>
<link rel="icon" href="data:,">
<style>${CSS}</style>
${withDrawings ? `<link rel="stylesheet" id="${RENDERER_STYLE_ID}" href="${ASSET_PATHS.rendererCss}">
<script type="module" src="${ASSET_PATHS.script}"></script>` : ''}
</head>
<body>
<header class="topbar">
<div class="brand"><a class="inst-link" href="/">RedForge Tower</a> <span class="muted">· status (read-only)</span></div>
</header>
${main.html}
<footer class="foot">Read-only by design: change the fleet through Git.</footer>
</body>
</html>
`;
}

/** The renderer's box, as tall as the tallest sheet needs (a class: the CSP admits no style attribute). */
function heightClass(d: FlowDrawing): 's' | 'm' | 'l' {
  const ys = new Map<string, { min: number; max: number }>();
  for (const n of d.nodes) {
    if (n.z === undefined || n.y === undefined) continue;
    const r = ys.get(n.z) ?? { min: Infinity, max: -Infinity };
    r.min = Math.min(r.min, n.y);
    r.max = Math.max(r.max, n.y + (n.h ?? 0));
    ys.set(n.z, r);
  }
  const tallest = Math.max(0, ...[...ys.values()].map((r) => r.max - r.min));
  return tallest <= 160 ? 's' : tallest <= 360 ? 'm' : 'l';
}

/**
 * One drawing: the renderer's container (shown by the script), the server's SVG sheets
 * (what shows without JavaScript), the legend, and the data block the script reads.
 */
export function drawingFigure(id: string, d: FlowDrawing, words: MarkWords, caption: SafeHtml | string): SafeHtml {
  const marked = Object.keys(d.marks).length;
  return html`<figure class="drawing" data-flow-drawing="${id}-data" id="${id}" data-total="${d.total}">
<figcaption>${caption}</figcaption>
<div class="flow-renderer fr-${heightClass(d)}" hidden aria-label="Flows, drawn as the Node-RED editor lays them out"></div>
${marked ? markLegend(words) : ''}
<div class="flow-static">${flowSheets(d, words)}</div>
${drawingBlock(`${id}-data`, drawingJson(d))}
</figure>`;
}
