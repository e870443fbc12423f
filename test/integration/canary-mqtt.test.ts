/**
 * MQTT work during a canary: the canary colour's deploy gate opens in VERIFY, alongside the
 * baseline's, so both colours' consumers share `$share/g/work` on a real mosquitto. How much
 * of the work the canary takes at each step is measured here, against the HTTP weight: the
 * broker hands a shared subscription's messages to its subscribers in turn, so with one
 * consumer per colour the canary takes about half, whatever the weight. No message is lost.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/adapters/net.js';
import { main } from '../../src/cli.js';
import { bufferIo } from '../../src/commands/io.js';
import { applyFleet } from '../../src/engine/apply.js';
import { loadDirectory } from '../../src/repository.js';
import { openRuntime } from '../../src/runtime.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { tallyLoad } from '../helpers/tally-load.js';

/** A consumer through the gate that records each message's id, GET /seen lists them; GET /hello answers `text`. */
function workerFlows(text: string): object[] {
  const z = 'worker-tab';
  return [
    { id: z, type: 'tab', label: 'worker' },
    { id: 'work-in', type: 'mqtt in', z, name: 'work', topic: '$share/g/work', qos: '1', datatype: 'json', broker: 'tower-gate-consumer', nl: false, rap: true, rh: 0, inputs: 0, wires: [['record']] },
    { id: 'record', type: 'function', z, func: "const seen = flow.get('seen') || [];\nseen.push(msg.payload.id);\nflow.set('seen', seen);\nreturn null;", outputs: 1, wires: [[]] },
    { id: 'seen-in', type: 'http in', z, url: '/seen', method: 'get', wires: [['seen-fn']] },
    { id: 'seen-fn', type: 'function', z, func: "msg.payload = flow.get('seen') || [];\nreturn msg;", outputs: 1, wires: [['out']] },
    { id: 'hello-in', type: 'http in', z, url: '/hello', method: 'get', wires: [['hello-fn']] },
    { id: 'hello-fn', type: 'function', z, func: `msg.payload = ${JSON.stringify(text)} + ' ' + env.get('TOWER_COLOR');\nreturn msg;`, outputs: 1, wires: [['out']] },
    { id: 'out', type: 'http response', z, wires: [] },
  ];
}

function writeFleet(dir: string, port: number, text: string): void {
  mkdirSync(join(dir, 'flows'), { recursive: true });
  writeFileSync(join(dir, 'flows', 'worker.json'), JSON.stringify(workerFlows(text)));
  writeFileSync(join(dir, 'fleet.yaml'), `apiVersion: tower.redforge.dev/v1
kind: Fleet
metadata: { name: mq }
spec:
  defaults: { keepWarm: 0s, drainTimeout: 2s }
  instances:
    - name: worker
      flows: [lib:deploy-gate, flows/worker.json]
      port: ${port}
      smoke:
        - { name: hello, http: { path: /hello, expect: { status: 200 } } }
      strategy:
        canary:
          steps: [ { weight: 10, pause: 6s }, { weight: 50, pause: 6s }, { weight: 100 } ]
          analysis: { successRate: { min: 99% }, minRequests: 5 }
`);
}

let broker: Mosquitto;
const dirs: string[] = [];
let state: string | undefined;

beforeAll(async () => {
  broker = await startMosquitto();
});

afterAll(async () => {
  if (state) await main(['destroy', '--state-dir', state], bufferIo({ ...process.env, MQTT_URL: broker.url })).catch(() => 1);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await broker?.stop();
});

async function seen(port: number): Promise<string[]> {
  return (await (await fetch(`http://127.0.0.1:${port}/seen`)).json()) as string[];
}

describe('strategy: canary and MQTT work', () => {
  it('measures the canary\'s share of shared-subscription work at each weight; nothing is lost', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tower-canary-mqtt-'));
    state = mkdtempSync(join(tmpdir(), 'tower-canary-mqtt-state-'));
    dirs.push(dir, state);
    const env = { ...process.env, MQTT_URL: broker.url };
    const port = await freePort();
    const publisher = await mqtt.connectAsync(broker.url, { clientId: 'canary-mqtt-test-publisher' });
    const apply = async () => {
      const repo = loadDirectory(dir);
      expect(repo.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
      const rt = await openRuntime({ stateDir: state!, env });
      const measured: { weight: number; canary: number; baseline: number; published: number }[] = [];
      const measuring: Promise<void>[] = [];
      try {
        const outcome = await applyFleet(rt, { fleet: repo.fleet!, instances: repo.instances, diagnostics: [] }, {
          env,
          onEvent: (e) => {
            if (e.type !== 'canary' || measured.some((m) => m.weight === e.weight) || measuring.length > measured.length) return;
            // The first reading of a step: publish 200 messages of work and see who takes them.
            measuring.push((async () => {
              const colours = rt.registry.read().instances.worker!.colors;
              const canaryPort = colours[e.color]!.port;
              const baselinePort = colours[e.color === 'blue' ? 'green' : 'blue']!.port;
              const before = { canary: (await seen(canaryPort)).length, baseline: (await seen(baselinePort)).length };
              const ids = Array.from({ length: 200 }, (_, i) => `w${e.weight}-${i}`);
              await Promise.all(ids.map((id) => publisher.publishAsync('work', JSON.stringify({ id }), { qos: 1 })));
              let canary: string[] = [];
              let baseline: string[] = [];
              for (let i = 0; i < 60; i++) {
                canary = (await seen(canaryPort)).slice(before.canary);
                baseline = (await seen(baselinePort)).slice(before.baseline);
                if (ids.every((id) => canary.includes(id) || baseline.includes(id))) break;
                await new Promise((r) => setTimeout(r, 50));
              }
              expect(ids.filter((id) => !canary.includes(id) && !baseline.includes(id))).toEqual([]); // none lost
              measured.push({ weight: e.weight, canary: canary.length, baseline: baseline.length, published: ids.length });
            })());
          },
        });
        await Promise.all(measuring);
        return { outcome, measured };
      } finally {
        await rt.close();
      }
    };
    try {
      writeFleet(dir, port, 'v1');
      expect((await apply()).outcome.result?.ok).toBe(true);
      const traffic = tallyLoad(port, '/hello', 20, 3_000);
      writeFleet(dir, port, 'v2');
      const { outcome, measured } = await apply();
      const tally = await traffic.stop();
      expect(outcome.result?.ok, outcome.result?.failure?.error).toBe(true);
      expect(tally.switchFailures).toEqual({});
      for (const m of measured) {
        const share = (100 * m.canary) / (m.canary + m.baseline);
        console.log(`HTTP weight ${m.weight} %: the canary consumed ${m.canary} of ${m.canary + m.baseline} MQTT messages (${share.toFixed(1)} %; published ${m.published})`);
      }
      const at = (w: number) => measured.find((m) => m.weight === w)!;
      expect(measured.map((m) => m.weight)).toEqual([10, 50, 100]);
      // Round robin between the two colours' subscriptions, whatever the HTTP weight.
      for (const w of [10, 50]) expect(Math.abs((100 * at(w).canary) / (at(w).canary + at(w).baseline) - 50)).toBeLessThanOrEqual(10);
    } finally {
      await publisher.endAsync();
    }
  }, 180_000);
});
