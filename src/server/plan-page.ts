/**
 * /revisions/<sha>: what a revision changes, drawn — per instance, the revision's flows as the
 * editor lays them out, with what it adds, changes and removes against what ran (when its
 * rollout started, or now) marked. The page a pull request's comment and check run link to.
 * Pure rendering: the model in, one HTML document out (see flow-views.ts for the model).
 */
import type { Diagnostic } from '../core/diagnostics.js';
import type { FlowNode } from '../core/model.js';
import type { CommitInfo } from '../core/status.js';
import { DRAWING_LIMITS, flowDrawing } from './page/flows.js';
import { badge, firstLine, html, plural, revCode, shortRev, type RenderOptions, type SafeHtml, type Tone } from './page/html.js';
import { drawingFigure, flowPageDocument } from './page/layout.js';

export type PlanAction = 'create' | 'update' | 'delete' | 'unchanged';

export interface PlanPageModel {
  version: string;
  fleet?: string;
  revision: string;
  commit?: CommitInfo;
  /** Where the revision stands: rolling-out, rejected, failed, rolled-back, applied, newest… in words. */
  state: string;
  tone: Tone;
  error?: string;
  diagnostics: Diagnostic[];
  /** What the revision is drawn against. */
  against: 'rollout-start' | 'live';
  instances: { name: string; action: PlanAction; desired: FlowNode[]; live: FlowNode[] | null; progress?: string }[];
}

/** How a plan reads: the revision's side is drawn. */
export const PLAN_WORDS = { added: 'added by this revision', changed: 'changed by this revision', removed: 'removed by this revision' };

/** Nodes all drawings of a plan page share (each instance's drawing gets what is left, at most DRAWING_LIMITS.nodes). */
export const PLAN_PAGE_NODES = 6_000;
/** Instances drawn on one plan page; the others are listed. */
export const PLAN_PAGE_DRAWINGS = 12;

const ACTION: Record<PlanAction, [Tone, string, string]> = {
  create: ['ok', '+', 'created'],
  update: ['warn', '~', 'updated'],
  delete: ['bad', '−', 'deleted'],
  unchanged: ['neutral', '=', 'unchanged'],
};

function header(m: PlanPageModel): SafeHtml {
  const c = m.commit;
  return html`<section class="card" aria-labelledby="plan-title">
<p class="crumbs"><a href="/">${m.fleet ?? 'Fleet'}</a> › revision</p>
<div class="title-row"><h1 id="plan-title">Revision ${shortRev(m.revision)}</h1> ${badge(m.tone, m.tone === 'ok' ? '✓' : m.tone === 'bad' ? '✕' : m.tone === 'info' ? '↻' : '•', m.state)}</div>
${c ? html`<p class="summary"><span class="message">${firstLine(c.message)}</span> <span class="muted">by ${c.author}</span></p>` : ''}
<dl class="facts"><div class="wide"><dt>Revision</dt><dd>${revCode(m.revision)} <code class="loc">${m.revision}</code></dd></div>
<div class="wide"><dt>Drawn against</dt><dd>${m.against === 'rollout-start' ? 'what ran when its rollout started' : 'what runs now'}</dd></div></dl>
${m.error ? html`<div class="alert tone-bad"><span class="error-text">${m.error}</span></div>` : ''}
</section>`;
}

function diagnosticsSection(m: PlanPageModel): SafeHtml {
  if (!m.diagnostics.length) return html``;
  return html`<section class="card" aria-labelledby="plan-diags"><h2 id="plan-diags">Validation</h2><ul class="diags">${m.diagnostics.map(
    (d) => html`<li class="diag diag-${d.severity}"><div>${d.severity === 'error' ? badge('bad', '✕', 'error') : badge('warn', '⚠', 'warning')} <code class="loc">${d.file}:${d.line}:${d.col}</code> <span class="muted">${d.code}</span></div><p class="diag-message">${d.message}</p>${d.hint ? html`<p class="hint"><span class="muted">Hint:</span> ${d.hint}</p>` : ''}</li>`,
  )}</ul></section>`;
}

export function renderPlanPage(m: PlanPageModel, opts: RenderOptions): string {
  let budget = PLAN_PAGE_NODES;
  const changed = m.instances.filter((i) => i.action !== 'unchanged');
  const drawn = changed.slice(0, PLAN_PAGE_DRAWINGS);
  const sections = drawn.map((i, k) => {
    const d = i.action === 'delete' ? flowDrawing([], i.live ?? [], Math.min(budget, DRAWING_LIMITS.nodes)) : flowDrawing(i.desired, i.live ?? [], Math.min(budget, DRAWING_LIMITS.nodes));
    budget = Math.max(0, budget - (d.total - d.leftOut));
    const [tone, icon, word] = ACTION[i.action];
    const counts = Object.values(d.marks).reduce((acc, mark) => ({ ...acc, [mark]: (acc[mark] ?? 0) + 1 }), {} as Record<string, number>);
    const caption = html`${plural(d.total, 'node')}: ${counts.added ?? 0} added, ${counts.changed ?? 0} changed, ${counts.removed ?? 0} removed${i.live === null ? ' (the live flows could not be read: all are deployed)' : ''}.`;
    return html`<section class="card plan-instance" data-instance="${i.name}" data-action="${i.action}" aria-labelledby="plan-i-${k}">
<h2 id="plan-i-${k}"><a class="inst-link" href="/instances/${encodeURIComponent(i.name)}">${i.name}</a> ${badge(tone, icon, word)}${i.progress ? html` <span class="muted">${i.progress}</span>` : ''}</h2>
${drawingFigure(`plan-${k}`, d, PLAN_WORDS, caption)}
</section>`;
  });
  const undrawn = changed.slice(PLAN_PAGE_DRAWINGS);
  const unchanged = m.instances.filter((i) => i.action === 'unchanged');
  const main = html`<main id="plan" data-revision="${m.revision}">
${header(m)}
${diagnosticsSection(m)}
${sections.length ? sections : html`<section class="card"><p class="muted">${m.instances.length ? 'This revision changes no flows of any instance.' : 'No instance of this revision could be loaded.'}</p></section>`}
${undrawn.length ? html`<section class="card"><p class="muted">Also changed, not drawn here: ${undrawn.map((i) => i.name).join(', ')}.</p></section>` : ''}
${unchanged.length ? html`<section class="card"><p class="muted">Flows unchanged: ${unchanged.map((i) => i.name).join(', ')}.</p></section>` : ''}
<p class="rendered muted">Rendered ${opts.now.toISOString()} · Tower ${m.version}</p>
</main>`;
  return flowPageDocument(`Revision ${shortRev(m.revision)} — ${m.state} — RedForge Tower`, main, drawn.length > 0);
}
