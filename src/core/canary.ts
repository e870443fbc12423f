/**
 * strategy: canary — the spec as fleet.yaml declares it (normalised), its checks beyond the
 * schema (pointed at the line), and the analysis: from the numbers the switch counted for the
 * canary and the baseline over a step's window, pass, fail or wait. Pure: the engine reads the
 * switch, keeps the time and acts on the verdict.
 */
import { formatDuration, parseDuration } from './duration.js';
import type { TrafficSummary } from './traffic.js';

export interface CanaryStep {
  /** The canary's share of new connections, percent. */
  weight: number;
  /** How long the step runs (and its analysis watches); absent or 0: no analysis, next step at once. */
  pauseMs: number;
}

export interface CanaryAnalysis {
  /** Least share of the canary's requests answered 2xx/3xx, 0..1. */
  successRateMin?: number;
  /** Most the canary's p99 latency at the switch may be, ms. */
  latencyP99Ms?: number;
  /** Judge the canary against the baseline in the same window (see judge). */
  compareToBaseline: boolean;
  /** Requests the canary must have served in a window before it is judged. */
  minRequests: number;
  /** An extra check, like Flagger's: the query's value must not pass max. */
  prometheus?: { url: string; query: string; max: number };
}

export interface CanarySpec {
  steps: CanaryStep[];
  analysis: CanaryAnalysis;
}

export const DEFAULT_MIN_REQUESTS = 50;

/** fleet.yaml's `strategy: { canary: … }`, checked by the schema (shapes) and canaryProblems (sense). */
export interface RawCanary {
  steps?: { weight?: number; pause?: string }[];
  analysis?: {
    successRate?: { min?: string | number };
    latency?: { p99?: string };
    compareToBaseline?: boolean;
    minRequests?: number;
    prometheus?: { url?: string; query?: string; max?: number };
  };
}

/** "99%" or 99 → 0.99; undefined when it is not a percentage. */
export function parsePercent(value: unknown): number | undefined {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^[0-9]+(\.[0-9]+)?%$/.test(value.trim()) ? Number(value.trim().slice(0, -1)) : NaN;
  return Number.isFinite(n) && n >= 0 && n <= 100 ? n / 100 : undefined;
}

/** A problem in a canary spec: where (a path under the canary object) and what to do. */
export interface CanaryProblem {
  path: (string | number)[];
  message: string;
  hint: string;
}

/** What the schema cannot say: weights that rise, end at 100, durations and percentages that parse. */
export function canaryProblems(raw: RawCanary): CanaryProblem[] {
  const problems: CanaryProblem[] = [];
  const steps = Array.isArray(raw.steps) ? raw.steps : [];
  let previous = 0;
  steps.forEach((s, i) => {
    // Types, ranges and duration formats are the schema's to report.
    if (typeof s?.weight !== 'number' || s.weight > 100 || s.weight < 1) return;
    if (s.weight <= previous) problems.push({ path: ['steps', i, 'weight'], message: `step ${i + 1}: weight ${s.weight} does not rise above the step before (${previous})`, hint: 'list the steps in rising order of weight, e.g. 10, 50, 100' });
    previous = Math.max(previous, s.weight);
  });
  const last = steps[steps.length - 1];
  if (last && typeof last.weight === 'number' && last.weight !== 100) {
    problems.push({ path: ['steps', steps.length - 1, 'weight'], message: `the last step has weight ${last.weight}; a canary ends at 100`, hint: 'add a last step { weight: 100 } (the promotion); for a fixed split use strategy: { ab: … }' });
  }
  const a = raw.analysis;
  if (a?.successRate?.min !== undefined && parsePercent(a.successRate.min) === undefined) {
    problems.push({ path: ['analysis', 'successRate', 'min'], message: `successRate.min ${JSON.stringify(a.successRate.min)} is not a percentage from 0% to 100%`, hint: 'e.g. min: 99% (or 99.5%)' });
  }
  if (a?.latency?.p99 !== undefined && /^0+(ms|s|m|h)$/.test(String(a.latency.p99))) {
    problems.push({ path: ['analysis', 'latency', 'p99'], message: 'latency.p99 of 0 would fail every request', hint: 'e.g. p99: 500ms' });
  }
  const analysed = a && (a.successRate !== undefined || a.latency !== undefined || a.prometheus !== undefined);
  if (steps.some((s) => typeof s?.pause === 'string' && s.pause !== '0s' && s.weight !== 100) && !analysed) {
    problems.push({ path: a ? ['analysis'] : ['steps'], message: 'the canary pauses but checks nothing: without analysis it would be promoted whatever it does', hint: 'add analysis: { successRate: { min: 99% } } and/or latency: { p99: 500ms }' });
  }
  return problems;
}

