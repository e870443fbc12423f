import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { directoryReader } from '../../src/adapters/fs/repo-reader.js';
import { formatDiagnostic } from '../../src/core/diagnostics.js';
import { diffFleet } from '../../src/core/diff.js';
import { flowsRev } from '../../src/core/flows.js';
import { LIMITS, loadRepository } from '../../src/core/load.js';
import { memoryReader } from '../helpers/memory-repo.js';

const FLOW = JSON.stringify([{ id: 't1', type: 'tab', label: 'main' }, { id: 'n1', type: 'inject', z: 't1', wires: [] }]);
const FLOW2 = JSON.stringify([{ id: 't2', type: 'tab', label: 'other' }]);

function fleet(instances: string, extra = ''): string {
  return `apiVersion: tower.redforge.dev/v1
kind: Fleet
metadata: { name: demo }
spec:
${extra}  instances:
${instances}`;
}

const A = `    - name: a
      flows: [flows/a.json]
      port: 2001
`;
const B = `    - name: b
      flows: [flows/b.json]
      port: 2002
`;

function load(files: Record<string, string>) {
  return loadRepository(memoryReader({ 'flows/a.json': FLOW, 'flows/b.json': FLOW2, ...files }));
}

describe('loadRepository: valid repositories', () => {
  it('loads a fleet with defaults applied, and computes each instance rev', () => {
    const repo = load({
      'fleet.yaml': fleet(
        `${A}      env: { B: two, SECRET: { fromEnv: MY_SECRET } }
      runtime: docker
${B}`,
        '  defaults: { env: { A: one, B: default }, nodeRedVersion: "4.1.8", keepWarm: 5m }\n',
      ),
    });
    expect(repo.diagnostics).toEqual([]);
    expect(repo.valid).toBe(true);
    const a = repo.instances[0]!;
    expect(a.config).toMatchObject({ runtime: 'docker', nodeRedVersion: '4.1.8', env: { A: 'one', B: 'two', SECRET: { fromEnv: 'MY_SECRET' } }, port: 2001 });
    expect(a.keepWarm).toBe('5m');
    expect(repo.instances[1]!.config.runtime).toBe('process');
    expect(a.rev).toMatch(/^[0-9a-f]{64}$/);
    expect(repo.fleet!.plan).toMatchObject({ name: 'default', spec: { order: 'sequential' } });
  });

  it('rev is Node-RED\'s rev of the flow list, hashed on first read, and behaves as a plain string property', () => {
    const repo = load({ 'fleet.yaml': fleet(A + B) });
    const a = repo.instances[0]!;
    expect(Object.keys(a)).toContain('rev');
    expect(a.rev).toBe(createHash('sha256').update(JSON.stringify(a.flowList)).digest('hex'));
    expect(a.rev).toBe(flowsRev(a.flowList)); // kept, same value
    expect(JSON.parse(JSON.stringify(a)).rev).toBe(a.rev);
    expect({ ...a }.rev).toBe(a.rev);
    expect(structuredClone(a).rev).toBe(a.rev);
    expect(a).toEqual({ ...a });
    // The create diff names it too, as before: last, in JSON.
    const created = diffFleet(repo.instances, undefined)[1]!;
    expect(Object.keys(created).at(-1)).toBe('desiredRev');
    expect(JSON.parse(JSON.stringify(created)).desiredRev).toBe(repo.instances[1]!.rev);
    // Assigning replaces it with a plain value.
    const b = repo.instances[1]!;
    b.rev = 'x';
    expect(b.rev).toBe('x');
    expect(Object.getOwnPropertyDescriptor(b, 'rev')).toMatchObject({ value: 'x', writable: true, enumerable: true });
  });

  it('finds the plan by path, by name (also in fleet.yaml itself), or inline', () => {
    const plan = (name: string) => `apiVersion: tower.redforge.dev/v1\nkind: DeployPlan\nmetadata: { name: ${name} }\nspec: { order: waves, waves: [[a], [b]] }\n`;
    expect(load({ 'fleet.yaml': fleet(A + B, '  plan: plans/w.yaml\n'), 'plans/w.yaml': plan('w') }).fleet!.plan.source).toBe('plans/w.yaml');
    expect(load({ 'fleet.yaml': fleet(A + B, '  plan: w\n'), 'plans/w.yaml': plan('w') }).fleet!.plan.name).toBe('w');
    const inFleet = load({ 'fleet.yaml': `${fleet(A + B, '  plan: w\n')}---\n${plan('w')}` });
    expect(inFleet.valid).toBe(true);
    expect(inFleet.fleet!.plan.source).toBe('fleet.yaml');
    const inline = load({ 'fleet.yaml': fleet(A + B, '  plan: { order: dag, dependsOn: { b: [a] } }\n') });
    expect(inline.valid).toBe(true);
    expect(inline.fleet!.plan.spec.order).toBe('dag');
  });

  it('accepts fleet.yml and library flows', () => {
    const library = memoryReader({ 'gate.json': JSON.stringify([{ id: 'g1', type: 'tab' }]) });
    const repo = loadRepository(memoryReader({ 'fleet.yml': fleet(`    - name: a\n      flows: [lib:gate, flows/a.json]\n      port: 2001\n`), 'flows/a.json': FLOW }), { library });
    expect(repo.diagnostics).toEqual([]);
    expect(repo.instances[0]!.flowList.map((n) => n.id)).toEqual(['g1', 't1', 'n1']);
  });
});

