/**
 * "A broker restart during a drain loses nothing": Tower's embedded mosquitto (persistence on,
 * the config ensureEmbeddedBroker writes) is restarted — stopped with SIGTERM and started
 * again on the same port from the same data directory — while Tower hands MQTT consumption
 * over from one colour to the other through flows/deploy-gate.json (the new colour's gate
 * open, the old one's closing) and a publisher sends QoS 1 messages at a steady rate. Two
 * handovers: blue -> green with the restart right after Tower asks blue's gate to close
 * (before the gate has the command), then green -> blue with the restart as soon as the
 * command is on the broker (while the gate acts on it).
 *
 * Each colour is a real Node-RED with the gate and two consumers on `tower-gate-consumer`:
 * one on the plain topic `work`, one on the shared subscription `$share/g/swork`; each
 * records the ids it processed (GET /seen). Every id is published to both topics, and only
 * the messages the publisher got a PUBACK for count as sent.
 *
 * The guarantee is asserted for the plain topic: every acknowledged message is processed at
 * least once (none lost); duplicates are counted and reported. The shared subscription is
 * measured and reported only: mosquitto 2.0 does not save shared subscriptions, so what is
 * published after the restart and before the consumers subscribe again is lost.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt, { type IConnackPacket, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureEmbeddedBroker, stopEmbeddedBroker, type BrokerEndpoint } from '../../src/adapters/mqtt/embedded-broker.js';
import { consumerClientId, deployGate, gateTopic, type DeployGate } from '../../src/adapters/mqtt/gate.js';
import type { FlowNode } from '../../src/core/model.js';
import type { Color } from '../../src/core/rollout.js';
import { startNodeRed, type NodeRedProcess } from '../helpers/nodered-process.js';

const GATE_FLOWS = JSON.parse(readFileSync(fileURLToPath(new URL('../../flows/deploy-gate.json', import.meta.url)), 'utf8')) as FlowNode[];
const FLEET = 'rst';
const RATE = 50; // ids per second (each id goes to both topics)
const TOTAL = 1000; // 20 s
const SHARED = '$share/g/swork';

/** Two consumers through the gate (plain and shared), each recording the ids it processed. */
function consumerFlows(): FlowNode[] {
  const z = 'rst-consumer-tab';
  const record = (key: string) => `const seen = flow.get('${key}') || [];\nseen.push(msg.payload.id);\nflow.set('${key}', seen);\nreturn null;`;
  return [
    { id: z, type: 'tab', label: 'consumer' },
    { id: 'rst-work-in', type: 'mqtt in', z, name: 'work', topic: 'work', qos: '1', datatype: 'json', broker: 'tower-gate-consumer', nl: false, rap: true, rh: 0, inputs: 0, wires: [['rst-work-record']] },
    { id: 'rst-work-record', type: 'function', z, func: record('work'), outputs: 1, wires: [[]] },
    { id: 'rst-swork-in', type: 'mqtt in', z, name: 'swork', topic: SHARED, qos: '1', datatype: 'json', broker: 'tower-gate-consumer', nl: false, rap: true, rh: 0, inputs: 0, wires: [['rst-swork-record']] },
    { id: 'rst-swork-record', type: 'function', z, func: record('swork'), outputs: 1, wires: [[]] },
    { id: 'rst-seen-in', type: 'http in', z, url: '/seen', method: 'get', wires: [['rst-seen-fn']] },
    { id: 'rst-seen-fn', type: 'function', z, func: "msg.payload = { work: flow.get('work') || [], swork: flow.get('swork') || [] };\nreturn msg;", outputs: 1, wires: [['rst-seen-out']] },
    { id: 'rst-seen-out', type: 'http response', z, statusCode: '200', headers: {}, wires: [] },
  ];
}

interface Seen {
  work: number[];
  swork: number[];
}