/** The spec from a raw canary that canaryProblems (and the schema) accepted. */
export function canarySpec(raw: RawCanary): CanarySpec {
  const a = raw.analysis ?? {};
  const p = a.prometheus;
  return {
    steps: (raw.steps ?? []).map((s) => ({ weight: s.weight ?? 100, pauseMs: s.pause ? parseDuration(s.pause) : 0 })),
    analysis: {
      ...(a.successRate?.min !== undefined ? { successRateMin: parsePercent(a.successRate.min)! } : {}),
      ...(a.latency?.p99 ? { latencyP99Ms: parseDuration(a.latency.p99) } : {}),
      compareToBaseline: a.compareToBaseline === true,
      minRequests: a.minRequests ?? DEFAULT_MIN_REQUESTS,
      ...(p?.url && p.query && typeof p.max === 'number' ? { prometheus: { url: p.url, query: p.query, max: p.max } } : {}),
    },
  };
}

/** What a step's window saw. */
export interface AnalysisInput {
  analysis: CanaryAnalysis;
  canary: TrafficSummary;
  baseline: TrafficSummary;
  /** ms since the step's window opened, and how long its pause is. */
  elapsedMs: number;
  pauseMs: number;
  /** The prometheus query's value, when the analysis has one and it was read. */
  prometheus?: number;
  /** The baseline of an earlier window with minRequests (the last step leaves the baseline no traffic of its own). */
  reference?: TrafficSummary;
}

export interface Verdict {
  verdict: 'pass' | 'fail' | 'wait';
  /** In words, with the numbers: for the status, the log and the failed revision. */
  reason: string;
}

/**
 * A step's window is judged:
 *   - fewer than minRequests canary requests: wait — until twice the pause, then fail (no
 *     verdict on too little traffic, and no promotion without one);
 *   - a check fails (with enough requests): fail at once, before the pause ends;
 *   - every check holds and the pause is over: pass; before that: wait.
 * The checks: success rate ≥ min and p99 ≤ limit; with compareToBaseline, against the
 * baseline instead — the canary's success rate may trail the baseline's by at most 1 − min,
 * its p99 exceed the baseline's by at most the limit — so that a slow day for everyone fails
 * no canary. The baseline is the same window's once it has minRequests, else the reference
 * (an earlier window's); with neither, the step waits for one until its pause ends, and is
 * then judged against the limits as written.
 */
export function judge(input: AnalysisInput): Verdict {
  const { analysis: a, canary: c, baseline: b, elapsedMs, pauseMs } = input;
  const numbers = describeWindow(c, b);
  const base = b.requests >= a.minRequests ? b : input.reference;
  if (c.requests < a.minRequests) {
    if (elapsedMs >= Math.max(2 * pauseMs, pauseMs + 1_000)) return { verdict: 'fail', reason: `too little traffic to judge: ${c.requests} canary requests in ${formatDuration(elapsedMs)}, ${a.minRequests} needed (${numbers})` };
    return { verdict: 'wait', reason: `${c.requests} of ${a.minRequests} canary requests (${numbers})` };
  }
  // Nothing to compare with yet: wait for the baseline until the pause ends; after it (a lone 100 % step), the limits hold as written.
  if (a.compareToBaseline && !base && elapsedMs < pauseMs) return { verdict: 'wait', reason: `${b.requests} of ${a.minRequests} baseline requests to compare with (${numbers})` };
  const relative = a.compareToBaseline ? base : undefined;
  const which = relative && relative !== b ? 'earlier baseline' : 'baseline';
  const failures: string[] = [];
  if (a.successRateMin !== undefined && c.successRate !== undefined) {
    const floor = relative?.successRate !== undefined ? relative.successRate - (1 - a.successRateMin) : a.successRateMin;
    if (c.successRate < floor - 1e-12) failures.push(`success rate ${pct(c.successRate)} < ${relative?.successRate !== undefined ? `${which} ${pct(relative.successRate)} − ${pct(1 - a.successRateMin)}` : pct(a.successRateMin)}`);
  }
  if (a.latencyP99Ms !== undefined && c.p99Ms !== undefined) {
    const ceiling = relative?.p99Ms !== undefined ? relative.p99Ms + a.latencyP99Ms : a.latencyP99Ms;
    if (c.p99Ms > ceiling) failures.push(`p99 ${ms(c.p99Ms)} > ${relative?.p99Ms !== undefined ? `${which} ${ms(relative.p99Ms)} + ${ms(a.latencyP99Ms)}` : ms(a.latencyP99Ms)}`);
  }
  if (a.prometheus && input.prometheus !== undefined && input.prometheus > a.prometheus.max) failures.push(`prometheus ${input.prometheus} > ${a.prometheus.max}`);
  if (failures.length) return { verdict: 'fail', reason: `${failures.join('; ')} (${numbers})` };
  if (elapsedMs < pauseMs) return { verdict: 'wait', reason: numbers };
  return { verdict: 'pass', reason: numbers };
}

