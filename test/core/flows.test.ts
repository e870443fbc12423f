import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalFlows, contentHash, deployableFlows, flowsRev, mergeInstanceFlows, parseFlowFile } from '../../src/core/flows.js';

const file = (name: string, nodes: unknown) => parseFlowFile(name, JSON.stringify(nodes, null, 2)).flowFile!;

describe('parseFlowFile', () => {
  const nodes = [{ id: 't1', type: 'tab' }, { id: 'n1', type: 'inject', z: 't1', wires: [] }];

  it.each([
    ['a plain array, as the editor exports', nodes],
    ['{flows: [...]}', { flows: nodes }],
    ['{rev, flows} from the Admin API v2', { rev: 'abc', flows: nodes }],
  ])('reads %s', (_what, data) => {
    const r = parseFlowFile('f.json', JSON.stringify(data));
    expect(r.diagnostics).toEqual([]);
    expect(r.flowFile!.nodes.map((n) => n.id)).toEqual(['t1', 'n1']);
    expect(r.flowFile!.hasTab).toBe(true);
  });

  it('reports a JSON syntax error at its line and column', () => {
    const r = parseFlowFile('f.json', '[\n  {"id": "a", "type": "tab"}\n  {"id": "b"}\n]');
    expect(r.flowFile).toBeUndefined();
    expect(r.diagnostics).toMatchObject([{ code: 'FlowSyntax', file: 'f.json', line: 3, col: 3, message: 'invalid JSON: expected ","' }]);
  });

  it('reports something that is not a flow export', () => {
    expect(parseFlowFile('f.json', '{"nodes": []}').diagnostics).toMatchObject([{ code: 'FlowFormat', line: 1, col: 1 }]);
    expect(parseFlowFile('f.json', '42').diagnostics[0]!.message).toContain('found number');
  });

  it('reports entries that are not nodes, keeps the rest, and points at the right entry', () => {
    const r = parseFlowFile('f.json', '[\n{"id":"a","type":"tab"},\n{"type":"inject"},\n"x",\n{"id":"b","type":"debug","z":"a","wires":[["zz"]]}\n]');
    expect(r.diagnostics.map((d) => [d.code, d.line])).toEqual([
      ['FlowFormat', 3],
      ['FlowFormat', 4],
    ]);
    expect(r.flowFile!.nodes.map((n) => n.id)).toEqual(['a', 'b']);
    // positions of later nodes still line up with their own entries
    const merged = mergeInstanceFlows('i', [r.flowFile!]);
    expect(merged.diagnostics).toMatchObject([{ code: 'DanglingWire', nodeId: 'b', line: 5 }]);
  });
});

