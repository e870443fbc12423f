/**
 * Fleets for integration tests: small repositories on disk with free ports, and fleet-example
 * copied with its ports moved off the fixed ones.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { freePort } from '../../src/adapters/net.js';

export const EXAMPLE = join(import.meta.dirname, '..', '..', 'fleet-example');

/** fleet-example in a temp dir, every instance on a free port. */
export async function exampleFleetCopy(): Promise<{ dir: string; ports: Record<string, number> }> {
  const dir = mkdtempSync(join(tmpdir(), 'tower-example-'));
  cpSync(EXAMPLE, dir, { recursive: true });
  const doc = parseDocument(readFileSync(join(dir, 'fleet.yaml'), 'utf8'));
  const ports: Record<string, number> = {};
  const instances = doc.getIn(['spec', 'instances']) as { items: unknown[] };
  for (let i = 0; i < instances.items.length; i++) {
    const name = String(doc.getIn(['spec', 'instances', i, 'name']));
    ports[name] = await freePort();
    doc.setIn(['spec', 'instances', i, 'port'], ports[name]);
  }
  const fleet = doc.toString();
  writeFileSync(join(dir, 'fleet.yaml'), fleet);
  return { dir, ports };
}

/** An http-in → function → http-response flow answering GET /hello with `text`, holding each request delayMs. */
export function helloFlow(prefix: string, text: string, delayMs = 0): object[] {
  const tab = `${prefix}-tab`;
  return [
    { id: tab, type: 'tab', label: `${prefix} hello`, disabled: false, info: '' },
    { id: `${prefix}-in`, type: 'http in', z: tab, name: '', url: '/hello', method: 'get', upload: false, swaggerDoc: '', x: 100, y: 40, wires: [[`${prefix}-fn`]] },
    {
      id: `${prefix}-fn`,
      type: 'function',
      z: tab,
      name: 'answer',
      func: delayMs > 0 ? `setTimeout(() => { msg.payload = ${JSON.stringify(text)} + ' ' + env.get('TOWER_COLOR'); node.send(msg); }, ${delayMs});\nreturn null;` : `msg.payload = ${JSON.stringify(text)} + ' ' + env.get('TOWER_COLOR');\nreturn msg;`,
      outputs: 1,
      timeout: 0,
      noerr: 0,
      initialize: '',
      finalize: '',
      libs: [],
      x: 300,
      y: 40,
      wires: [[`${prefix}-out`]],
    },
    { id: `${prefix}-out`, type: 'http response', z: tab, name: '', statusCode: '', headers: {}, x: 500, y: 40, wires: [] },
  ];
}

export interface SmallInstance {
  name: string;
  text: string;
  delayMs?: number;
  /** Expected body of the smoke check; default: the text (so the check passes). */
  smokeExpect?: string;
  extraYaml?: string;
}

/** Writes a fleet of hello instances; call again to change it (same dir). */
export async function writeSmallFleet(dir: string, instances: SmallInstance[], plan: string, ports: Record<string, number> = {}): Promise<Record<string, number>> {
  mkdirSync(join(dir, 'flows'), { recursive: true });
  const lines = ['apiVersion: tower.redforge.dev/v1', 'kind: Fleet', 'metadata: { name: small }', 'spec:', '  defaults: { keepWarm: 1m, drainTimeout: 5s }', `  plan: ${plan}`, '  instances:'];
  for (const i of instances) {
    ports[i.name] ??= await freePort();
    writeFileSync(join(dir, 'flows', `${i.name}.json`), JSON.stringify(helloFlow(i.name, i.text, i.delayMs ?? 0), null, 2));
    lines.push(
      `    - name: ${i.name}`,
      `      flows: [flows/${i.name}.json]`,
      `      port: ${ports[i.name]}`,
      `      smoke:`,
      `        - { name: says hello, http: { path: /hello, expect: { status: 200, bodyContains: ${JSON.stringify(i.smokeExpect ?? i.text)} } } }`,
      ...(i.extraYaml ? [i.extraYaml] : []),
    );
  }
  writeFileSync(join(dir, 'fleet.yaml'), lines.join('\n') + '\n');
  return ports;
}
