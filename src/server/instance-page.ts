/**
 * /instances/<name>: one instance at a glance — its colour, rev, health, uptime, restarts,
 * CPU and memory; its flows drawn as the editor lays them out, with what drifted from Git
 * marked; its rollouts; the last lines of its Node-RED log (redacted by the driver).
 * Pure rendering: the model in, one HTML document out (see flow-views.ts for the model).
 */
import type { FlowNode } from '../core/model.js';
import type { InstanceStatus } from '../core/status.js';
import type { RolloutRecord } from '../engine/ports.js';
import type { HealthSample } from './health-ring.js';
import { healthStrip } from './page/charts.js';
import { flowDrawing } from './page/flows.js';
import { badge, colorBadge, formatDuration, HEALTH, html, outcomeBadge, plural, revCode, when, type RenderOptions, type SafeHtml } from './page/html.js';
import { drawingFigure, flowPageDocument } from './page/layout.js';

export interface ColorView {
  color: string;
  runtime: string;
  status: string;
  port: number;
  startedAt?: string;
  /** CPU and memory of the colour (all its replicas together). */
  usage?: { cpuSeconds: number; rssBytes: number };
  /** With replicas: how many run, of how many. */
  replicas?: { running: number; total: number };
}

export interface InstancePageModel {
  version: string;
  fleet?: string;
  instance: InstanceStatus;
  colors: ColorView[];
  /** The routed colour's flows as Node-RED reports them (null: it does not answer); Git's, when the instance drifted. */
  flows?: { live: FlowNode[] | null; git?: FlowNode[]; revision?: string };
  /** Rollouts that touched the instance, newest first. */
  history: RolloutRecord[];
  log?: { color?: string; lines: string[]; error?: string };
  health: readonly HealthSample[];
  /** The revision rolling out now, for a link to its plan page. */
  rollingOut?: string;
}

/** How a drift reads on the instance page: the live side is drawn. */
export const DRIFT_WORDS = { added: 'live only: not in Git', changed: 'changed live (differs from Git)', removed: 'in Git, missing live' };

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(bytes < 100 * 1024 * 1024 ? 1 : 0)} MiB`;
}

function facts(m: InstancePageModel, opts: RenderOptions): SafeHtml {
  const i = m.instance;
  const routed = m.colors.find((c) => c.color === i.color);
  const uptime = routed?.startedAt && routed.status === 'running' ? opts.now.getTime() - Date.parse(routed.startedAt) : Number.NaN;
  const [tone, icon] = HEALTH[i.health] ?? HEALTH.Unknown!;
  return html`<section class="card" aria-labelledby="inst-title">
<p class="crumbs"><a href="/">${m.fleet ?? 'Fleet'}</a> › instance</p>
<div class="title-row"><h1 id="inst-title">${i.name}</h1> ${badge(tone, icon, i.health, i.healthMessage)} ${i.drift ? badge('warn', '⚠', 'Drifted', 'Live flows differ from what Tower applied') : badge(i.condition === 'Synced' ? 'ok' : 'neutral', i.condition === 'Synced' ? '✓' : '•', i.condition, i.message)}</div>
<p class="summary">${i.message}${i.healthMessage ? html` · <span class="muted">${i.healthMessage}</span>` : ''}</p>
<dl class="facts">
<div><dt>Colour</dt><dd>${colorBadge(i.color)}</dd></div>
<div><dt>Flows rev</dt><dd>${revCode(i.rev, '—')}</dd></div>
<div><dt>Uptime</dt><dd data-fact="uptime">${Number.isFinite(uptime) ? formatDuration(Math.max(0, uptime)) : html`<span class="muted">—</span>`}</dd></div>
<div><dt>Restarts</dt><dd data-fact="restarts">${i.restarts}${i.nextRestartAt ? html` <span class="muted">(next ${when(i.nextRestartAt, opts)})</span>` : ''}</dd></div>
<div><dt>CPU</dt><dd data-fact="cpu">${routed?.usage ? `${routed.usage.cpuSeconds.toFixed(1)} s` : html`<span class="muted">—</span>`}</dd></div>
<div><dt>Memory</dt><dd data-fact="memory">${routed?.usage ? mib(routed.usage.rssBytes) : html`<span class="muted">—</span>`}</dd></div>
<div><dt>Port</dt><dd>${i.port ?? html`<span class="muted">—</span>`}</dd></div>
<div><dt>Node-RED</dt><dd>${i.nodeRedVersion ?? html`<span class="muted">—</span>`}</dd></div>
<div><dt>Last deploy</dt><dd>${when(i.lastDeploy, opts)}</dd></div>
<div class="wide"><dt>Health over time</dt><dd>${healthStrip(i.name, m.health, opts.now.getTime())}</dd></div>
</dl>
${m.rollingOut ? html`<p class="alert tone-info">A rollout is under way: <a href="/revisions/${m.rollingOut}">see its plan for ${revCode(m.rollingOut)}</a>.</p>` : ''}
</section>`;
}

function colorsTable(m: InstancePageModel, opts: RenderOptions): SafeHtml {
  if (!m.colors.length) return html`<section class="card"><h2>Colours</h2><p class="muted">No colour runs.</p></section>`;
  return html`<section class="card" aria-labelledby="colors-title"><h2 id="colors-title">Colours</h2>