describe('mergeInstanceFlows', () => {
  it('merges files in order and reports duplicate ids within and across files', () => {
    const a = file('a.json', [{ id: 't1', type: 'tab' }, { id: 'n1', type: 'inject', z: 't1' }, { id: 'n1', type: 'debug', z: 't1' }]);
    const b = file('b.json', [{ id: 't2', type: 'tab' }, { id: 'n1', type: 'function', z: 't2', name: 'again' }]);
    const r = mergeInstanceFlows('ingest', [a, b]);
    expect(r.nodes.map((n) => `${n.id}:${n.type}`)).toEqual(['t1:tab', 'n1:inject', 't2:tab']);
    expect(r.diagnostics.map((d) => [d.code, d.file, d.line, d.nodeId])).toEqual([
      ['DuplicateNodeId', 'a.json', 11, 'n1'],
      ['DuplicateNodeId', 'b.json', 6, 'n1'],
    ]);
    expect(r.diagnostics[1]!.message).toContain('first defined at a.json:6:3');
    expect(r.diagnostics[1]!.hint).toContain('across all flow files');
    expect(r.diagnostics[1]!.instances).toEqual(['ingest']);
  });

  it('resolves wires and links across the files of an instance', () => {
    const a = file('a.json', [{ id: 't1', type: 'tab' }, { id: 'out', type: 'link out', z: 't1', links: ['in'] }]);
    const b = file('b.json', [{ id: 't2', type: 'tab' }, { id: 'in', type: 'link in', z: 't2', links: ['out'], wires: [['d']] }, { id: 'd', type: 'debug', z: 't2' }]);
    expect(mergeInstanceFlows('i', [a, b]).diagnostics).toEqual([]);
    expect(mergeInstanceFlows('i', [a]).diagnostics).toMatchObject([{ code: 'DanglingLink', nodeId: 'out', message: expect.stringContaining('"in"') }]);
  });

  it.each([
    ['DanglingWire', [{ id: 't', type: 'tab' }, { id: 'a', type: 'inject', z: 't', wires: [[], ['ghost']] }], 'a', 'output 2'],
    ['DanglingLink', [{ id: 't', type: 'tab' }, { id: 'a', type: 'link call', z: 't', links: ['ghost'] }], 'a', 'ghost'],
    ['DanglingWire', [{ id: 's', type: 'subflow', in: [{ wires: [{ id: 'ghost' }] }], out: [{ wires: [{ id: 's' }] }] }], 's', 'ghost'],
    ['MissingTab', [{ id: 't', type: 'tab' }, { id: 'a', type: 'debug', z: 'elsewhere' }], 'a', 'elsewhere'],
    ['MissingSubflow', [{ id: 't', type: 'tab' }, { id: 'a', type: 'subflow:nope', z: 't' }], 'a', 'nope'],
    ['MissingGroup', [{ id: 't', type: 'tab' }, { id: 'a', type: 'debug', z: 't', g: 'nogroup' }], 'a', 'nogroup'],
  ])('reports %s', (code, nodes, nodeId, mention) => {
    const r = mergeInstanceFlows('i', [file('f.json', nodes)]);
    expect(r.diagnostics).toHaveLength(1);
    expect(r.diagnostics[0]).toMatchObject({ severity: 'error', code, nodeId, file: 'f.json' });
    expect(r.diagnostics[0]!.message).toContain(mention);
    expect(r.diagnostics[0]!.hint).toBeTruthy();
  });

  it('accepts a selection export, and warns once per tab, naming it, that the editor will show it unnamed', () => {
    const r = mergeInstanceFlows('i', [file('sel.json', [{ id: 'a', type: 'inject', z: 'not-exported', wires: [['b']] }, { id: 'b', type: 'debug', z: 'not-exported' }, { id: 'cfg', type: 'mqtt-broker', z: '' }, { id: 'c', type: 'debug', z: 'other' }])]);
    expect(r.nodes).toHaveLength(4);
    expect(r.diagnostics.map((d) => [d.severity, d.code, d.nodeId, d.file])).toEqual([
      ['warning', 'ImplicitTab', 'a', 'sel.json'],
      ['warning', 'ImplicitTab', 'c', 'sel.json'],
    ]);
    expect(r.diagnostics[0]!.message).toContain('2 nodes of this file sit on tab "not-exported"');
    expect(r.diagnostics[0]!.message).toContain('without a name');
    expect(r.diagnostics[1]!.message).toContain('debug "c" sits on tab "other"');
    expect(r.diagnostics[0]!.hint).toContain('"id": "not-exported", "type": "tab"');
  });

  it('does not warn when the tab of a selection export comes from another file of the instance', () => {
    const r = mergeInstanceFlows('i', [file('tabs.json', [{ id: 'main', type: 'tab', label: 'Main' }]), file('sel.json', [{ id: 'a', type: 'debug', z: 'main' }])]);
    expect(r.diagnostics).toEqual([]);
  });

  it('warns about credentials stored in a flow file, and keeps them out of what is hashed', () => {
    const nodes = [{ id: 'b', type: 'mqtt-broker', credentials: { user: 'u', password: 'p' } }];
    const r = mergeInstanceFlows('i', [file('f.json', nodes)]);
    expect(r.diagnostics).toMatchObject([{ severity: 'warning', code: 'CredentialsInFlow' }]);
    expect(r.diagnostics[0]!.message).not.toContain('"p"');
    expect(deployableFlows(r.nodes)).toEqual([{ id: 'b', type: 'mqtt-broker' }]);
  });
});

describe('hashing', () => {
  const flows = [{ id: 't', type: 'tab', label: 'x' }, { id: 'n', type: 'debug', z: 't', credentials: { a: 1 } }];

  it('computes Node-RED rev: sha256 of JSON.stringify of the stored list', () => {
    const stored = [{ id: 't', type: 'tab', label: 'x' }, { id: 'n', type: 'debug', z: 't' }];
    const expected = createHash('sha256').update(JSON.stringify(stored)).digest('hex');
    expect(flowsRev(deployableFlows(flows))).toBe(expected);
  });

  it('rev depends on order; the content hash does not', () => {
    const reordered = [flows[1]!, flows[0]!].map((n) => Object.fromEntries(Object.entries(n).reverse()) as typeof n);
    expect(flowsRev(deployableFlows(reordered))).not.toBe(flowsRev(deployableFlows(flows)));
    expect(contentHash(reordered)).toBe(contentHash(flows));
    expect(canonicalFlows(flows)).toBe('[{"id":"n","type":"debug","z":"t"},{"id":"t","label":"x","type":"tab"}]');
  });

  it('the content hash sees a real change', () => {
    expect(contentHash([{ ...flows[0]!, label: 'y' }, flows[1]!])).not.toBe(contentHash(flows));
  });
});
