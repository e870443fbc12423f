/**
 * An external broker that wants a login and TLS: mosquitto with a password_file and a TLS
 * listener that requires a client certificate (CA, server and client certificates made here
 * with openssl). `tower apply` with MQTT_URL=mqtts://user:pass@…, MQTT_CA_FILE, MQTT_CERT_FILE
 * and MQTT_KEY_FILE: the instances' broker config nodes get the login through Node-RED's
 * credential store, so the deploy gate opens (VERIFY waits for its "open"), the MQTT smoke
 * check passes, and a blue-green swap under QoS 1 load loses no message. The password and
 * the client key are in no flows.json, no file of the state directory and no output.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLoopMqtt } from '../../bench/helpers/load.js';
import { brokerEnvProblems } from '../../src/adapters/mqtt/external-broker.js';
import { freePort } from '../../src/adapters/net.js';
import { main } from '../../src/cli.js';
import { bufferIo } from '../../src/commands/io.js';
import { gateTopicFor } from '../../src/core/instance-env.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { makePki, type TestPki } from '../helpers/tls-certs.js';

const USER = 'tower-fleet';
const PASSWORD = 'br0ker:p@ss/w%rd"42';
const FLEET = 'login';

let work: string;
let pki: TestPki;
let broker: Mosquitto;
/** What the test's own clients connect with: the same login Tower is given. */
let login: IClientOptions;
const outputs: string[] = [];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'tower-broker-login-'));
  pki = makePki(work);
  const passwords = join(work, 'passwords');
  const made = spawnSync('mosquitto_passwd', ['-b', '-c', passwords, USER, PASSWORD], { encoding: 'utf8' });
  expect(made.status, made.stderr).toBe(0);
  broker = await startMosquitto({
    config: [`password_file ${passwords}`],
    listener: [`cafile ${pki.ca}`, `certfile ${pki.serverCert}`, `keyfile ${pki.serverKey}`, 'require_certificate true'],
  });
  login = { username: USER, password: PASSWORD, ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) };
});

afterAll(async () => {
  await broker?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
}, 60_000);

/** Tower's environment for this broker: the login in the URL (percent-encoded), TLS as files. */
function towerEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, MQTT_URL: `mqtts://${USER}:${encodeURIComponent(PASSWORD)}@127.0.0.1:${broker.port}`, MQTT_CA_FILE: pki.ca, MQTT_CERT_FILE: pki.clientCert, MQTT_KEY_FILE: pki.clientKey };
  delete env.MQTT_REJECT_UNAUTHORIZED;
  return env;
}

async function tower(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = bufferIo(towerEnv());
  const code = await main(args, io);
  outputs.push(io.out, io.err);
  return { code, out: io.out, err: io.err };
}

/** Connects and reports how the broker answered: 'ok' or the error. */
async function tryConnect(options: IClientOptions): Promise<string> {
  const c = mqtt.connect(broker.url, { ...options, reconnectPeriod: 0, connectTimeout: 5_000 });
  try {
    return await new Promise<string>((resolve) => {
      c.once('connect', () => resolve('ok'));
      c.once('error', (err) => resolve(err.message));
      c.once('close', () => resolve('closed'));
    });
  } finally {
    c.end(true);
  }
}

/**
 * The worker: takes work from login/work through the deploy gate's consumer connection
 * (shared subscription, QoS 1) and reports each id with its colour on login/processed
 * through its own broker config — by URL, "Use TLS" on with its tls-config node, as
 * fleet-example's is. `legacy-broker` (host and port, TLS off) is used by nothing: Tower
 * warns that it cannot reach an mqtts broker.
 */
function workerFlows(version: string): object[] {
  const z = 'worker-tab';
  const report = `msg.payload = { id: msg.payload && msg.payload.id, color: env.get('TOWER_COLOR'), version: ${JSON.stringify(version)} };\nreturn msg;`;
  return [
    { id: z, type: 'tab', label: 'worker', disabled: false, info: '' },
    { id: 'worker-broker', type: 'mqtt-broker', name: 'fleet broker', broker: '${TOWER_MQTT_URL}', port: '${TOWER_MQTT_PORT}', tls: 'worker-tls', clientid: '', autoConnect: true, usetls: true, verifyservercert: '${TOWER_MQTT_VERIFY_SERVER_CERT}', protocolVersion: '4', keepalive: '60', cleansession: true, autoUnsubscribe: true },
    { id: 'worker-tls', type: 'tls-config', name: 'fleet broker TLS', cert: '', key: '', ca: '', certname: '', keyname: '', caname: '', servername: '', alpnprotocol: '' },
    { id: 'legacy-broker', type: 'mqtt-broker', name: 'by host and port', broker: '${TOWER_MQTT_HOST}', port: '${TOWER_MQTT_PORT}', clientid: '', autoConnect: true, usetls: false, protocolVersion: '4', keepalive: '60', cleansession: true },
    { id: 'worker-in', type: 'mqtt in', z, name: 'work', topic: '$share/workers/login/work', qos: '1', datatype: 'json', broker: 'tower-gate-consumer', nl: false, rap: true, rh: 0, inputs: 0, x: 120, y: 60, wires: [['worker-process']] },
    { id: 'worker-process', type: 'function', z, name: 'process', func: report, outputs: 1, timeout: 0, noerr: 0, initialize: '', finalize: '', libs: [], x: 300, y: 60, wires: [['worker-out']] },
    { id: 'worker-out', type: 'mqtt out', z, name: 'results', topic: 'login/processed', qos: '1', retain: 'false', broker: 'worker-broker', x: 480, y: 60, wires: [] },
    { id: 'worker-version-in', type: 'http in', z, name: '', url: '/version', method: 'get', upload: false, swaggerDoc: '', x: 120, y: 120, wires: [['worker-version']] },
    { id: 'worker-version', type: 'function', z, name: 'version', func: `msg.payload = { version: ${JSON.stringify(version)}, color: env.get('TOWER_COLOR') };\nreturn msg;`, outputs: 1, x: 300, y: 120, wires: [['worker-version-out']] },
    { id: 'worker-version-out', type: 'http response', z, name: '', statusCode: '200', headers: {}, x: 480, y: 120, wires: [] },
  ];
}

