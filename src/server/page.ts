/**
 * The read-only status page, as pure rendering: FleetStatus (+ history, version) in, one
 * HTML5 document out — inline CSS, a small inline script, no external assets.
 *
 * There is one renderer. The server renders the whole page (everything readable with
 * JavaScript off); for live updates the script listens to /api/v1/events and, on each status
 * event, fetches `/?fragment=1` — this module's <main> alone — and swaps it in. So the client
 * never re-implements the markup.
 *
 * Every interpolated value goes through the `html` tag below, which escapes it unless it is
 * already SafeHtml: commit messages, error texts and file names come from users.
 */
import { createHash } from 'node:crypto';
import type { Diagnostic } from '../core/diagnostics.js';
import { initialState, PHASES, type Phase, type RolloutPath } from '../core/rollout.js';
import type { FleetStatus, InstanceStatus, RolloutProgress } from '../core/status.js';
import type { RolloutRecord } from '../engine/ports.js';

export type StatusPageModel = FleetStatus & { history: RolloutRecord[]; version: string };

export interface RenderOptions {
  /** The clock for relative times ("3 min ago"); rendering itself reads no clock. */
  now: Date;
}

// ---------------------------------------------------------------------------------------
// Escaping

class SafeHtml {
  constructor(readonly html: string) {}
  toString(): string {
    return this.html;
  }
}

type Value = SafeHtml | string | number | boolean | null | undefined | readonly Value[];

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function toHtml(v: Value): string {
  // Booleans render nothing, so that `cond && html`...`` reads naturally.
  if (v === null || v === undefined || typeof v === 'boolean') return '';
  if (v instanceof SafeHtml) return v.html;
  if (Array.isArray(v)) return v.map((x: Value) => toHtml(x)).join('');
  return escapeHtml(String(v));
}

/** Escapes every interpolation that is not SafeHtml; attributes are always double-quoted. */
function html(strings: TemplateStringsArray, ...values: Value[]): SafeHtml {
  let out = strings[0] ?? '';
  values.forEach((v, i) => {
    out += toHtml(v) + (strings[i + 1] ?? '');
  });
  return new SafeHtml(out);
}

// ---------------------------------------------------------------------------------------
// Small formatters

export function shortRev(rev: string | undefined): string {
  if (!rev) return '';
  return /^[0-9a-f]{12,}$/i.test(rev) ? rev.slice(0, 7) : rev.length > 20 ? `${rev.slice(0, 19)}…` : rev;
}

function revCode(rev: string | undefined, none = 'none'): SafeHtml {
  if (!rev) return html`<span class="muted">${none}</span>`;
  return html`<code class="rev" title="${rev}">${shortRev(rev)}</code>`;
}

