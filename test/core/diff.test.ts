import { describe, expect, it } from 'vitest';
import { diffConfig, diffFleet, diffFlows } from '../../src/core/diff.js';
import { deployableFlows, flowsRev } from '../../src/core/flows.js';
import type { DesiredInstance, FlowNode, RuntimeConfig } from '../../src/core/model.js';

const base: FlowNode[] = [
  { id: 't1', type: 'tab', label: 'Ingest', disabled: false, info: '', env: [] },
  { id: 'in', type: 'http in', z: 't1', url: '/convert', method: 'post', x: 100, y: 40, wires: [['fn']] },
  { id: 'fn', type: 'function', z: 't1', name: 'convert', func: 'return msg;', x: 300, y: 40, wires: [['out']] },
  { id: 'out', type: 'http response', z: 't1', x: 500, y: 40, wires: [] },
  { id: 'note', type: 'comment', z: 't1', name: 'hello', info: '', x: 100, y: 100, wires: [] },
  { id: 'grp', type: 'group', z: 't1', nodes: ['in', 'fn'], style: { label: true }, x: 50, y: 20, w: 400, h: 60 },
  { id: 'cfg', type: 'mqtt-broker', broker: 'localhost' },
];
const edit = (id: string, patch: Record<string, unknown>) => base.map((n) => (n.id === id ? { ...n, ...patch } : n));

describe('diffFlows: cosmetic or functional, as Node-RED decides what a deploy restarts', () => {
  it.each<[string, FlowNode[], 'cosmetic' | 'functional', string[]]>([
    ['moving a node', edit('fn', { x: 320, y: 60 }), 'cosmetic', ['x', 'y']],
    ['resizing and restyling a group', edit('grp', { w: 500, h: 80, style: { label: false } }), 'cosmetic', ['h', 'style', 'w']],
    ['renaming a tab', edit('t1', { label: 'Ingestion', info: 'docs' }), 'cosmetic', ['info', 'label']],
    ['editing a comment', edit('note', { name: 'bye', info: 'more' }), 'cosmetic', ['info', 'name']],
    ['changing code', edit('fn', { func: 'return null;' }), 'functional', ['func']],
    ['renaming a function node', edit('fn', { name: 'convert2' }), 'functional', ['name']],
    ['rewiring', edit('fn', { wires: [[]] }), 'functional', ['wires']],
    ['disabling a tab', edit('t1', { disabled: true }), 'functional', ['disabled']],
    ['tab env', edit('t1', { env: [{ name: 'A', value: '1', type: 'str' }] }), 'functional', ['env']],
    ['a config node', edit('cfg', { broker: 'other' }), 'functional', ['broker']],
  ])('%s is %s', (_what, after, expected, properties) => {
    const d = diffFlows(after, base);
    expect(d.change).toBe(expected);
    const container = d.containers[0]!;
    const changed = container.properties.length ? container.properties : container.changed[0]!.properties;
    expect(changed).toEqual(properties);
  });

  it('adding or removing a comment is cosmetic; any other node is functional', () => {
    expect(diffFlows([...base, { id: 'c2', type: 'comment', z: 't1' }], base).change).toBe('cosmetic');
    expect(diffFlows([...base, { id: 'd', type: 'debug', z: 't1' }], base).change).toBe('functional');
    expect(diffFlows(base.filter((n) => n.id !== 'note'), base).change).toBe('cosmetic');
  });

  it('groups changes per tab, with added, removed and changed nodes', () => {
    const after: FlowNode[] = [
      ...edit('fn', { func: 'x' }).filter((n) => n.id !== 'out'),
      { id: 'dbg', type: 'debug', z: 't1', name: 'trace' },
      { id: 't2', type: 'tab', label: 'New' },
      { id: 'n2', type: 'inject', z: 't2' },
    ];
    const d = diffFlows(after, base);
    expect(d.counts).toEqual({ added: 2, removed: 1, changed: 1 });
    expect(d.containers.map((c) => [c.label, c.change, c.added.map((n) => n.id), c.removed.map((n) => n.id), c.changed.map((n) => n.id)])).toEqual([
      ['Ingest', 'changed', ['dbg'], ['out'], ['fn']],
      ['New', 'added', ['n2'], [], []],
    ]);
    expect(d.containers[0]!.added[0]).toEqual({ id: 'dbg', type: 'debug', name: 'trace' });
  });

  it('puts config nodes and implicit tabs in their own sections', () => {
    const sel: FlowNode[] = [{ id: 'a', type: 'inject', z: 'gone' }];
    const d = diffFlows([...sel, { id: 'cfg', type: 'mqtt-broker', broker: 'x' }], [{ id: 'cfg', type: 'mqtt-broker', broker: 'y' }]);
    expect(d.containers.map((c) => [c.kind, c.label])).toEqual([
      ['tab', 'implicit tab gone'],
      ['config', 'Configuration nodes'],
    ]);
  });

  it('ignores node order, key order and credentials', () => {
    const reordered = [...base].reverse().map((n) => ({ ...Object.fromEntries(Object.entries(n).reverse()), credentials: { password: 'x' } }) as unknown as FlowNode);
    expect(diffFlows(reordered, base).change).toBe('none');
  });
});

