/**
 * YAML documents that remember where every value came from, so that any error about a
 * value — syntax, schema or reference — can name its file, line and column.
 */
import { Alias, Composer, Document, isMap, isNode, isPair, isScalar, isSeq, Lexer, LineCounter, Parser, visit, type CST, type Node, type Pair, type YAMLMap } from 'yaml';
import type { Diagnostic } from './diagnostics.js';
import { checkValueShape, MAX_YAML_NESTING } from './nesting.js';

type Token = CST.Token;

/** Aliases expanding to more nodes than this are treated as an alias bomb. */
export const MAX_ALIAS_COUNT = 100;
export const MAX_DOCUMENTS_PER_FILE = 64;
/** YAML errors reported per file; the rest are counted ("and 12 more"). */
export const MAX_ERRORS_PER_FILE = 20;

export type PathSegment = string | number;

export interface YamlDocument {
  file: string;
  /** 0-based index of the document in its file (a file may hold several, separated by ---). */
  index: number;
  value: unknown;
  /** Position of the value at path; falls back to the nearest parent that exists. */
  locate(path: readonly PathSegment[], opts?: { key?: boolean }): { line: number; col: number };
}

export interface YamlParseResult {
  documents: YamlDocument[];
  diagnostics: Diagnostic[];
}

export function parseYamlFile(file: string, text: string): YamlParseResult {
  // The yaml library makes an Error object for every problem it finds, and 100 KiB of bad
  // YAML holds 100,000 of them: their stack traces (which nobody reads — each becomes a
  // diagnostic with a position) were 85 % of the time. Not captured while parsing.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return parseYaml(file, text);
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
}

function parseYaml(file: string, text: string): YamlParseResult {
  const lineCounter = new LineCounter();
  const diagnostics: Diagnostic[] = [];
  const documents: YamlDocument[] = [];
  const pos = (offset: number) => {
    const p = lineCounter.linePos(offset);
    return { line: p.line, col: p.col };
  };

  // The yaml library's lexer is a loop; its parser keeps a stack of its own but recurses as
  // deep as that stack when one token closes many levels at once; its composer and toJS
  // recurse. So the parser is fed one token at a time and stopped when its stack grows past
  // the limit, the tokens' depth is checked again by a loop, and only then are they composed.
  const tooDeep = (offset: number): YamlParseResult => {
    const p = pos(offset);
    diagnostics.push(at(file, p.line, p.col, 'NestingTooDeep', `YAML nested more than ${MAX_YAML_NESTING} levels deep`, NESTING_HINT));
    return { documents, diagnostics };
  };
  const tokens: Token[] = [];
  try {
    const parser = new Parser(lineCounter.addNewLine);
    lineCounter.addNewLine(0); // as Parser.parse does
    for (const lexeme of new Lexer().lex(text)) {
      for (const token of parser.next(lexeme)) tokens.push(token);
      // The stack holds the document and the scalar being read besides the collections.
      if (parser.stack.length > MAX_YAML_NESTING) {
        const first = collectionPastLimit(parser.stack, MAX_YAML_NESTING);
        if (first !== undefined) return tooDeep(first);
      }
    }
    for (const token of parser.end()) tokens.push(token);
  } catch (err) {
    diagnostics.push(at(file, 1, 1, 'YamlSyntax', `cannot parse YAML: ${(err as Error).message}`));
    return { documents, diagnostics };
  }
  const shape = scanTokens(tokens, MAX_YAML_NESTING);
  if (shape.tooDeepAt !== undefined) return tooDeep(shape.tooDeepAt);
  if (shape.documents > MAX_DOCUMENTS_PER_FILE) {
    diagnostics.push(at(file, 1, 1, 'YamlSyntax', `${shape.documents} YAML documents in one file; at most ${MAX_DOCUMENTS_PER_FILE} are read`));
  }

  // uniqueKeys is checked below, in one pass: the library compares each key with every earlier
  // one of its mapping, and a 1 MiB mapping of distinct keys took minutes.
  const composer = new Composer({ prettyErrors: false, uniqueKeys: false });
  const docs: Document.Parsed[] = [];
  try {
    for (const doc of composer.compose(tokens)) {
      docs.push(doc as Document.Parsed);
      if (docs.length >= MAX_DOCUMENTS_PER_FILE) break;
    }
  } catch (err) {
    diagnostics.push(at(file, 1, 1, 'YamlSyntax', `cannot parse YAML: ${(err as Error).message}`));
    return { documents, diagnostics };
  }
  if (docs.length === 0) {
    for (const e of composer.streamInfo().errors.slice(0, MAX_ERRORS_PER_FILE)) {
      const p = pos(e.pos[0]);
      diagnostics.push(at(file, p.line, p.col, 'YamlSyntax', yamlMessage(e.message), yamlHint(e.code)));
    }
    return { documents, diagnostics };
  }

  let reported = 0;
  let unreported: { offset: number; count: number } | undefined;
  const report = (offset: number, d: Omit<Diagnostic, 'line' | 'col'>) => {
    if (reported >= MAX_ERRORS_PER_FILE) {
      unreported ??= { offset, count: 0 };
      unreported.count++;
      return;
    }
    reported++;
    diagnostics.push({ ...d, ...pos(offset) });
  };
  docs.forEach((doc, index) => {
    let broken = false;
    let unclosedAt: number | undefined;
    for (const e of doc.errors) {
      broken = true;
      // What follows an unclosed [ or { is read as part of it and fails in ways that say
      // nothing useful; the opener is what needs fixing.
      if (unclosedAt !== undefined && e.pos[0] > unclosedAt) continue;
      const opener = UNCLOSED_FLOW.test(e.message) && startsNewEntry(text, e.pos[0]) ? unclosedOpener(shape.unclosed, e.pos[0]) : undefined;
      if (opener) {
        unclosedAt = opener.offset;
        const close = opener.source === '[' ? ']' : '}';
        report(opener.offset, {
          ...at(file, 0, 0, 'YamlSyntax', `this ${opener.source} is never closed`, `add the missing "${close}"; a ${opener.source} … ${close} that goes on over several lines needs those lines indented deeper than its key`),
        });
        continue;
      }
      report(e.pos[0], at(file, 0, 0, 'YamlSyntax', yamlMessage(e.message), yamlHint(e.code)));
    }
    if (broken) return;
    for (const offset of duplicateKeys(doc)) {
      broken = true;
      report(offset, at(file, 0, 0, 'YamlSyntax', 'Map keys must be unique', yamlHint('DUPLICATE_KEY')));
    }
    if (broken) return;
    if (doc.contents === null) return; // empty document, e.g. a trailing ---
    const start = doc.contents.range?.[0] ?? 0;
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      const message = (err as Error).message;
      if (/alias/i.test(message)) {
        report(start, at(file, 0, 0, 'YamlAliasLimit', 'YAML aliases expand too far (an alias bomb?)', `use at most ${MAX_ALIAS_COUNT} alias expansions; write the values out instead`));
      } else {
        report(start, at(file, 0, 0, 'YamlSyntax', `cannot read YAML: ${message}`));
      }
      return;
    }
    // Aliases make a graph of the value: it may contain itself, or nest deeper than its text.
    const valueShape = checkValueShape(value, MAX_YAML_NESTING);
    if (!valueShape.ok) {
      if (valueShape.reason === 'cycle') {
        report(selfAlias(doc) ?? start, at(file, 0, 0, 'YamlAliasLimit', 'a YAML alias refers to a node that contains it: the value would contain itself', 'an alias (*name) may only repeat a value defined before it, outside of it'));
      } else {
        report(start, at(file, 0, 0, 'NestingTooDeep', `YAML nested (through aliases) more than ${MAX_YAML_NESTING} levels deep`, NESTING_HINT));
      }
      return;
    }
    documents.push({
      file,
      index,
      value,
      locate: (path, opts) => pos(offsetOf(doc, path, opts?.key ?? false)),
    });
  });
  if (unreported) {
    diagnostics.push({ ...at(file, 0, 0, 'YamlSyntax', `and ${unreported.count} more YAML error${unreported.count === 1 ? '' : 's'} in this file`), ...pos(unreported.offset) });
  }
  return { documents, diagnostics };
}

