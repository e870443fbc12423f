/**
 * strategy: canary end to end: real Node-RED processes behind the built-in switch (a real
 * router process), open-loop HTTP load through the stable port, tower's own applyFleet.
 * A canary that answers 500 on 5 % of requests is rolled back at its first step with the
 * measured rate in the failure; a healthy one is promoted through every step; one 3× slower
 * than its baseline fails the latency check. Every answer that is not 200 and not the flow's
 * own 500 counts as a failure the switching caused: there are none.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/adapters/net.js';
import { main } from '../../src/cli.js';
import { bufferIo } from '../../src/commands/io.js';
import { applyFleet } from '../../src/engine/apply.js';
import type { RolloutEvent } from '../../src/engine/events.js';
import { loadDirectory } from '../../src/repository.js';
import { openRuntime } from '../../src/runtime.js';
import { tallyLoad } from '../helpers/tally-load.js';

/** GET /work: answers `text` and the colour after delayMs; with failEvery N, every Nth request is the flow's own 500. */
function workFlow(text: string, delayMs: number, failEvery = 0): object[] {
  const answer = failEvery
    ? `const n = (context.get('n') || 0) + 1; context.set('n', n);
if (n % ${failEvery} === 0) { msg.statusCode = 500; msg.payload = 'flow error'; } else { msg.payload = ${JSON.stringify(text)} + ' ' + env.get('TOWER_COLOR'); }`
    : `msg.payload = ${JSON.stringify(text)} + ' ' + env.get('TOWER_COLOR');`;
  return [
    { id: 'w-tab', type: 'tab', label: 'work' },
    { id: 'w-in', type: 'http in', z: 'w-tab', url: '/work', method: 'get', wires: [['w-fn']] },
    { id: 'w-fn', type: 'function', z: 'w-tab', func: `setTimeout(() => {\n${answer}\nnode.send(msg);\n}, ${delayMs});\nreturn null;`, outputs: 1, wires: [['w-out']] },
    { id: 'w-out', type: 'http response', z: 'w-tab', wires: [] },
  ];
}

const CANARY = `      strategy:
        canary:
          steps: [ { weight: 10, pause: 4s }, { weight: 50, pause: 3s }, { weight: 100 } ]
          analysis:
            successRate: { min: 99% }
            latency: { p99: 200ms }
            compareToBaseline: true
            minRequests: 25
`;

function writeFleet(dir: string, port: number, flow: object[], strategy = CANARY): void {
  mkdirSync(join(dir, 'flows'), { recursive: true });
  writeFileSync(join(dir, 'flows', 'api.json'), JSON.stringify(flow, null, 2));
  writeFileSync(join(dir, 'fleet.yaml'), `apiVersion: tower.redforge.dev/v1
kind: Fleet
metadata: { name: canary }
spec:
  defaults: { keepWarm: 0s, drainTimeout: 5s }
  instances:
    - name: api
      flows: [flows/api.json]
      port: ${port}
      smoke:
        - { name: works, http: { path: /work, expect: { status: 200 } } }
${strategy}`);
}

/** The flow's own errors; anything else that is not 200 the switching caused. */
const load = (port: number, intervalMs: number, maxRequests: number) => tallyLoad(port, '/work', intervalMs, maxRequests, (status, body) => status === 500 && body === 'flow error');

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

async function workspace() {
  const dir = mkdtempSync(join(tmpdir(), 'tower-canary-'));
  const state = mkdtempSync(join(tmpdir(), 'tower-canary-state-'));
  cleanups.push(async () => {
    await main(['destroy', '--state-dir', state], bufferIo(process.env));
    rmSync(dir, { recursive: true, force: true });
    rmSync(state, { recursive: true, force: true });
  });
  return { dir, state, port: await freePort() };
}

