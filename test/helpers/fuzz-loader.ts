/**
 * Hostile repositories for the loader, as fast-check arbitraries — shared by the bounded test
 * (test/core/fuzz.test.ts) and the timed run (bench/fuzz.ts).
 *
 * A case is a whole repository in memory: fleet.yaml, plans/*.yaml and flow files. Each starts
 * from something valid (a fleet whose instances run mutated corpus flows, a deploy plan) and is
 * damaged at three levels: the value (any field set to a value of the wrong type, an odd
 * string, a huge one, a shared object — aliases in YAML — or the object's own ancestor — an
 * alias cycle), the text (snippets of YAML and JSON syntax inserted, ranges cut or repeated,
 * a line replaced by deep nesting) and the bytes (invalid UTF-8). `runCase` loads it, checks
 * what every result must satisfy, and — when instances loaded — drives diff, decide and the
 * plan renderers over them.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import YAML from 'yaml';
import { decide } from '../../src/core/decide.js';
import { hasErrors, MAX_MESSAGE_CHARS, type Diagnostic } from '../../src/core/diagnostics.js';
import { diffFleet } from '../../src/core/diff.js';
import { configHash, contentHash, mergeInstanceFlows, parseFlowFile } from '../../src/core/flows.js';
import { LIMITS, loadRepository, type LoadedRepository, type RepoReader } from '../../src/core/load.js';
import type { ObservedFleet } from '../../src/core/model.js';
import { liveFromObserved } from '../../src/core/observed.js';
import { planJson, planMarkdown, planText } from '../../src/core/render.js';
import { LIBRARY_DIR, PACKAGE_ROOT } from '../../src/paths.js';
import { memoryReader } from './memory-repo.js';

export const CORPUS_DIR = join(PACKAGE_ROOT, 'test', 'fixtures', 'corpus', 'flows');

export interface CorpusFile {
  name: string;
  text: string;
  /** Loads without errors on its own (the starting point of cases that stay valid). */
  clean: boolean;
}

/** The corpus of real flow exports; `maxBytes` keeps the bounded test quick. */
export function readCorpus(maxBytes = Infinity): CorpusFile[] {
  return readdirSync(CORPUS_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((name) => ({ name, text: readFileSync(join(CORPUS_DIR, name), 'utf8') }))
    .filter((f) => f.text.length <= maxBytes)
    .map((f) => {
      const parsed = parseFlowFile(f.name, f.text);
      const clean = !!parsed.flowFile && !hasErrors(parsed.diagnostics) && !hasErrors(mergeInstanceFlows('x', [parsed.flowFile]).diagnostics);
      return { ...f, clean };
    });
}

/** Tower's bundled flow library, in memory (flows: [lib:<name>]). */
export function libraryReader(): RepoReader {
  const files: Record<string, string> = {};
  for (const f of readdirSync(LIBRARY_DIR).filter((n) => n.endsWith('.json'))) files[f] = readFileSync(join(LIBRARY_DIR, f), 'utf8');
  return memoryReader(files);
}

export interface FuzzCase {
  files: Record<string, string | Uint8Array>;
  /** What was done to it, for reports. */
  label: string;
}

// ---------------------------------------------------------------------------------------
// Values

const ODD_STRINGS = [
  '', ' ', '\u0000', '\uD800', '\uDFFF', '\uFEFF', '\u202E', '\u2028', '\u0085', '𝄞', '👩‍👩‍👧', 'ǅ', 'İ', '\r\n', '\t', '\\', '"', "'",
  '${VAR}', '%', '&a', '*a', '!!binary', '<<', '---', '...', '#', ': ', '- ', '? ', '{', '[', ']', '}', ',',
  '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'lib:', 'lib:../x', 'lib:deploy-gate', 'lib:health', 'lib:nope',
  '../../etc/passwd', '/etc/passwd', 'C:\\x', 'flows\\a.json', 'flows/../flows/f0.json', 'flows/', 'plans/rollout.yaml', 'rollout',
  'i0', 'i1', 'tab', 'subflow', 'subflow:s1', 'group', 'link in', 'link out', 'link call', 'tower.redforge.dev/v1', 'Fleet', 'DeployPlan',
  '1e400', '-0', 'NaN', '.inf', '0x1F', '0o17', 'yes', 'no', 'null', '~', '2026-12-02', '256Mi', '1m', '0', '65536',
];

const oddString = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...ODD_STRINGS) },
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 24 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1_000, max: 300_000 }).map((n) => 'x'.repeat(n)) },
);

