/**
 * What the switch counts per colour, and the arithmetic on it: a fixed latency histogram
 * (geometric buckets, 8 % apart, 0.05 ms to past 2 minutes — a few hundred numbers whatever the
 * traffic), quantiles read from it, and the difference of two cumulative readings (the window
 * an analysis judges). The router keeps the counters; Tower reads them through the switch port.
 */

/** Lower edge of the first bucket, in ms, and the ratio between neighbouring bucket edges. */
const FIRST_MS = 0.05;
const RATIO = 1.08;
const LOG_RATIO = Math.log(RATIO);
/** Bucket i holds latencies in (edge(i-1), edge(i)]; the last one everything beyond. */
export const LATENCY_BUCKETS = 192;

/** Upper edge of bucket i, in ms (Infinity for the last). */
export function bucketUpperMs(i: number): number {
  return i >= LATENCY_BUCKETS - 1 ? Infinity : FIRST_MS * RATIO ** i;
}

/** The bucket a latency falls in: one logarithm, no allocation. */
export function bucketOf(ms: number): number {
  if (!(ms > FIRST_MS)) return 0;
  const i = Math.ceil(Math.log(ms / FIRST_MS) / LOG_RATIO - 1e-9);
  return i >= LATENCY_BUCKETS ? LATENCY_BUCKETS - 1 : i;
}

/** Cumulative counts of one colour since its router started. */
export interface ColorTraffic {
  /** Requests that ended (answered, failed or abandoned). */
  requests: number;
  /** Answered 2xx or 3xx. */
  ok: number;
  /** Answered 4xx (counted among requests, not among ok). */
  clientErrors: number;
  /** Answered 5xx by the colour itself. */
  serverErrors: number;
  /** No answer from the colour: the switch answered 502/504 or cut the response. */
  failed: number;
  /** The client went away before the answer ended (not counted in requests). */
  aborted: number;
  /** Latency histogram of requests (request head in → response end), LATENCY_BUCKETS counts. */
  latency: number[];
}

/** What the switch reports: per colour, and since when (a new router starts from zero). */
export interface TrafficStats {
  /** Identifies the counters' lifetime: a restarted router has another. */
  since: string;
  colors: Partial<Record<'blue' | 'green', ColorTraffic>>;
}

export function emptyTraffic(): ColorTraffic {
  return { requests: 0, ok: 0, clientErrors: 0, serverErrors: 0, failed: 0, aborted: 0, latency: new Array<number>(LATENCY_BUCKETS).fill(0) };
}

/** after − before; a reading from another lifetime (the router restarted) counts from zero. */
export function trafficBetween(before: ColorTraffic | undefined, after: ColorTraffic | undefined): ColorTraffic {
  const a = after ?? emptyTraffic();
  if (!before || before.requests > a.requests) return { ...a, latency: [...a.latency] };
  return {
    requests: a.requests - before.requests,
    ok: a.ok - before.ok,
    clientErrors: a.clientErrors - before.clientErrors,
    serverErrors: a.serverErrors - before.serverErrors,
    failed: a.failed - before.failed,
    aborted: a.aborted - before.aborted,
    latency: a.latency.map((n, i) => n - (before.latency[i] ?? 0)),
  };
}

/** The latency under which a share q of the histogram's requests ended (the bucket's upper edge); undefined when empty. */
export function quantileMs(latency: readonly number[], q: number): number | undefined {
  const total = latency.reduce((s, n) => s + n, 0);
  if (total === 0) return undefined;
  const rank = Math.ceil(q * total);
  let seen = 0;
  for (let i = 0; i < latency.length; i++) {
    seen += latency[i]!;
    if (seen >= rank) return bucketUpperMs(i) === Infinity ? bucketUpperMs(LATENCY_BUCKETS - 2) : bucketUpperMs(i);
  }
  return undefined;
}

/** The numbers an analysis and the page show for one colour over a window. */
export interface TrafficSummary {
  requests: number;
  /** 2xx/3xx share of requests, 0..1; undefined without requests. */
  successRate?: number;
  serverErrors: number;
  failed: number;
  p50Ms?: number;
  p99Ms?: number;
}

export function summarize(t: ColorTraffic): TrafficSummary {
  const p50 = quantileMs(t.latency, 0.5);
  const p99 = quantileMs(t.latency, 0.99);
  return {
    requests: t.requests,
    ...(t.requests > 0 ? { successRate: t.ok / t.requests } : {}),
    serverErrors: t.serverErrors,
    failed: t.failed,
    ...(p50 !== undefined ? { p50Ms: round(p50) } : {}),
    ...(p99 !== undefined ? { p99Ms: round(p99) } : {}),
  };
}

function round(ms: number): number {
  return ms < 10 ? Math.round(ms * 100) / 100 : Math.round(ms * 10) / 10;
}
