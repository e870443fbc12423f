import { describe, expect, it } from 'vitest';
import { bucketOf, bucketUpperMs, emptyTraffic, LATENCY_BUCKETS, quantileMs, summarize, trafficBetween } from '../../src/core/traffic.js';

describe('traffic: the latency histogram', () => {
  it('puts a latency in the bucket whose edges hold it, with edges 8 % apart', () => {
    for (const ms of [0.01, 0.05, 0.051, 0.3, 1, 7.5, 42, 499, 500, 501, 12_345, 100_000]) {
      const i = bucketOf(ms);
      expect(ms).toBeLessThanOrEqual(bucketUpperMs(i) * (1 + 1e-9));
      if (i > 0) expect(ms).toBeGreaterThan(bucketUpperMs(i - 1));
    }
    expect(bucketOf(1e9)).toBe(LATENCY_BUCKETS - 1);
    expect(bucketUpperMs(10) / bucketUpperMs(9)).toBeCloseTo(1.08, 6);
  });

  it('reads quantiles within one bucket (8 %) above the true value', () => {
    const t = emptyTraffic();
    for (let i = 1; i <= 1000; i++) t.latency[bucketOf(i / 10)]! += 1; // 0.1 .. 100 ms, uniform
    const p50 = quantileMs(t.latency, 0.5)!;
    const p99 = quantileMs(t.latency, 0.99)!;
    expect(p50).toBeGreaterThanOrEqual(50);
    expect(p50).toBeLessThanOrEqual(50 * 1.08);
    expect(p99).toBeGreaterThanOrEqual(99);
    expect(p99).toBeLessThanOrEqual(99 * 1.08);
    expect(quantileMs(emptyTraffic().latency, 0.99)).toBeUndefined();
  });
});

describe('traffic: windows', () => {
  it('subtracts two readings; a reading from a restarted router counts from zero', () => {
    const before = { ...emptyTraffic(), requests: 10, ok: 9, serverErrors: 1 };
    const after = { ...emptyTraffic(), requests: 30, ok: 27, serverErrors: 3 };
    expect(trafficBetween(before, after)).toMatchObject({ requests: 20, ok: 18, serverErrors: 2 });
    const restarted = { ...emptyTraffic(), requests: 4, ok: 4 };
    expect(trafficBetween(before, restarted)).toMatchObject({ requests: 4, ok: 4, serverErrors: 0 });
    expect(summarize(trafficBetween(before, after)).successRate).toBeCloseTo(0.9, 9);
    expect(summarize(emptyTraffic()).successRate).toBeUndefined();
  });
});