const NESTING_HINT = 'fleet and plan files need a few levels; flatten the value or move it into a file of its own';

/**
 * Offsets of keys that repeat an earlier key of their mapping (scalars with equal values, as
 * the yaml library compares them), in one pass per mapping.
 */
function duplicateKeys(doc: Document.Parsed): number[] {
  const out: number[] = [];
  visit(doc, {
    Map(_key, map) {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        if (!isScalar(pair.key)) continue;
        const k = pair.key.value;
        if (seen.has(k)) out.push(rangeStart(pair.key) ?? 0);
        else seen.add(k);
      }
    },
  });
  return out;
}

/** Where an alias sits inside the node its anchor names (what makes a value contain itself). */
function selfAlias(doc: Document.Parsed): number | undefined {
  let found: number | undefined;
  visit(doc, {
    Alias(_key, alias, path) {
      if (path.some((p) => isNode(p) && p.anchor === alias.source)) {
        found = rangeStart(alias);
        return visit.BREAK;
      }
      return undefined;
    },
  });
  return found;
}

function offsetOf(doc: Document.Parsed, path: readonly PathSegment[], key: boolean): number {
  let node: unknown = doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    if (node instanceof Alias) node = node.resolve(doc);
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = pairOf(node, String(seg));
      if (!pair) break;
      if (last && key) {
        offset = rangeStart(pair.key) ?? offset;
        break;
      }
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      node = node.items[seg];
    } else {
      break;
    }
    const start = rangeStart(node);
    if (start === undefined) break;
    offset = start;
  }
  return offset;
}

const pairIndexes = new WeakMap<YAMLMap, Map<string, Pair>>();

/**
 * The first pair of a mapping with this key. Large mappings are indexed on first use: errors
 * are located one by one, and a search per error made 8,000 dependsOn entries take 15 s.
 */
