/**
 * Bad input in the repository: every file the loader can be given ends in a result — valid, or
 * diagnostics with file, line and column — never in an exception, a stack overflow or minutes
 * of CPU. Nesting, invalid UTF-8, the fleet's limits, alias cycles.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { directoryReader } from '../../src/adapters/fs/repo-reader.js';
import { formatDiagnostic, type Diagnostic } from '../../src/core/diagnostics.js';
import { diffFleet } from '../../src/core/diff.js';
import { canonicalFlows, configHash, contentHash } from '../../src/core/flows.js';
import { DEFAULT_FLEET_LIMITS, loadRepository, type LoadedRepository } from '../../src/core/load.js';
import { checkValueShape, jsonTooDeepAt, MAX_NESTING, MAX_YAML_NESTING } from '../../src/core/nesting.js';
import { findCycles } from '../../src/core/plan.js';
import { parseByteSize } from '../../src/core/repo-files.js';
import { decodeUtf8, firstInvalidByte } from '../../src/core/utf8.js';
import { memoryReader } from '../helpers/memory-repo.js';

const FLEET = (instances = '    - { name: a, port: 2001, flows: [flows/a.json] }\n', spec = '') =>
  `apiVersion: tower.redforge.dev/v1\nkind: Fleet\nmetadata: { name: hostile }\nspec:\n${spec}  instances:\n${instances}`;
const FLOW = JSON.stringify([{ id: 't', type: 'tab', label: 'main' }, { id: 'n', type: 'inject', z: 't', wires: [] }]);

function load(files: Record<string, string | Uint8Array>): LoadedRepository {
  return loadRepository(memoryReader({ 'fleet.yaml': FLEET(), 'flows/a.json': FLOW, ...files }));
}

function only(repo: LoadedRepository, code: Diagnostic['code']): Diagnostic {
  const found = repo.diagnostics.filter((d) => d.code === code);
  expect(found, JSON.stringify(repo.diagnostics, null, 1)).toHaveLength(1);
  expect(repo.valid).toBe(false);
  return found[0]!;
}

const timed = <T>(f: () => T): { value: T; ms: number } => {
  const started = performance.now();
  const value = f();
  return { value, ms: performance.now() - started };
};

describe('nesting', () => {
  const N = 100_000;

  it.each([
    ['arrays', '['.repeat(N) + ']'.repeat(N), 1, MAX_NESTING + 1],
    ['objects', '{"a":'.repeat(N) + '1' + '}'.repeat(N), 1, MAX_NESTING * 5 + 1],
    ['inside a node, over lines', `[\n{"id": "n", "type": "function", "x":\n${'['.repeat(N)}${']'.repeat(N)}}]`, 3, MAX_NESTING - 1], // [ and { above it are levels 1 and 2
    ['never closed (invalid JSON)', '['.repeat(N), 1, MAX_NESTING + 1],
    ['mismatched closers (invalid JSON a recovering parser keeps descending into)', '[' + '[},'.repeat(N), 1, 3 * (MAX_NESTING - 1) + 2],
  ])('a flow file nested 100,000 levels deep (%s) is a diagnostic at the bracket past the limit', (_what, text, line, col) => {
    const { value: repo, ms } = timed(() => load({ 'flows/a.json': text }));
    const d = only(repo, 'NestingTooDeep');
    expect([d.file, d.line, d.col]).toEqual(['flows/a.json', line, col]);
    expect(formatDiagnostic(d)).toContain(`flows/a.json:${line}:${col}: error: JSON nested more than 512 levels deep`);
    expect(ms).toBeLessThan(2000);
  });

  it('a flow nested exactly to the limit loads, and everything that walks it recursively copes', () => {
    const deep = (levels: number): unknown => {
      let v: unknown = 'leaf';
      for (let i = 0; i < levels; i++) v = [v];
      return v;
    };
    // The file's array is level 1 and each node level 2: the property may take the rest.
    const nodes = [{ id: 't', type: 'tab' }, { id: 'n', type: 'function', z: 't', x: deep(MAX_NESTING - 2) }];
    const text = JSON.stringify(nodes);
    expect(jsonTooDeepAt(text)).toBeUndefined();
    expect(jsonTooDeepAt(JSON.stringify([{ id: 'n', type: 'function', x: deep(MAX_NESTING - 1) }]))).toBeDefined();
    const repo = load({ 'flows/a.json': text });
    expect(repo.diagnostics).toEqual([]);
    const a = repo.instances[0]!;
    expect(a.rev).toMatch(/^[0-9a-f]{64}$/);
    expect(contentHash(a.flowList)).toMatch(/^[0-9a-f]{64}$/);
    expect(canonicalFlows(a.flowList).length).toBeGreaterThan(2 * MAX_NESTING);
    expect(configHash(a.config)).toMatch(/^[0-9a-f]{64}$/);
    expect(structuredClone(a.flowList)).toEqual(a.flowList);
    const changed = structuredClone(a.flowList);
    (changed[1] as unknown as { x: unknown }).x = deep(MAX_NESTING - 3);
    expect(diffFleet(repo.instances, { instances: [{ name: 'a', flows: changed }] })[0]!.change).not.toBe('none');
    // ... and on a syntax error in such a file, the error is found (jsonc-parser recurses too).
    const broken = load({ 'flows/a.json': text.slice(0, -2) });
    expect(only(broken, 'FlowSyntax').file).toBe('flows/a.json');
  });

  it.each([
    // The mapping `a:` is level 1; the column is that of the first [, { , - or ? past the limit.
    ['flow sequences', `a: ${'['.repeat(N)}${']'.repeat(N)}\n`, 1, 3 + MAX_YAML_NESTING],
    ['flow mappings', `a: ${'{a: '.repeat(N)}1${'}'.repeat(N)}\n`, 1, 4 + 4 * (MAX_YAML_NESTING - 1)],
    ['an unclosed flow sequence', `a: ${'['.repeat(N)}\n`, 1, 3 + MAX_YAML_NESTING],
    ['block sequences on one line', `${'- '.repeat(N)}x\n`, 1, 1 + 2 * MAX_YAML_NESTING],
    ['explicit keys', `${'? '.repeat(N)}x\n`, 1, 1 + 2 * MAX_YAML_NESTING],
    ['block sequences that a dedent closes at once (the parser recursed as deep)', `a:\n  ${'- '.repeat(N)}x\nb: 1\n`, 2, 3 + 2 * (MAX_YAML_NESTING - 1)],
  ])('YAML nested 100,000 levels deep (%s) is a diagnostic, not a crash of the process', (_what, text, line, col) => {
    for (const file of ['fleet.yaml', 'plans/p.yaml']) {
      const { value: repo, ms } = timed(() => load({ [file]: file === 'fleet.yaml' ? text : `${text}`, ...(file === 'fleet.yaml' ? {} : { 'fleet.yaml': FLEET() }) }));
      const d = only(repo, 'NestingTooDeep');
      expect([d.file, d.line, d.col]).toEqual([file, line, col]);
      expect(ms).toBeLessThan(5000);
    }
  });

  it('YAML whose aliases nest deeper than the limit, or make a value contain itself, is refused at a position', () => {
    const levels = (n: number) => '['.repeat(n) + ']'.repeat(n);
    const deep = `a: &a ${levels(100)}\nb: &b ${'['.repeat(100)}*a${']'.repeat(100)}\nkind: Fleet\n`;
    expect(only(load({ 'fleet.yaml': deep }), 'NestingTooDeep')).toMatchObject({ file: 'fleet.yaml', line: 1, col: 1 });
    for (const [text, line, col] of [
      ['a: &x [ *x ]\n', 1, 9],
      ['spec:\n  defaults:\n    settings: &s\n      self: *s\n', 4, 13],
      ['&x [*x]\n', 1, 5],
    ] as const) {
      const d = only(load({ 'fleet.yaml': text }), 'YamlAliasLimit');
      expect([d.file, d.line, d.col, d.message]).toEqual(['fleet.yaml', line, col, 'a YAML alias refers to a node that contains it: the value would contain itself']);
    }
  });

  it('checkValueShape measures a graph once per node and finds cycles', () => {
    const shared: unknown[] = [[[1]]];
    let v: unknown = shared;
    for (let i = 0; i < 200; i++) v = [shared, v, shared];
    expect(checkValueShape(v)).toEqual({ ok: true });
    expect(checkValueShape(v, 100)).toEqual({ ok: false, reason: 'too-deep' });
    const cyclic: Record<string, unknown> = { a: [1] };
    (cyclic.a as unknown[]).push({ back: cyclic });
    expect(checkValueShape(cyclic)).toEqual({ ok: false, reason: 'cycle' });
    expect(checkValueShape(new Map([['k', new Set([[1]])]]), 3)).toEqual({ ok: true });
    expect(checkValueShape(new Map([['k', new Set([[1]])]]), 2)).toEqual({ ok: false, reason: 'too-deep' });
  });
});

describe('large YAML', () => {
  it('a 1 MiB mapping of distinct keys loads in linear time (the yaml library\'s own duplicate check is quadratic)', () => {
    const keys = Array.from({ length: 90_000 }, (_, i) => `k${i}: 1`).join('\n');
    const text = `${keys}\nkind: Fleet\n`;
    expect(text.length).toBeLessThan(1024 * 1024);
    const { value: repo, ms } = timed(() => load({ 'fleet.yaml': text }));
    expect(repo.diagnostics.some((d) => d.code === 'SchemaViolation')).toBe(true);
    expect(ms).toBeLessThan(10_000);
    // Duplicates are still found, each at its key.
    const dup = load({ 'fleet.yaml': `${keys}\nk17: 2\nkind: Fleet\n` });
    expect(only(dup, 'YamlSyntax')).toMatchObject({ line: 90_001, col: 1, message: 'Map keys must be unique' });
  });

  it('30,000 unknown keys inside a value with several allowed forms (oneOf): linear, 20 errors and a count', () => {
    const keys = Array.from({ length: 30_000 }, (_, i) => `          k${i}: 1`).join('\n');
    const text = FLEET('    - name: a\n      port: 2001\n      flows: [flows/a.json]\n      env:\n        LOG_LEVEL:\n' + keys + '\n');
    const { value: repo, ms } = timed(() => load({ 'fleet.yaml': text }));
    expect(repo.diagnostics).toHaveLength(21);
    expect(repo.diagnostics[0]!.message).toBe('spec.instances[0].env.LOG_LEVEL: unknown property "k0"');
    expect(repo.diagnostics.at(-1)!.message).toBe('and 29981 more schema errors in this document'); // and the forms allowed
    expect(ms).toBeLessThan(5000); // 9 s before: each error copied its branch's list
  });

  it('16,000 bad smoke checks (a oneOf failing once per item): linear, each item\'s forms said at its own place', () => {
    const smoke = Array.from({ length: 16_000 }, (_, i) => `        - [i${i}]`).join('\n');
    const text = FLEET(`    - name: a\n      port: 2001\n      flows: [flows/a.json]\n      smoke:\n${smoke}\n        - { http: { path: /ok }, mqtt: { publish: { topic: t } } }\n`);
    const { value: repo, ms } = timed(() => load({ 'fleet.yaml': text }));
    expect(repo.diagnostics[0]).toMatchObject({ line: 10, col: 11, message: 'spec.instances[0].smoke[0]: must be an http check; or an mqtt check' });
    expect(repo.diagnostics.at(-1)!.message).toMatch(/^and \d+ more schema errors in this document$/);
    expect(ms).toBeLessThan(8000); // 82 s before: every oneOf error was compared with every error
  });

  it('a value quoted in a message is cut; no message or hint is longer than 1,000 characters', () => {
    const huge = 'x'.repeat(300_000);
    const repo = load({
      'fleet.yaml': FLEET(`    - { name: a, port: 2001, flows: [flows/a.json], strategy: ${huge} }\n`, `  plan: { order: dag, dependsOn: { ${huge}: [a] } }\n`),
    });
    expect(repo.valid).toBe(false);
    const strategy = repo.diagnostics.find((d) => d.message.includes('strategy'))!;
    expect(strategy.message).toBe(`spec.instances[0].strategy: "${'x'.repeat(56)}… is not one of blue-green, recreate`);
    const unknown = repo.diagnostics.find((d) => d.code === 'UnknownInstance')!;
    expect(unknown.message).toMatch(/^"x{900,}… \(\d+ more characters\)$/);
    for (const d of repo.diagnostics) expect(Math.max(d.message.length, d.hint?.length ?? 0)).toBeLessThanOrEqual(1000);
  });

  it('reports at most 20 YAML errors of a file, and counts the rest', () => {
    const text = Array.from({ length: 100 }, (_, i) => `k: ${i}`).join('\n') + '\n';
    const repo = load({ 'fleet.yaml': text });
    const syntax = repo.diagnostics.filter((d) => d.code === 'YamlSyntax');
    expect(syntax).toHaveLength(21);
    expect(syntax.at(-1)!.message).toBe('and 79 more YAML errors in this file');
    expect(syntax.at(-1)!.line).toBe(22);
  });
});

describe('plans', () => {
  it('a dependsOn chain as long as fleet.yaml can hold: no stack overflow, linear time, the first 100 problems and a count', () => {
    const n = 45_000;
    const deps = Array.from({ length: n }, (_, i) => `      d${i + 1}: [d${i}]`).join('\n');
    const text = FLEET(undefined, `  plan:\n    order: dag\n    dependsOn:\n${deps}\n      d0: [d${n}]\n`);
    expect(text.length).toBeLessThan(1024 * 1024);
    const { value: repo, ms } = timed(() => load({ 'fleet.yaml': text }));
    expect(repo.valid).toBe(false);
    expect(repo.diagnostics).toHaveLength(101);
    expect(repo.diagnostics.slice(0, 3).map((d) => [d.code, d.line, d.col])).toEqual([
      ['UnknownInstance', 8, 7],
      ['UnknownInstance', 8, 12],
      ['UnknownInstance', 9, 7],
    ]);
    // n + 1 names unknown as keys, n + 1 as dependencies, and the cycle through all of them.
    expect(repo.diagnostics.at(-1)).toMatchObject({ severity: 'error', message: `and ${2 * (n + 1) + 1 - 100} more problems in this file (the first 100 are shown)` });
    expect(ms).toBeLessThan(15_000);
    const ring = Object.fromEntries(Array.from({ length: n + 1 }, (_, i) => [`d${i}`, [`d${(i + n) % (n + 1)}`]]));
    const cycles = findCycles(ring);
    expect(cycles).toHaveLength(1);
    expect(cycles[0]!.slice(0, 3)).toEqual(['d0', `d${n}`, `d${n - 1}`]);
    expect(cycles[0]).toHaveLength(n + 2);
  });

  it('an order that is no string is reported by the schema, not as "[object Object]"', () => {
    const repo = load({ 'fleet.yaml': FLEET(undefined, '  plan: { order: { a: 1 }, waves: [[a]] }\n') });
    expect(repo.diagnostics.map((d) => d.message).join('\n')).not.toContain('[object Object]');
    expect(repo.valid).toBe(false);
  });
});

describe('invalid UTF-8', () => {
  const bytes = (...parts: (string | number[])[]) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));

  it.each([
    ['a Latin-1 byte', [0xe9], 'é'.length],
    ['a stray continuation byte', [0x80], 1],
    ['an overlong "/"', [0xc0, 0xaf], 1],
    ['a UTF-16 surrogate', [0xed, 0xa0, 0x80], 1],
    ['a code point above U+10FFFF', [0xf4, 0x90, 0x80, 0x80], 1],
    ['a truncated sequence', [0xe2, 0x82, 0x41], 1],
  ])('in fleet.yaml (%s): refused with file, line, column and byte offset', (_what, bad) => {
    const before = FLEET().split('\n');
    const text = bytes(`${before.slice(0, 2).join('\n')}\nmetadata: { name: "hé`, bad, `llo" }\n${before.slice(3).join('\n')}`);
    const repo = load({ 'fleet.yaml': text });
    const d = only(repo, 'InvalidUtf8');
    const offset = text.indexOf(Buffer.from(bad));
    expect([d.file, d.line, d.col]).toEqual(['fleet.yaml', 3, 22]);
    expect(d.message).toBe(`not UTF-8: byte ${offset} (0x${bad[0]!.toString(16)}) does not begin a valid UTF-8 character`);
    expect(repo.fleet).toBeUndefined();
  });

  it('in a flow file, a plan file, and on disk through directoryReader', () => {
    const flow = bytes('[\n  {"id": "t", "type": "tab", "label": "caf', [0xe9], '"}\n]');
    const d = only(load({ 'flows/a.json': flow }), 'InvalidUtf8');
    expect([d.file, d.line, d.col]).toEqual(['flows/a.json', 2, 43]);
    expect(load({ 'flows/a.json': flow }).instances).toEqual([]);
    const plan = bytes('apiVersion: tower.redforge.dev/v1\nkind: DeployPlan\nmetadata: { name: p', [0xff], ' }\n');
    expect(only(load({ 'plans/p.yaml': plan }), 'InvalidUtf8')).toMatchObject({ file: 'plans/p.yaml', line: 3, col: 20 });
    const dir = mkdtempSync(join(tmpdir(), 'tower-utf8-'));
    try {
      writeFileSync(join(dir, 'fleet.yaml'), FLEET());
      writeFileSync(join(dir, 'a.json'), flow);
      const repo = loadRepository(directoryReader(dir));
      expect(repo.diagnostics.map((x) => [x.code, x.file, x.line, x.col])).toEqual([['FileNotFound', 'fleet.yaml', 6, 38]]);
      writeFileSync(join(dir, 'fleet.yaml'), FLEET().replace('flows/a.json', 'a.json'));
      expect(loadRepository(directoryReader(dir)).diagnostics.map((x) => [x.code, x.file, x.line, x.col])).toEqual([['InvalidUtf8', 'a.json', 2, 43]]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('accepts a byte order mark and every well-formed character, also outside the BMP', () => {
    const flow = bytes([0xef, 0xbb, 0xbf], JSON.stringify([{ id: 't', type: 'tab', label: 'ü € 𝄞 中 \u2028' }]));
    const repo = load({ 'flows/a.json': flow });
    expect(repo.diagnostics).toEqual([]);
    expect(repo.instances[0]!.flowList[0]!.label).toBe('ü € 𝄞 中 \u2028');
  });

  it('firstInvalidByte agrees with the strict decoder on any bytes', () => {
    const strict = new TextDecoder('utf-8', { fatal: true });
    const ok = (b: Uint8Array) => {
      try {
        strict.decode(b);
        return true;
      } catch {
        return false;
      }
    };
    const interesting = fc.constantFrom(0x00, 0x41, 0x7f, 0x80, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0xa0, 0x9f, 0x90, 0x8f);
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.integer({ min: 0, max: 255 }), interesting), { maxLength: 12 }), fc.string({ unit: 'binary', maxLength: 6 }), (raw, text) => {
        const b = Buffer.concat([Buffer.from(text, 'utf8'), Buffer.from(raw)]);
        const at = firstInvalidByte(b);
        expect(at === b.length).toBe(ok(b));
        if (at < b.length) {
          expect(ok(b.subarray(0, at))).toBe(true); // everything before it is good
          expect(decodeUtf8(b)).toMatchObject({ ok: false, byteOffset: at });
        }
      }),
      { seed: 10, numRuns: 3000 },
    );
  });
});

describe('the fleet\'s limits', () => {
  const instances = (n: number) => Array.from({ length: n }, (_, i) => `    - { name: i${i}, port: ${3000 + i}, flows: [flows/a.json] }\n`).join('');

  it('has defaults above the largest fleet measured (bench/plan: 1,000 instances, 200,000 nodes, 103 MiB)', () => {
    expect(DEFAULT_FLEET_LIMITS.instances).toBeGreaterThanOrEqual(1000);
    expect(DEFAULT_FLEET_LIMITS.nodes).toBeGreaterThanOrEqual(200_000);
    expect(DEFAULT_FLEET_LIMITS.bytes).toBeGreaterThanOrEqual(103 * 1024 * 1024);
  });

  it('instances: over the limit is one error at spec.instances, and nothing is loaded; spec.limits raises it', () => {
    const n = DEFAULT_FLEET_LIMITS.instances + 1;
    const over = load({ 'fleet.yaml': FLEET(instances(n)) });
    const d = only(over, 'LimitExceeded');
    expect([d.file, d.line, d.col]).toEqual(['fleet.yaml', 5, 3]);
    expect(d.message).toBe(`spec.instances lists ${n} instances, over this fleet's limit of ${DEFAULT_FLEET_LIMITS.instances}; nothing was loaded`);
    expect(d.hint).toContain('spec.limits.instances');
    expect(over.diagnostics).toHaveLength(1);
    const raised = load({ 'fleet.yaml': FLEET(instances(n), `  limits: { instances: ${n} }\n`) });
    expect(raised.diagnostics).toEqual([]);
    expect(raised.instances).toHaveLength(n);
    expect(only(load({ 'fleet.yaml': FLEET(instances(3), '  limits: { instances: 2 }\n') }), 'LimitExceeded').message).toContain('lists 3 instances, over this fleet\'s limit of 2');
  });

  it('nodes: counted per instance as deployed; the instance that crosses the limit is named, it and the rest are not loaded', () => {
    const repo = load({ 'fleet.yaml': FLEET(instances(5), '  limits: { nodes: 7 }\n') }); // 2 nodes each
    const d = only(repo, 'LimitExceeded');
    expect([d.file, d.line, d.col]).toEqual(['fleet.yaml', 10, 38]); // i3's flows
    expect(d.message).toBe('the 2 nodes of instance "i3" take the fleet to 8 nodes, over its limit of 7; this instance and those after it were not loaded');
    expect(repo.instances.map((i) => i.name)).toEqual(['i0', 'i1', 'i2']);
    expect(load({ 'fleet.yaml': FLEET(instances(5), '  limits: { nodes: 10 }\n') }).diagnostics).toEqual([]);
  });

  it('bytes: every file read counts once; the file that crosses the limit is named where it is referenced', () => {
    const files = { 'flows/b.json': JSON.stringify([{ id: 'b', type: 'tab', label: 'x'.repeat(2000) }]) };
    const fleet = (limit: string) =>
      FLEET('    - { name: a, port: 2001, flows: [flows/a.json] }\n    - { name: b, port: 2002, flows: [flows/a.json, flows/b.json] }\n', `  limits: { bytes: ${limit} }\n`);
    const repo = load({ ...files, 'fleet.yaml': fleet('2KiB') });
    const d = only(repo, 'LimitExceeded');
    expect([d.file, d.line, d.col]).toEqual(['fleet.yaml', 8, 52]); // b's reference to flows/b.json
    expect(d.message).toMatch(/^"flows\/b\.json" \(2\.0 KiB\) takes the files of this fleet over its limit of 2 KiB \(\d+ bytes read before it\); files after it were not read$/);
    expect(repo.instances.map((i) => i.name)).toEqual(['a']);
    expect(load({ ...files, 'fleet.yaml': fleet('4KiB') }).diagnostics).toEqual([]);
    expect(load({ ...files, 'fleet.yaml': fleet('4096') }).diagnostics).toEqual([]);
  });

  it('YAML all together (fleet.yaml and the plans) may have 4 MiB: a plan file past that is named, it and those after it are not read', () => {
    const plan = (name: string) => `apiVersion: tower.redforge.dev/v1\nkind: DeployPlan\nmetadata: { name: ${name} }\nspec: { order: sequential }\n# ${'x'.repeat(900 * 1024)}\n`;
    const files = Object.fromEntries(['a', 'b', 'c', 'd', 'e', 'f'].map((n) => [`plans/${n}.yaml`, plan(n)]));
    const repo = load(files);
    const d = only(repo, 'LimitExceeded');
    expect([d.file, d.line, d.col]).toEqual(['plans/e.yaml', 1, 1]);
    expect(d.message).toMatch(/^fleet\.yaml and the plan files before this one come to \d+ bytes; with this one they would pass the 4 MiB all YAML of a repository may have, so it and the plan files after it were not read$/);
    expect(repo.diagnostics).toHaveLength(1);
    expect(load(Object.fromEntries(Object.entries(files).slice(0, 4))).diagnostics).toEqual([]);
  });

  it('spec.limits is checked by the schema', () => {
    const repo = load({ 'fleet.yaml': FLEET(undefined, '  limits: { instances: 0, bytes: lots, node: 3 }\n') });
    expect(repo.diagnostics.map((d) => [d.code, d.line, d.col, d.message])).toEqual([
      ['SchemaViolation', 5, 24, 'spec.limits.instances: must be >= 1'],
      ['SchemaViolation', 5, 34, 'spec.limits.bytes: "lots" is not valid (a size such as 512MiB: a number and B, KiB, MiB or GiB)'],
      ['SchemaViolation', 5, 40, 'spec.limits: unknown property "node"'],
    ]);
    expect(load({ 'fleet.yaml': FLEET(undefined, '  limits: { bytes: 1.5 }\n') }).diagnostics.map((d) => d.message)).toEqual([
      'spec.limits.bytes: must be a number of bytes; or a size such as 512MiB (B, KiB, MiB or GiB)',
    ]);
    expect(parseByteSize('512MiB')).toBe(512 * 1024 * 1024);
    expect(parseByteSize('3 KiB')).toBe(3072);
    expect(parseByteSize('2GiB')).toBe(2 * 1024 ** 3);
    expect(parseByteSize('0MiB')).toBeUndefined();
    expect(parseByteSize(1.5)).toBeUndefined();
  });
});
