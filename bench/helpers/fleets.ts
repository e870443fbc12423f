/**
 * Fleet repositories written to temporary directories, and a Tower engine (openRuntime +
 * applyFleet, process driver) working on them, destroyed by the cleanups.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { FlowNode } from '../../src/core/model.js';
import { applyFleet } from '../../src/engine/apply.js';
import { destroyAll } from '../../src/engine/destroy.js';
import { openRuntime, type LocalRuntime as FleetRuntime } from '../../src/runtime.js';
import type { RolloutEvent } from '../../src/engine/events.js';
import type { RolloutResult } from '../../src/engine/executor.js';
import { loadDirectory } from '../../src/repository.js';
import { defer, freePort, tempDir } from './procs.js';

/** GET /hello → function holding the request holdMs → "<text> <colour>". */
export function helloFlow(prefix: string, text: string, holdMs: number): FlowNode[] {
  const tab = `${prefix}-tab`;
  const answer = `msg.payload = ${JSON.stringify(text)} + ' ' + (env.get('TOWER_COLOR') || 'plain');`;
  return [
    { id: tab, type: 'tab', label: `${prefix} hello`, disabled: false, info: '' },
    { id: `${prefix}-in`, type: 'http in', z: tab, name: '', url: '/hello', method: 'get', upload: false, swaggerDoc: '', x: 100, y: 40, wires: [[`${prefix}-fn`]] },
    {
      id: `${prefix}-fn`,
      type: 'function',
      z: tab,
      name: 'answer',
      func: holdMs > 0 ? `setTimeout(() => { ${answer} node.send(msg); }, ${holdMs});\nreturn null;` : `${answer}\nreturn msg;`,
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

/**
 * An MQTT worker behind the deploy gate: `mqtt in` on the gate's consumer broker
 * (`tower-gate-consumer`), shared subscription $share/<group>/<topic>, QoS 1; each message is
 * reported on resultsTopic as {id, color, version} through the fleet broker (QoS 1), after
 * holdMs (work that takes time) when given.
 */
export function workerFlow(version: string, group: string, topic: string, resultsTopic: string, holdMs = 0): FlowNode[] {
  const z = 'bench-worker-tab';
  const report = `msg.payload = { id: msg.payload && msg.payload.id, color: env.get('TOWER_COLOR'), version: ${JSON.stringify(version)} };`;
  return [
    { id: z, type: 'tab', label: 'bench worker', disabled: false, info: '' },
    {
      id: 'bench-results-broker',
      type: 'mqtt-broker',
      name: 'fleet broker (results)',
      broker: '${TOWER_MQTT_HOST}',
      port: '${TOWER_MQTT_PORT}',
      clientid: '',
      autoConnect: true,
      usetls: false,
      protocolVersion: '4',
      keepalive: '60',
      cleansession: true,
      autoUnsubscribe: true,
    },
    { id: 'bench-work-in', type: 'mqtt in', z, name: 'work', topic: `$share/${group}/${topic}`, qos: '1', datatype: 'json', broker: 'tower-gate-consumer', nl: false, rap: true, rh: 0, inputs: 0, x: 120, y: 60, wires: [['bench-process']] },
    {
      id: 'bench-process',
      type: 'function',
      z,
      name: 'process',
      func: holdMs > 0 ? `setTimeout(() => { ${report} node.send(msg); }, ${holdMs});\nreturn null;` : `${report}\nreturn msg;`,
      outputs: 1,
      timeout: 0,
      noerr: 0,
      initialize: '',
      finalize: '',
      libs: [],
      x: 300,
      y: 60,
      wires: [['bench-results-out']],
    },
    { id: 'bench-results-out', type: 'mqtt out', z, name: 'results', topic: resultsTopic, qos: '1', retain: 'false', broker: 'bench-results-broker', x: 480, y: 60, wires: [] },
  ];
}

export interface FleetInstance {
  name: string;
  port: number;
  /** Flow references as fleet.yaml lists them (lib:… or flows/<file>.json). */
  flows: string[];
  /** flows/<file>.json contents to write. */
  files: Record<string, object[]>;
  smoke?: string[];
}

export interface FleetSpec {
  name: string;
  defaults: string;
  plan: string;
  instances: FleetInstance[];
}

export function writeFleet(dir: string, spec: FleetSpec): void {
  mkdirSync(join(dir, 'flows'), { recursive: true });
  const lines = ['apiVersion: tower.redforge.dev/v1', 'kind: Fleet', `metadata: { name: ${spec.name} }`, 'spec:', `  defaults: ${spec.defaults}`, `  plan: ${spec.plan}`, '  instances:'];
  for (const i of spec.instances) {
    for (const [file, flows] of Object.entries(i.files)) writeFileSync(join(dir, file), JSON.stringify(flows, null, 2));
    lines.push(`    - name: ${i.name}`, `      flows: [${i.flows.join(', ')}]`, `      port: ${i.port}`);
    if (i.smoke?.length) lines.push('      smoke:', ...i.smoke.map((s) => `        - ${s}`));
  }
  writeFileSync(join(dir, 'fleet.yaml'), lines.join('\n') + '\n');
}

export interface ApplyRun {
  /** From loading the repository to applyFleet resolving (converged, or failed and rolled back). */
  ms: number;
  result: RolloutResult | undefined;
  events: { at: number; event: RolloutEvent }[];
}

/** One fleet under Tower: a repository dir, a state dir, and an open runtime. */
export class TowerFleet {
  private constructor(
    readonly dir: string,
    readonly stateDir: string,
    readonly rt: FleetRuntime,
    private readonly env: NodeJS.ProcessEnv,
    readonly destroy: () => Promise<void>,
  ) {}

  /** env: what openRuntime and applyFleet see (MQTT_URL selects the broker). */
  static async open(label: string, env: NodeJS.ProcessEnv): Promise<TowerFleet> {
    const dir = tempDir(`tower-bench-${label}-fleet-`);
    const stateDir = tempDir(`tower-bench-${label}-state-`);
    const rt = await openRuntime({ stateDir, env, needsBroker: Boolean(env.MQTT_URL) });
    let fleetName: string | undefined;
    const destroy = defer(`tower destroy (${label})`, async () => {
      try {
        const name = rt.registry.read().fleet ?? fleetName;
        if (name) await destroyAll(rt, name);
      } finally {
        await rt.close();
      }
    });
    const fleet = new TowerFleet(dir, stateDir, rt, env, destroy);
    fleet.onName = (n) => (fleetName = n);
    return fleet;
  }

  private onName: (name: string) => void = () => {};

  write(spec: FleetSpec): void {
    this.onName(spec.name);
    writeFleet(this.dir, spec);
  }

  /** tower apply, through the engine: load, plan against what runs, roll out. */
  async apply(onEvent: (e: RolloutEvent, atMs: number) => void = () => {}): Promise<ApplyRun> {
    const events: ApplyRun['events'] = [];
    const t0 = performance.now();
    const repo = loadDirectory(this.dir);
    if (!repo.valid || !repo.fleet) throw new Error(`bench fleet is invalid: ${repo.diagnostics.map((d) => `${d.file}:${d.line}: ${d.message}`).join('; ')}`);
    const unlock = this.rt.state.lock('bench/rollout');
    try {
      const outcome = await applyFleet(this.rt, { fleet: repo.fleet, instances: repo.instances, diagnostics: repo.diagnostics }, {
        env: this.env,
        onEvent: (event) => {
          const at = performance.now() - t0;
          events.push({ at, event });
          onEvent(event, at);
        },
      });
      return { ms: performance.now() - t0, result: outcome.result, events };
    } finally {
      unlock();
    }
  }
}

export async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  for (let i = 0; ports.size < n && i < n * 10; i++) ports.add(await freePort());
  return [...ports];
}