function pairOf(map: YAMLMap, key: string): Pair | undefined {
  if (map.items.length <= 16) return map.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === key);
  let index = pairIndexes.get(map);
  if (!index) {
    index = new Map();
    for (const p of map.items) {
      if (!isPair(p) || !isScalar(p.key)) continue;
      const k = String(p.key.value);
      if (!index.has(k)) index.set(k, p);
    }
    pairIndexes.set(map, index);
  }
  return index.get(key);
}

/** The yaml library's error for a flow collection ([…] or {…}) that reaches a line it cannot continue on. */
const UNCLOSED_FLOW = /^Flow (sequence|map) in block collection must be sufficiently indented and end with a [\]}]/;

interface Opener {
  offset: number;
  source: '[' | '{';
}

const COLLECTIONS = new Set(['block-map', 'block-seq', 'flow-collection']);

/** The offset of the first collection on the parser's stack (outermost first) past the limit. */
function collectionPastLimit(stack: readonly Token[], limit: number): number | undefined {
  let level = 0;
  for (const t of stack) if (COLLECTIONS.has(t.type) && ++level > limit) return t.offset;
  return undefined;
}

interface TokenShape {
  /** Offset of the first collection nested deeper than the limit. */
  tooDeepAt?: number;
  /** Every [ and { of a flow collection that has no closing bracket, in the order they open. */
  unclosed: Opener[];
  documents: number;
}

/** One loop over the parser's tokens (no recursion: their nesting is what is being measured). */
function scanTokens(tokens: readonly Token[], limit: number): TokenShape {
  const unclosed: Opener[] = [];
  let documents = 0;
  const stack: { value: unknown; depth: number }[] = [];
  for (let i = tokens.length - 1; i >= 0; i--) stack.push({ value: tokens[i], depth: 0 });
  while (stack.length > 0) {
    const { value, depth } = stack.pop()!;
    if (!value || typeof value !== 'object') continue;
    let inner = depth;
    if (!Array.isArray(value)) {
      const t = value as { type?: string; offset?: number; start?: { offset: number; source: string }; end?: { type: string }[] };
      if (t.type === 'document') documents++;
      if (COLLECTIONS.has(t.type ?? '')) {
        inner = depth + 1;
        if (inner > limit) return { tooDeepAt: t.offset ?? 0, unclosed, documents };
      }
      if (t.type === 'flow-collection' && t.start && (t.start.source === '[' || t.start.source === '{')) {
        const closer = t.start.source === '[' ? 'flow-seq-end' : 'flow-map-end';
        if (!(t.end ?? []).some((e) => e.type === closer)) unclosed.push({ offset: t.start.offset, source: t.start.source });
      }
    }
    const children = Array.isArray(value) ? value : Object.values(value);
    for (let j = children.length - 1; j >= 0; j--) {
      const c = children[j];
      if (c && typeof c === 'object') stack.push({ value: c, depth: inner });
    }
  }
  return { unclosed: unclosed.sort((a, b) => a.offset - b.offset), documents };
}

/**
 * Whether the line the parser stopped at begins the next key or list entry (or the text
 * ended): then the bracket before it was never closed. A line that continues the brackets,
 * only not indented enough, gets the parser's own message about indentation.
 */
function startsNewEntry(text: string, offset: number): boolean {
  const lineStart = text.lastIndexOf('\n', offset - 1) + 1;
  const lineEnd = text.indexOf('\n', offset);
  const line = text.slice(lineStart, lineEnd < 0 ? text.length : lineEnd).trim();
  return line === '' || line.startsWith('#') || line === '-' || line.startsWith('- ') || line === '---' || /^[^\s[\]{},#'"][^[\]{},]*?:(\s|$)/.test(line) || /^(['"]).*?\1:(\s|$)/.test(line);
}

/** The innermost unclosed opener before the error: the one the missing bracket belongs to. */
function unclosedOpener(openers: readonly Opener[], errorOffset: number): Opener | undefined {
  let found: Opener | undefined;
  for (const o of openers) if (o.offset < errorOffset) found = o;
  return found;
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as Node | null | undefined)?.range;
  return range ? range[0] : undefined;
}

function yamlMessage(message: string): string {
  // The yaml library appends "at line L, column C" — we print the position ourselves.
  return message.replace(/ at line \d+, column \d+:?[\s\S]*$/, '').trim();
}

function yamlHint(code: string): string | undefined {
  switch (code) {
    case 'DUPLICATE_KEY':
      return 'each key may appear once in a mapping; remove or rename one';
    case 'TAB_AS_INDENT':
      return 'indent with spaces, not tabs';
    case 'BAD_INDENT':
    case 'MISSING_CHAR':
      return 'check the indentation of this line against the lines above';
    default:
      return undefined;
  }
}

function at(file: string, line: number, col: number, code: Diagnostic['code'], message: string, hint?: string): Diagnostic {
  return { severity: 'error', code, file, line, col, message, hint };
}
