/**
 * The canary's two actions (see core/rollout.ts, path canary): split — the canary colour gets
 * a step's weight of new connections, the active colour the rest — and analyse — the switch's
 * counters are read while the step runs and core/canary.ts judges each reading, until it
 * passes or fails. The analysis's numbers go out as events (the page, the metrics, the log).
 */
import { describeWindow, judge, type Verdict } from '../core/canary.js';
import { formatDuration } from '../core/duration.js';
import type { Color } from '../core/rollout.js';
import { summarize, trafficBetween, type TrafficStats, type TrafficSummary } from '../core/traffic.js';
import type { InstanceActions } from './actions.js';
import { TowerError, type TrafficSwitch } from './ports.js';

/** How often a running step reads the switch's counters (at most; short pauses read more often). */
const READ_EVERY_MS = 1_000;

/** A reading that fails (a router being restarted, a Prometheus hiccup) is tried again before it fails the step: 4 tries, ¼ s apart. */
async function retrying<T>(read: () => Promise<T>, tries = 4): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await read();
    } catch (err) {
      if (i >= tries) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

function otherOf(color: Color): Color {
  return color === 'blue' ? 'green' : 'blue';
}

function canarySwitch(a: InstanceActions): Required<Pick<TrafficSwitch, 'split' | 'stats'>> & TrafficSwitch {
  const sw = a.sw();
  if (!sw.split || !sw.stats) throw new TowerError(`the ${sw.kind} switch cannot split traffic by weight: strategy canary needs switch: builtin`, 'CanaryUnsupported', 'stalled');
  return sw as Required<Pick<TrafficSwitch, 'split' | 'stats'>> & TrafficSwitch;
}

export async function splitTraffic(a: InstanceActions, color: Color, weight: number): Promise<void> {
  const canary = a.colors[color];
  const baseline = a.colors[otherOf(color)];
  if (!canary || !baseline) throw new TowerError(`a canary needs both colours of ${a.instance} running (${!canary ? color : otherOf(color)} is not)`, 'ColorMissing');
  await canarySwitch(a).split(a.instance, [{ color: otherOf(color), port: baseline.port, weight: 100 - weight }, { color, port: canary.port, weight }]);
}

/** A split that still sends `color` new connections (a canary a crash left behind) ends: all go to the routed colour, and the colour's requests finish. */
export async function endSplitTo(a: InstanceActions, color: Color): Promise<void> {
  const st = a.live?.switch?.canaryWeight !== undefined ? await a.sw().status(a.instance) : undefined;
  if (!st?.active || st.active.color === color || !st.split?.some((u) => u.color === color)) return;
  await a.sw().route(a.instance, st.active);
  await a.sw().drain(a.instance, color, a.drainMs());
}

export interface CanaryReading {
  step: number;
  steps: number;
  weight: number;
  canary: TrafficSummary;
  baseline: TrafficSummary;
  verdict: Verdict;
  elapsedMs: number;
}

/** Runs step `step`'s analysis until it passes (returns) or fails (throws, with the numbers). */
export async function analyseStep(a: InstanceActions, color: Color, step: number, readMetric?: (url: string, query: string) => Promise<number>): Promise<CanaryReading> {
  const spec = a.desired?.canary;
  const s = spec?.steps[step];
  if (!spec || !s) throw new TowerError(`${a.instance} has no canary step ${step + 1}`, 'CanaryMissing', 'stalled');
  const sw = canarySwitch(a);
  const started = Date.now();
  const first = await retrying(() => sw.stats(a.instance));
  const every = Math.max(50, Math.min(READ_EVERY_MS, s.pauseMs / 10));
  for (;;) {
    if (s.pauseMs > 0) await new Promise((r) => setTimeout(r, Math.min(every, Math.max(0, started + s.pauseMs - Date.now()) || every)));
    const now = await retrying(() => sw.stats(a.instance));
    const reading = { ...readingOf(first, now, color, step, s.weight, Date.now() - started), steps: spec.steps.length };
    let prometheus: number | undefined;
    const p = spec.analysis.prometheus;
    if (p && !readMetric) throw new TowerError('analysis.prometheus is set, but this Tower cannot query Prometheus', 'AnalysisFailed', 'stalled');
    if (p && readMetric) {
      prometheus = await retrying(() => readMetric(p.url, p.query)).catch((err: Error) => {
        throw new TowerError(`step ${step + 1} (${s.weight}%): the prometheus check cannot be read: ${err.message}`, 'AnalysisFailed', 'stalled');
      });
    }
    const reference = a.canaryReference;
    const verdict = s.pauseMs === 0 ? { verdict: 'pass' as const, reason: describeWindow(reading.canary, reading.baseline) } : judge({ analysis: spec.analysis, canary: reading.canary, baseline: reading.baseline, elapsedMs: reading.elapsedMs, pauseMs: s.pauseMs, ...(prometheus !== undefined ? { prometheus } : {}), ...(reference ? { reference } : {}) });
    const result = { ...reading, verdict };
    a.deps.onEvent({ type: 'canary', instance: a.instance, color, ...result });
    if (verdict.verdict === 'pass') {
      // The next steps leave the baseline less traffic (none at 100 %): they compare with this window.
      if (reading.baseline.requests >= spec.analysis.minRequests) a.canaryReference = reading.baseline;
      return result;
    }
    if (verdict.verdict === 'fail') throw new TowerError(`step ${step + 1} (${s.weight}%) failed after ${formatDuration(result.elapsedMs)}: ${verdict.reason}`, 'AnalysisFailed', 'stalled');
  }
}

/**
 * strategy ab: both variants watched for the experiment's duration, their numbers sent out as
 * they come; then the experiment ends — by throwing, with the numbers, so that the rollback
 * sends everything back to the first variant and removes the second. Nothing is promoted.
 */
export async function runExperiment(a: InstanceActions, color: Color): Promise<never> {
  const spec = a.desired?.ab;
  if (!spec) throw new TowerError(`${a.instance} has no A/B experiment`, 'CanaryMissing', 'stalled');
  const sw = canarySwitch(a);
  const started = Date.now();
  const first = await retrying(() => sw.stats(a.instance));
  const [control, variant] = spec.variants;
  const every = Math.max(50, Math.min(READ_EVERY_MS, spec.durationMs / 10));
  for (;;) {
    await new Promise((r) => setTimeout(r, Math.max(1, Math.min(every, started + spec.durationMs - Date.now()))));
    const elapsed = Date.now() - started;
    const reading = readingOf(first, await retrying(() => sw.stats(a.instance)), color, 0, spec.weight, elapsed);
    // A newer revision (or a stopping daemon) ends the experiment early: it would hold its wave for the whole duration.
    const stopped = a.deps.shouldContinue ? !a.deps.shouldContinue() : false;
    const over = elapsed >= spec.durationMs || stopped;
    const numbers = `${control} (${otherOf(color)}) ${describeVariant(reading.baseline)}; ${variant} (${color}) ${describeVariant(reading.canary)}`;
    const verdict: Verdict = { verdict: over ? 'pass' : 'wait', reason: numbers };
    a.deps.onEvent({ type: 'canary', instance: a.instance, color, ...reading, steps: 1, verdict, variants: spec.variants });
    if (over) {
      const why = stopped ? ` early (a newer revision, or the daemon stopping)` : '';
      throw new TowerError(`A/B experiment ended${why} after ${formatDuration(elapsed)} (${variant} had ${spec.weight}%): ${numbers}; not promoted — to adopt ${variant}, roll it out with strategy blue-green or canary`, 'ExperimentEnded', 'stalled');
    }
  }
}

function describeVariant(t: TrafficSummary): string {
  return `${t.requests} requests${t.successRate !== undefined ? `, ${(Math.round(t.successRate * 1000) / 10).toFixed(1)}% ok` : ''}${t.p50Ms !== undefined ? `, p50 ${t.p50Ms} ms` : ''}${t.p99Ms !== undefined ? `, p99 ${t.p99Ms} ms` : ''}`;
}

function readingOf(first: TrafficStats, now: TrafficStats, color: Color, step: number, weight: number, elapsedMs: number): Omit<CanaryReading, 'steps'> {
  // Counters of another lifetime (the router restarted): the window starts over from zero.
  const from = first.since === now.since ? first : { since: now.since, colors: {} };
  const canary = summarize(trafficBetween(from.colors[color], now.colors[color]));
  const baseline = summarize(trafficBetween(from.colors[otherOf(color)], now.colors[otherOf(color)]));
  return { step, weight, canary, baseline, elapsedMs, verdict: { verdict: 'wait', reason: '' } };
}
