/**
 * JSON text as Tower reads it — flow files, and the observed fleet `tower plan` is given:
 * nesting checked before anything recurses over it (see nesting.ts), then JSON.parse, and on
 * a syntax error the first error with its line and column.
 */
import { printParseErrorCode, visit, type ParseErrorCode } from 'jsonc-parser';
import { LineIndex, type Diagnostic, type DiagnosticCode } from './diagnostics.js';
import { jsonTooDeepAt, MAX_NESTING } from './nesting.js';

export interface JsonHow {
  /** The code of a syntax error. */
  code: DiagnosticCode;
  hint?: string;
  /** The hint when the text nests too deep. */
  deepHint?: string;
}

export type JsonResult = { ok: true; value: unknown } | { ok: false; diagnostic: Diagnostic };

export function parseJsonText(file: string, text: string, how: JsonHow): JsonResult {
  const tooDeep = jsonTooDeepAt(text, MAX_NESTING);
  if (tooDeep !== undefined) {
    const p = new LineIndex(text).position(tooDeep);
    return {
      ok: false,
      diagnostic: { severity: 'error', code: 'NestingTooDeep', file, line: p.line, col: p.col, message: `JSON nested more than ${MAX_NESTING} levels deep`, hint: how.deepHint },
    };
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, diagnostic: syntaxDiagnostic(file, text, how) };
  }
}

function syntaxDiagnostic(file: string, text: string, how: JsonHow): Diagnostic {
  // The first error is all we report; stopping there also bounds jsonc-parser's recursion to
  // the depth the text reaches before it, which jsonTooDeepAt has checked.
  let first: { error: ParseErrorCode; offset: number } | undefined;
  try {
    visit(
      text,
      {
        onError: (error, offset) => {
          first = { error, offset };
          throw STOP;
        },
      },
      { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false },
    );
  } catch (err) {
    if (err !== STOP) throw err;
  }
  const index = new LineIndex(text);
  const p = index.position(first?.offset ?? 0);
  const what = first ? printParseErrorCode(first.error) : 'InvalidSymbol';
  return {
    severity: 'error',
    code: how.code,
    file,
    line: p.line,
    col: p.col,
    message: `invalid JSON: ${humanJsonError(what)}`,
    hint: how.hint,
  };
}

const STOP = Symbol('first JSON error found');

function humanJsonError(code: string): string {
  const words: Record<string, string> = {
    InvalidSymbol: 'unexpected character',
    InvalidNumberFormat: 'invalid number',
    PropertyNameExpected: 'expected a property name in double quotes',
    ValueExpected: 'expected a value',
    ColonExpected: 'expected ":"',
    CommaExpected: 'expected ","',
    CloseBraceExpected: 'expected "}"',
    CloseBracketExpected: 'expected "]"',
    EndOfFileExpected: 'unexpected content after the end of the JSON value',
    InvalidCommentToken: 'comments are not allowed',
    UnexpectedEndOfComment: 'unterminated comment',
    UnexpectedEndOfString: 'unterminated string',
    UnexpectedEndOfNumber: 'unterminated number',
    InvalidUnicode: 'invalid unicode escape',
    InvalidEscapeCharacter: 'invalid escape character',
    InvalidCharacter: 'invalid character in string',
  };
  return words[code] ?? code;
}