const scalar = fc.oneof(
  oddString,
  fc.integer(),
  fc.constantFrom(0, -1, 1, 1024, 65535, 65536, 2 ** 53, -(2 ** 53), 1.5, Number.MAX_VALUE, Number.MIN_VALUE),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
);

const hostileValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalar,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.oneof(oddString, fc.constantFrom('name', 'port', 'flows', 'id', 'type', 'z', 'wires', 'order', 'waves')), tie('value'), { maxKeys: 4 }),
  ),
})).value;

type Path = (string | number)[];

/** Every path into a plain value, found with a loop (the values may be shared or cyclic). */
function pathsOf(root: unknown, limit = 400): Path[] {
  const out: Path[] = [];
  const seen = new Set<unknown>();
  const stack: { v: unknown; path: Path }[] = [{ v: root, path: [] }];
  while (stack.length > 0 && out.length < limit) {
    const { v, path } = stack.pop()!;
    out.push(path);
    if (!v || typeof v !== 'object' || seen.has(v)) continue;
    seen.add(v);
    const entries: [string | number, unknown][] = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
    for (const [k, x] of entries) stack.push({ v: x, path: [...path, k] });
  }
  return out;
}

function getAt(root: unknown, path: Path): unknown {
  let v = root;
  for (const k of path) v = v && typeof v === 'object' ? (v as Record<string | number, unknown>)[k] : undefined;
  return v;
}

function setAt(root: unknown, path: Path, value: unknown, remove = false): void {
  if (path.length === 0) return;
  const parent = getAt(root, path.slice(0, -1));
  if (!parent || typeof parent !== 'object') return;
  const key = path[path.length - 1]!;
  if (remove) {
    if (Array.isArray(parent) && typeof key === 'number') parent.splice(key, 1);
    else delete (parent as Record<string | number, unknown>)[key];
  } else {
    Object.defineProperty(parent, key, { value, enumerable: true, writable: true, configurable: true });
  }
}

type ValueMutation =
  | { kind: 'set'; at: number; value: unknown }
  | { kind: 'delete'; at: number }
  | { kind: 'share'; at: number; from: number }
  | { kind: 'cycle'; at: number; up: number }
  | { kind: 'clone'; at: number }
  | { kind: 'deep'; at: number; levels: number; style: number }
  | { kind: 'bulk'; at: number; size: number; style: number };

/**
 * Large in number rather than in depth: a dependsOn chain (a graph as long as the file),
 * a list of instances past the limit, a mapping of many keys — what must stay linear.
 */
function bulkValue(size: number, style: number): unknown {
  switch (style % 4) {
    case 0:
      return Object.fromEntries(Array.from({ length: size }, (_, i) => [`i${i + 1}`, [`i${i}`]]));
    case 1:
      return Array.from({ length: size }, (_, i) => ({ name: `b${i}`, port: 1024 + (i % 60000), flows: ['flows/f0.json'] }));
    case 2:
      return Object.fromEntries(Array.from({ length: size }, (_, i) => [`k${i}`, i]));
    default:
      return Array.from({ length: size }, (_, i) => [`i${i}`]);
  }
}

/**
 * Deep nesting in a place where it parses: the value is set to a marker string, and the
 * serialized text gets the nesting in place of the marker (serializers recurse; the text is
 * built with a loop). Flow style, so it is the same in YAML and JSON.
 */
const DEEP_MARKER = 'deep-marker-';
const deepLevels = fc.oneof(fc.integer({ min: 500, max: 520 }), fc.integer({ min: 2, max: 100_000 }));

function nestedText(levels: number, style: number): string {
  return style % 2 === 0 ? '['.repeat(levels) + ']'.repeat(levels) : '{"a": '.repeat(levels) + '1' + '}'.repeat(levels);
}

/** The text with each quoted marker (as YAML or JSON wrote it) replaced by its nesting. */
function expandDeep(text: string): string {
  return text.replace(/(["']?)deep-marker-(\d+)-(\d+)\1/g, (_m, _q, levels: string, style: string) => nestedText(Number(levels), Number(style)));
}

const valueMutation: fc.Arbitrary<ValueMutation> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: hostileValue }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('share' as const), at: fc.nat(), from: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('cycle' as const), at: fc.nat(), up: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('clone' as const), at: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('deep' as const), at: fc.nat(), levels: deepLevels, style: fc.nat(1) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('bulk' as const), at: fc.nat(), size: fc.integer({ min: 10, max: 40_000 }), style: fc.nat(3) }) },
);

