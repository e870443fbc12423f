/**
 * The fleet page's small pictures, as inline SVG rendered on the server (readable without
 * JavaScript, no chart library): rollout durations stacked by phase, the current rollout as
 * a wave × instance grid, and each instance's health over time. Every shape has a <title>
 * in words, and every picture an aria-label; each picture is bounded and says what it left out.
 */
import { PHASES } from '../../core/rollout.js';
import type { RolloutProgress } from '../../core/status.js';
import type { RolloutRecord } from '../../engine/ports.js';
import type { HealthSample } from '../health-ring.js';
import { phaseStates } from './rollout.js';
import { formatDuration, html, plural, shortRev, type SafeHtml } from './html.js';

export const CHART_LIMITS = { rollouts: 20, waves: 20, instancesPerWave: 24, cellChars: 14, healthStrips: 60 } as const;

const num = (n: number) => Math.round(n * 10) / 10;

/** Per rollout (oldest left), the time its instances spent in each phase, stacked; the wall-clock duration under it. */
export function durationChart(history: readonly RolloutRecord[]): SafeHtml {
  const records = [...history].filter((r) => r.finishedAt).sort((a, b) => a.startedAt.localeCompare(b.startedAt)).slice(-CHART_LIMITS.rollouts);
  if (!records.length) return html`<p class="muted">No finished rollouts yet.</p>`;
  const bars = records.map((r) => {
    const byPhase = new Map<string, number>();
    for (const i of Object.values(r.instances ?? {})) for (const p of i.phases ?? []) if (typeof p.ms === 'number' && p.ms >= 0) byPhase.set(p.phase, (byPhase.get(p.phase) ?? 0) + p.ms);
    const wall = Date.parse(r.finishedAt!) - Date.parse(r.startedAt);
    return { r, byPhase, sum: [...byPhase.values()].reduce((a, b) => a + b, 0), wall };
  });
  const max = Math.max(1, ...bars.map((b) => b.sum));
  const W = 380;
  const H = 150;
  const top = 10;
  const bottom = 30;
  const slot = W / Math.max(bars.length, 6);
  const bw = Math.min(40, slot * 0.7);
  return html`<svg class="chart" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="Time in each phase of the last ${plural(bars.length, 'rollout')}, summed over instances">
<line class="axis" x1="0" y1="${H - bottom}" x2="${W}" y2="${H - bottom}"/>
${bars.map((b, k) => {
    const x = num(k * slot + (slot - bw) / 2);
    let y = H - bottom;
    const segs = PHASES.map((p) => {
      const ms = b.byPhase.get(p) ?? 0;
      if (!ms) return '';
      const h = ((H - top - bottom) * ms) / max;
      y -= h;
      return html`<rect class="ph ph-${p}" x="${x}" y="${num(y)}" width="${num(bw)}" height="${num(Math.max(h, 0.5))}"><title>${shortRev(b.r.revision) || 'rollout'}: ${p} ${formatDuration(ms)}</title></rect>`;
    });
    const bar = html`<g class="bar outcome-${b.r.outcome}" data-rollout="${b.r.id}"><title>${shortRev(b.r.revision) || 'rollout'} — ${b.r.outcome}, ${formatDuration(b.wall)} in all</title>${segs}${b.sum === 0 ? html`<rect class="ph ph-none" x="${x}" y="${H - bottom - 2}" width="${num(bw)}" height="2"/>` : ''}<text x="${num(x + bw / 2)}" y="${H - bottom + 12}" text-anchor="middle">${shortRev(b.r.revision).slice(0, 7) || '—'}</text><text class="muted" x="${num(x + bw / 2)}" y="${H - bottom + 24}" text-anchor="middle">${formatDuration(b.wall)}</text></g>`;
    // Each bar leads to its revision's plan page.
    return b.r.revision ? html`<a href="/revisions/${encodeURIComponent(b.r.revision)}">${bar}</a>` : bar;
  })}
</svg>
<ul class="legend">${PHASES.map((p) => html`<li><span class="swatch ph-${p}" aria-hidden="true"></span>${p}</li>`)}</ul>`;
}

const CELL_STATE: Record<string, string> = { done: 'done', current: 'current', failed: 'failed' };