async function seen(nr: NodeRedProcess): Promise<Seen> {
  const res = await fetch(`${nr.url}/seen`);
  return (await res.json()) as Seen;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

let stateDir: string | undefined;
let broker: BrokerEndpoint | undefined;
let publisher: MqttClient | undefined;
let gate: DeployGate | undefined;
const colours: NodeRedProcess[] = [];

function brokerPid(): number | undefined {
  const record = stateDir ? join(stateDir, 'broker.json') : undefined;
  return record && existsSync(record) ? (JSON.parse(readFileSync(record, 'utf8')) as { pid: number }).pid : undefined;
}

/** SIGTERM (mosquitto saves its database), wait until it has exited; bounded. */
async function stopBroker(): Promise<void> {
  const pid = brokerPid();
  if (!stateDir || pid === undefined) return;
  stopEmbeddedBroker(stateDir);
  for (let i = 0; i < 200 && isAlive(pid); i++) await sleep(25);
  if (isAlive(pid)) process.kill(pid, 'SIGKILL');
}

// The broker runs detached (as Tower runs it): never leave it behind, even on a crash.
process.once('exit', () => {
  const pid = brokerPid();
  if (pid !== undefined && isAlive(pid)) process.kill(pid, 'SIGKILL');
});

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), 'tower-broker-restart-'));
  broker = await ensureEmbeddedBroker(stateDir);
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(colours.map((c) => c.stop()));
  await gate?.end().catch(() => undefined);
  publisher?.end(true);
  await stopBroker();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
}, 60_000);