function applyValueMutations(root: unknown, mutations: readonly ValueMutation[], bulkMax: number): string[] {
  const done: string[] = [];
  for (const m of mutations) {
    const paths = pathsOf(root).filter((p) => p.length > 0);
    if (paths.length === 0) break;
    const path = paths[m.at % paths.length]!;
    const where = path.join('.');
    switch (m.kind) {
      case 'set':
        setAt(root, path, m.value);
        done.push(`set ${where}`);
        break;
      case 'delete':
        setAt(root, path, undefined, true);
        done.push(`delete ${where}`);
        break;
      case 'share': {
        const other = getAt(root, paths[m.from % paths.length]!);
        if (other && typeof other === 'object') {
          setAt(root, path, other);
          done.push(`share ${where}`);
        }
        break;
      }
      case 'cycle': {
        const ancestor = getAt(root, path.slice(0, m.up % path.length));
        if (ancestor && typeof ancestor === 'object') {
          setAt(root, path, ancestor);
          done.push(`cycle ${where}`);
        }
        break;
      }
      case 'bulk':
        setAt(root, path, bulkValue(Math.min(m.size, bulkMax), m.style));
        done.push(`bulk ${m.size}/${m.style} at ${where}`);
        break;
      case 'deep':
        setAt(root, path, `${DEEP_MARKER}${m.levels}-${m.style}`);
        done.push(`deep ${m.levels}/${m.style} at ${where}`);
        break;
      case 'clone': {
        const parent = getAt(root, path.slice(0, -1));
        if (Array.isArray(parent)) {
          parent.push(structuredCloneSafe(getAt(root, path)));
          done.push(`clone ${where}`);
        }
        break;
      }
    }
  }
  return done;
}

function structuredCloneSafe(v: unknown): unknown {
  try {
    return structuredClone(v);
  } catch {
    return v;
  }
}

// ---------------------------------------------------------------------------------------
// Text and bytes

const SNIPPETS = [
  '&a ', '*a', '*nope', '&a [*a]', '<<: *a\n', '[', ']', '{', '}', '[[[[', '}}}}', ': ', '- ', '? ', '\t', '\n', '\r', '\n---\n', '\n...\n', '%YAML 1.1\n',
  '!!binary ', '!!str ', '!!set ', '!!omap ', '!tag ', '"', "'", '"\\x', '"\\u12', '|', '>-\n', '#', '\n  ', '\n      ', ',', '//', '/*', '\\',
  'null', 'true', '1e400', '-', '0x', '"id": "dup", ', '"z": "ghost", ', '"wires": [["ghost"]], ', '{"id":1}', '\u0000', '\uFEFF', '\u2028',
];

type TextMutation =
  | { kind: 'insert'; at: number; snippet: string }
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'repeat'; at: number; length: number; times: number }
  | { kind: 'deep'; at: number; levels: number; style: number }
  | { kind: 'truncate'; at: number };

const textMutation: fc.Arbitrary<TextMutation> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), snippet: fc.oneof(fc.constantFrom(...SNIPPETS), oddString) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 200 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('repeat' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 100 }), times: fc.integer({ min: 2, max: 2000 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('deep' as const), at: fc.nat(), levels: fc.oneof(fc.integer({ min: 500, max: 520 }), fc.integer({ min: 1, max: 100_000 })), style: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }) },
);

const DEEP_STYLES: ((n: number) => string)[] = [
  (n) => '['.repeat(n) + ']'.repeat(n),
  (n) => '{"a":'.repeat(n) + '1' + '}'.repeat(n),
  (n) => '['.repeat(n),
  (n) => '- '.repeat(n) + 'x',
  (n) => '{a: '.repeat(n) + '1' + '}'.repeat(n),
  (n) => '? '.repeat(n) + 'x',
];