/** "10% for 1 min → 50% for 2 min → 100%; promoted while success ≥ 99.0%, p99 ≤ 500 ms (against the baseline), ≥ 50 requests a step" */
export function describeCanary(spec: CanarySpec): string {
  const steps = spec.steps.map((s) => `${s.weight}%${s.pauseMs ? ` for ${formatDuration(s.pauseMs)}` : ''}`).join(' → ');
  const a = spec.analysis;
  const checks = [
    ...(a.successRateMin !== undefined ? [`success ≥ ${pct(a.successRateMin)}`] : []),
    ...(a.latencyP99Ms !== undefined ? [`p99 ≤ ${ms(a.latencyP99Ms)}`] : []),
    ...(a.prometheus ? [`prometheus ≤ ${a.prometheus.max}`] : []),
  ];
  if (!checks.length) return steps;
  return `${steps}; each step checks ${checks.join(', ')}${a.compareToBaseline ? ' (against the baseline)' : ''} over ≥ ${a.minRequests} requests`;
}

/** "canary 212 requests, 94.8 % ok, p99 12 ms; baseline 1890 requests, 100 % ok, p99 9.7 ms" */
export function describeWindow(c: TrafficSummary, b: TrafficSummary): string {
  const one = (name: string, t: TrafficSummary) => `${name} ${t.requests} requests${t.successRate !== undefined ? `, ${pct(t.successRate)} ok` : ''}${t.p99Ms !== undefined ? `, p99 ${ms(t.p99Ms)}` : ''}`;
  return `${one('canary', c)}; ${one('baseline', b)}`;
}

function pct(x: number): string {
  return `${(Math.round(x * 1000) / 10).toFixed(1)}%`;
}

function ms(x: number): string {
  return `${x} ms`;
}

/** strategy: ab — an experiment: this revision's flows next to what runs, split by weight for a while, never promoted. */
export interface AbSpec {
  /** The variants' names: the flows that run now, then this revision's. */
  variants: [string, string];
  /** The second variant's share of new connections, percent. */
  weight: number;
  durationMs: number;
}

export interface RawAb {
  variants?: string[];
  weight?: number;
  duration?: string;
}

export const DEFAULT_AB_WEIGHT = 50;

export function abProblems(raw: RawAb): CanaryProblem[] {
  const problems: CanaryProblem[] = [];
  const [a, b] = Array.isArray(raw.variants) ? raw.variants : [];
  if (typeof a === 'string' && a === b) problems.push({ path: ['variants', 1], message: `both variants are named "${a}"`, hint: 'name them apart, e.g. variants: [control, new-checkout]' });
  if (typeof raw.duration === 'string' && /^0+(ms|s|m|h)$/.test(raw.duration)) problems.push({ path: ['duration'], message: 'an experiment of no duration measures nothing', hint: 'e.g. duration: 1h' });
  return problems;
}

export function abSpec(raw: RawAb): AbSpec {
  const [a, b] = raw.variants ?? [];
  return { variants: [a ?? 'a', b ?? 'b'], weight: raw.weight ?? DEFAULT_AB_WEIGHT, durationMs: parseDuration(raw.duration ?? '0s') };
}

/** "control 50% / new-checkout 50% for 1 h, then back to control (never promoted)" */
export function describeAb(spec: AbSpec): string {
  const [a, b] = spec.variants;
  return `${a} ${100 - spec.weight}% / ${b} ${spec.weight}% for ${formatDuration(spec.durationMs)}, then back to ${a} (never promoted)`;
}
