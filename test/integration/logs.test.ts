/**
 * tower logs against a real Node-RED colour (process runtime), after a real tower apply: the
 * lines Node-RED wrote, a secret env value and a node credential the flows log redacted,
 * --lines, --color, the exit code and message of an instance or colour that does not exist,
 * and --follow: a line written after it started, the end on abort, the end when the colour stops.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import axios from 'axios';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processDriver } from '../../src/adapters/runtime/process.js';
import { main } from '../../src/cli.js';
import { bufferIo } from '../../src/commands/io.js';
import { logsCommand } from '../../src/commands/logs.js';
import { helloFlow, writeSmallFleet } from '../helpers/fleet-fixture.js';
import { eventually } from '../helpers/nodered.js';

const API_KEY = 'sk-live-7c1d9e2f0a4b';
const USER = 'logs-user';
const PASSWORD = 'pa55-w0rd-for-logs';
const ENV = { ...process.env, LOGS_TEST_API_KEY: API_KEY, LOGS_TEST_USER: USER, LOGS_TEST_PASSWORD: PASSWORD };

const dir = mkdtempSync(join(tmpdir(), 'tower-logs-fleet-'));
const state = mkdtempSync(join(tmpdir(), 'tower-logs-state-'));
let port = 0;

async function tower(...args: string[]) {
  const io = bufferIo(ENV);
  const code = await main(args, io);
  return { code, out: io.out, err: io.err };
}

/** hello, plus: a warning with the API key at start; /shout?n= logs n; /auth logs the Basic header its http request node sends with its credentials. */
function flows(): object[] {
  const fn = (id: string, func: string, wires: string[][]) => ({ id, type: 'function', z: 'web-tab', name: id, func, outputs: 1, timeout: 0, noerr: 0, initialize: '', finalize: '', libs: [], x: 300, y: 100, wires });
  const httpIn = (id: string, url: string, next: string) => ({ id, type: 'http in', z: 'web-tab', name: '', url, method: 'get', upload: false, swaggerDoc: '', x: 100, y: 100, wires: [[next]] });
  const httpOut = (id: string) => ({ id, type: 'http response', z: 'web-tab', name: '', statusCode: '', headers: {}, x: 500, y: 100, wires: [] });
  return [
    ...helloFlow('web', 'hi'),
    { id: 'boot', type: 'inject', z: 'web-tab', name: '', props: [], repeat: '', crontab: '', once: true, onceDelay: 0.1, topic: '', x: 100, y: 200, wires: [['leak']] },
    fn('leak', "node.warn('api key is ' + env.get('API_KEY'));\nreturn null;", [[]]),
    httpIn('shout-in', '/shout', 'shout'),
    fn('shout', "node.warn('shout ' + msg.req.query.n);\nmsg.payload = 'ok';\nreturn msg;", [['shout-out']]),
    httpOut('shout-out'),
    httpIn('auth-in', '/auth', 'auth-url'),
    fn('auth-url', "msg.url = 'http://' + msg.req.headers.host + '/echo-auth';\nreturn msg;", [['auth-req']]),
    { id: 'auth-req', type: 'http request', z: 'web-tab', name: '', method: 'GET', ret: 'txt', paytoqs: 'ignore', url: '', tls: '', persist: false, proxy: '', authType: 'basic', senderr: false, headers: [], x: 500, y: 300, wires: [['auth-log']] },
    fn('auth-log', "node.warn('auth header ' + msg.payload);\nreturn msg;", [['auth-out']]),
    httpOut('auth-out'),
    httpIn('echo-in', '/echo-auth', 'echo'),
    fn('echo', "msg.payload = msg.req.headers.authorization || 'none';\nreturn msg;", [['echo-out']]),
    httpOut('echo-out'),
  ];
}

beforeAll(async () => {
  const ports = await writeSmallFleet(
    dir,
    [{ name: 'web', text: 'hi', extraYaml: ['      env: { API_KEY: { fromEnv: LOGS_TEST_API_KEY } }', '      credentials:', '        auth-req: { user: { fromEnv: LOGS_TEST_USER }, password: { fromEnv: LOGS_TEST_PASSWORD } }'].join('\n') }],
    '{ order: sequential }',
  );
  port = ports.web!;
  writeFileSync(join(dir, 'flows', 'web.json'), JSON.stringify(flows(), null, 2));
  const applied = await tower('apply', dir, '--state-dir', state);
  expect(applied.code, applied.err + applied.out).toBe(0);
});

afterAll(async () => {
  await tower('destroy', '--state-dir', state).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
  rmSync(state, { recursive: true, force: true });
});

