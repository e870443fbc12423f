/**
 * flows/deploy-gate.json on a real Node-RED, driven through deployGate() over a private
 * mosquitto. Each colour runs the gate plus a consumer: an `mqtt in` on $share/g/work bound
 * to the gate's consumer broker config, which records every message id; GET /seen lists them.
 * Last, fleet-example's embeddings instance runs its own smoke checks behind the gate.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import mqtt, { type IConnackPacket, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consumerClientId, deployGate, gateTopic, type DeployGate } from '../../src/adapters/mqtt/gate.js';
import { runSmokeChecks } from '../../src/adapters/smoke.js';
import type { FlowNode } from '../../src/core/model.js';
import { loadDirectory } from '../../src/repository.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { startNodeRed, type NodeRedProcess } from '../helpers/nodered-process.js';

const GATE_FLOWS = JSON.parse(readFileSync(fileURLToPath(new URL('../../flows/deploy-gate.json', import.meta.url)), 'utf8')) as FlowNode[];

/** The consumer side of an instance: takes work only through the gate's broker config. */
function consumerFlows(): FlowNode[] {
  const z = 'test-consumer-tab';
  return [
    { id: z, type: 'tab', label: 'consumer' },
    { id: 'test-work-in', type: 'mqtt in', z, name: 'work', topic: '$share/g/work', qos: '1', datatype: 'json', broker: 'tower-gate-consumer', nl: false, rap: true, rh: 0, inputs: 0, wires: [['test-record']] },
    { id: 'test-record', type: 'function', z, name: 'record', func: "const seen = flow.get('seen', 'memory') || [];\nseen.push(msg.payload.id);\nflow.set('seen', seen, 'memory');\nreturn null;", outputs: 1, wires: [[]] },
    { id: 'test-seen-in', type: 'http in', z, url: '/seen', method: 'get', wires: [['test-seen-fn']] },
    { id: 'test-seen-fn', type: 'function', z, func: "msg.payload = { color: env.get('TOWER_COLOR'), seen: flow.get('seen', 'memory') || [] };\nreturn msg;", outputs: 1, wires: [['test-seen-out']] },
    { id: 'test-seen-out', type: 'http response', z, statusCode: '200', headers: {}, wires: [] },
  ];
}

/**
 * The default context store is asynchronous and outlives a redeploy, as Tower's Redis store
 * for `context: shared` is (here: localfilesystem without cache). The gate must work with it.
 * The test's own consumer keeps its record in a second, in-memory store.
 */
const CONTEXT_STORAGE = { default: { module: 'localfilesystem', config: { cache: false } }, memory: { module: 'memory' } };

function startColour(broker: Mosquitto, fleet: string, color: 'blue' | 'green'): Promise<NodeRedProcess> {
  return startNodeRed({
    flows: [...GATE_FLOWS, ...consumerFlows()],
    settings: { contextStorage: CONTEXT_STORAGE },
    env: { TOWER_FLEET: fleet, TOWER_INSTANCE: 'worker', TOWER_COLOR: color, TOWER_GATE_TOPIC: gateTopic(fleet, 'worker', color), TOWER_MQTT_CLIENT_ID: consumerClientId(fleet, 'worker', color), TOWER_MQTT_URL: broker.url, TOWER_MQTT_VERIFY_SERVER_CERT: 'true' },
  });
}