function absolute(d: Date): string {
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

export function relativeTime(then: Date, now: Date): string {
  const s = Math.round((now.getTime() - then.getTime()) / 1000);
  const a = Math.abs(s);
  const say = (n: number, unit: string) => (s >= 0 ? `${n} ${unit} ago` : `in ${n} ${unit}`);
  if (a < 5) return 'just now';
  if (a < 60) return say(a, 's');
  if (a < 3600) return say(Math.round(a / 60), 'min');
  if (a < 86400) return say(Math.round(a / 3600), 'h');
  return say(Math.round(a / 86400), 'd');
}

/** Relative text, the absolute time in the title and in datetime. */
function when(iso: string | undefined, opts: RenderOptions, none = '—'): SafeHtml {
  if (!iso) return html`<span class="muted">${none}</span>`;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return html`<span>${iso}</span>`;
  return html`<time datetime="${d.toISOString()}" title="${absolute(d)}">${relativeTime(d, opts.now)}</time>`;
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function firstLine(text: string): string {
  return text.split(/\r?\n/, 1)[0]!.trim();
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

type Tone = 'ok' | 'warn' | 'bad' | 'info' | 'neutral';

/** A badge never relies on colour alone: it carries an icon and a word. */
function badge(tone: Tone, icon: string, text: string, title?: string): SafeHtml {
  return html`<span class="badge tone-${tone}"${title ? html` title="${title}"` : ''}><span class="icon" aria-hidden="true">${icon}</span>${text}</span>`;
}

const SYNC: Record<string, [Tone, string]> = {
  Synced: ['ok', '✓'],
  OutOfSync: ['warn', '≠'],
  Progressing: ['info', '↻'],
  Unknown: ['neutral', '?'],
};

const HEALTH: Record<string, [Tone, string]> = {
  Healthy: ['ok', '✓'],
  Progressing: ['info', '↻'],
  Degraded: ['bad', '✕'],
  Missing: ['warn', '∅'],
  Suspended: ['neutral', '⏸'],
  Unknown: ['neutral', '?'],
};

const OUTCOME: Record<string, [Tone, string, string]> = {
  running: ['info', '↻', 'running'],
  succeeded: ['ok', '✓', 'succeeded'],
  failed: ['bad', '✕', 'failed'],
  'rolled-back': ['warn', '↩', 'rolled back'],
  superseded: ['neutral', '⤳', 'superseded'],
  interrupted: ['warn', '⏹', 'interrupted'],
  invalid: ['bad', '✕', 'invalid'],
};

function outcomeBadge(outcome: string): SafeHtml {
  const [tone, icon, text] = OUTCOME[outcome] ?? ['neutral', '?', outcome];
  return badge(tone, icon, text);
}

function colorBadge(color: string | undefined): SafeHtml {
  if (!color) return html`<span class="muted">—</span>`;
  const known = color === 'blue' || color === 'green' ? color : 'other';
  return html`<span class="colour colour-${known}"><span class="dot" aria-hidden="true"></span>${color}</span>`;
}

// ---------------------------------------------------------------------------------------
// The rollout panel: waves, instances, phases as steps

export type StepState = 'done' | 'current' | 'pending' | 'skipped' | 'failed';

const PATHS: readonly RolloutPath[] = ['blue-green', 'swap', 'in-place', 'recreate', 'create', 'delete'];

/** The phases a rollout path does not need, as the state machine says. */
function skippedPhases(path: string | undefined): readonly Phase[] {
  const known = PATHS.find((p) => p === path);
  return known ? initialState('', known, 'blue').skipped : [];
}

type InstanceProgress = RolloutProgress['instances'][string];

/** How each of the six phases of one instance stands, from what the daemon reported last. */
export function phaseStates(i: Partial<InstanceProgress> | undefined): Record<Phase, StepState> {
  const skipped = skippedPhases(i?.path);
  const at = i?.phase ? PHASES.indexOf(i.phase) : -1;
  const failed = i?.outcome === 'rolled-back' || i?.outcome === 'failed';
  const states = {} as Record<Phase, StepState>;
  PHASES.forEach((p, k) => {
    if (skipped.includes(p)) states[p] = 'skipped';
    else if (i?.outcome === 'succeeded') states[p] = 'done';
    else if (at < 0 || k > at) states[p] = 'pending';
    else if (k < at) states[p] = 'done';
    // Awaiting cleanup: it serves the new version; CLEANUP runs once the whole rollout succeeded.
    else states[p] = failed ? 'failed' : i?.outcome === 'awaiting-cleanup' ? 'pending' : 'current';
  });
  return states;
}

const STEP_ICON: Record<StepState, string> = { done: '✓', current: '●', pending: '○', skipped: '–', failed: '✕' };

function isDone(i: InstanceProgress | undefined): boolean {
  return i?.outcome === 'awaiting-cleanup' || i?.outcome === 'succeeded';
}

/** "wave 2 of 3, 3 of 5 instances done" — also used for the announcement. */
export function rolloutProgress(r: RolloutProgress): { wave: number; waves: number; done: number; total: number; text: string } {
  const names = r.waves.flatMap((w) => w.instances);
  const total = names.length;
  const done = names.filter((n) => isDone(r.instances[n])).length;
  const failedWave = r.waves.find((w) => w.state === 'failed');
  const current = failedWave ?? r.waves.find((w) => w.state === 'running') ?? r.waves.find((w) => w.state === 'pending') ?? r.waves[r.waves.length - 1];
  const wave = current ? r.waves.indexOf(current) + 1 : 0;
  const text = `wave ${wave} of ${r.waves.length}${failedWave ? ' failed' : ''}, ${done} of ${plural(total, 'instance')} done`;
  return { wave, waves: r.waves.length, done, total, text };
}

const INSTANCE_STATE: Record<string, [Tone, string, string]> = {
  running: ['info', '↻', 'in progress'],
  'awaiting-cleanup': ['ok', '✓', 'serving the new version'],
  succeeded: ['ok', '✓', 'done'],
  'rolled-back': ['warn', '↩', 'rolled back'],
  failed: ['bad', '✕', 'failed'],
};

function rolloutInstance(name: string, i: InstanceProgress | undefined): SafeHtml {
  const states = phaseStates(i);
  const waiting: [Tone, string, string] = ['neutral', '…', 'waiting'];
  const [tone, icon, text] = i?.outcome ? (INSTANCE_STATE[i.outcome] ?? ['neutral', '?', i.outcome]) : i?.phase ? INSTANCE_STATE.running! : waiting;
  return html`<li class="ri" data-instance="${name}">
<div class="ri-head"><strong>${name}</strong>${i?.path ? html` <span class="path">${i.path}</span>` : ''} ${badge(tone, icon, text)}</div>
<ol class="steps" aria-label="Phases of ${name}">${PHASES.map((p) => {
    const s = states[p];
    return html`<li class="step step-${s}" data-phase="${p}" data-state="${s}" title="${p}: ${s}"${s === 'current' ? html` aria-current="step"` : ''}><span class="icon" aria-hidden="true">${STEP_ICON[s]}</span>${p}<span class="vh"> (${s})</span></li>`;
  })}</ol>
${i?.error ? html`<p class="error-text">${i.error}</p>` : ''}</li>`;
}

const WAVE_STATE: Record<string, [Tone, string]> = { pending: ['neutral', '○'], running: ['info', '↻'], healthy: ['ok', '✓'], failed: ['bad', '✕'] };

function rolloutPanel(r: RolloutProgress, opts: RenderOptions): SafeHtml {
  const p = rolloutProgress(r);
  return html`<section id="rollout" class="card" aria-labelledby="rollout-title">
<h2 id="rollout-title">Rollout in progress${r.revision ? html` — ${revCode(r.revision)}` : ''}</h2>
<p class="progress-line"><strong data-progress>${p.text[0]!.toUpperCase() + p.text.slice(1)}</strong> · started ${when(r.startedAt, opts)}</p>
<progress max="${Math.max(p.total, 1)}" value="${p.done}" aria-label="Instances done">${p.done} of ${p.total}</progress>
<ol class="waves">${r.waves.map((w, k) => {
    const [tone, icon] = WAVE_STATE[w.state] ?? ['neutral', '?'];
    return html`<li class="wave wave-${w.state}" data-wave="${k + 1}">
<h3>Wave ${k + 1} of ${r.waves.length} ${badge(tone, icon, w.state)}</h3>
<ul class="ri-list">${w.instances.map((n) => rolloutInstance(n, r.instances[n]))}</ul>
</li>`;
  })}</ol>
</section>`;
}

// ---------------------------------------------------------------------------------------
// Sections

function summary(s: StatusPageModel): string {
  const failedAttempt = attemptFailed(s);
  let text: string;
  if (s.rollout) text = `Rolling out ${shortRev(s.rollout.revision) || 'a change'}: ${rolloutProgress(s.rollout).text}.`;
  else if (s.sync === 'Synced') text = `Synced: the fleet runs ${shortRev(s.appliedRevision ?? s.desiredRevision) || 'what the source says'}.`;
  else if (s.sync === 'OutOfSync') text = s.drift.length ? `Out of sync: drift on ${s.drift.join(', ')}.` : `Out of sync with ${shortRev(s.desiredRevision) || 'the source'}.`;
  else if (s.sync === 'Progressing') text = 'Progressing.';
  else text = 'Status unknown: no revision loaded yet.';
  if (s.source.error) text += ' The source is unreachable.';
  if (failedAttempt) text += ` Revision ${shortRev(failedAttempt.revision)} ${OUTCOME[failedAttempt.outcome]?.[2] ?? failedAttempt.outcome}.`;
  return text;
}

function attemptFailed(s: StatusPageModel): FleetStatus['attempted'] {
  const a = s.attempted;
  if (!a || a.outcome === 'running' || a.outcome === 'succeeded') return undefined;
  return a.revision === s.appliedRevision && a.outcome === 'superseded' ? undefined : a;
}

function overview(s: StatusPageModel, opts: RenderOptions): SafeHtml {
  const [tone, icon] = SYNC[s.sync] ?? SYNC.Unknown!;
  const commit = s.commit;
  const failed = attemptFailed(s);
  const newest = s.source.newestRevision;
  return html`<section id="overview" class="card" aria-labelledby="fleet-title">
<div class="title-row">
<h1 id="fleet-title">${s.fleet ?? 'Fleet'}</h1>
<span data-sync="${s.sync}">${badge(tone, icon, s.sync)}</span>
${s.leader ? badge('ok', '★', 'Leader', 'This daemon acts on the fleet') : badge('neutral', '☾', 'Standby', 'Another daemon acts on the fleet; this one waits')}
</div>
<p class="summary" data-summary>${summary(s)}</p>
<dl class="facts">
<div><dt>Desired</dt><dd>${revCode(s.desiredRevision)}${s.desiredRevision && s.desiredRevision === s.appliedRevision ? html` <span class="muted">(applied)</span>` : ''}</dd></div>
<div><dt>Applied</dt><dd>${revCode(s.appliedRevision, 'none yet')}</dd></div>
${newest && newest !== s.desiredRevision ? html`<div><dt>Newest on source</dt><dd>${revCode(newest)}</dd></div>` : ''}
${commit ? html`<div class="wide"><dt>Commit</dt><dd>${revCode(commit.revision)} ${commit.message ? commitMessage(commit.message, 'commit-message') : ''}<span class="muted">${commit.author ? html` by ${commit.author}` : ''}${commit.date ? html`, ${when(commit.date, opts)}` : ''}</span></dd></div>` : ''}
<div class="wide"><dt>Source</dt><dd><span class="muted">${s.source.kind}</span> <code class="loc">${s.source.location}</code></dd></div>
<div><dt>Last fetch</dt><dd>${when(s.source.lastFetchAt, opts, 'not yet')}</dd></div>
<div><dt>Last pass</dt><dd>${when(s.lastPassAt, opts, 'not yet')}</dd></div>
</dl>
${s.source.error ? html`<div class="alert tone-bad"><strong>Source unreachable:</strong> <span class="error-text">${s.source.error}</span><br><span class="muted">The fleet keeps running the last good revision.</span></div>` : ''}
${failed ? html`<div class="alert tone-${failed.outcome === 'superseded' || failed.outcome === 'interrupted' ? 'warn' : 'bad'}"><strong>Revision ${revCode(failed.revision)} ${OUTCOME[failed.outcome]?.[2] ?? failed.outcome}</strong> ${when(failed.at, opts)}${failed.error ? html`: <span class="error-text">${failed.error}</span>` : ''}${s.appliedRevision ? html`<br><span class="muted">The fleet keeps running ${revCode(s.appliedRevision)}.</span>` : ''}</div>` : ''}
${s.lastError && s.lastError !== failed?.error ? html`<div class="alert tone-bad"><strong>Last error:</strong> <span class="error-text">${s.lastError}</span></div>` : ''}
</section>`;
}

/** The first line, and the rest behind a disclosure when there is more. */
function commitMessage(message: string, id: string): SafeHtml {
  const head = firstLine(message);
  const rest = message.slice(message.indexOf(head) + head.length).trim();
  if (!rest) return html`<span class="message">${head}</span> `;
  return html`<details class="message" id="${id}"><summary>${head}</summary><pre>${rest}</pre></details> `;
}

function healthBadge(i: InstanceStatus): SafeHtml {
  const [tone, icon] = HEALTH[i.health] ?? HEALTH.Unknown!;
  return badge(tone, icon, i.health);
}

function instancesTable(s: StatusPageModel, opts: RenderOptions): SafeHtml {
  const rows = s.instances.map(
    (i) => html`<tr data-instance="${i.name}" data-health="${i.health}"${i.drift ? html` class="drifted"` : ''}>
<th scope="row">${i.name}${i.runtime ? html`<span class="sub muted">${i.runtime}</span>` : ''}</th>
<td>${colorBadge(i.color)}</td>
<td>${i.port ?? html`<span class="muted">—</span>`}</td>
<td>${healthBadge(i)}${i.healthMessage ? html`<span class="sub">${i.healthMessage}</span>` : ''}</td>
<td>${i.nodeRedVersion ?? html`<span class="muted">—</span>`}</td>
<td>${revCode(i.rev, '—')}</td>
<td>${when(i.lastDeploy, opts)}</td>
<td>${i.drift ? badge('warn', '⚠', 'Drifted', 'Live flows differ from what Tower applied') : html`<span class="muted">No</span>`}</td>
<td>${i.standby ? html`${colorBadge(i.standby)} <span class="muted">warm</span>` : html`<span class="muted">—</span>`}</td>
</tr>`,
  );
  return html`<section id="instances" class="card" aria-labelledby="instances-title">
<h2 id="instances-title">Instances <span class="count">${s.instances.length}</span></h2>
<div class="table-wrap" role="region" aria-labelledby="instances-title" tabindex="0">
<table>
<thead><tr><th scope="col">Name</th><th scope="col">Colour</th><th scope="col">Port</th><th scope="col">Health</th><th scope="col">Node-RED</th><th scope="col">Flows rev</th><th scope="col">Last deploy</th><th scope="col">Drift</th><th scope="col">Warm standby</th></tr></thead>
<tbody>${rows.length ? rows : html`<tr><td colspan="9" class="muted">No instances yet.</td></tr>`}</tbody>
</table>
</div>
</section>`;
}

function validationSection(s: StatusPageModel): SafeHtml {
  const diags: Diagnostic[] = s.validation;
  if (!diags.length) return html``;
  const errors = diags.filter((d) => d.severity === 'error').length;
  const warnings = diags.length - errors;
  const rev = s.source.newestRevision ?? s.attemptedRevision;
  const counts = [errors ? plural(errors, 'error') : '', warnings ? plural(warnings, 'warning') : ''].filter(Boolean).join(', ');
  return html`<section id="validation" class="card" aria-labelledby="validation-title">
<h2 id="validation-title">Validation: ${counts}${rev ? html` in ${revCode(rev)}` : ''}</h2>
${errors ? html`<p class="muted">Tower rejected this revision; nothing of it was applied. Fix it in Git.</p>` : ''}
<ul class="diags">${diags.map(
    (d) => html`<li class="diag diag-${d.severity}">
<div>${d.severity === 'error' ? badge('bad', '✕', 'error') : badge('warn', '⚠', 'warning')} <code class="loc">${d.file}:${d.line}:${d.col}</code> <span class="muted">${d.code}</span>${d.instances?.length ? html` <span class="muted">(${d.instances.join(', ')})</span>` : ''}</div>
<p class="diag-message">${d.message}</p>
${d.hint ? html`<p class="hint"><span class="muted">Hint:</span> ${d.hint}</p>` : ''}
</li>`,
  )}</ul>
</section>`;
}

function historySection(s: StatusPageModel, opts: RenderOptions): SafeHtml {
  // Newest first, whatever order the store returned.
  const records = [...s.history].sort((a, b) => b.startedAt.localeCompare(a.startedAt));
  const rows = records.map((r) => {
    const ms = r.finishedAt ? new Date(r.finishedAt).getTime() - new Date(r.startedAt).getTime() : Number.NaN;
    return html`<tr data-rollout="${r.id}">
<td>${when(r.startedAt, opts)}</td>
<td>${revCode(r.revision, '—')}</td>
<td>${r.author ?? html`<span class="muted">—</span>`}</td>
<td class="wide-col">${r.message ? commitMessage(r.message, `message-${r.id}`) : html`<span class="muted">—</span>`}</td>
<td>${outcomeBadge(r.outcome)}</td>
<td>${r.finishedAt ? formatDuration(ms) : html`<span class="muted">running</span>`}</td>
<td class="wide-col">${r.error ? html`<span class="error-text">${r.error}</span>` : ''}</td>
</tr>`;
  });
  return html`<section id="history" class="card" aria-labelledby="history-title">
<h2 id="history-title">History</h2>
${rows.length
    ? html`<div class="table-wrap" role="region" aria-labelledby="history-title" tabindex="0"><table>
<thead><tr><th scope="col">When</th><th scope="col">Revision</th><th scope="col">Author</th><th scope="col">Message</th><th scope="col">Outcome</th><th scope="col">Duration</th><th scope="col">Error</th></tr></thead>
<tbody>${rows}</tbody>
</table></div>`
    : html`<p class="muted">No rollouts yet.</p>`}
</section>`;
}

/** The tab's title says how the fleet is, for a page left open in a tab. */
function pageTitle(s: StatusPageModel): string {
  return `${s.fleet ?? 'Fleet'} — ${s.rollout ? 'Rolling out' : s.sync} — RedForge Tower`;
}

/** The dynamic part of the page: what `/?fragment=1` returns and the script swaps in. */
export function renderStatusMain(s: StatusPageModel, opts: RenderOptions): string {
  return html`<main id="status" data-sync="${s.sync}" data-title="${pageTitle(s)}">
${overview(s, opts)}
${s.rollout ? rolloutPanel(s.rollout, opts) : ''}
${validationSection(s)}
${instancesTable(s, opts)}
${historySection(s, opts)}
<p class="rendered muted">Rendered <time datetime="${opts.now.toISOString()}">${absolute(opts.now)}</time> · Tower ${s.version}</p>
</main>`.html;
}

// ---------------------------------------------------------------------------------------
// The document

const CSS = `
:root{--bg:#f6f7f9;--card:#fff;--fg:#1c2330;--muted:#5b6577;--border:#dde2ea;
--ok:#1a7f37;--ok-bg:#dafbe1;--warn:#8a5a00;--warn-bg:#fff4c2;--bad:#c4212c;--bad-bg:#ffebe9;
--info:#0a5fc2;--info-bg:#ddf0ff;--neutral:#57606a;--neutral-bg:#eaeef2;--blue:#2f6feb;--green:#2da44e;
color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--card:#161b22;--fg:#e6edf3;--muted:#9aa4b2;--border:#30363d;
--ok:#56d364;--ok-bg:#12361f;--warn:#e3b341;--warn-bg:#3a2d0c;--bad:#ff7b72;--bad-bg:#44171a;
--info:#79c0ff;--info-bg:#0c2d4f;--neutral:#9aa4b2;--neutral-bg:#262c36}}
*{box-sizing:border-box}
[hidden]{display:none!important}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:.9em}
.topbar{display:flex;align-items:center;justify-content:space-between;gap:1rem;padding:.6rem 1rem;border-bottom:1px solid var(--border);background:var(--card)}
.brand{font-weight:600}
.brand .muted{font-weight:400}
main,.foot{max-width:78rem;margin:0 auto;padding:1rem}
.card{background:var(--card);border:1px solid var(--border);border-radius:10px;padding:1rem 1.1rem;margin:0 0 1rem}
h1{font-size:1.5rem;margin:0}
h2{font-size:1.1rem;margin:0 0 .75rem}
h3{font-size:1rem;margin:0 0 .5rem;display:flex;align-items:center;gap:.5rem}
.title-row{display:flex;flex-wrap:wrap;align-items:center;gap:.6rem}
.summary{margin:.5rem 0 .75rem;font-size:1.02rem}
.muted{color:var(--muted)}
.vh{position:absolute;width:1px;height:1px;margin:-1px;padding:0;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}
.badge{display:inline-flex;align-items:center;gap:.3rem;padding:.1rem .55rem;border-radius:999px;font-size:.85rem;font-weight:600;border:1px solid currentColor;white-space:nowrap}
.badge .icon{font-weight:700}
.tone-ok{color:var(--ok);background:var(--ok-bg)}.tone-warn{color:var(--warn);background:var(--warn-bg)}
.tone-bad{color:var(--bad);background:var(--bad-bg)}.tone-info{color:var(--info);background:var(--info-bg)}
.tone-neutral{color:var(--neutral);background:var(--neutral-bg)}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(9rem,1fr));gap:.5rem 1.25rem;margin:0}
.facts div{min-width:0}.facts .wide{grid-column:1/-1}
dt{font-size:.78rem;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
dd{margin:0;overflow-wrap:anywhere}
.alert{border:1px solid currentColor;border-radius:8px;padding:.55rem .75rem;margin-top:.75rem}
.alert .muted{color:inherit;opacity:.85}
.error-text{overflow-wrap:anywhere;white-space:pre-wrap}
.rev{padding:.05rem .3rem;border-radius:4px;background:var(--neutral-bg)}
details.message{display:inline-block;vertical-align:top}
details.message summary{cursor:pointer}
details pre{white-space:pre-wrap;margin:.3rem 0 0;max-width:60ch}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.92rem}
th,td{text-align:left;padding:.45rem .6rem;border-bottom:1px solid var(--border);vertical-align:top}
thead th{font-size:.78rem;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);white-space:nowrap}
tbody th{font-weight:600}
.wide-col{min-width:14rem}
tr.drifted{background:var(--warn-bg)}
.sub{display:block;font-size:.82rem;font-weight:400;max-width:28ch;overflow-wrap:anywhere}
.count{font-weight:400;color:var(--muted)}
.colour{display:inline-flex;align-items:center;gap:.35rem}
.colour .dot{width:.7rem;height:.7rem;border-radius:50%;background:var(--neutral);display:inline-block}
.colour-blue .dot{background:var(--blue)}.colour-green .dot{background:var(--green)}
.progress-line{margin:0 0 .4rem}
progress{width:100%;height:.6rem;margin-bottom:.75rem;accent-color:var(--info)}
.waves{list-style:none;margin:0;padding:0;display:grid;gap:.75rem}
.wave{border-left:4px solid var(--border);padding:.25rem 0 .25rem .8rem}
.wave-running{border-color:var(--info)}.wave-healthy{border-color:var(--ok)}.wave-failed{border-color:var(--bad)}
.ri-list{list-style:none;margin:0;padding:0;display:grid;gap:.6rem}
.ri-head{display:flex;flex-wrap:wrap;align-items:center;gap:.5rem;margin-bottom:.3rem}
.path{font-size:.8rem;color:var(--muted);border:1px solid var(--border);border-radius:4px;padding:0 .3rem}
.steps{list-style:none;margin:0;padding:0;display:grid;grid-template-columns:repeat(6,minmax(0,1fr));gap:.3rem}
.step{display:flex;align-items:center;justify-content:center;gap:.3rem;padding:.25rem .3rem;border-radius:6px;font-size:.78rem;font-weight:600;letter-spacing:.02em;border:1px solid var(--border);color:var(--muted)}
.step-done{color:var(--ok);background:var(--ok-bg);border-color:currentColor}
.step-current{color:var(--info);background:var(--info-bg);border:2px solid currentColor}
.step-pending{border-style:dashed}
.step-skipped{text-decoration:line-through;opacity:.7}
.step-failed{color:var(--bad);background:var(--bad-bg);border-color:currentColor}
.diags{list-style:none;margin:0;padding:0;display:grid;gap:.6rem}
.diag{border-left:4px solid var(--bad);padding:.2rem 0 .2rem .75rem}
.diag-warning{border-color:var(--warn)}
.diag p{margin:.25rem 0 0;overflow-wrap:anywhere}
.live{display:inline-flex;align-items:center;gap:.35rem;font-size:.85rem;color:var(--muted)}
.live::before{content:"";width:.55rem;height:.55rem;border-radius:50%;background:var(--neutral)}
.live[data-state=live]{color:var(--ok)}.live[data-state=live]::before{background:var(--ok)}
.live[data-state=reconnecting]{color:var(--warn)}.live[data-state=reconnecting]::before{background:var(--warn)}
.rendered{font-size:.8rem;margin:0}
.foot{font-size:.85rem;color:var(--muted);padding-top:0}
@media (max-width:640px){body{font-size:14px}main{padding:.6rem}.card{padding:.8rem}
.steps{grid-template-columns:repeat(3,minmax(0,1fr))}.topbar{padding:.5rem .6rem}}
`;

// Kept small and dependency-free. On every status event it fetches the server-rendered
// <main> and swaps it in (one renderer); open <details> stay open; the summary is copied
// into the aria-live region so screen readers hear what changed, not the whole page.
const SCRIPT = `
(function () {
  var live = document.getElementById('live');
  var announce = document.getElementById('announce');
  if (!live || !window.EventSource || !window.fetch) return;
  live.hidden = false;
  var busy = false, again = false, es = null, retry = null;
  function show(state, text) { live.setAttribute('data-state', state); live.textContent = text; }
  function swap(text) {
    var t = document.createElement('template');
    t.innerHTML = text;
    var next = t.content.querySelector('main');
    var cur = document.querySelector('main');
    if (!next || !cur) return;
    var open = {};
    cur.querySelectorAll('details[open][id]').forEach(function (d) { open[d.id] = true; });
    next.querySelectorAll('details[id]').forEach(function (d) { if (open[d.id]) d.open = true; });
    cur.replaceWith(next);
    if (next.getAttribute('data-title')) document.title = next.getAttribute('data-title');
    var s = next.querySelector('[data-summary]');
    if (s && announce && announce.textContent !== s.textContent) announce.textContent = s.textContent;
  }
  function refresh() {
    if (busy) { again = true; return; }
    busy = true; again = false;
    fetch('/?fragment=1', { cache: 'no-store', headers: { accept: 'text/html' } })
      .then(function (r) { if (!r.ok) throw new Error('HTTP ' + r.status); return r.text(); })
      .then(swap)
      .catch(function () { show('reconnecting', 'Reconnecting…'); })
      .then(function () { busy = false; if (again) refresh(); });
  }
  function connect() {
    retry = null;
    es = new EventSource('/api/v1/events');
    es.onopen = function () { show('live', 'Live'); };
    es.addEventListener('status', function () { show('live', 'Live'); refresh(); });
    es.onerror = function () {
      show('reconnecting', 'Reconnecting…');
      // EventSource retries by itself unless the server refused the stream: then we do.
      if (es.readyState === 2 && !retry) retry = setTimeout(connect, 5000);
    };
  }
  connect();
})();
`;

function sha256(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

/**
 * Content-Security-Policy for the page: only this inline style and script run, the script may
 * talk to this origin only. Defence in depth should escaping ever miss something.
 */
export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  `style-src ${sha256(CSS)}`,
  `script-src ${sha256(SCRIPT)}`,
  "connect-src 'self'",
  'img-src data:',
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export function renderStatusPage(status: StatusPageModel, opts: RenderOptions): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>${escapeHtml(pageTitle(status))}</title>
<link rel="icon" href="data:,">
<style>${CSS}</style>
</head>
<body>
<header class="topbar">
<div class="brand">RedForge Tower <span class="muted">· status (read-only)</span></div>
<span id="live" class="live" data-state="connecting" hidden>Connecting…</span>
</header>
<p id="announce" class="vh" role="status" aria-live="polite" aria-atomic="true">${escapeHtml(summary(status))}</p>
${renderStatusMain(status, opts)}
<footer class="foot">Read-only by design: change the fleet through Git. JSON: <a href="/api/v1/status">/api/v1/status</a></footer>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
