/**
 * Node credentials by reference: fleet.yaml names where each credential comes from (env or
 * file, per node id and field); Tower resolves them when a colour starts and Node-RED receives
 * them in its credential store, encrypted — on real Node-RED processes. The values are never
 * in Git, in flows.json, in a plan or in an error; a flow file's own credentials are reported
 * per node with how to move them.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import axios from 'axios';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/adapters/net.js';
import { main } from '../../src/cli.js';
import { bufferIo } from '../../src/commands/io.js';
import { diffConfig } from '../../src/core/diff.js';
import { loadRepository } from '../../src/core/load.js';
import { memoryReader } from '../helpers/memory-repo.js';

const USER = 'bob';
const PASSWORD = 'cr3d-p@ss"w0rd\\42';
const dirs: string[] = [];

afterAll(async () => {
  for (const d of dirs) {
    if (d.includes('state')) await main(['destroy', '--state-dir', d], bufferIo(process.env)).catch(() => 1);
    rmSync(d, { recursive: true, force: true });
  }
});

function tmp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

/** /creds calls /echo-auth through an http request node whose basic-auth user and password are node credentials. */
function flows(withFileCredentials = false): object[] {
  return [
    { id: 'tab1', type: 'tab', label: 'credentials', disabled: false, info: '' },
    { id: 'cin', type: 'http in', z: 'tab1', name: '', url: '/creds', method: 'get', upload: false, swaggerDoc: '', x: 100, y: 40, wires: [['url']] },
    { id: 'url', type: 'function', z: 'tab1', name: 'own port', func: "msg.url = 'http://127.0.0.1:' + env.get('PORT_SELF') + '/echo-auth';\nreturn msg;", outputs: 1, x: 300, y: 40, wires: [['req1']] },
    {
      id: 'req1', type: 'http request', z: 'tab1', name: 'authenticated', method: 'GET', ret: 'txt', paytoqs: 'ignore', url: '', tls: '', persist: false, proxy: '',
      authType: 'basic', senderr: false, headers: [], x: 500, y: 40, wires: [['cout']],
      ...(withFileCredentials ? { credentials: { user: 'in-git', password: 'leaked' } } : {}),
    },
    { id: 'cout', type: 'http response', z: 'tab1', name: '', statusCode: '', headers: {}, x: 700, y: 40, wires: [] },
    { id: 'ein', type: 'http in', z: 'tab1', name: '', url: '/echo-auth', method: 'get', upload: false, swaggerDoc: '', x: 100, y: 120, wires: [['efn']] },
    { id: 'efn', type: 'function', z: 'tab1', name: 'echo auth', func: "msg.payload = msg.req.headers.authorization || 'none';\nreturn msg;", outputs: 1, x: 300, y: 120, wires: [['eout']] },
    { id: 'eout', type: 'http response', z: 'tab1', name: '', statusCode: '', headers: {}, x: 500, y: 120, wires: [] },
  ];
}

function fleetYaml(port: number, credentials: string): string {
  return ['apiVersion: tower.redforge.dev/v1', 'kind: Fleet', 'metadata: { name: creds }', 'spec:', '  defaults: { keepWarm: 0s, drainTimeout: 1s }', '  instances:', '    - name: web', '      flows: [flows/web.json]', `      port: ${port}`, `      env: { PORT_SELF: "${port}" }`, credentials, ''].join('\n');
}

describe('node credentials by reference', () => {
  it('are validated against the flows, with the position of the unknown node', () => {
    const repo = loadRepository(memoryReader({ 'fleet.yaml': fleetYaml(2001, '      credentials:\n        nope: { user: { fromEnv: U } }'), 'flows/web.json': JSON.stringify(flows()) }));
    expect(repo.valid).toBe(false);
    expect(repo.diagnostics.find((d) => d.code === 'UnknownCredentialNode')).toMatchObject({ file: 'fleet.yaml', line: 12, col: 9, message: expect.stringContaining('"nope"') });
  });

  it("a flow file's own credentials are reported per node, with how to give them by reference", () => {
    const repo = loadRepository(memoryReader({ 'fleet.yaml': fleetYaml(2001, ''), 'flows/web.json': JSON.stringify(flows(true)) }));
    const warning = repo.diagnostics.find((d) => d.code === 'CredentialsInFlow');
    expect(warning?.message).toContain('"req1"');
    expect(warning?.message).toContain('(user, password)');
    expect(warning?.hint).toContain('credentials: { req1: { user: { fromEnv: NAME }, password: { fromEnv: NAME } } }');
    expect(repo.instances[0]!.flowList.find((n) => n.id === 'req1')).not.toHaveProperty('credentials');
  });

  it('a change of references shows in the plan, never a value', () => {
    const load = (ref: string) => loadRepository(memoryReader({ 'fleet.yaml': fleetYaml(2001, `      credentials:\n        req1: { password: { fromEnv: ${ref} } }`), 'flows/web.json': JSON.stringify(flows()) })).instances[0]!.config;
    expect(diffConfig(load('NEW_PW'), load('OLD_PW'))).toEqual([{ field: 'credentials.req1.password', from: 'fromEnv OLD_PW', to: 'fromEnv NEW_PW' }]);
  });

  it('reach Node-RED encrypted, from the environment and a file, and nowhere else', async () => {
    const dir = tmp('tower-creds-');
    const state = tmp('tower-creds-state-');
    const port = await freePort();
    const pwFile = join(dir, 'password.secret');
    writeFileSync(pwFile, `${PASSWORD}\n`, { mode: 0o600 });
    writeFileSync(join(dir, 'fleet.yaml'), fleetYaml(port, `      credentials:\n        req1:\n          user: { fromEnv: WEB_USER }\n          password: { fromFile: ${pwFile} }`));
    mkdirSync(join(dir, 'flows'));
    writeFileSync(join(dir, 'flows', 'web.json'), JSON.stringify(flows()));

    const missing = bufferIo({ ...process.env, WEB_USER: undefined });
    expect(await main(['apply', dir, '--state-dir', state], missing)).toBe(2);
    expect(missing.err).toMatch(/credentials of node req1: cannot resolve user \(fromEnv WEB_USER/);

    const io = bufferIo({ ...process.env, WEB_USER: USER });
    expect(await main(['apply', dir, '--state-dir', state], io), io.err).toBe(0);
    const auth = String((await axios.get(`http://127.0.0.1:${port}/creds`, { responseType: 'text' })).data);
    expect(auth).toBe(`Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`);

    const userDir = join(state, 'instances', 'web', 'blue', 'userDir');
    const flowsJson = readFileSync(join(userDir, 'flows.json'), 'utf8');
    const credFile = readFileSync(join(userDir, 'flows_cred.json'), 'utf8');
    for (const text of [flowsJson, credFile, io.out, io.err]) {
      expect(text).not.toContain(PASSWORD);
      expect(text).not.toContain('cr3d-p@ss');
    }
    expect(JSON.parse(credFile)).toHaveProperty('$'); // Node-RED's encrypted form
  });
});