function applyTextMutations(text: string, mutations: readonly TextMutation[]): { text: string; done: string[] } {
  const done: string[] = [];
  for (const m of mutations) {
    const at = text.length === 0 ? 0 : m.at % (text.length + 1);
    switch (m.kind) {
      case 'insert':
        text = text.slice(0, at) + m.snippet + text.slice(at);
        done.push(`insert ${JSON.stringify(m.snippet.slice(0, 20))}@${at}`);
        break;
      case 'delete':
        text = text.slice(0, at) + text.slice(at + m.length);
        done.push(`delete ${m.length}@${at}`);
        break;
      case 'repeat':
        text = text.slice(0, at) + text.slice(at, at + m.length).repeat(m.times) + text.slice(at);
        done.push(`repeat ${m.length}x${m.times}@${at}`);
        break;
      case 'deep':
        text = text.slice(0, at) + DEEP_STYLES[m.style % DEEP_STYLES.length]!(m.levels) + text.slice(at);
        done.push(`deep ${m.levels}/${m.style}@${at}`);
        break;
      case 'truncate':
        text = text.slice(0, at);
        done.push(`truncate@${at}`);
        break;
    }
  }
  return { text, done };
}

const BAD_BYTES = [[0x80], [0xff], [0xfe], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0xc3], [0xf0, 0x9f, 0x98]];

const byteMutation = fc.record({ at: fc.nat(), bytes: fc.oneof(fc.constantFrom(...BAD_BYTES), fc.uint8Array({ minLength: 1, maxLength: 4 })) });

function applyByteMutations(text: string, mutations: readonly { at: number; bytes: number[] | Uint8Array }[]): string | Uint8Array {
  if (mutations.length === 0) return text;
  let bytes = Buffer.from(text, 'utf8');
  for (const m of mutations) {
    const at = m.at % (bytes.length + 1);
    bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from(m.bytes), bytes.subarray(at)]);
  }
  return bytes;
}

interface Damage {
  text: TextMutation[];
  bytes: { at: number; bytes: number[] | Uint8Array }[];
}

/** Text, then text mutations, then byte mutations: each level is skipped more often than not. */
const damage: fc.Arbitrary<Damage> = fc.record({
  text: fc.oneof({ weight: 3, arbitrary: fc.constant([] as TextMutation[]) }, { weight: 2, arbitrary: fc.array(textMutation, { minLength: 1, maxLength: 3 }) }),
  bytes: fc.oneof({ weight: 6, arbitrary: fc.constant([] as { at: number; bytes: number[] | Uint8Array }[]) }, { weight: 1, arbitrary: fc.array(byteMutation, { minLength: 1, maxLength: 3 }) }),
});

function damaged(text: string, d: Damage, done: string[]): string | Uint8Array {
  const t = applyTextMutations(text, d.text);
  done.push(...t.done);
  if (d.bytes.length) done.push(`${d.bytes.length} bad byte run(s)`);
  return applyByteMutations(t.text, d.bytes);
}

// ---------------------------------------------------------------------------------------
// Repositories

type Serialization = 'yaml' | 'yaml-flow' | 'json';

function serialize(value: unknown, how: Serialization): string {
  return expandDeep(serializeValue(value, how));
}

function serializeValue(value: unknown, how: Serialization): string {
  try {
    if (how === 'json') return JSON.stringify(value, null, 1) ?? 'null';
    return YAML.stringify(value, how === 'yaml-flow' ? { collectionStyle: 'flow' } : {});
  } catch {
    // A cycle JSON cannot write, or a value YAML refuses: YAML writes cycles as aliases.
    try {
      return YAML.stringify(value);
    } catch {
      return 'kind: Fleet\n';
    }
  }
}

type FlowMutation =
  | { kind: 'delete'; at: number }
  | { kind: 'duplicate'; at: number }
  | { kind: 'field'; at: number; field: string; value: unknown }
  | { kind: 'point'; at: number; field: string; to: number }
  | { kind: 'untab' }
  | { kind: 'orphan'; at: number; field: string }
  | { kind: 'deep'; at: number; field: string; levels: number; style: number };

const NODE_FIELDS = ['id', 'type', 'z', 'g', 'wires', 'links', 'credentials', 'name', 'label', 'in', 'out', 'env', 'x', 'info', 'func'];

const flowMutation: fc.Arbitrary<FlowMutation> = fc.oneof(
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat() }),
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('field' as const), at: fc.nat(), field: fc.constantFrom(...NODE_FIELDS), value: hostileValue }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('point' as const), at: fc.nat(), field: fc.constantFrom('z', 'g', 'wires', 'links', 'type', 'id'), to: fc.nat() }) },
  fc.record({ kind: fc.constant('untab' as const) }),
  fc.record({ kind: fc.constant('orphan' as const), at: fc.nat(), field: fc.constantFrom('z', 'g', 'wires', 'links', 'type') }),
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('deep' as const), at: fc.nat(), field: fc.constantFrom('info', 'props', 'rules', 'wires', 'x', 'credentials', 'env'), levels: deepLevels, style: fc.nat(1) }) },
);