function writeFleet(dir: string, port: number, version: string): void {
  mkdirSync(join(dir, 'flows'), { recursive: true });
  writeFileSync(join(dir, 'flows', 'worker.json'), JSON.stringify(workerFlows(version), null, 2));
  writeFileSync(
    join(dir, 'fleet.yaml'),
    [
      'apiVersion: tower.redforge.dev/v1',
      'kind: Fleet',
      `metadata: { name: ${FLEET} }`,
      'spec:',
      '  defaults: { keepWarm: 0s, drainTimeout: 2s }',
      '  instances:',
      '    - name: worker',
      '      flows: [flows/worker.json, lib:deploy-gate]',
      `      port: ${port}`,
      '      smoke:',
      '        - { name: answers, http: { method: GET, path: /version, expect: { status: 200 } } }',
      '        - name: works over MQTT',
      '          timeout: 10s',
      '          mqtt:',
      `            publish: { topic: login/work, qos: 1, payload: { id: smoke-${version} } }`,
      `            expect: { topic: login/processed, payloadContains: '"id":"smoke-${version}"' }`,
      '',
    ].join('\n'),
  );
}

/** Every file under dir, as text. */
function filesUnder(dir: string): { file: string; text: string }[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .map((file) => ({ file, text: readFileSync(file, 'latin1') }));
}

describe('the broker settings Tower is given', () => {
  it('are checked before anything starts, naming variables and files, never a value', () => {
    const read = (file: string) => {
      if (file === '/pem') return readFileSync(pki.ca, 'utf8');
      if (file === '/text') return 'not a certificate';
      throw Object.assign(new Error('no'), { code: 'ENOENT' });
    };
    const secret = `mqtts://u:${encodeURIComponent(PASSWORD)}@mq:8883`;
    expect(brokerEnvProblems({ MQTT_URL: secret, MQTT_CA_FILE: '/pem', MQTT_CERT_FILE: '/pem', MQTT_KEY_FILE: '/pem' }, read)).toEqual([]);
    expect(brokerEnvProblems({ MQTT_URL: secret, MQTT_CA_FILE: '/missing', MQTT_CERT_FILE: '/pem', MQTT_REJECT_UNAUTHORIZED: 'no' }, read)).toEqual([
      'MQTT_CERT_FILE and MQTT_KEY_FILE: a client certificate needs both',
      'MQTT_REJECT_UNAUTHORIZED: true or false',
      'MQTT_CA_FILE /missing: cannot be read (ENOENT)',
    ]);
    expect(brokerEnvProblems({ MQTT_URL: secret, MQTT_CA_FILE: '/text' }, read)).toEqual(['MQTT_CA_FILE /text: no PEM block in it (-----BEGIN …-----)']);
    expect(brokerEnvProblems({ MQTT_URL: 'mqtt://u:pw@mq:1883', MQTT_CA_FILE: '/pem' }, read)).toEqual(['MQTT_CA_FILE: only for a TLS broker, but MQTT_URL is not mqtts://…']);
    expect(brokerEnvProblems({ MQTT_CA_FILE: '/pem' }, read)).toEqual(['MQTT_CA_FILE: only for a TLS broker, but MQTT_URL is not set (the embedded broker speaks plain MQTT on loopback)']);
    expect(brokerEnvProblems({ MQTT_URL: `http://u:${PASSWORD}@mq` }, read)).toEqual(['MQTT_URL: expected mqtt://host:port or mqtts://host:port, got http://…']);
  });

  it('make tower run refuse to start, with every problem', async () => {
    const io = bufferIo({ ...process.env, MQTT_URL: `mqtt://${USER}:${encodeURIComponent(PASSWORD)}@127.0.0.1:1`, MQTT_CA_FILE: join(work, 'nope.pem') });
    // (A repository that is not there as well, so that nothing could start even if these were accepted.)
    expect(await main(['run', '--repo', join(work, 'no-such-repo'), '--state-dir', join(work, 'run-state')], io)).toBe(2);
    expect(io.err).toContain(`MQTT_CA_FILE: only for a TLS broker, but MQTT_URL is not mqtts://…`);
    expect(io.err).toContain(`MQTT_CA_FILE ${join(work, 'nope.pem')}: cannot be read (ENOENT)`);
    expect(io.out + io.err).not.toContain('p@ss');
  });
});