async function apply(dir: string, state: string) {
  const repo = loadDirectory(dir);
  expect(repo.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  const rt = await openRuntime({ stateDir: state, env: process.env });
  const events: RolloutEvent[] = [];
  try {
    const outcome = await applyFleet(rt, { fleet: repo.fleet!, instances: repo.instances, diagnostics: [] }, { env: process.env, onEvent: (e) => events.push(e) });
    const canary = events.filter((e): e is Extract<RolloutEvent, { type: 'canary' }> => e.type === 'canary');
    return { outcome, canary, live: (await rt.switchFor('builtin').status('api'))! };
  } finally {
    await rt.close();
  }
}

describe('strategy: canary, real Node-RED under open-loop load', () => {
  it('rolls back a canary that fails 5 % of requests at its first step, promotes a healthy one through every step, and fails one 3× slower on latency', async () => {
    const { dir, state, port } = await workspace();
    writeFleet(dir, port, workFlow('v1', 200));
    expect((await apply(dir, state)).outcome.result?.ok).toBe(true); // created: no baseline, no canary

    // 1. 5 % of the new flow's answers are 500: rolled back at step 1 (10 %), with the measured rate.
    let traffic = load(port, 10, 6_000);
    writeFleet(dir, port, workFlow('v2', 200, 20));
    const bad = await apply(dir, state);
    let tally = await traffic.stop();
    expect(bad.outcome.result?.ok).toBe(false);
    const failure = bad.outcome.result!.failure!;
    expect(failure).toMatchObject({ instance: 'api', phase: 'RESUME', kind: 'stalled' });
    expect(failure.error).toMatch(/step 1 \(10%\) failed after .*: success rate 9[0-6]\.\d% < baseline 100\.0% − 1\.0% \(canary \d+ requests, 9[0-6]\.\d% ok/);
    expect(new Set(bad.canary.map((e) => e.weight))).toEqual(new Set([10]));
    const measured = bad.canary.at(-1)!;
    expect(measured.verdict.verdict).toBe('fail');
    expect(measured.canary.requests).toBeGreaterThanOrEqual(25);
    expect(tally.flowErrors).toBeGreaterThan(0);
    expect(tally.switchFailures).toEqual({});
    expect(Object.keys(tally.ok).every((b) => b === 'v1 blue' || b === 'v2 green')).toBe(true);
    expect(bad.live).toMatchObject({ active: { color: 'blue' } });
    expect(bad.live.split).toBeUndefined();
    console.log(`bad canary: ${failure.error}; through the switch: ${JSON.stringify(tally)}`);

    // 2. A healthy canary: promoted through 10 %, 50 % and 100 %.
    traffic = load(port, 10, 6_000);
    writeFleet(dir, port, workFlow('v3', 200));
    const good = await apply(dir, state);
    tally = await traffic.stop();
    expect(good.outcome.result?.ok, good.outcome.result?.failure?.error).toBe(true);
    const passed = good.canary.filter((e) => e.verdict.verdict === 'pass').map((e) => e.weight);
    expect(passed).toEqual([10, 50, 100]);
    expect(tally.switchFailures).toEqual({});
    expect(tally.flowErrors).toBe(0);
    expect(tally.ok['v3 green']).toBeGreaterThan(0);
    expect(good.live).toMatchObject({ active: { color: 'green' } });
    const first = good.canary.find((e) => e.weight === 10 && e.verdict.verdict === 'pass')!;
    const share = first.canary.requests / (first.canary.requests + first.baseline.requests);
    console.log(`healthy canary: ${good.canary.filter((e) => e.verdict.verdict === 'pass').map((e) => e.verdict.reason).join(' | ')}`);
    console.log(`healthy canary: step 1 share ${(100 * share).toFixed(1)} % (${first.canary.requests} of ${first.canary.requests + first.baseline.requests}); through the switch: ${JSON.stringify(tally)}`);
    expect(Math.abs(100 * share - 10)).toBeLessThanOrEqual(5); // a few hundred requests: the deck holds it near 10 %

    // 3. Three times slower than its baseline (600 ms against 200 ms): fails the latency check.
    traffic = load(port, 10, 6_000);
    writeFleet(dir, port, workFlow('v4', 600));
    const slow = await apply(dir, state);
    tally = await traffic.stop();
    expect(slow.outcome.result?.ok).toBe(false);
    expect(slow.outcome.result!.failure!.error).toMatch(/p99 [6-9]\d\d(\.\d)? ms > baseline \d+(\.\d)? ms \+ 200 ms/);
    expect(tally.switchFailures).toEqual({});
    expect(slow.live).toMatchObject({ active: { color: 'green' } }); // v3 keeps serving
    console.log(`slow canary: ${slow.outcome.result!.failure!.error}; through the switch: ${JSON.stringify(tally)}`);
  }, 240_000);

  it('runs an A/B experiment for its duration with each variant\'s numbers, then goes back to the first: nothing promoted', async () => {
    const { dir, state, port } = await workspace();
    const AB = `      strategy:
        ab: { variants: [control, fast-path], weight: 30, duration: 4s }
`;
    writeFleet(dir, port, workFlow('v1', 20), AB);
    expect((await apply(dir, state)).outcome.result?.ok).toBe(true);
    const traffic = load(port, 10, 3_000);
    writeFleet(dir, port, workFlow('v2', 20), AB);
    const ab = await apply(dir, state);
    const tally = await traffic.stop();
    const failure = ab.outcome.result!.failure!;
    expect(ab.outcome.result?.ok).toBe(false);
    expect(failure).toMatchObject({ instance: 'api', phase: 'RESUME', kind: 'stalled' });
    expect(failure.error).toMatch(/A\/B experiment ended after 4(\.\d)? s \(fast-path had 30%\): control \(blue\) \d+ requests, 100\.0% ok, p50 [\d.]+ ms, p99 [\d.]+ ms; fast-path \(green\) \d+ requests, 100\.0% ok.*not promoted/);
    const last = ab.canary.at(-1)!;
    expect(last.variants).toEqual(['control', 'fast-path']);
    const share = (100 * last.canary.requests) / (last.canary.requests + last.baseline.requests);
    console.log(`A/B: ${failure.error}; fast-path's share ${share.toFixed(1)} %; through the switch: ${JSON.stringify(tally)}`);
    expect(Math.abs(share - 30)).toBeLessThanOrEqual(5);
    expect(tally.switchFailures).toEqual({});
    expect(tally.ok['v2 green']).toBeGreaterThan(0);
    expect(ab.live).toMatchObject({ active: { color: 'blue' } }); // back to control
    expect(ab.live.split).toBeUndefined();
  }, 120_000);
});