function mutateFlow(text: string, mutations: readonly FlowMutation[], shape: number, done: string[]): string {
  let nodes: unknown;
  try {
    nodes = JSON.parse(text);
  } catch {
    return text;
  }
  let list: Record<string, unknown>[] = Array.isArray(nodes) ? nodes : Array.isArray((nodes as { flows?: unknown })?.flows) ? (nodes as { flows: Record<string, unknown>[] }).flows : [];
  for (const m of mutations) {
    if (m.kind === 'untab') {
      list = list.filter((n) => n?.type !== 'tab');
      done.push('untab');
      continue;
    }
    if (list.length === 0) break;
    const i = m.at % list.length;
    const node = list[i];
    switch (m.kind) {
      case 'delete':
        list.splice(i, 1);
        done.push(`delete node ${i}`);
        break;
      case 'duplicate':
        list.push(structuredCloneSafe(node) as Record<string, unknown>);
        done.push(`duplicate node ${i}`);
        break;
      case 'field':
        if (node && typeof node === 'object') Object.defineProperty(node, m.field, { value: m.value, enumerable: true, writable: true, configurable: true });
        done.push(`node ${i}.${m.field} = hostile`);
        break;
      case 'point': {
        const target = list[m.to % list.length]?.id;
        if (node && typeof node === 'object') node[m.field] = m.field === 'wires' || m.field === 'links' ? (m.field === 'wires' ? [[target]] : [target]) : m.field === 'type' ? `subflow:${String(target)}` : target;
        done.push(`node ${i}.${m.field} -> node ${m.to % list.length}`);
        break;
      }
      case 'deep':
        if (node && typeof node === 'object') node[m.field] = `${DEEP_MARKER}${m.levels}-${m.style}`;
        done.push(`node ${i}.${m.field} nested ${m.levels}/${m.style}`);
        break;
      case 'orphan':
        if (node && typeof node === 'object') node[m.field] = m.field === 'wires' ? [['ghost']] : m.field === 'links' ? ['ghost'] : m.field === 'type' ? 'subflow:ghost' : 'ghost';
        done.push(`node ${i}.${m.field} -> ghost`);
        break;
    }
  }
  const shapes = [list, { flows: list }, { rev: 'x', flows: list }, list, list];
  return expandDeep(JSON.stringify(shapes[shape % shapes.length], null, shape % 2 === 0 ? undefined : 2) ?? '[]');
}

function fleetValue(instances: number, refs: readonly string[][], planForm: number, credentialNode: string | undefined): Record<string, unknown> {
  const plans: unknown[] = [
    undefined,
    'plans/rollout.yaml',
    'rollout',
    { order: 'waves', waves: [Array.from({ length: instances }, (_, k) => `i${k}`)], maxParallel: 2 },
    { order: 'dag', dependsOn: instances > 1 ? { i1: ['i0'] } : {} },
  ];
  const plan = plans[planForm % plans.length];
  return {
    apiVersion: 'tower.redforge.dev/v1',
    kind: 'Fleet',
    metadata: { name: 'fuzz', labels: { team: 'x' } },
    spec: {
      defaults: {
        runtime: 'process',
        strategy: 'blue-green',
        env: { LOG_LEVEL: 'info', SECRET: { fromEnv: 'S' } },
        keepWarm: '1m',
        drainTimeout: '5s',
        context: 'memory',
        resources: { memory: '256Mi', cpu: '0.5' },
        settings: { functionTimeout: 5 },
      },
      ...(plan === undefined ? {} : { plan }),
      selfHeal: false,
      instances: Array.from({ length: instances }, (_, k) => ({
        name: `i${k}`,
        port: 2001 + k,
        flows: refs[k] ?? [],
        env: { N: k },
        smoke: [{ http: { method: 'GET', path: '/', expect: { status: 200 } } }],
        ...(k === 0 && credentialNode !== undefined ? { credentials: { [credentialNode]: { password: { fromEnv: 'P' }, user: { fromFile: '/run/secrets/u', optional: true } } } } : {}),
      })),
    },
  };
}