describe('a broker restart during the handover from one colour to the other', () => {
  const base = (color: Color) => gateTopic(FLEET, 'worker', color);
  const nr: Partial<Record<Color, NodeRedProcess>> = {};

  const startColour = (color: Color) =>
    startNodeRed({
      flows: [...GATE_FLOWS, ...consumerFlows()],
      env: {
        TOWER_FLEET: FLEET,
        TOWER_INSTANCE: 'worker',
        TOWER_COLOR: color,
        TOWER_GATE_TOPIC: base(color),
        TOWER_MQTT_CLIENT_ID: consumerClientId(FLEET, 'worker', color),
        TOWER_MQTT_URL: broker!.url,
        TOWER_MQTT_VERIFY_SERVER_CERT: 'true',
      },
    });

  const seenBoth = async (): Promise<Record<Color, Seen>> => ({ blue: await seen(nr.blue!), green: await seen(nr.green!) });

  beforeAll(async () => {
    // Bounded per call; a broker restart plus Node-RED's 5 s reconnect fit well inside.
    gate = deployGate({ url: broker!.url, timeoutMs: 20_000 });
    // One at a time: starts are CPU-bound.
    for (const color of ['blue', 'green'] as const) {
      const p = await startColour(color);
      colours.push(p);
      nr[color] = p;
    }
    // A persistent session of its own: mqtt.js keeps what is not acknowledged and sends it
    // again after reconnecting, and queues what is published while the broker is away.
    publisher = await mqtt.connectAsync(broker!.url, { clientId: 'rst-publisher', clean: false, reconnectPeriod: 500 });
    publisher.on('error', () => undefined); // refused connections while the broker restarts
  }, 60_000);

  it('every message the publisher got a PUBACK for is processed (at least once), none lost', async () => {
    await gate!.open(base('blue'));
    const acked = { work: new Set<number>(), swork: new Set<number>() };
    let published = 0;
    const t0 = Date.now();
    const at = () => Date.now() - t0;
    const log: string[] = [];

    const publishing = (async () => {
      for (let i = 0; i < TOTAL; i++) {
        const due = t0 + (i * 1000) / RATE;
        if (due > Date.now()) await sleep(due - Date.now());
        const payload = JSON.stringify({ id: i });
        publisher!.publish('work', payload, { qos: 1 }, (err) => void (err || acked.work.add(i)));
        publisher!.publish('swork', payload, { qos: 1 }, (err) => void (err || acked.swork.add(i)));
        published = i + 1;
      }
    })();

    const restartBroker = async (): Promise<{ stoppedAt: number; upAt: number }> => {
      const stoppedAt = at();
      await stopBroker();
      const restarted = await ensureEmbeddedBroker(stateDir!);
      expect(restarted.port).toBe(broker!.port); // the same address: clients reconnect by themselves
      return { stoppedAt, upAt: at() };
    };

    /** open(to), then close(from) with the broker restarted under it. */
    const handover = async (from: Color, to: Color, restartWhen: 'asked' | 'on the broker') => {
      await gate!.open(base(to));
      const openAt = at();
      const openAfter = published;
      // The command as the broker passes it on (not the retained copy from before).
      const watcher = await mqtt.connectAsync(broker!.url, { clientId: `rst-watch-${from}`, reconnectPeriod: 0 });
      const onBroker = new Promise<void>((resolve) => watcher.on('message', (_t, p, packet) => !packet.retain && p.toString() === 'closed' && resolve()));
      await watcher.subscribeAsync(base(from), { qos: 1 });
      let closedAt = 0;
      const askedAt = at();
      const closing = gate!.close(base(from)).then(() => (closedAt = at()));
      await (restartWhen === 'asked' ? sleep(20) : onBroker.then(() => sleep(10)));
      watcher.end(true);
      const { stoppedAt, upAt } = await restartBroker();
      await closing;
      log.push(
        `${from} -> ${to}: ${to} open at ${openAt} ms (after id ${openAfter}); ${from}'s close asked at ${askedAt} ms; broker stopped ${restartWhen === 'asked' ? '20 ms after asking' : 'once the command was on the broker'}, at ${stoppedAt} ms, ` +
          `up again at ${upAt} ms (same port); ${from} reported closed at ${closedAt} ms`,
      );
      // The restart happened during the drain: the close finished only after it.
      expect(stoppedAt).toBeGreaterThan(openAt);
      expect(closedAt).toBeGreaterThan(upAt);
    };

    await sleep(1500);
    await handover('blue', 'green', 'asked');
    await sleep(Math.max(0, 11_000 - at()));
    await handover('green', 'blue', 'on the broker');
    await publishing;

    // Everything acknowledged must arrive; bounded.
    const deadline = Date.now() + 40_000;
    for (let i = 0; i < 400 && Date.now() < deadline && acked.work.size + acked.swork.size < 2 * TOTAL; i++) await sleep(100);
    for (let i = 0; i < 400 && Date.now() < deadline; i++) {
      const now = await seenBoth();
      const union = new Set([...now.blue.work, ...now.green.work]);
      if ([...acked.work].every((id) => union.has(id))) break;
      await sleep(100);
    }
    await sleep(1000); // late redeliveries would be duplicates: let them show
    const final = await seenBoth();

    const count = (topic: keyof Seen) => {
      const all = [...final.blue[topic], ...final.green[topic]];
      const unique = new Set(all);
      return {
        acked: acked[topic].size,
        processed: all.length,
        blue: final.blue[topic].length,
        green: final.green[topic].length,
        lost: [...acked[topic]].filter((id) => !unique.has(id)).sort((x, y) => x - y),
        duplicated: all.length - unique.size,
      };
    };
    const plain = count('work');
    const shared = count('swork');
    const ranges = (ids: number[]) => {
      const out: string[] = [];
      for (let i = 0; i < ids.length; i++) {
        let j = i;
        while (j + 1 < ids.length && ids[j + 1] === ids[j]! + 1) j++;
        out.push(i === j ? `${ids[i]}` : `${ids[i]}..${ids[j]}`);
        i = j;
      }
      return out.length ? ` (ids ${out.join(', ')})` : '';
    };
    const line = (name: string, c: ReturnType<typeof count>) =>
      `[broker-restart] ${name}: published ${TOTAL}, acked ${c.acked}, processed ${c.processed} (blue ${c.blue}, green ${c.green}), lost ${c.lost.length}${ranges(c.lost)}, duplicated ${c.duplicated}`;
    console.log(
      [`[broker-restart] ${TOTAL} ids at ${RATE}/s to each topic, two handovers, each with a broker restart`, ...log.map((l) => `[broker-restart] ${l}`), line('plain "work"', plain), line(`shared "${SHARED}"`, shared)].join('\n'),
    );

    expect(plain.acked).toBe(TOTAL);
    expect(plain.lost).toEqual([]);
    expect(await gate!.state(base('green'))).toBe('closed');
    expect(await gate!.state(base('blue'))).toBe('open');
  }, 150_000);

  it('afterwards only the open colour consumes, and the closed one has no session left that collects work', async () => {
    const before = await seenBoth();
    for (let i = 0; i < 20; i++) await publisher!.publishAsync('work', JSON.stringify({ id: 10_000 + i }), { qos: 1 });
    for (let i = 0; i < 100 && (await seen(nr.blue!)).work.length < before.blue.work.length + 20; i++) await sleep(50);
    const after = await seenBoth();
    expect(after.blue.work.length).toBe(before.blue.work.length + 20);
    expect(after.green.work.length).toBe(before.green.work.length);
    // Closing ended green's session: resuming it finds nothing (Session Expiry 0: this probe
    // leaves nothing behind either).
    const probe = mqtt.connect(broker!.url, { clientId: consumerClientId(FLEET, 'worker', 'green'), clean: false, protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000 });
    try {
      const connack = await new Promise<IConnackPacket>((resolve, reject) => {
        probe.once('connect', resolve);
        probe.once('error', reject);
      });
      expect(connack.sessionPresent).toBe(false);
    } finally {
      await probe.endAsync();
    }
  }, 60_000);
});
