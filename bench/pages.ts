/**
 * bench/pages — what an instance page costs with a big flow: one tab of 5,000 nodes (1 % of
 * them changed live, so the drift marks do real work).
 *
 *   server: the page made in-process (the flows drawn, marked and rendered, as HTML) against
 *           a JSON round trip of the same flows (what reading them from Node-RED costs at the
 *           least), medians of --runs;
 *   browser: in Chromium (playwright-core, /usr/bin/chromium), load to drawn with FlowFuse's
 *           renderer against load to drawn with JavaScript off (the server's SVG), medians.
 *
 *   npm run bench:pages [-- --nodes 5000 --runs 5]
 */
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import type { FlowNode } from '../src/core/model.js';
import type { LiveInstance } from '../src/core/live.js';
import type { LoadedRevision } from '../src/engine/revisions.js';
import { createApp } from '../src/server/app.js';
import { listen } from '../src/server/listen.js';
import type { FleetStatus } from '../src/core/status.js';
import { median } from './helpers/large-fleet.js';

const { values } = parseArgs({ options: { nodes: { type: 'string', default: '5000' }, runs: { type: 'string', default: '5' } } });
const NODES = Number(values.nodes);
const RUNS = Number(values.runs);

function bigFlow(n: number, edited: boolean): FlowNode[] {
  const out: FlowNode[] = [{ id: 'tab', type: 'tab', label: 'big' }];
  for (let k = 0; k < n; k++) {
    const changed = edited && k % 100 === 0;
    out.push({ id: `n${k}`, type: k % 3 ? 'function' : 'change', z: 'tab', name: `step ${k}${changed ? ' (edited)' : ''}`, func: `msg.k = ${k};\nreturn msg;`, x: 120 + (k % 40) * 200, y: 40 + Math.floor(k / 40) * 60, wires: [k + 1 < n ? [`n${k + 1}`] : []] });
  }
  return out;
}

const git = bigFlow(NODES, false);
const live = bigFlow(NODES, true);
const status: FleetStatus = {
  fleet: 'bench',
  source: { kind: 'git', location: 'bench' },
  sync: 'OutOfSync',
  reason: 'Drift',
  message: 'drift',
  leader: true,
  instances: [{ name: 'big', color: 'blue', health: 'Healthy', healthMessage: '', condition: 'Drifted', message: 'drifted', drift: true, restarts: 0 }],
  rollout: null,
  validation: [],
  drift: ['big'],
};
const liveInstance: LiveInstance = { name: 'big', colors: {}, flows: live, adminUp: true };
const desired = { revision: 'f'.repeat(40), valid: true, repo: { instances: [{ name: 'big', flowList: git }], plans: [], diagnostics: [], valid: true } } as unknown as LoadedRevision;
const app = createApp({
  status: () => status,
  history: async () => [],
  version: 'bench',
  subscribe: () => () => undefined,
  pages: { observed: () => ({ live: [liveInstance], desired }), loadRevision: async () => desired, rolloutBase: () => undefined },
});

async function timeAsync(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

const load = (await import('node:os')).loadavg().map((l) => l.toFixed(2)).join(' ');
console.log(`bench/pages: one tab of ${NODES.toLocaleString('en-US')} nodes, 1 % changed live; ${RUNS} runs; load ${load}`);

let bytes = 0;
const page: number[] = [];
const json: number[] = [];
for (let r = 0; r < RUNS; r++) {
  json.push(await timeAsync(async () => JSON.parse(JSON.stringify(live))));
  page.push(await timeAsync(async () => (bytes = (await (await app.request('/instances/big')).text()).length)));
}
const serverRatio = median(page) / median(json);
console.log(`server   page ${median(page).toFixed(1)} ms (${(bytes / 1024).toFixed(0)} KiB)  vs JSON round trip ${median(json).toFixed(1)} ms  ratio ${serverRatio.toFixed(1)} (goal ≤ 20; the page is bounded to 2,000 nodes whatever the flow)`);

const server = await listen(app.fetch, '127.0.0.1', 0);
const url = `http://127.0.0.1:${server.port}/instances/big`;
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu'] });
try {
  const drawn: number[] = [];
  const plain: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const js = await browser.newContext();
    const p1 = await js.newPage();
    drawn.push(await timeAsync(async () => {
      await p1.goto(url);
      await p1.waitForSelector('#live-flows[data-renderer="ok"] .flow-renderer .flow_nodes g[data-node-id]', { timeout: 60_000 });
    }));
    await js.close();
    const off = await browser.newContext({ javaScriptEnabled: false });
    const p2 = await off.newPage();
    plain.push(await timeAsync(async () => {
      await p2.goto(url, { waitUntil: 'load' });
    }));
    await off.close();
  }
  console.log(`browser  drawn by the renderer ${median(drawn).toFixed(0)} ms (min ${Math.min(...drawn).toFixed(0)}, max ${Math.max(...drawn).toFixed(0)})  vs server SVG only ${median(plain).toFixed(0)} ms  ratio ${(median(drawn) / median(plain)).toFixed(1)} (goal ≤ 10)`);
} finally {
  await browser.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