function planValue(instances: number, order: number): Record<string, unknown> {
  const names = Array.from({ length: instances }, (_, k) => `i${k}`);
  const specs: Record<string, unknown>[] = [
    { order: 'sequential', sequence: [...names].reverse() },
    { order: 'waves', waves: [names.slice(0, 1), names.slice(1)].filter((w) => w.length > 0), maxParallel: 2, onFailure: 'rollback-wave' },
    { order: 'dag', dependsOn: Object.fromEntries(names.slice(1).map((n, k) => [n, [names[k]]])), onFailure: 'halt' },
  ];
  return { apiVersion: 'tower.redforge.dev/v1', kind: 'DeployPlan', metadata: { name: 'rollout' }, spec: specs[order % specs.length] };
}

export interface FuzzOptions {
  corpus: readonly CorpusFile[];
  /** Chance, per case, of a flow file above the 32 MiB limit (costly to build). */
  hugeFlows?: boolean;
  /** The largest bulk value (a dependsOn chain, a list of instances); default 40,000, past what 1 MiB of YAML holds. */
  bulkMax?: number;
}

/** A hostile repository: see the file's header. */
export function fuzzCase(options: FuzzOptions): fc.Arbitrary<FuzzCase> {
  const { corpus } = options;
  const bulkMax = options.bulkMax ?? 40_000;
  const cleanCorpus = corpus.filter((f) => f.clean);
  const flowFile = fc.record({
    source: fc.nat(corpus.length - 1),
    mutations: fc.oneof({ weight: 2, arbitrary: fc.constant([] as FlowMutation[]) }, { weight: 3, arbitrary: fc.array(flowMutation, { minLength: 1, maxLength: 4 }) }),
    shape: fc.nat(9),
    damage,
  });
  return fc
    .record({
      instances: fc.oneof(fc.integer({ min: 1, max: 4 }), fc.constant(0)),
      flows: fc.array(flowFile, { minLength: 1, maxLength: 3 }),
      refs: fc.array(fc.array(fc.oneof({ weight: 8, arbitrary: fc.nat(5) }, { weight: 1, arbitrary: fc.constantFrom('lib:deploy-gate', 'lib:health', 'lib:nope', 'flows/missing.json', '../x.json', 'flows/../flows/f0.json') }), { minLength: 1, maxLength: 3 }), { maxLength: 4 }),
      planForm: fc.nat(4),
      fleetMutations: fc.oneof({ weight: 2, arbitrary: fc.constant([] as ValueMutation[]) }, { weight: 3, arbitrary: fc.array(valueMutation, { minLength: 1, maxLength: 4 }) }),
      fleetSerialization: fc.constantFrom<Serialization>('yaml', 'yaml', 'yaml-flow', 'json'),
      fleetDamage: damage,
      planFile: fc.option(fc.record({ order: fc.nat(2), mutations: fc.array(valueMutation, { maxLength: 3 }), serialization: fc.constantFrom<Serialization>('yaml', 'yaml-flow', 'json'), damage, alsoInFleet: fc.boolean() }), { nil: undefined }),
      huge: options.hugeFlows ? fc.nat(199) : fc.constant(1),
      // A quarter of the cases stay undamaged: a valid repository, so that what runs after
      // loading (diff, decide, the renderers) gets its share.
      clean: fc.nat(3).map((n) => n === 0 && cleanCorpus.length > 0),
    })
    .map((g) => (g.clean ? undamaged(g) : g))
    .map((g: Generated) => {
      const label: string[] = g.clean ? ['(undamaged)'] : [];
      const files: Record<string, string | Uint8Array> = {};
      g.flows.forEach((f, k) => {
        const source = (g.clean ? cleanCorpus : corpus)[f.source % (g.clean ? cleanCorpus : corpus).length]!;
        const done: string[] = [];
        const text = f.mutations.length || f.shape % 5 ? mutateFlow(source.text, f.mutations, f.shape, done) : source.text;
        files[`flows/f${k}.json`] = damaged(text, f.damage, done);
        label.push(`flows/f${k}.json from ${source.name}${done.length ? `: ${done.join(', ')}` : ''}`);
      });
      if (g.huge === 0) {
        files['flows/f0.json'] = `[${' '.repeat(32 * 1024 * 1024)}]`;
        label.push('flows/f0.json over 32 MiB');
      }
      const refs = g.refs.map((r) => r.map((x) => (typeof x === 'number' ? `flows/f${x % (g.flows.length + 1)}.json` : x)));
      const fleet = fleetValue(g.instances, refs, g.planForm, firstNodeId(files['flows/f0.json']));
      const fleetDone = applyValueMutations(fleet, g.fleetMutations, bulkMax);
      let fleetText = serialize(fleet, g.fleetSerialization);
      if (g.planFile) {
        const plan = planValue(g.instances, g.planFile.order);
        const planDone = applyValueMutations(plan, g.planFile.mutations, bulkMax);
        const planText = serialize(plan, g.planFile.serialization);
        if (g.planFile.alsoInFleet && g.planFile.serialization !== 'json') fleetText += `---\n${planText}`;
        const done: string[] = [];
        files['plans/rollout.yaml'] = damaged(planText, g.planFile.damage, done);
        label.push(`plans/rollout.yaml (${g.planFile.serialization})${[...planDone, ...done].length ? `: ${[...planDone, ...done].join(', ')}` : ''}`);
      }
      const done: string[] = [];
      files['fleet.yaml'] = damaged(fleetText, g.fleetDamage, done);
      label.unshift(`fleet.yaml (${g.fleetSerialization}, ${g.instances} instances)${[...fleetDone, ...done].length ? `: ${[...fleetDone, ...done].join(', ')}` : ''}`);
      const c: FuzzCase = { files, label: label.join('; ') };
      // What fast-check prints for a counterexample: what was done, not megabytes of bytes.
      Object.defineProperty(c, fc.toStringMethod, { value: () => `${c.label} (${caseSize(c)} bytes in ${Object.keys(files).length} files)` });
      return c;
    });
}

