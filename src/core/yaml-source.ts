/**
 * YAML documents that remember where every value came from, so that any error about a
 * value — syntax, schema or reference — can name its file, line and column.
 */
import { Alias, Document, isMap, isPair, isScalar, isSeq, LineCounter, parseAllDocuments, Parser, type Node } from 'yaml';
import type { Diagnostic } from './diagnostics.js';

/** Aliases expanding to more nodes than this are treated as an alias bomb. */
export const MAX_ALIAS_COUNT = 100;
export const MAX_DOCUMENTS_PER_FILE = 64;

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
  const lineCounter = new LineCounter();
  const diagnostics: Diagnostic[] = [];
  const documents: YamlDocument[] = [];
  let docs: Document.Parsed[];
  try {
    docs = parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: true }) as Document.Parsed[];
  } catch (err) {
    diagnostics.push(at(file, 1, 1, 'YamlSyntax', `cannot parse YAML: ${(err as Error).message}`));
    return { documents, diagnostics };
  }
  if (!Array.isArray(docs)) docs = [docs];

  const pos = (offset: number) => {
    const p = lineCounter.linePos(offset);
    return { line: p.line, col: p.col };
  };

  if (docs.length > MAX_DOCUMENTS_PER_FILE) {
    diagnostics.push(
      at(file, 1, 1, 'YamlSyntax', `${docs.length} YAML documents in one file; at most ${MAX_DOCUMENTS_PER_FILE} are read`),
    );
    docs = docs.slice(0, MAX_DOCUMENTS_PER_FILE);
  }

  let openers: Opener[] | undefined;
  docs.forEach((doc, index) => {
    let broken = false;
    let unclosedAt: number | undefined;
    for (const e of doc.errors) {
      broken = true;
      // What follows an unclosed [ or { is read as part of it and fails in ways that say
      // nothing useful; the opener is what needs fixing.
      if (unclosedAt !== undefined && e.pos[0] > unclosedAt) continue;
      const opener = UNCLOSED_FLOW.test(e.message) && startsNewEntry(text, e.pos[0]) ? unclosedOpener((openers ??= unclosedOpeners(text)), e.pos[0]) : undefined;
      if (opener) {
        unclosedAt = opener.offset;
        const p = pos(opener.offset);
        const close = opener.source === '[' ? ']' : '}';
        diagnostics.push(
          at(file, p.line, p.col, 'YamlSyntax', `this ${opener.source} is never closed`, `add the missing "${close}"; a ${opener.source} … ${close} that goes on over several lines needs those lines indented deeper than its key`),
        );
        continue;
      }
      const p = pos(e.pos[0]);
      diagnostics.push(at(file, p.line, p.col, 'YamlSyntax', yamlMessage(e.message), yamlHint(e.code)));
    }
    if (broken) return;
    if (doc.contents === null) return; // empty document, e.g. a trailing ---
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      const p = pos(doc.contents.range?.[0] ?? 0);
      const message = (err as Error).message;
      if (/alias/i.test(message)) {
        diagnostics.push(
          at(file, p.line, p.col, 'YamlAliasLimit', 'YAML aliases expand too far (an alias bomb?)', `use at most ${MAX_ALIAS_COUNT} alias expansions; write the values out instead`),
        );
      } else {
        diagnostics.push(at(file, p.line, p.col, 'YamlSyntax', `cannot read YAML: ${message}`));
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
  return { documents, diagnostics };
}

function offsetOf(doc: Document.Parsed, path: readonly PathSegment[], key: boolean): number {
  let node: unknown = doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    if (node instanceof Alias) node = node.resolve(doc);
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
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

/** The yaml library's error for a flow collection ([…] or {…}) that reaches a line it cannot continue on. */
const UNCLOSED_FLOW = /^Flow (sequence|map) in block collection must be sufficiently indented and end with a [\]}]/;

interface Opener {
  offset: number;
  source: '[' | '{';
}

/** Every [ and { of a flow collection that has no closing bracket, in the order they open. */
function unclosedOpeners(text: string): Opener[] {
  const out: Opener[] = [];
  const visit = (token: unknown): void => {
    if (Array.isArray(token)) {
      for (const t of token) visit(t);
      return;
    }
    if (!token || typeof token !== 'object') return;
    const t = token as { type?: string; start?: { offset: number; source: string }; end?: { type: string }[] };
    if (t.type === 'flow-collection' && t.start && (t.start.source === '[' || t.start.source === '{')) {
      const closer = t.start.source === '[' ? 'flow-seq-end' : 'flow-map-end';
      if (!(t.end ?? []).some((e) => e.type === closer)) out.push({ offset: t.start.offset, source: t.start.source });
    }
    for (const [key, value] of Object.entries(t)) if (key !== 'start' && key !== 'end' && value && typeof value === 'object') visit(value);
  };
  for (const token of new Parser().parse(text)) visit(token);
  return out.sort((a, b) => a.offset - b.offset);
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
