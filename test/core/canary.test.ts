import { describe, expect, it } from 'vitest';
import { judge, type CanaryAnalysis } from '../../src/core/canary.js';
import { loadRepository } from '../../src/core/load.js';
import type { TrafficSummary } from '../../src/core/traffic.js';
import { memoryReader } from '../helpers/memory-repo.js';

const FLOW = JSON.stringify([{ id: 't1', type: 'tab', label: 'main' }]);

function load(strategy: string, extra = '') {
  return loadRepository(memoryReader({
    'flows/a.json': FLOW,
    'fleet.yaml': `apiVersion: tower.redforge.dev/v1
kind: Fleet
metadata: { name: demo }
spec:
  instances:
    - name: a
      flows: [flows/a.json]
      port: 2001
${extra}      strategy:
${strategy}`,
  }));
}

describe('strategy: canary in fleet.yaml', () => {
  it('loads the steps and the analysis, normalised', () => {
    const repo = load(`        canary:
          steps: [ { weight: 10, pause: 60s }, { weight: 50, pause: 2m }, { weight: 100 } ]
          analysis:
            successRate: { min: 99% }
            latency: { p99: 500ms }
            compareToBaseline: true
            minRequests: 20
            prometheus: { url: "http://127.0.0.1:9090", query: "sum(rate(errors[1m]))", max: 0.5 }
`);
    expect(repo.diagnostics).toEqual([]);
    const a = repo.instances[0]!;
    expect(a.strategy).toBe('canary');
    expect(a.canary).toEqual({
      steps: [{ weight: 10, pauseMs: 60_000 }, { weight: 50, pauseMs: 120_000 }, { weight: 100, pauseMs: 0 }],
      analysis: { successRateMin: 0.99, latencyP99Ms: 500, compareToBaseline: true, minRequests: 20, prometheus: { url: 'http://127.0.0.1:9090', query: 'sum(rate(errors[1m]))', max: 0.5 } },
    });
  });

  it('points at weights that fall, do not end at 100, and at bad durations and percentages', () => {
    const repo = load(`        canary:
          steps:
            - { weight: 50, pause: 10s }
            - { weight: 20, pause: 10s }
            - { weight: 80, pause: 10s }
          analysis:
            successRate: { min: 120% }
`);
    const lines = repo.diagnostics.filter((d) => d.code === 'InvalidCanary').map((d) => `${d.line}:${d.col} ${d.message}`);
    expect(lines).toEqual([
      '13:25 strategy.canary: step 2: weight 20 does not rise above the step before (50)',
      '14:25 strategy.canary: the last step has weight 80; a canary ends at 100',
      '16:33 strategy.canary: successRate.min "120%" is not a percentage from 0% to 100%',
    ]);
    expect(repo.valid).toBe(false);
  });

  it('refuses weights over 100 and malformed durations through the schema, at their line', () => {
    const repo = load(`        canary:
          steps: [ { weight: 150, pause: 10s }, { weight: 100, pause: soon } ]
          analysis: { successRate: { min: 99% } }
`);
    expect(repo.valid).toBe(false);
    const at = repo.diagnostics.map((d) => `${d.line} ${d.message}`).join('\n');
    expect(at).toMatch(/^11 .*steps\[0\]\.weight: must be <= 100/m);
    expect(at).toMatch(/^11 .*steps\[1\]\.pause: "soon" is not valid/m);
  });

  it('refuses a canary that pauses without checking anything, and one behind nginx', () => {
    const bare = load(`        canary: { steps: [ { weight: 10, pause: 1m }, { weight: 100 } ] }
`);
    expect(bare.diagnostics.map((d) => d.message)).toContain('strategy.canary: the canary pauses but checks nothing: without analysis it would be promoted whatever it does');
    const nginx = load(`        canary: { steps: [ { weight: 100 } ] }
`, '      switch: nginx\n');
    expect(nginx.diagnostics.find((d) => d.code === 'InvalidCanary')?.message).toMatch(/needs switch: builtin/);
  });
});