async function seen(nr: NodeRedProcess): Promise<string[]> {
  const res = await fetch(`${nr.url}/seen`);
  const body = (await res.json()) as { seen: string[] };
  return body.seen;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll until check() is truthy; bounded in tries and time. */
async function eventually<T>(what: string, check: () => Promise<T | null | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | null | false = null;
  for (let i = 0; i < 500 && Date.now() < deadline; i++) {
    last = await check();
    if (last) return last;
    await sleep(50);
  }
  throw new Error(`${what}: not true within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
}

async function publishWork(client: MqttClient, ids: string[]): Promise<void> {
  await Promise.all(ids.map((id) => client.publishAsync('work', JSON.stringify({ id }), { qos: 1 })));
}

const range = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

let broker: Mosquitto | undefined;
let publisher: MqttClient | undefined;
const gates: DeployGate[] = [];
const colours: NodeRedProcess[] = [];

beforeAll(async () => {
  broker = await startMosquitto();
  publisher = await mqtt.connectAsync(broker.url, { clientId: 'test-publisher', reconnectPeriod: 0 });
});

afterAll(async () => {
  // Everything this file started, whatever happened.
  await Promise.allSettled(colours.map((c) => c.stop()));
  await Promise.allSettled(gates.map((g) => g.end()));
  await publisher?.endAsync().catch(() => undefined);
  await broker?.stop();
}, 60_000);

describe('one colour behind its gate', () => {
  const base = gateTopic('solo', 'worker', 'blue');
  let nr: NodeRedProcess;
  let gate: DeployGate;
  let watcher: MqttClient;
  const states: string[] = [];

  beforeAll(async () => {
    gate = deployGate({ url: broker!.url });
    gates.push(gate);
    // Everything the gate publishes on its state topic, in order (retained replays excluded).
    watcher = await mqtt.connectAsync(broker!.url, { clientId: 'test-watcher', reconnectPeriod: 0 });
    watcher.on('message', (_t, p, packet) => {
      if (!packet.retain) states.push(p.toString());
    });
    await watcher.subscribeAsync(`${base}/state`, { qos: 1 });
    nr = await startColour(broker!, 'solo', 'blue');
    colours.push(nr);
  });

  afterAll(async () => {
    await watcher?.endAsync().catch(() => undefined);
    await nr?.stop();
  });

  // Nothing the gate did may have logged an error.
  afterAll(() => {
    expect(nr?.output() ?? '').not.toMatch(/\[error\]|synchronous access/);
  });

  it('(a) starts closed: reports "closed", and its consumer receives nothing', async () => {
    await eventually('the gate reports closed', async () => (await gate.state(base)) === 'closed');
    await publishWork(publisher!, range('a', 20));
    await sleep(500);
    expect(await seen(nr)).toEqual([]);
  });

  it('(b) after open(), the consumer receives', async () => {
    await gate.open(base);
    expect(await gate.state(base)).toBe('open');
    await publishWork(publisher!, range('b', 20));
    const got = await eventually('20 messages arrive', async () => ((await seen(nr)).length >= 20 ? seen(nr) : null));
    expect(got).toEqual(range('b', 20));
  });

  it('(c) after close(), it stops receiving and the state says closed', async () => {
    await gate.close(base);
    expect(await gate.state(base)).toBe('closed');
    await publishWork(publisher!, range('c', 20));
    await sleep(500);
    expect(await seen(nr)).toEqual(range('b', 20));
    expect(nr.output()).toMatch(/\[mqtt-broker:Tower gate: consumers\] Disconnected from broker/);
  });

  it('open() and close() are idempotent, and each answers again', async () => {
    await gate.close(base);
    await gate.open(base);
    await gate.open(base);
    expect(await gate.state(base)).toBe('open');
    await publishWork(publisher!, ['i-0']);
    await eventually('i-0 arrives', async () => (await seen(nr)).includes('i-0'));
  });

  it('a stale retained "open" never passes for an answer: with Node-RED stopped, open() times out', async () => {
    await nr.halt();
    expect(await gate.state(base)).toBe('open'); // retained from before: no one is there
    const quick = deployGate({ url: broker!.url, timeoutMs: 1000 });
    gates.push(quick);
    await expect(quick.open(base)).rejects.toThrow('the deploy gate of worker/blue did not report open within 1 s — does the instance include lib:deploy-gate?');
  });

  it('(d) the retained command survives a restart: Node-RED comes back with its consumer connected', async () => {
    states.length = 0;
    const from = nr.output().length;
    await nr.restart();
    await eventually('the restarted gate reports open', async () => states.at(-1) === 'open');
    // It starts closed (and says so, unless the retained command is quicker), then opens on
    // the retained command by itself.
    expect(['closed,open', 'open']).toContain(states.join(','));
    await nr.waitForOutput(/\[mqtt-broker:Tower gate: consumers\] Connected to broker/, 5000, from);
    await publishWork(publisher!, range('d', 10));
    // Flow context is memory: the restarted process only has what came after the restart.
    const got = await eventually('10 messages arrive', async () => ((await seen(nr)).length >= 10 ? seen(nr) : null));
    expect(got).toEqual(range('d', 10));
  });

  it('a redeploy (restart flows) reconnects the consumers on the retained command', async () => {
    // With a context store configured, Node-RED keeps node context across a redeploy; the
    // gate must not rely on such memory (it would believe it is open while its new consumer
    // connection is down).
    const from = nr.output().length;
    const res = await fetch(`${nr.url}/flows`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'Node-RED-Deployment-Type': 'reload' }, body: '{}' });
    expect(res.ok).toBe(true);
    await nr.waitForOutput(/Started flows/, 10_000, from);
    await nr.waitForOutput(/\[mqtt-broker:Tower gate: consumers\] Connected to broker/, 5000, from);
    await publishWork(publisher!, range('r', 10));
    await eventually('10 messages arrive', async () => {
      const now = await seen(nr);
      return range('r', 10).every((id) => now.includes(id));
    });
    expect(await gate.state(base)).toBe('open');
  });

  it('clear() removes the retained command and state; the gate stays as it is', async () => {
    await gate.clear(base);
    expect(await gate.state(base)).toBeNull();
    const retained: string[] = [];
    const probe = await mqtt.connectAsync(broker!.url, { reconnectPeriod: 0 });
    try {
      probe.on('message', (t, p) => retained.push(`${t}=${p.toString()}`));
      await probe.subscribeAsync([base, `${base}/state`], { qos: 1 });
      await sleep(200);
    } finally {
      await probe.endAsync();
    }
    expect(retained).toEqual([]);
    await publishWork(publisher!, ['e-0']);
    await eventually('e-0 arrives', async () => (await seen(nr)).includes('e-0'));
  });

  it('names the instance and colour when no gate answers', async () => {
    const quick = deployGate({ url: broker!.url, timeoutMs: 500 });
    gates.push(quick);
    await expect(quick.close(gateTopic('redforge', 'storage', 'green'))).rejects.toThrow(
      'the deploy gate of storage/green did not report closed within 500 ms — does the instance include lib:deploy-gate?',
    );
  });

  it('reports a broker it cannot reach', async () => {
    const nowhere = deployGate({ url: 'mqtt://127.0.0.1:1', timeoutMs: 500 });
    gates.push(nowhere);
    await expect(nowhere.state(base)).rejects.toThrow(/^cannot connect to the MQTT broker at mqtt:\/\/127\.0\.0\.1:1 within 500 ms/);
  });
});

describe('make before break: blue hands the shared subscription over to green', () => {
  const fleet = 'mbb';
  const blueBase = gateTopic(fleet, 'worker', 'blue');
  const greenBase = gateTopic(fleet, 'worker', 'green');
  let blue: NodeRedProcess;
  let green: NodeRedProcess;
  let gate: DeployGate;

  beforeAll(async () => {
    gate = deployGate({ url: broker!.url });
    gates.push(gate);
    // One at a time: two cores, and starts are CPU-bound.
    blue = await startColour(broker!, fleet, 'blue');
    colours.push(blue);
    green = await startColour(broker!, fleet, 'green');
    colours.push(green);
    await eventually('both gates report closed', async () => (await gate.state(blueBase)) === 'closed' && (await gate.state(greenBase)) === 'closed');
  });

  afterAll(async () => {
    await blue?.stop();
    await green?.stop();
  });

  it('every message sent during the swap is processed exactly once, none lost', async () => {
    await gate.open(blueBase);
    const RATE = 100; // messages per second
    const TOTAL = 400; // 4 s
    const ids = range('m', TOTAL);
    const acks: Promise<unknown>[] = [];
    let sent = 0;
    const t0 = Date.now();

    const publishing = (async () => {
      for (let i = 0; i < TOTAL; i++) {
        const due = t0 + (i * 1000) / RATE;
        if (due > Date.now()) await sleep(due - Date.now());
        acks.push(publisher!.publishAsync('work', JSON.stringify({ id: ids[i] }), { qos: 1 }));
        sent = i + 1;
      }
    })();

    // About a second in: green joins, then blue leaves — green first.
    await sleep(1000);
    const sentAtOpen = sent;
    await gate.open(greenBase);
    const sentWhenGreenOpen = sent;
    await gate.close(blueBase);
    const sentWhenBlueClosed = sent;
    await publishing;
    await Promise.all(acks);
    const publishMs = Date.now() - t0;

    const [b, g] = await eventually(
      `all ${TOTAL} messages processed`,
      async () => {
        const both = [await seen(blue), await seen(green)] as const;
        return both[0].length + both[1].length >= TOTAL ? both : null;
      },
      15_000,
    );
    await sleep(300); // anything late would be a duplicate: give it a chance to show
    const [blueSeen, greenSeen] = [await seen(blue), await seen(green)];
    const all = [...blueSeen, ...greenSeen];
    const unique = new Set(all);
    const lost = ids.filter((id) => !unique.has(id));
    const duplicated = all.length - unique.size;
    const index = (id: string) => Number(id.slice(2));
    console.log(
      `[make-before-break] sent ${TOTAL} at ${RATE}/s in ${publishMs} ms (all acknowledged); green opened after message ${sentWhenGreenOpen} ` +
        `(open called at ${sentAtOpen}), blue closed after ${sentWhenBlueClosed}; processed: blue ${blueSeen.length}, green ${greenSeen.length}, ` +
        `total ${all.length}; lost ${lost.length}; duplicated ${duplicated}`,
    );
    expect(b.length + g.length).toBe(TOTAL);
    expect(lost).toEqual([]);
    expect(duplicated).toBe(0);
    // Before the swap only blue consumed; after blue's gate closed only green did.
    expect(Math.min(...greenSeen.map(index))).toBeGreaterThanOrEqual(sentAtOpen - 1);
    expect(Math.max(...blueSeen.map(index))).toBeLessThan(sentWhenBlueClosed);
    expect(blueSeen.length).toBeGreaterThanOrEqual(sentAtOpen - 1);
    expect(greenSeen.length).toBeGreaterThanOrEqual(TOTAL - sentWhenBlueClosed);
    expect(await gate.state(blueBase)).toBe('closed');
    expect(await gate.state(greenBase)).toBe('open');
  });
});

describe('endSession(): the consumer session of a colour that is gone', () => {
  /** Connect with Clean Start off and tell whether a session was there; `keep` it, or end it (Session Expiry 0). */
  async function sessionPresent(clientId: string, keep: boolean): Promise<boolean> {
    const properties = keep ? { sessionExpiryInterval: 3600 } : {};
    const probe = mqtt.connect(broker!.url, { clientId, clean: false, protocolVersion: 5, properties, reconnectPeriod: 0, connectTimeout: 5000 });
    try {
      const connack = await new Promise<IConnackPacket>((resolve, reject) => {
        probe.once('connect', resolve);
        probe.once('error', reject);
      });
      return connack.sessionPresent;
    } finally {
      await probe.endAsync();
    }
  }

  it('ends the persistent session that a crashed colour left behind', async () => {
    const clientId = consumerClientId('gone', 'worker', 'blue');
    // What a colour that crashed while open leaves: a persistent session with a subscription.
    const crashed = await mqtt.connectAsync(broker!.url, { clientId, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 }, reconnectPeriod: 0 });
    await crashed.subscribeAsync('gone/work', { qos: 1 });
    crashed.end(true); // no DISCONNECT: as if the process died

    expect(await sessionPresent(clientId, true)).toBe(true);

    const gate = deployGate({ url: broker!.url });
    gates.push(gate);
    await gate.endSession(clientId);
    expect(await sessionPresent(clientId, false)).toBe(false);
  });
});

describe("fleet-example's embeddings behind its gate", () => {
  let nr: NodeRedProcess;
  let gate: DeployGate;
  const base = gateTopic('redforge', 'embeddings', 'green');
  const repo = loadDirectory(fileURLToPath(new URL('../../fleet-example', import.meta.url)));
  const embeddings = repo.instances.find((i) => i.name === 'embeddings')!;

  beforeAll(async () => {
    expect(repo.valid).toBe(true);
    expect(embeddings.flows).toContain('lib:deploy-gate');
    gate = deployGate({ url: broker!.url });
    gates.push(gate);
    nr = await startNodeRed({
      flows: embeddings.flowList,
      env: { TOWER_FLEET: 'redforge', TOWER_INSTANCE: 'embeddings', TOWER_COLOR: 'green', TOWER_GATE_TOPIC: base, TOWER_MQTT_CLIENT_ID: consumerClientId('redforge', 'embeddings', 'green'), TOWER_MQTT_URL: broker!.url, TOWER_MQTT_VERIFY_SERVER_CERT: 'true', EMBEDDING_DIMS: '256' },
    });
    colours.push(nr);
    await eventually('the gate reports closed', async () => (await gate.state(base)) === 'closed');
  });

  afterAll(async () => {
    await nr?.stop();
  });

  it('passes its HTTP smoke checks closed, and its MQTT one only once the gate is open', async () => {
    const quick = embeddings.smoke.map((c) => ({ ...c, timeout: '1s' }));
    const closed = await runSmokeChecks({ baseUrl: nr.url, checks: quick, mqtt: { url: broker!.url } });
    expect(closed.map((r) => [r.name, r.ok])).toEqual([
      ['embeds text over HTTP', true],
      ['turns a chunk into a vector over MQTT', false],
    ]);
    expect(closed[1]!.message).toMatch(/^no message on redforge\/vectors containing .* within 1 s after publishing to redforge\/chunks/);

    await gate.open(base);
    const open = await runSmokeChecks({ baseUrl: nr.url, checks: embeddings.smoke, mqtt: { url: broker!.url } });
    expect(open.map((r) => [r.name, r.ok, r.ok ? '' : r.message])).toEqual([
      ['embeds text over HTTP', true, ''],
      ['turns a chunk into a vector over MQTT', true, ''],
    ]);
  });
});