describe('an external broker with a login and TLS', () => {
  it('refuses a client without the password or without a client certificate', async () => {
    expect(await tryConnect(login)).toBe('ok');
    expect(await tryConnect({ ...login, password: 'wrong' })).toMatch(/Not authorized|Bad username or password/i);
    expect(await tryConnect({ ...login, cert: undefined, key: undefined })).not.toBe('ok');
    expect(await tryConnect({ ...login, ca: undefined })).toMatch(/self[- ]signed|unable to verify|certificate/i);
  });

  it('the instances connect: the gate opens, and a swap under QoS 1 load loses nothing; no secret is written or shown', async () => {
    const dir = join(work, 'fleet');
    const state = join(work, 'state');
    const port = await freePort();
    writeFleet(dir, port, 'v1');
    try {
      const first = await tower('apply', dir, '--state-dir', state);
      expect(first.code, first.out + first.err).toBe(0);
      expect(first.out).toContain('warning: worker: mqtt-broker "legacy-broker" connects to the fleet broker without TLS (usetls is off), but MQTT_URL is mqtts://');
      expect(first.out).not.toContain('gets no CA or client certificate');
      // VERIFY waited for the gate's own "open", published by Node-RED over the TLS connection.
      const watcher = await mqtt.connectAsync(broker.url, { ...login, reconnectPeriod: 0 });
      const state1 = await new Promise<string>((resolve) => {
        watcher.once('message', (_t, p) => resolve(p.toString()));
        void watcher.subscribeAsync(`${gateTopicFor(FLEET, 'worker', 'blue')}/state`, { qos: 1 });
      });
      await watcher.endAsync();
      expect(state1).toBe('open');
      // What runs is what Git says: the credentials did not change the flows (no drift, nothing to do).
      const again = await tower('apply', dir, '--state-dir', state);
      expect(again.code).toBe(0);
      expect(again.out).toContain('No changes.');

      const load = await openLoopMqtt({ url: broker.url, connect: login, topic: 'login/work', resultsTopic: 'login/processed', ratePerSec: 100, windowMs: 12_000 }, (line) => console.log(line));
      await new Promise((r) => setTimeout(r, 1_500));
      writeFleet(dir, port, 'v2');
      const swap = await tower('apply', dir, '--state-dir', state);
      const swapDoneAt = performance.now() - load.t0;
      const result = await load.done;
      console.log(`[broker-login] swap done ${Math.round(swapDoneAt)} ms into the load; ${JSON.stringify({ ...result, lostIds: result.lostIds.slice(0, 10) })}`);
      expect(swap.code, swap.out + swap.err).toBe(0);
      expect(swap.out).toMatch(/worker: VERIFY[\s\S]*worker: RESUME/);
      expect(swapDoneAt).toBeLessThan(12_000); // the swap happened under load
      expect(result.unacknowledged).toBe(0);
      expect(result.published).toBe(result.planned);
      expect(result.lost).toBe(0);
      expect(result.byColor.blue).toBeGreaterThan(0);
      expect(result.byColor.green).toBeGreaterThan(0);
      expect(await (await fetch(`http://127.0.0.1:${port}/version`)).json()).toEqual({ version: 'v2', color: 'green' });

      // The password and the client key: in no flows.json, no file of the state directory (Node-RED's
      // flows_cred.json is encrypted), no output of Tower.
      const keyLine = readFileSync(pki.clientKey, 'utf8').split('\n')[1]!;
      expect(keyLine.length).toBeGreaterThan(40);
      const files = filesUnder(state);
      const flowsFiles = files.filter((f) => f.file.endsWith('/flows.json'));
      expect(flowsFiles.length).toBeGreaterThanOrEqual(1);
      for (const f of flowsFiles) {
        expect(f.text).toContain('${TOWER_MQTT_URL}');
        expect(f.text).not.toContain('"credentials"');
      }
      expect(files.some((f) => f.file.endsWith('/flows_cred.json'))).toBe(true);
      const texts = [...files.map((f) => ({ where: f.file, text: f.text })), ...outputs.map((text, i) => ({ where: `output ${i}`, text }))];
      for (const { where, text } of texts) {
        for (const secret of [PASSWORD, encodeURIComponent(PASSWORD), 'br0ker:p@ss', keyLine]) expect(text.includes(secret), `${secret.slice(0, 6)}… in ${where}`).toBe(false);
      }
    } finally {
      await tower('destroy', '--state-dir', state);
    }
  }, 180_000);
});