const ANALYSIS: CanaryAnalysis = { successRateMin: 0.99, latencyP99Ms: 500, compareToBaseline: false, minRequests: 50 };
const t = (requests: number, successRate: number, p99Ms: number): TrafficSummary => ({ requests, successRate, serverErrors: 0, failed: 0, p50Ms: p99Ms / 2, p99Ms });

describe('judge: a step\'s window', () => {
  it('waits for enough requests, then for the pause; passes when every check holds', () => {
    expect(judge({ analysis: ANALYSIS, canary: t(10, 1, 10), baseline: t(90, 1, 10), elapsedMs: 5_000, pauseMs: 10_000 }).verdict).toBe('wait');
    expect(judge({ analysis: ANALYSIS, canary: t(60, 1, 10), baseline: t(600, 1, 10), elapsedMs: 5_000, pauseMs: 10_000 }).verdict).toBe('wait');
    expect(judge({ analysis: ANALYSIS, canary: t(120, 1, 10), baseline: t(900, 1, 10), elapsedMs: 10_000, pauseMs: 10_000 })).toEqual({ verdict: 'pass', reason: 'canary 120 requests, 100.0% ok, p99 10 ms; baseline 900 requests, 100.0% ok, p99 10 ms' });
  });

  it('fails at once, with the numbers, when a check fails on enough requests', () => {
    const v = judge({ analysis: ANALYSIS, canary: t(200, 0.95, 10), baseline: t(1800, 1, 10), elapsedMs: 2_000, pauseMs: 60_000 });
    expect(v).toEqual({ verdict: 'fail', reason: 'success rate 95.0% < 99.0% (canary 200 requests, 95.0% ok, p99 10 ms; baseline 1800 requests, 100.0% ok, p99 10 ms)' });
    expect(judge({ analysis: ANALYSIS, canary: t(200, 1, 900), baseline: t(1800, 1, 300), elapsedMs: 2_000, pauseMs: 60_000 }).reason).toMatch(/^p99 900 ms > 500 ms/);
  });

  it('fails a step that never gets enough traffic, at twice its pause', () => {
    expect(judge({ analysis: ANALYSIS, canary: t(3, 1, 10), baseline: t(30, 1, 10), elapsedMs: 19_000, pauseMs: 10_000 }).verdict).toBe('wait');
    expect(judge({ analysis: ANALYSIS, canary: t(3, 1, 10), baseline: t(30, 1, 10), elapsedMs: 20_000, pauseMs: 10_000 }).reason).toMatch(/^too little traffic to judge: 3 canary requests in 20 s, 50 needed/);
  });

  it('with compareToBaseline, judges against the baseline in the same window', () => {
    const relative = { ...ANALYSIS, compareToBaseline: true, latencyP99Ms: 100 };
    // Everyone is slow and a little failing: the canary is no worse — it passes.
    expect(judge({ analysis: relative, canary: t(100, 0.97, 700), baseline: t(900, 0.975, 650), elapsedMs: 10_000, pauseMs: 10_000 }).verdict).toBe('pass');
    // Three times slower than the baseline: it fails.
    expect(judge({ analysis: relative, canary: t(100, 1, 60 * 3), baseline: t(900, 1, 60), elapsedMs: 1_000, pauseMs: 10_000 }).reason).toMatch(/^p99 180 ms > baseline 60 ms \+ 100 ms/);
    // A baseline with too few requests of its own: wait for it, or compare with an earlier window's.
    expect(judge({ analysis: relative, canary: t(100, 0.97, 50), baseline: t(10, 0.97, 50), elapsedMs: 1_000, pauseMs: 10_000 }).verdict).toBe('wait');
    // None at all (a lone 100 % step): after the pause, the limits as written.
    expect(judge({ analysis: relative, canary: t(100, 1, 50), baseline: t(0, 1, 50), elapsedMs: 10_000, pauseMs: 10_000 }).verdict).toBe('pass');
    expect(judge({ analysis: relative, canary: t(100, 1, 150), baseline: t(0, 1, 50), elapsedMs: 10_000, pauseMs: 10_000 }).reason).toMatch(/^p99 150 ms > 100 ms/);
    expect(judge({ analysis: relative, canary: t(100, 1, 300), baseline: t(0, 1, 50), reference: t(400, 1, 60), elapsedMs: 1_000, pauseMs: 10_000 }).reason).toMatch(/^p99 300 ms > earlier baseline 60 ms \+ 100 ms/);
    expect(judge({ analysis: { ...relative, prometheus: { url: 'http://x', query: 'q', max: 1 } }, canary: t(100, 1, 50), baseline: t(900, 1, 50), elapsedMs: 1_000, pauseMs: 10_000, prometheus: 3 }).reason).toMatch(/^prometheus 3 > 1/);
  });
});

