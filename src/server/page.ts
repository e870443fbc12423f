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
import type { Diagnostic } from '../core/diagnostics.js';
import type { FleetStatus, InstanceStatus } from '../core/status.js';
import { CSS, SCRIPT } from './page/assets.js';
import { absolute, badge, colorBadge, escapeHtml, firstLine, formatDuration, HEALTH, html, OUTCOME, outcomeBadge, plural, revCode, shortRev, SYNC, when, type RenderOptions, type SafeHtml, type StatusPageModel, type Tone } from './page/html.js';
import { rolloutPanel, rolloutProgress } from './page/rollout.js';
import { picturesSection } from './page/pictures.js';

export { STATUS_PAGE_CSP } from './page/assets.js';
export { escapeHtml, formatDuration, relativeTime, shortRev, type RenderOptions, type StatusPageModel } from './page/html.js';
export { phaseStates, rolloutProgress, type StepState } from './page/rollout.js';

// ---------------------------------------------------------------------------------------
// Sections

function summary(s: StatusPageModel): string {
  const failedAttempt = attemptFailed(s);
  let text: string;
  if (s.rollout) text = `Rolling out ${shortRev(s.rollout.revision) || 'a change'}: ${rolloutProgress(s.rollout).text}.`;
  else if (s.sync === 'Synced') text = `Synced: the fleet runs ${shortRev(s.appliedRevision ?? s.desiredRevision) || 'what the source says'}.`;
  else if (s.sync === 'OutOfSync') text = s.drift.length ? `Out of sync: drift on ${s.drift.join(', ')}.` : `Out of sync: ${s.message || `not on ${shortRev(s.desiredRevision) || 'the source'}`}.`;
  else if (s.sync === 'Progressing') text = `Progressing: ${s.message}.`;
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
${failed ? html`<div class="alert tone-${failed.outcome === 'superseded' || failed.outcome === 'interrupted' ? 'warn' : 'bad'}"><strong>Revision ${revCode(failed.revision)} ${OUTCOME[failed.outcome]?.[2] ?? failed.outcome}</strong> ${when(failed.at, opts)}${failed.error ? html`: <span class="error-text">${failed.error}</span>` : ''}${s.appliedRevision && keepsRunning(s) ? html`<br><span class="muted">The fleet keeps running ${revCode(s.appliedRevision)}.</span>` : ''}</div>` : ''}
${s.lastError && s.lastError !== failed?.error ? html`<div class="alert tone-bad"><strong>Last error:</strong> <span class="error-text">${s.lastError}</span></div>` : ''}
</section>`;
}

/** Every instance runs (nothing Missing): only then is the applied revision what the fleet runs. */
function keepsRunning(s: StatusPageModel): boolean {
  return s.instances.length > 0 && s.instances.every((i) => i.condition !== 'Missing' && i.health !== 'Missing');
}

/** The first line, and the rest behind a disclosure when there is more. */
function commitMessage(message: string, id: string): SafeHtml {
  const head = firstLine(message);
  const rest = message.slice(message.indexOf(head) + head.length).trim();
  if (!rest) return html`<span class="message">${head}</span> `;
  return html`<details class="message" id="${id}"><summary>${head}</summary><pre>${rest}</pre></details> `;
}

const CONDITION: Record<string, [Tone, string]> = {
  Synced: ['ok', '✓'],
  OutOfDate: ['info', '↻'],
  Drifted: ['warn', '⚠'],
  Missing: ['warn', '∅'],
  Dead: ['bad', '✕'],
  CrashLoop: ['bad', '⟳'],
  Degraded: ['bad', '✕'],
  NotInFleet: ['neutral', '⌫'],
  Unknown: ['neutral', '?'],
};

/** Why the instance is (not) in sync: Drifted, Missing, CrashLoop…, with the reason in words as its title. */
function conditionBadge(i: InstanceStatus): SafeHtml {
  const condition = i.drift ? 'Drifted' : (i.condition ?? 'Unknown');
  const [tone, icon] = CONDITION[condition] ?? CONDITION.Unknown!;
  return badge(tone, icon, condition, i.drift ? 'Live flows differ from what Tower applied' : i.message);
}

function healthBadge(i: InstanceStatus): SafeHtml {
  const [tone, icon] = HEALTH[i.health] ?? HEALTH.Unknown!;
  return badge(tone, icon, i.health);
}

function instancesTable(s: StatusPageModel, opts: RenderOptions): SafeHtml {
  const rows = s.instances.map(
    (i) => html`<tr data-instance="${i.name}" data-health="${i.health}"${i.drift ? html` class="drifted"` : ''}>
<th scope="row"><a class="inst-link" href="/instances/${encodeURIComponent(i.name)}">${i.name}</a>${i.runtime ? html`<span class="sub muted">${i.runtime}</span>` : ''}</th>
<td>${colorBadge(i.color)}${i.replicas ? html`<span class="sub muted">${i.replicas.ready}/${i.replicas.total} replicas</span>` : ''}</td>
<td>${i.port ?? html`<span class="muted">—</span>`}</td>
<td>${healthBadge(i)}${i.healthMessage ? html`<span class="sub">${i.healthMessage}</span>` : ''}${i.restarts ? html`<span class="sub muted">restarted ${i.restarts}×${i.nextRestartAt ? html`, next ${when(i.nextRestartAt, opts)}` : ''}</span>` : ''}</td>
<td>${i.nodeRedVersion ?? html`<span class="muted">—</span>`}</td>
<td>${revCode(i.rev, '—')}</td>
<td>${when(i.lastDeploy, opts)}</td>
<td>${conditionBadge(i)}</td>
<td>${i.standby ? html`${colorBadge(i.standby)} <span class="muted">warm</span>` : html`<span class="muted">—</span>`}</td>
</tr>`,
  );
  return html`<section id="instances" class="card" aria-labelledby="instances-title">
<h2 id="instances-title">Instances <span class="count">${s.instances.length}</span></h2>
<div class="table-wrap" role="region" aria-labelledby="instances-title" tabindex="0">
<table>
<thead><tr><th scope="col">Name</th><th scope="col">Colour</th><th scope="col">Port</th><th scope="col">Health</th><th scope="col">Node-RED</th><th scope="col">Flows rev</th><th scope="col">Last deploy</th><th scope="col">Sync</th><th scope="col">Warm standby</th></tr></thead>
<tbody>${rows.length ? rows : html`<tr><td colspan="9" class="muted">No instances yet.</td></tr>`}</tbody>
</table>
</div>
</section>`;
}

function validationSection(s: StatusPageModel): SafeHtml {
  const diags: Diagnostic[] = s.validation;
  if (!diags.length) return html``;
  // The status carries the first diagnostics only; the rest are counted.
  const omitted = s.validationOmitted ?? { errors: 0, warnings: 0 };
  const errors = diags.filter((d) => d.severity === 'error').length + omitted.errors;
  const warnings = diags.length + omitted.errors + omitted.warnings - errors;
  const more = omitted.errors + omitted.warnings;
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
${more ? html`<p class="muted">… and ${more.toLocaleString('en-US')} more: run <code>tower validate</code> to see them all.</p>` : ''}
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
${picturesSection(s, opts)}
${historySection(s, opts)}
<p class="rendered muted">Rendered <time datetime="${opts.now.toISOString()}">${absolute(opts.now)}</time> · Tower ${s.version}</p>
</main>`.html;
}


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

