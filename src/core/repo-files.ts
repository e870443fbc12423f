/**
 * The files of a fleet repository: how they are read (a RepoReader, so loading stays pure),
 * their size limits, and how a flow reference in fleet.yaml (a path or lib:<name>) becomes a
 * flow file — or a diagnostic at the place that names it.
 */
import { posix } from 'node:path';
import type { Diagnostic, DiagnosticCode } from './diagnostics.js';
import { parseFlowFile, type FlowFile } from './flows.js';

export type ReadResult =
  | { ok: true; text: string }
  | { ok: false; reason: 'not-found' | 'outside-repository' | 'too-large' | 'not-a-file'; size?: number };

/** Read-only access to a repository's files, by repository-relative path. */
export interface RepoReader {
  read(path: string, maxBytes: number): ReadResult;
  /** Names of the regular files directly in dir; [] when dir does not exist. */
  list(dir: string): string[];
}

export const LIMITS = {
  /** fleet.yaml and plan files. */
  yamlBytes: 1024 * 1024,
  /** One flow file. Whole-instance dumps of large installations run to a few MiB. */
  flowBytes: 32 * 1024 * 1024,
};

export const FLEET_FILES = ['fleet.yaml', 'fleet.yml'];
export const PLANS_DIR = 'plans';
export const LIBRARY_PREFIX = 'lib:';

export interface FlowRef {
  path: string;
  library: boolean;
}

export function resolveFlowRef(ref: string, at: Location, diagnostics: Diagnostic[]): FlowRef | undefined {
  if (ref.startsWith(LIBRARY_PREFIX)) {
    const name = ref.slice(LIBRARY_PREFIX.length);
    if (!/^[a-z0-9][a-z0-9-]*$/.test(name)) {
      diagnostics.push(error('UnknownLibraryFlow', at.file, at.line, at.col, `"${ref}" is not a library flow name`, 'library flows are named lib:<lower-case-name>, e.g. lib:deploy-gate'));
      return undefined;
    }
    return { path: `${name}.json`, library: true };
  }
  if (ref.includes('\0') || ref.includes('\\')) {
    diagnostics.push(error('PathOutsideRepository', at.file, at.line, at.col, `flow path "${ref}" is not a plain relative path`, 'use forward slashes, relative to the repository, e.g. flows/ingest.json'));
    return undefined;
  }
  if (posix.isAbsolute(ref) || /^[A-Za-z]:/.test(ref)) {
    diagnostics.push(error('PathOutsideRepository', at.file, at.line, at.col, `flow path "${ref}" is absolute; flows must live in the repository`, 'write it relative to the repository root, e.g. flows/ingest.json'));
    return undefined;
  }
  const normalized = posix.normalize(ref);
  if (normalized === '..' || normalized.startsWith('../')) {
    diagnostics.push(error('PathOutsideRepository', at.file, at.line, at.col, `flow path "${ref}" points outside the repository`, 'copy the flow into the repository; Tower only deploys what Git holds'));
    return undefined;
  }
  return { path: normalized, library: false };
}

export function readFlowFile(reader: RepoReader, library: RepoReader | undefined, ref: FlowRef, at: Location, diagnostics: Diagnostic[]): FlowFile | null {
  const source = ref.library ? library : reader;
  const display = ref.library ? `${LIBRARY_PREFIX}${ref.path.replace(/\.json$/, '')}` : ref.path;
  if (!source) {
    diagnostics.push(error('UnknownLibraryFlow', at.file, at.line, at.col, `"${display}": no flow library is available here`));
    return null;
  }
  const r = source.read(ref.path, LIMITS.flowBytes);
  if (!r.ok) {
    if (ref.library && r.reason === 'not-found') {
      const names = library!.list('').filter((n) => n.endsWith('.json')).map((n) => `lib:${n.slice(0, -5)}`);
      diagnostics.push(error('UnknownLibraryFlow', at.file, at.line, at.col, `"${display}" is not in Tower's flow library`, names.length ? `available: ${names.join(', ')}` : undefined));
    } else {
      diagnostics.push(readFailure(display, r, at));
    }
    return null;
  }
  const parsed = parseFlowFile(display, r.text);
  diagnostics.push(...parsed.diagnostics);
  return parsed.flowFile ?? null;
}

export type Location = { file: string; line: number; col: number };

export function readFailure(file: string, r: Extract<ReadResult, { ok: false }>, at: Location): Diagnostic {
  switch (r.reason) {
    case 'not-found':
      return error('FileNotFound', at.file, at.line, at.col, `"${file}" does not exist`, 'check the path; it is relative to the repository root');
    case 'outside-repository':
      return error('PathOutsideRepository', at.file, at.line, at.col, `"${file}" resolves (through a symbolic link) to a place outside the repository`, 'replace the link with the file itself');
    case 'too-large':
      return error('FileTooLarge', at.file, at.line, at.col, `"${file}" is ${r.size ?? 'too many'} bytes, over the limit`, `split it; fleet and plan files may have ${LIMITS.yamlBytes} bytes, flow files ${LIMITS.flowBytes}`);
    case 'not-a-file':
      return error('FileNotFound', at.file, at.line, at.col, `"${file}" is not a regular file`);
  }
}


function error(code: DiagnosticCode, file: string, line: number, col: number, message: string, hint?: string): Diagnostic {
  return { severity: 'error', code, file, line, col, message, hint };
}