/** tower logs until its output satisfies `ok` (Node-RED writes asynchronously). */
async function logsUntil(ok: (out: string) => boolean, ...args: string[]): Promise<string> {
  let last = '';
  return eventually(async () => {
    const r = await tower('logs', 'web', '--state-dir', state, ...args);
    expect(r.code, r.err).toBe(0);
    last = r.out;
    return ok(r.out) ? r.out : undefined;
  }, 15_000).catch((err: unknown) => {
    throw new Error(`${String(err)}\nlast output:\n${last}`);
  });
}

describe('tower logs (process runtime, real Node-RED)', () => {
  it('shows what Node-RED wrote, with the secret env value the flows log redacted', async () => {
    const out = await logsUntil((o) => o.includes('api key is'));
    expect(out).toContain('Started flows');
    expect(out).toMatch(/\[warn\] \[function:leak\] api key is \[redacted\]/);
    expect(out).not.toContain(API_KEY);
    // The raw file holds it: the redaction is tower logs' doing.
    expect(readFileSync(join(state, 'instances', 'web', 'blue', 'node-red.log'), 'utf8')).toContain(API_KEY);
  });

  it('redacts node credentials, also inside a Basic authorization header (base64)', async () => {
    expect((await axios.get(`http://127.0.0.1:${port}/auth`, { responseType: 'text', timeout: 10_000 })).status).toBe(200);
    const out = await logsUntil((o) => o.includes('auth header'));
    const line = out.split('\n').find((l) => l.includes('auth header'))!;
    expect(line).toContain('[redacted]');
    expect(line).not.toContain(Buffer.from(`${USER}:${PASSWORD}`).toString('base64'));
    expect(line).not.toContain(Buffer.from(PASSWORD).toString('base64').slice(0, 12));
    expect(out).not.toContain(PASSWORD);
  });

  it('--lines bounds the output to the last N lines', async () => {
    const all = (await tower('logs', 'web', '--state-dir', state, '--lines', '10000')).out.trimEnd().split('\n');
    const three = await tower('logs', 'web', '--state-dir', state, '--lines', '3');
    expect(three.code).toBe(0);
    expect(all.length).toBeGreaterThan(3);
    expect(three.out.trimEnd().split('\n')).toEqual(all.slice(-3));
    expect((await tower('logs', 'web', '--state-dir', state, '--lines', '0')).code).toBe(1);
    expect((await tower('logs', 'web', '--state-dir', state, '--lines', '10001')).code).toBe(1);
  });

  it('exit 1 with a clear message for an instance or a colour that does not exist', async () => {
    const noInstance = await tower('logs', 'nope', '--state-dir', state);
    expect(noInstance.code).toBe(1);
    expect(noInstance.err).toMatch(/^tower logs: instance nope does not exist in fleet small \(managed from .*\); its instances: web\n$/);
    const noColor = await tower('logs', 'web', '--color', 'green', '--state-dir', state);
    expect(noColor.code).toBe(1);
    expect(noColor.err).toBe('tower logs: instance web has no green colour (it has blue)\n');
    expect((await tower('logs', 'web', '--color', 'blue', '--state-dir', state, '--lines', '1')).code).toBe(0);
    const empty = mkdtempSync(join(tmpdir(), 'tower-logs-empty-'));
    const nothing = await tower('logs', 'web', '--state-dir', empty);
    rmSync(empty, { recursive: true, force: true });
    expect(nothing.code).toBe(1);
    expect(nothing.err).toMatch(/nothing is managed from/);
  });

  it('--follow gives a line written after it started; it ends when aborted, and by itself when the colour stops', async () => {
    const io = bufferIo(ENV);
    const controller = new AbortController();
    const following = logsCommand('web', { stateDir: state, follow: true, lines: 1 }, io, controller.signal);
    await eventually(async () => (io.out.length > 0 ? true : undefined), 5_000);
    const marker = `m-${Date.now()}`;
    await axios.get(`http://127.0.0.1:${port}/shout?n=${marker}`, { timeout: 10_000 });
    await eventually(async () => (io.out.includes(`shout ${marker}`) ? true : undefined), 10_000);
    let t = Date.now();
    controller.abort();
    expect(await following).toBe(0);
    expect(Date.now() - t).toBeLessThan(1_000);

    // Following a colour that stops: the command returns on its own, after Node-RED's last words.
    const io2 = bufferIo(ENV);
    const second = logsCommand('web', { stateDir: state, follow: true, lines: 1 }, io2, new AbortController().signal);
    await eventually(async () => (io2.out.length > 0 ? true : undefined), 5_000);
    t = Date.now();
    await processDriver({ stateDir: state }).stop({ fleet: 'small', instance: 'web', color: 'blue' });
    expect(await second).toBe(0);
    expect(Date.now() - t).toBeLessThan(15_000);
    expect(io2.out).toMatch(/Stopping flows|Stopped flows/);
  });
});