describe('the plan shows a canary\'s steps', () => {
  it('in text, Markdown (the PR comment and the check run) and JSON', async () => {
    const { diffFleet } = await import('../../src/core/diff.js');
    const { buildPlan } = await import('../../src/core/plan.js');
    const { planJson, planMarkdown, planText } = await import('../../src/core/render.js');
    const repo = load(`        canary:
          steps: [ { weight: 10, pause: 60s }, { weight: 50, pause: 2m }, { weight: 100 } ]
          analysis: { successRate: { min: 99.5% }, latency: { p99: 500ms }, compareToBaseline: true }
`);
    const instances = diffFleet(repo.instances, { instances: [{ name: 'a', flows: [{ id: 't1', type: 'tab', label: 'main' }, { id: 'n1', type: 'inject', z: 't1', wires: [] }] }] });
    const report = { fleet: 'demo', valid: true, plan: buildPlan(repo.fleet!, instances), instances, diagnostics: [] };
    const words = 'update (canary: 10% for 1 min → 50% for 2 min → 100%; each step checks success ≥ 99.5%, p99 ≤ 500 ms (against the baseline) over ≥ 50 requests)';
    expect(planText(report)).toContain(`~ a: ${words}`);
    expect(planMarkdown(report)).toContain(words);
    expect((planJson(report).waves as { steps: { canary?: unknown }[] }[])[0]!.steps[0]!.canary).toEqual(repo.instances[0]!.canary);
  });
});

describe('strategy: ab in fleet.yaml', () => {
  it('loads the variants, weight and duration, and the plan shows them', async () => {
    const { diffFleet } = await import('../../src/core/diff.js');
    const { buildPlan } = await import('../../src/core/plan.js');
    const { planText } = await import('../../src/core/render.js');
    const repo = load(`        ab: { variants: [control, new-checkout], weight: 20, duration: 1h }
`);
    expect(repo.diagnostics).toEqual([]);
    expect(repo.instances[0]).toMatchObject({ strategy: 'ab', ab: { variants: ['control', 'new-checkout'], weight: 20, durationMs: 3_600_000 } });
    const instances = diffFleet(repo.instances, { instances: [{ name: 'a', flows: [{ id: 't1', type: 'tab', label: 'main' }, { id: 'n1', type: 'inject', z: 't1', wires: [] }] }] });
    expect(planText({ fleet: 'demo', valid: true, plan: buildPlan(repo.fleet!, instances), instances, diagnostics: [] })).toContain('~ a: update (A/B: control 80% / new-checkout 20% for 1 h, then back to control (never promoted))');
  });

  it('points at variants of one name, an empty duration and a weight of 100', () => {
    const repo = load(`        ab: { variants: [same, same], weight: 100, duration: 0s }
`);
    const messages = repo.diagnostics.map((d) => `${d.line} ${d.message}`);
    expect(messages).toContain('10 strategy.ab: both variants are named "same"');
    expect(messages).toContain('10 strategy.ab: an experiment of no duration measures nothing');
    expect(messages.some((m) => /^10 .*ab\.weight: must be <= 99/.test(m))).toBe(true);
  });
});
