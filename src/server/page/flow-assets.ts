/**
 * What the instance and plan pages load besides their HTML, all same-origin (nothing is
 * fetched from a CDN): FlowFuse's flow renderer as its package ships it (an ES module), the
 * renderer's stylesheet (the package's own, fetched as a file because the page's CSP lets no
 * script inject a <style>), and our script, which hands each drawing's data block to the
 * renderer and marks the changed nodes. With JavaScript off, the server's SVG sheets remain.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { runInNewContext } from 'node:vm';
import { CSS, sha256 } from './assets.js';
import { escapeHtml, SafeHtml } from './html.js';

/** The scope class the renderer's stylesheet is written for; its <link> carries the id the renderer looks for before it injects its own. */
export const RENDERER_SCOPE = 'flow-renderer';
export const RENDERER_STYLE_ID = `flow-renderer-css--${RENDERER_SCOPE}`;

export const ASSET_PATHS = {
  renderer: '/assets/flow-renderer.js',
  rendererCss: '/assets/flow-renderer.css',
  script: '/assets/flows.js',
} as const;

// For every element with data-flow-drawing: the JSON block it names is the drawing
// ({nodes, marks}); the renderer draws it, and every node it draws whose id is marked gets
// the class tower-<mark> (again after each tab switch: the renderer redraws the sheet).
export const FLOWS_SCRIPT = `import FlowRenderer from './flow-renderer.js';
function mark(container, marks) {
  container.querySelectorAll('g[data-node-id]').forEach(function (g) {
    var m = marks[g.getAttribute('data-node-id')];
    if (m && !g.classList.contains('tower-' + m)) g.classList.add('tower-' + m);
  });
  container.setAttribute('data-drawn', String(container.querySelectorAll('.flow_nodes g[data-node-id]').length));
}
document.querySelectorAll('[data-flow-drawing]').forEach(function (figure) {
  var block = document.getElementById(figure.getAttribute('data-flow-drawing'));
  var container = figure.querySelector('.flow-renderer');
  var fallback = figure.querySelector('.flow-static');
  if (!block || !container) return;
  try {
    var data = JSON.parse(block.textContent);
    container.hidden = false;
    new FlowRenderer().renderFlows(data.nodes, { container: container, scope: '${RENDERER_SCOPE}', gridLines: true, images: true, linkLines: true, labels: true, zoom: true, autoZoom: true, autoScroll: true });
    mark(container, data.marks);
    var pending = false;
    new MutationObserver(function () {
      if (pending) return;
      pending = true;
      requestAnimationFrame(function () { pending = false; mark(container, data.marks); });
    }).observe(container, { childList: true, subtree: true });
    if (fallback) fallback.hidden = true;
    figure.setAttribute('data-renderer', 'ok');
  } catch (err) {
    container.hidden = true;
    figure.setAttribute('data-renderer', 'failed');
    var note = document.createElement('p');
    note.className = 'muted';
    note.textContent = 'The interactive drawing failed (' + (err && err.message ? err.message : err) + '); the picture below is the server\\'s.';
    figure.insertBefore(note, fallback);
  }
});
`;

let renderer: { js: string; css: string } | undefined;

/** The renderer's module and stylesheet, read from the installed package once. */
export function rendererAssets(): { js: string; css: string } {
  if (renderer) return renderer;
  const require = createRequire(import.meta.url);
  const js = readFileSync(require.resolve('@flowfuse/flow-renderer/index.min.js'), 'utf8');
  // getStyles is pure (a template of the scope): run the package's script in a context of its
  // own (it defines window.FlowRenderer there) rather than import it into the server.
  const source = readFileSync(require.resolve('@flowfuse/flow-renderer/index.js'), 'utf8').replace(/export default FlowRenderer;?\s*$/, '');
  const sandbox = { window: {} as { FlowRenderer?: () => { getStyles(scope: string): string } } };
  runInNewContext(source, sandbox, { timeout: 5_000 });
  const css = sandbox.window.FlowRenderer!().getStyles(RENDERER_SCOPE);
  renderer = { js, css };
  return renderer;
}

/**
 * The one style attribute the renderer sets (its workspace's size, on the SVG it creates):
 * admitted by its hash alone ('unsafe-hashes' allows hashed attributes, nothing inline else).
 * The Chromium test fails on any CSP refusal, so a renderer that sets another one is noticed.
 */
export const RENDERER_SVG_STYLE = 'width:8000px; height:8000px;';

/**
 * CSP of the pages with drawings: the page's one hashed stylesheet, the renderer's one
 * hashed style attribute, and same-origin files;
 * scripts only from this origin (the renderer and ours), no inline script, no eval.
 */
export const FLOW_PAGE_CSP = [
  "default-src 'none'",
  `style-src ${sha256(CSS)} 'self' 'unsafe-hashes' ${sha256(RENDERER_SVG_STYLE)}`,
  "script-src 'self'",
  "connect-src 'self'",
  'img-src data:',
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** A data block: never executed (its type is not a script type), so the CSP need not allow it; drawingJson escapes `<`. */
export function drawingBlock(id: string, json: string): SafeHtml {
  return new SafeHtml(`<script type="application/json" id="${escapeHtml(id)}">${json}</script>`);
}