/** The rollout in progress: a row per wave, a cell per instance, coloured and worded by where it stands. */
export function waveGrid(r: RolloutProgress): SafeHtml {
  const waves = r.waves.slice(0, CHART_LIMITS.waves);
  const cw = 110;
  const ch = 34;
  const left = 70;
  const cols = Math.max(1, ...waves.map((w) => Math.min(w.instances.length, CHART_LIMITS.instancesPerWave)));
  const W = left + cols * (cw + 6);
  const H = waves.length * (ch + 6) + 4;
  let hidden = r.waves.slice(CHART_LIMITS.waves).reduce((n, w) => n + w.instances.length, 0);
  const rows = waves.map((w, k) => {
    hidden += Math.max(0, w.instances.length - CHART_LIMITS.instancesPerWave);
    const y = k * (ch + 6) + 2;
    return html`<g class="wave-row" data-wave="${k + 1}"><text x="0" y="${y + ch / 2 + 4}">Wave ${k + 1}</text>${w.instances.slice(0, CHART_LIMITS.instancesPerWave).map((name, c) => {
      const i = r.instances[name];
      const states = phaseStates(i);
      const current = PHASES.find((p) => states[p] === 'current' || states[p] === 'failed');
      const done = PHASES.filter((p) => states[p] === 'done').length;
      const state = i?.outcome === 'rolled-back' || i?.outcome === 'failed' ? 'failed' : i?.outcome === 'succeeded' || i?.outcome === 'awaiting-cleanup' ? 'done' : current ? 'current' : 'pending';
      const x = left + c * (cw + 6);
      const text = name.length > CHART_LIMITS.cellChars ? `${name.slice(0, CHART_LIMITS.cellChars - 1)}…` : name;
      return html`<a href="/instances/${encodeURIComponent(name)}"><g class="cell cell-${CELL_STATE[state] ?? 'pending'}" data-instance="${name}" data-state="${state}"><title>${name}: ${state}${current ? ` (${current})` : ''}, ${done} of ${PHASES.length} phases done</title><rect x="${x}" y="${y}" width="${cw}" height="${ch}" rx="4"/><text x="${x + 6}" y="${y + 14}">${text}</text><text class="sub" x="${x + 6}" y="${y + 27}">${state === 'current' ? current : state}</text></g></a>`;
    })}</g>`;
  });
  return html`<svg class="chart" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="Rollout grid: ${plural(r.waves.length, 'wave')}">${rows}</svg>${hidden ? html`<p class="muted small">${plural(hidden, 'instance')} not drawn.</p>` : ''}`;
}

const HEALTH_CLASS: Record<string, string> = { Healthy: 'ok', Progressing: 'info', Degraded: 'bad', Missing: 'warn', Suspended: 'neutral', Unknown: 'neutral' };

/** One instance's health since the first sample, as a strip of coloured spans ending now. */
export function healthStrip(name: string, samples: readonly HealthSample[], now: number): SafeHtml {
  const W = 240;
  const H = 14;
  if (!samples.length) return html`<svg class="strip" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${name}: no samples yet"><rect class="h-none" x="0" y="0" width="${W}" height="${H}"/></svg>`;
  const start = samples[0]!.at;
  const span = Math.max(1, now - start);
  // One span per run of the same health: the ring samples a steady instance every interval.
  const runs = samples.filter((s, k) => k === 0 || samples[k - 1]!.health !== s.health);
  const parts = runs.map((s, k) => {
    const end = runs[k + 1]?.at ?? now;
    const x = ((s.at - start) / span) * W;
    const w = Math.max(1, ((end - s.at) / span) * W);
    return html`<rect class="h-${HEALTH_CLASS[s.health] ?? 'neutral'}" x="${num(x)}" y="0" width="${num(w)}" height="${H}"><title>${s.health} from ${new Date(s.at).toISOString().slice(11, 19)} UTC for ${formatDuration(end - s.at)}</title></rect>`;
  });
  const worst = samples.some((s) => s.health === 'Degraded') ? 'was Degraded' : samples.some((s) => s.health !== 'Healthy') ? 'not always Healthy' : 'Healthy throughout';
  return html`<svg class="strip" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${name}: ${worst} over the last ${formatDuration(span)}" data-instance="${name}">${parts}</svg>`;
}