interface Generated {
  instances: number;
  flows: { source: number; mutations: FlowMutation[]; shape: number; damage: Damage }[];
  refs: (number | string)[][];
  planForm: number;
  fleetMutations: ValueMutation[];
  fleetSerialization: Serialization;
  fleetDamage: Damage;
  planFile?: { order: number; mutations: ValueMutation[]; serialization: Serialization; damage: Damage; alsoInFleet: boolean };
  huge: number;
  clean: boolean;
}

const NO_DAMAGE: Damage = { text: [], bytes: [] };

/** The same draw with every mutation taken out: a valid repository. */
function undamaged(g: Generated): Generated {
  const instances = Math.max(1, g.instances);
  return {
    ...g,
    instances,
    flows: g.flows.map((f) => ({ ...f, mutations: [], shape: 0, damage: NO_DAMAGE })),
    refs: Array.from({ length: instances }, (_, k) => [k % g.flows.length]),
    planForm: !g.planFile && (g.planForm === 1 || g.planForm === 2) ? 0 : g.planForm,
    fleetMutations: [],
    fleetDamage: NO_DAMAGE,
    planFile: g.planFile && { ...g.planFile, mutations: [], damage: NO_DAMAGE, alsoInFleet: false },
    huge: 1,
  };
}

/** The id of the first node of a flow file, for fleet.yaml's credentials by reference. */
function firstNodeId(content: string | Uint8Array | undefined): string | undefined {
  if (typeof content !== 'string') return undefined;
  try {
    const data = JSON.parse(content) as unknown;
    const list = Array.isArray(data) ? data : (data as { flows?: unknown[] } | null)?.flows;
    const id = Array.isArray(list) ? (list[0] as { id?: unknown } | undefined)?.id : undefined;
    return typeof id === 'string' ? id : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------
// The property

export interface Outcome {
  ok: boolean;
  /** What went wrong, when not ok. */
  problem?: string;
  valid?: boolean;
  ms: number;
}

const SEVERITIES = new Set(['error', 'warning']);

/**
 * Loads the case and checks what must hold for any input: no exception; valid exactly when
 * there is no error; every diagnostic names a file and a line and column that exist in it,
 * and says something about the input (not an exception's message). Instances that loaded are
 * hashed; a valid repository is diffed (against nothing and against itself), decided and
 * rendered, as `tower plan` does — the walks over its nodes must cope with what was accepted.
 */
export function runCase(c: FuzzCase, library: RepoReader | undefined = undefined): Outcome {
  const started = performance.now();
  const fail = (problem: string): Outcome => ({ ok: false, problem, ms: performance.now() - started });
  let repo: LoadedRepository;
  try {
    repo = loadRepository(memoryReader(c.files), library ? { library } : {});
  } catch (err) {
    return fail(`loadRepository threw: ${describeError(err)}`);
  }
  const errors = repo.diagnostics.filter((d) => d.severity === 'error');
  if (repo.valid !== (errors.length === 0)) return fail(`valid is ${repo.valid} with ${errors.length} errors`);
  if (repo.valid && !repo.fleet) return fail('valid without a fleet');
  for (const d of repo.diagnostics) {
    const bad = checkDiagnostic(d, c.files);
    if (bad) return fail(`${bad}: ${JSON.stringify(d).slice(0, 300)}`);
  }
  // A file that is no UTF-8 is refused as such, not read with U+FFFD.
  const fleetBytes = c.files['fleet.yaml'];
  if (fleetBytes instanceof Uint8Array && fleetBytes.length <= LIMITS.yamlBytes && !isUtf8(fleetBytes) && !repo.diagnostics.some((d) => d.code === 'InvalidUtf8' && d.file === 'fleet.yaml')) {
    return fail('fleet.yaml is no UTF-8, and no InvalidUtf8 says so');
  }
  try {
    for (const i of repo.instances) {
      if (!/^[0-9a-f]{64}$/.test(i.rev)) return fail(`instance ${i.name}: rev ${i.rev}`);
      contentHash(i.flowList);
      configHash(i.config);
      JSON.stringify(i);
    }
    // Tower plans only what is valid (tower plan, the daemon and pull-request plans alike).
    if (repo.valid && repo.fleet && repo.instances.length > 0) {
      const diffs = diffFleet(repo.instances, undefined);
      const itself: ObservedFleet = { instances: repo.instances.map((i) => ({ name: i.name, flows: structuredClone(i.flowList), rev: i.rev, config: i.config })) };
      const same = diffFleet(repo.instances, itself);
      const changed = same.filter((d) => d.change !== 'none');
      if (changed.length) return fail(`diffed against itself, ${changed.map((d) => d.name).join(', ')} changed`);
      const decision = decide({ desired: { fleet: repo.fleet, instances: repo.instances }, mode: 'rollout', canPlan: true, live: liveFromObserved(undefined), restarts: {}, now: 0 });
      const report = { fleet: repo.fleet.name, valid: repo.valid, plan: decision.plan, instances: diffs, diagnostics: repo.diagnostics };
      JSON.stringify(planJson(report));
      planText(report);
      planMarkdown(report);
    }
  } catch (err) {
    return fail(`after loading: ${describeError(err)}`);
  }
  return { ok: true, valid: repo.valid, ms: performance.now() - started };
}

/** Messages that are an exception caught and passed on, not something said about the input. */
const CAUGHT = /Maximum call stack|RangeError|TypeError|ReferenceError|is not a function|Cannot read properties|Cannot convert|\[object Object\]|out of memory/;

function checkDiagnostic(d: Diagnostic, files: FuzzCase['files']): string | undefined {
  if (!SEVERITIES.has(d.severity)) return 'bad severity';
  if (CAUGHT.test(d.message)) return 'an exception passed on as a diagnostic';
  if (typeof d.file !== 'string' || d.file === '') return 'no file';
  if (!Number.isInteger(d.line) || d.line < 1 || !Number.isInteger(d.col) || d.col < 1) return 'no position';
  if (typeof d.message !== 'string' || d.message === '') return 'no message';
  if (d.message.length > MAX_MESSAGE_CHARS || (d.hint?.length ?? 0) > MAX_MESSAGE_CHARS) return 'an unbounded message';
  const content = Object.prototype.hasOwnProperty.call(files, d.file) ? files[d.file] : undefined;
  if (content !== undefined) {
    const text = typeof content === 'string' ? content : Buffer.from(content).toString('utf8');
    let lines = 1;
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) lines++;
    if (d.line > lines) return `line ${d.line} past the end of ${d.file} (${lines} lines)`;
  }
  return undefined;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function isUtf8(bytes: Uint8Array): boolean {
  try {
    strictUtf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

function describeError(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message.slice(0, 300)}${err.stack ? `\n${err.stack.split('\n').slice(1, 6).join('\n')}` : ''}`;
  return String(err);
}

/** Bytes of all the case's files. */
export function caseSize(c: FuzzCase): number {
  return Object.values(c.files).reduce((n, v) => n + (typeof v === 'string' ? Buffer.byteLength(v) : v.length), 0);
}