const config: RuntimeConfig = { runtime: 'process', nodeRedVersion: '4.1', env: { A: '1', API_KEY: 'hunter2', TOKEN: { fromEnv: 'T' } }, resources: {}, settings: {}, context: 'memory', port: 2001 };

function desired(flows: FlowNode[], cfg = config): DesiredInstance {
  const flowList = deployableFlows(flows);
  return { name: 'ingest', port: cfg.port, flows: [], smoke: [], strategy: 'blue-green', labels: {}, keepWarm: '2m', drainTimeout: '30s', config: cfg, flowList, rev: flowsRev(flowList) };
}

describe('diffFleet', () => {
  it('create / update / delete / unchanged, with the update strategy', () => {
    const d = desired(base);
    const list = diffFleet([d, { ...desired(edit('fn', { x: 1 })), name: 'moved' }, { ...d, name: 'fresh' }], {
      instances: [
        { name: 'ingest', flows: base, rev: d.rev, config },
        { name: 'moved', flows: base, config },
        { name: 'retired', flows: base },
      ],
    });
    expect(list.map((x) => [x.name, x.action, x.strategy])).toEqual([
      ['ingest', 'unchanged', undefined],
      ['moved', 'update', 'in-place'],
      ['fresh', 'create', undefined],
      ['retired', 'delete', undefined],
    ]);
  });

  it('a config change needs a new process even when the flows only moved', () => {
    const [x] = diffFleet([desired(edit('fn', { x: 1 }), { ...config, nodeRedVersion: '4.1.8' })], { instances: [{ name: 'ingest', flows: base, config }] });
    expect(x).toMatchObject({ action: 'update', strategy: 'blue-green', change: 'cosmetic', config: [{ field: 'nodeRedVersion', from: '4.1', to: '4.1.8' }] });
  });

  it('treats unreadable live flows as a full change', () => {
    const [x] = diffFleet([desired(base)], { instances: [{ name: 'ingest', flows: null }] });
    expect(x).toMatchObject({ action: 'update', change: 'functional', note: expect.stringContaining('could not be read') });
  });
});

describe('diffConfig', () => {
  it('never shows the value of a secret-looking variable', () => {
    const changes = diffConfig({ ...config, env: { A: '2', API_KEY: 'swordfish', TOKEN: { fromEnv: 'T2' } } }, config);
    expect(changes).toEqual([
      { field: 'env.A', from: '"1"', to: '"2"' },
      { field: 'env.API_KEY', from: '(redacted)', to: '(redacted)' },
      { field: 'env.TOKEN', from: 'fromEnv T', to: 'fromEnv T2' },
    ]);
    expect(JSON.stringify(changes)).not.toMatch(/hunter2|swordfish/);
  });

  it('compares only what was observed', () => {
    expect(diffConfig(config, undefined)).toEqual([]);
    expect(diffConfig(config, { port: 2001 })).toEqual([]);
    expect(diffConfig(config, { port: 2002 })).toEqual([{ field: 'port', from: '2002', to: '2001' }]);
  });
});
