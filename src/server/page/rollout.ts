/** The rollout in progress, drawn: waves, instances, and each instance's phases. */
import { initialState, PHASES, type Phase, type RolloutPath } from '../../core/rollout.js';
import type { RolloutProgress } from '../../core/status.js';
import { badge, html, plural, revCode, when, type RenderOptions, type SafeHtml, type Tone } from './html.js';

// ---------------------------------------------------------------------------------------
// The rollout panel: waves, instances, phases as steps

export type StepState = 'done' | 'current' | 'pending' | 'skipped' | 'failed';

const PATHS: readonly RolloutPath[] = ['blue-green', 'swap', 'in-place', 'recreate', 'create', 'canary', 'ab', 'delete'];

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
${i?.canary ? canaryLine(i.canary) : ''}${i?.error ? html`<p class="error-text">${i.error}</p>` : ''}</li>`;
}

/** A canary under way: its weight and step, both colours' numbers since the step began. */
function canaryLine(c: NonNullable<InstanceProgress['canary']>): SafeHtml {
  const one = (t: typeof c.canary) => `${t.requests} req${t.successRate !== undefined ? `, ${(100 * t.successRate).toFixed(1)} % ok` : ''}${t.p99Ms !== undefined ? `, p50 ${t.p50Ms} ms, p99 ${t.p99Ms} ms` : ''}`;
  if (c.variants) return html`<p class="canary" data-canary-weight="${c.weight}">A/B ${c.variants[0]} <strong>${100 - c.weight} %</strong> / ${c.variants[1]} <strong>${c.weight} %</strong> · ${c.variants[0]} ${one(c.baseline)} · ${c.variants[1]} ${one(c.canary)}</p>`;
  return html`<p class="canary" data-canary-weight="${c.weight}">Canary <strong>${c.weight} %</strong> (step ${c.step} of ${c.steps}, ${c.verdict}) · canary ${one(c.canary)} · baseline ${one(c.baseline)}</p>`;
}

const WAVE_STATE: Record<string, [Tone, string]> = { pending: ['neutral', '○'], running: ['info', '↻'], healthy: ['ok', '✓'], failed: ['bad', '✕'] };

export function rolloutPanel(r: RolloutProgress, opts: RenderOptions): SafeHtml {
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

