import { describe, expect, it } from 'vitest';
import type { RolloutProgress } from '../../src/core/status.js';
import { FleetMetrics } from '../../src/server/metrics.js';
import { rolloutPanel } from '../../src/server/page/rollout.js';
import { syncedStatus } from '../helpers/status-fixture.js';

const canary = { requests: 40, successRate: 0.95, serverErrors: 2, failed: 0, p50Ms: 12, p99Ms: 180 };
const baseline = { requests: 360, successRate: 1, serverErrors: 0, failed: 0, p50Ms: 10, p99Ms: 25.5 };

describe('a canary in /metrics', () => {
  it('exposes the weight and both colours\' numbers while it runs, and forgets them after', async () => {
    const m = new FleetMetrics();
    m.canary('api', 'green', 10, canary, baseline);
    const text = (await m.render()).body;
    expect(text).toMatch(/tower_canary_weight\{instance="api",color="green"\} 10/);
    expect(text).toMatch(/tower_canary_success_ratio\{instance="api",color="green",role="canary"\} 0.95/);
    expect(text).toMatch(/tower_canary_success_ratio\{instance="api",color="blue",role="baseline"\} 1/);
    expect(text).toMatch(/tower_canary_latency_seconds\{instance="api",color="green",role="canary",quantile="0.99"\} 0.18/);
    expect(text).toMatch(/tower_canary_latency_seconds\{instance="api",color="blue",role="baseline",quantile="0.5"\} 0.01/);
    expect(text).toMatch(/tower_canary_requests\{instance="api",color="blue",role="baseline"\} 360/);
    m.canary('api', 'green', 50, canary, baseline);
    expect((await m.render()).body).not.toMatch(/tower_canary_weight\{instance="api",color="green"\} 10\n/);
    m.fromStatus(syncedStatus()); // a pass with no rollout under way
    expect((await m.render()).body).not.toMatch(/tower_canary_weight\{/);
  });
});

describe('a canary on the page', () => {
  it('shows the weight, the step and both colours\' numbers in the rollout panel', () => {
    const progress: RolloutProgress = {
      id: 'r1', revision: 'abcdef0123456789', startedAt: '2026-01-01T00:00:00.000Z',
      waves: [{ index: 0, instances: ['api'], state: 'running' }],
      instances: { api: { wave: 0, phase: 'RESUME', path: 'canary', canary: { step: 1, steps: 3, weight: 10, canary, baseline, verdict: 'wait', reason: '' } } },
    };
    const page = String(rolloutPanel(progress, { now: new Date('2026-01-01T00:01:00Z') } as unknown as Parameters<typeof rolloutPanel>[1]));
    expect(page).toContain('data-canary-weight="10"');
    expect(page).toMatch(/Canary <strong>10 %<\/strong> \(step 1 of 3, wait\) · canary 40 req, 95.0 % ok, p50 12 ms, p99 180 ms · baseline 360 req, 100.0 % ok, p50 10 ms, p99 25.5 ms/);
  });
});

describe('an A/B experiment in /metrics and on the page', () => {
  it('labels both colours\' numbers with the variants\' names', async () => {
    const m = new FleetMetrics();
    m.canary('api', 'green', 30, canary, baseline, ['control', 'fast-path']);
    const text = (await m.render()).body;
    expect(text).toMatch(/tower_canary_weight\{instance="api",color="green"\} 30/);
    expect(text).toMatch(/tower_canary_success_ratio\{instance="api",color="green",role="fast-path"\} 0.95/);
    expect(text).toMatch(/tower_canary_requests\{instance="api",color="blue",role="control"\} 360/);
    const progress: RolloutProgress = {
      id: 'r1', startedAt: '2026-01-01T00:00:00.000Z', waves: [{ index: 0, instances: ['api'], state: 'running' }],
      instances: { api: { wave: 0, phase: 'RESUME', path: 'ab', canary: { step: 1, steps: 1, weight: 30, canary, baseline, verdict: 'wait', reason: '', variants: ['control', 'fast-path'] } } },
    };
    const page = String(rolloutPanel(progress, { now: new Date('2026-01-01T00:01:00Z') } as unknown as Parameters<typeof rolloutPanel>[1]));
    expect(page).toMatch(/A\/B control <strong>70 %<\/strong> \/ fast-path <strong>30 %<\/strong> · control 360 req, 100.0 % ok, p50 10 ms, p99 25.5 ms · fast-path 40 req, 95.0 % ok/);
  });
});