<div class="table-wrap"><table><thead><tr><th scope="col">Colour</th><th scope="col">Runtime</th><th scope="col">State</th><th scope="col">Port</th><th scope="col">Started</th><th scope="col">CPU</th><th scope="col">Memory</th></tr></thead>
<tbody>${m.colors.map((c) => html`<tr data-color="${c.color}"><td>${colorBadge(c.color)}${c.color === m.instance.color ? html` <span class="muted">routed</span>` : ''}</td><td>${c.runtime}</td><td>${c.status}${c.replicas ? html` <span class="muted">(${c.replicas.running}/${c.replicas.total} replicas)</span>` : ''}</td><td>${c.port}</td><td>${when(c.startedAt, opts)}</td><td>${c.usage ? `${c.usage.cpuSeconds.toFixed(1)} s` : '—'}</td><td>${c.usage ? mib(c.usage.rssBytes) : '—'}</td></tr>`)}</tbody></table></div>
</section>`;
}

function flowsSection(m: InstancePageModel): SafeHtml {
  const f = m.flows;
  let body: SafeHtml;
  if (!f) body = html`<p class="muted">Not observed yet: the daemon has not looked at this instance.</p>`;
  else if (f.live === null) body = html`<p class="muted">The routed colour's Admin API does not answer: its flows cannot be drawn.</p>`;
  else {
    const d = flowDrawing(f.live, f.git);
    const marked = Object.keys(d.marks).length;
    const caption = f.git
      ? html`Live flows, against Git ${revCode(f.revision)}: ${plural(marked, 'node')} differ${marked === 1 ? 's' : ''}.`
      : html`Live flows: ${plural(d.total, 'node')}${m.instance.drift ? '' : ', as Tower applied them'}.`;
    body = drawingFigure('live-flows', d, DRIFT_WORDS, caption);
  }
  return html`<section class="card" id="flows" aria-labelledby="flows-title"><h2 id="flows-title">Flows</h2>${body}</section>`;
}

function rolloutsSection(m: InstancePageModel, opts: RenderOptions): SafeHtml {
  const rows = m.history.map((r) => {
    const mine = r.instances?.[m.instance.name];
    const phases = (mine?.phases ?? []).map((p) => `${p.phase} ${p.ms !== undefined ? formatDuration(p.ms) : '…'}`).join(' · ');
    return html`<tr data-rollout="${r.id}"><td>${when(r.startedAt, opts)}</td><td>${r.revision ? html`<a href="/revisions/${r.revision}">${revCode(r.revision)}</a>` : '—'}</td><td>${outcomeBadge(mine?.outcome === 'succeeded' || !mine ? r.outcome : mine.outcome)}</td><td>${mine?.path ?? '—'}</td><td class="wide-col">${phases || html`<span class="muted">—</span>`}${mine?.error ? html`<span class="sub error-text">${mine.error}</span>` : ''}</td></tr>`;
  });
  return html`<section class="card" aria-labelledby="inst-history-title"><h2 id="inst-history-title">Rollouts</h2>
${rows.length ? html`<div class="table-wrap"><table><thead><tr><th scope="col">When</th><th scope="col">Revision</th><th scope="col">Outcome</th><th scope="col">Path</th><th scope="col">Phases</th></tr></thead><tbody>${rows}</tbody></table></div>` : html`<p class="muted">No rollout touched this instance lately.</p>`}
</section>`;
}

function logSection(m: InstancePageModel): SafeHtml {
  const l = m.log;
  const body = !l
    ? html`<p class="muted">The log is not available here.</p>`
    : l.error
      ? html`<p class="muted">The log cannot be shown: <span class="error-text">${l.error}</span></p>`
      : l.lines.length
        ? html`<div class="logs-box" tabindex="0"><pre class="logs" data-lines="${l.lines.length}">${l.lines.join('\n')}</pre></div>`
        : html`<p class="muted">The log is empty.</p>`;
  return html`<section class="card" aria-labelledby="log-title"><h2 id="log-title">Node-RED log${l?.color ? html` <span class="muted">(${l.color}, last ${plural(l.lines.length, 'line')}, secrets redacted)</span>` : ''}</h2>${body}</section>`;
}

export function renderInstancePage(m: InstancePageModel, opts: RenderOptions): string {
  const main = html`<main id="instance" data-instance="${m.instance.name}">
${facts(m, opts)}
${flowsSection(m)}
${colorsTable(m, opts)}
${rolloutsSection(m, opts)}
${logSection(m)}
<p class="rendered muted">Rendered ${opts.now.toISOString()} · Tower ${m.version}</p>
</main>`;
  return flowPageDocument(`${m.instance.name} — ${m.instance.health} — RedForge Tower`, main, Boolean(m.flows?.live));
}