describe('loadRepository: every error names file, line and column', () => {
  it.each([
    ['no fleet.yaml', {}, 'FileNotFound', 'fleet.yaml', 1, 1],
    ['YAML syntax: an unclosed [ (at the [)', { 'fleet.yaml': 'spec:\n  instances: [a\n  b: c\n' }, 'YamlSyntax', 'fleet.yaml', 2, 14],
    ['YAML syntax: bad indentation', { 'fleet.yaml': 'spec:\n  waves: [[a, b],\n  [c]]\n' }, 'YamlSyntax', 'fleet.yaml', 3, 3],
    ['duplicate key', { 'fleet.yaml': 'kind: Fleet\nkind: Fleet\n' }, 'YamlSyntax', 'fleet.yaml', 2, 1],
    ['unknown kind', { 'fleet.yaml': 'apiVersion: tower.redforge.dev/v1\nkind: Flet\n' }, 'UnknownKind', 'fleet.yaml', 2, 7],
    ['wrong apiVersion', { 'fleet.yaml': fleet(A).replace('tower.redforge.dev/v1', 'v2') }, 'SchemaViolation', 'fleet.yaml', 1, 13],
    ['unknown property with a typo', { 'fleet.yaml': fleet(A + '      prot: 3\n') }, 'SchemaViolation', 'fleet.yaml', 9, 7],
    ['wrong type', { 'fleet.yaml': fleet(A.replace('port: 2001', 'port: "x"')) }, 'SchemaViolation', 'fleet.yaml', 8, 13],
    ['duplicate instance name', { 'fleet.yaml': fleet(A + A.replace('2001', '2009')) }, 'DuplicateInstanceName', 'fleet.yaml', 9, 13],
    ['duplicate port', { 'fleet.yaml': fleet(A + B.replace('2002', '2001')) }, 'DuplicatePort', 'fleet.yaml', 11, 13],
    ['missing flow file', { 'fleet.yaml': fleet(A.replace('flows/a.json', 'flows/nope.json')) }, 'FileNotFound', 'fleet.yaml', 7, 15],
    ['flow path with ..', { 'fleet.yaml': fleet(A.replace('flows/a.json', 'flows/../../x.json')) }, 'PathOutsideRepository', 'fleet.yaml', 7, 15],
    ['absolute flow path', { 'fleet.yaml': fleet(A.replace('flows/a.json', '/etc/passwd')) }, 'PathOutsideRepository', 'fleet.yaml', 7, 15],
    ['plan not found', { 'fleet.yaml': fleet(A, '  plan: plans/none.yaml\n') }, 'PlanNotFound', 'fleet.yaml', 5, 9],
    ['unknown library flow', { 'fleet.yaml': fleet(A.replace('flows/a.json', 'lib:nope')) }, 'UnknownLibraryFlow', 'fleet.yaml', 7, 15],
    ['flow JSON syntax', { 'fleet.yaml': fleet(A), 'flows/a.json': '[\n{"id": "a",\n]' }, 'FlowSyntax', 'flows/a.json', 3, 1],
  ])('%s', (_what, files, code, file, line, col) => {
    const repo = load(files as Record<string, string>);
    expect(repo.valid).toBe(false);
    const d = repo.diagnostics.find((x) => x.code === code);
    expect(d, JSON.stringify(repo.diagnostics)).toBeDefined();
    expect([d!.file, d!.line, d!.col]).toEqual([file, line, col]);
    expect(formatDiagnostic(d!)).toMatch(new RegExp(`^${file.replace('.', '\\.')}:${line}:${col}: error: `));
  });

  it('points at a [ or { that is never closed, not at the line after it', () => {
    const plan = 'apiVersion: tower.redforge.dev/v1\nkind: DeployPlan\nmetadata: { name: w }\nspec:\n  order: waves\n  waves: [[a, b], [c]\n  maxParallel: 4\n';
    const inPlan = load({ 'fleet.yaml': fleet(A + B, '  plan: w\n'), 'plans/w.yaml': plan });
    expect(inPlan.diagnostics.filter((d) => d.code === 'YamlSyntax').map(formatDiagnostic)).toEqual([
      'plans/w.yaml:6:10: error: this [ is never closed — add the missing "]"; a [ … ] that goes on over several lines needs those lines indented deeper than its key',
    ]);
    // What follows the bracket is swallowed by it; only the bracket is reported.
    const inFleet = load({ 'fleet.yaml': fleet(A.replace('[flows/a.json]', '[flows/a.json') + B) });
    expect(inFleet.diagnostics.map((d) => [d.file, d.line, d.col, d.message])).toEqual([['fleet.yaml', 7, 14, 'this [ is never closed']]);
    // The innermost one that is open, a { too, and at the end of the file.
    expect(load({ 'fleet.yaml': 'spec:\n  waves: [[a, b], [c\n  x: 1\n' }).diagnostics.map((d) => [d.line, d.col, d.message])).toEqual([[2, 19, 'this [ is never closed']]);
    expect(load({ 'fleet.yaml': 'spec:\n  defaults: { runtime: process\n  plan: x\n' }).diagnostics.map((d) => [d.line, d.col, d.message])).toEqual([[2, 13, 'this { is never closed']]);
    expect(load({ 'fleet.yaml': 'spec:\n  waves: [[a, b], [c]' }).diagnostics.map((d) => [d.line, d.col, d.message])).toEqual([[2, 10, 'this [ is never closed']]);
    // Closed, but a line inside is not indented enough: that is what is said.
    const indent = load({ 'fleet.yaml': 'spec:\n  waves: [[a, b],\n  [c]]\n' }).diagnostics[0]!;
    expect([indent.line, indent.col, indent.hint]).toEqual([3, 3, 'check the indentation of this line against the lines above']);
  });

  it('a oneOf branch that fits the value keeps its errors: an invalid value never loads as valid', () => {
    for (const [cpu, message] of [
      ['lots', 'spec.instances[0].resources.cpu: "lots" is not valid (must match ^[0-9]+(\\.[0-9]+)?$|^[0-9]+m$)'],
      ['-1', 'spec.instances[0].resources.cpu: must be > 0'],
      ['[1]', 'spec.instances[0].resources.cpu: must be a number of cores (0.5); or a string: "0.5" or millicores "500m"'],
    ]) {
      const repo = load({ 'fleet.yaml': fleet(`${A}      resources: { cpu: ${cpu} }\n`) });
      expect(repo.valid).toBe(false);
      expect(repo.diagnostics.map((d) => [d.code, d.line, d.message])).toEqual([['SchemaViolation', 9, message]]);
    }
  });

  it('says at most 20 schema errors of a document, and how many more there are', () => {
    const extra = Array.from({ length: 30 }, (_, i) => `      x${i}: 1\n`).join('');
    const repo = load({ 'fleet.yaml': fleet(A + extra) });
    expect(repo.diagnostics).toHaveLength(21);
    expect(repo.diagnostics.at(-1)!.message).toBe('and 10 more schema errors in this document');
  });

  it('suggests the property meant', () => {
    const d = load({ 'fleet.yaml': fleet(A + '      prot: 3\n') }).diagnostics[0]!;
    expect(d.message).toBe('spec.instances[0]: unknown property "prot"');
    expect(d.hint).toBe('did you mean "port"?');
  });

  it('reports all errors in one run, not just the first', () => {
    const repo = load({
      'fleet.yaml': fleet(`${A}      prot: 3\n${B.replace('2002', '2001')}    - name: c\n      flows: [flows/x.json]\n      port: 2003\n`, '  plan: { order: waves, waves: [[a, zz]] }\n'),
      'flows/b.json': '[{"id": "t", "type": "tab"}, {"id": "n", "type": "debug", "z": "t", "wires": [["ghost"]]}]',
    });
    expect(repo.diagnostics.map((d) => d.code).sort()).toEqual(['DanglingWire', 'DuplicatePort', 'FileNotFound', 'InstanceNotInPlan', 'SchemaViolation', 'UnknownInstance']);
  });

  it('refuses an alias bomb', () => {
    const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]', ...'bcdefghi'.split('').map((k, i) => `${k}: &${k} [*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)}]`)].join('\n');
    const started = process.hrtime.bigint();
    const repo = load({ 'fleet.yaml': `${bomb}\nkind: Fleet\n` });
    expect(repo.diagnostics.map((d) => d.code)).toContain('YamlAliasLimit');
    expect(Number(process.hrtime.bigint() - started) / 1e9).toBeLessThan(5); // bounded, not exponential
  });

  it('refuses oversized files', () => {
    const huge = `# ${'x'.repeat(LIMITS.yamlBytes)}\n`;
    const repo = load({ 'fleet.yaml': huge });
    expect(repo.diagnostics).toMatchObject([{ code: 'FileTooLarge', file: 'fleet.yaml' }]);
  });

  it('merges the same flow problem found through several instances into one message naming them', () => {
    const repo = load({
      'fleet.yaml': fleet(`${A}${A.replace('name: a', 'name: c').replace('2001', '2003')}`),
      'flows/a.json': '[{"id": "t", "type": "tab"}, {"id": "n", "type": "debug", "z": "t", "g": "nogroup"}]',
    });
    expect(repo.diagnostics).toHaveLength(1);
    expect(repo.diagnostics[0]!.instances).toEqual(['a', 'c']);
  });
});

describe('directoryReader', () => {
  const root = mkdtempSync(join(tmpdir(), 'tower-repo-'));
  const outside = mkdtempSync(join(tmpdir(), 'tower-outside-'));
  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  it('refuses a symbolic link that leads outside the repository', () => {
    mkdirSync(join(root, 'flows'));
    writeFileSync(join(outside, 'secret.json'), FLOW);
    symlinkSync(join(outside, 'secret.json'), join(root, 'flows', 'escape.json'));
    writeFileSync(join(root, 'flows', 'a.json'), FLOW);
    symlinkSync(join(root, 'flows', 'a.json'), join(root, 'flows', 'inside.json'));
    writeFileSync(join(root, 'fleet.yaml'), fleet(`    - name: a\n      flows: [flows/escape.json]\n      port: 2001\n    - name: b\n      flows: [flows/inside.json]\n      port: 2002\n`));
    const repo = loadRepository(directoryReader(root));
    expect(repo.diagnostics).toMatchObject([{ code: 'PathOutsideRepository', file: 'fleet.yaml', line: 7 }]);
    expect(repo.diagnostics[0]!.message).toContain('symbolic link');
    expect(repo.instances.map((i) => i.name)).toEqual(['b']);
  });
});
