/** The fleet page's pictures section: rollout durations, the current rollout's grid, health over time. */
import { CHART_LIMITS, durationChart, healthStrip, waveGrid } from './charts.js';
import { html, plural, when, type RenderOptions, type SafeHtml, type StatusPageModel } from './html.js';

export function picturesSection(s: StatusPageModel, opts: RenderOptions): SafeHtml {
  const now = opts.now.getTime();
  // The page is fetched again on every status event: at most CHART_LIMITS.healthStrips strips, those not healthy first.
  const strips = [...s.instances].sort((a, b) => Number(a.health === 'Healthy') - Number(b.health === 'Healthy')).slice(0, CHART_LIMITS.healthStrips);
  const more = s.instances.length - strips.length;
  const firstSample = Math.min(...s.instances.map((i) => s.health?.[i.name]?.[0]?.at ?? Infinity));
  return html`<section id="pictures" class="card" aria-labelledby="pictures-title">
<h2 id="pictures-title">At a glance</h2>
<div class="pictures">
<figure id="durations"><figcaption>Rollout durations, by phase (summed over instances)</figcaption>${durationChart(s.history)}</figure>
${s.rollout ? html`<figure id="wave-grid"><figcaption>Current rollout: waves × instances</figcaption>${waveGrid(s.rollout)}</figure>` : ''}
<figure id="health-strips"><figcaption>Health over time${Number.isFinite(firstSample) ? html`, since ${when(new Date(firstSample).toISOString(), opts)}` : ''}</figcaption>${s.instances.length
    ? html`<ul class="strips">${strips.map((i) => html`<li><a href="/instances/${encodeURIComponent(i.name)}">${i.name}</a>${healthStrip(i.name, s.health?.[i.name] ?? [], now)}</li>`)}</ul>${more ? html`<p class="muted small">${plural(more, 'more instance')}: see each instance's page.</p>` : ''}`
    : html`<p class="muted">No instances yet.</p>`}</figure>
</div>
</section>`;
}
