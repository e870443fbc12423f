/**
 * The files of a fleet repository: how they are read (a RepoReader, so loading stays pure),
 * their size limits and the fleet's, how their bytes become text (strict UTF-8), and how a
 * flow reference in fleet.yaml (a path or lib:<name>) becomes a flow file — or a diagnostic
 * at the place that names it.
 */
import { posix } from 'node:path';
import type { Diagnostic, DiagnosticCode } from './diagnostics.js';
import { parseFlowFile, type FlowFile } from './flows.js';
import { decodeUtf8 } from './utf8.js';

/** A file's bytes, as stored: they are decoded (and refused when they are no UTF-8) by the loader. */
export type ReadResult =
  | { ok: true; bytes: Uint8Array }
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
  /**
   * fleet.yaml and all plan files together. YAML is read at about 1 MiB a second (the yaml
   * library); 256 plan files of 1 MiB each would hold every pass for minutes.
   */
  yamlTotalBytes: 4 * 1024 * 1024,
  /** One flow file. Whole-instance dumps of large installations run to a few MiB. */
  flowBytes: 32 * 1024 * 1024,
};

const MiB = 1024 * 1024;

/**
 * How large a fleet may grow, all its files together. fleet.yaml's spec.limits sets them; these
 * are the defaults — twice to 2.5 times the largest fleet measured (bench/plan: 1,000
 * instances, 200,000 nodes, 103 MiB of flow files) — so that a fleet that grows past them by
 * accident (a generator run wild, a file committed many times) is stopped with an error
 * instead of taking the daemon's memory and every pass's time.
 */
export interface FleetLimits {
  /** Entries of spec.instances. */
  instances: number;
  /** Nodes of all instances together, as deployed: a file three instances run counts three times. */
  nodes: number;
  /** Bytes of every file read: fleet.yaml, the plans, each flow file once. */
  bytes: number;
}

export const DEFAULT_FLEET_LIMITS: Readonly<FleetLimits> = { instances: 2000, nodes: 500_000, bytes: 256 * MiB };

/** spec.limits as fleet.yaml gives it (the schema has checked it; what is not valid is left at its default). */
export function fleetLimits(spec: unknown): FleetLimits {
  const limits = { ...DEFAULT_FLEET_LIMITS };
  if (!spec || typeof spec !== 'object' || Array.isArray(spec)) return limits;
  const given = spec as Record<string, unknown>;
  for (const key of ['instances', 'nodes'] as const) {
    const v = given[key];
    if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) limits[key] = v;
  }
  const bytes = parseByteSize(given.bytes);
  if (bytes !== undefined) limits.bytes = bytes;
  return limits;
}

/** 268435456, "256MiB", "512 KiB", "2GiB". */
export function parseByteSize(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v > 0 ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^([1-9]\d{0,12}) ?(B|KiB|MiB|GiB)?$/.exec(v);
  if (!m) return undefined;
  const unit = { B: 1, KiB: 1024, MiB: MiB, GiB: 1024 * MiB }[(m[2] ?? 'B') as 'B' | 'KiB' | 'MiB' | 'GiB'];
  return Number(m[1]) * unit;
}

export function formatBytes(n: number): string {
  if (n >= MiB) return `${(n / MiB).toFixed(n % MiB === 0 ? 0 : 1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(n % 1024 === 0 ? 0 : 1)} KiB`;
  return `${n} bytes`;
}

/** Bytes read so far for one load, against the fleet's limit. Once over it, nothing more is read. */
export interface ReadBudget {
  used: number;
  limit: number;
  exceeded: boolean;
}

export interface ReadContext {
  /** The file as messages name it (lib:<name> for library flows). */
  display: string;
  /** Where a problem with reading it is reported: the place that names the file. */
  at: Location;
  diagnostics: Diagnostic[];
  budget: ReadBudget;
}

/**
 * Reads a file as text. A reader failure comes back for the caller to report (its message
 * depends on what the file is); invalid UTF-8 and the fleet's byte limit are reported here.
 */
export function readText(source: RepoReader, path: string, maxBytes: number, ctx: ReadContext): { ok: true; text: string; bytes: number } | { ok: false; failure?: Extract<ReadResult, { ok: false }> } {
  const { budget } = ctx;
  if (budget.exceeded) return { ok: false };
  const remaining = Math.max(0, budget.limit - budget.used);
  const r = source.read(path, Math.min(maxBytes, remaining));
  const size = r.ok ? r.bytes.length : r.size;
  const overBudget = (r.ok || r.reason === 'too-large') && size !== undefined && size <= maxBytes && size > remaining;
  if (overBudget || (!r.ok && r.reason === 'too-large' && size === undefined && remaining < maxBytes)) {
    budget.exceeded = true;
    ctx.diagnostics.push(
      error(
        'LimitExceeded',
        ctx.at.file,
        ctx.at.line,
        ctx.at.col,
        `"${ctx.display}"${size === undefined ? '' : ` (${formatBytes(size)})`} takes the files of this fleet over its limit of ${formatBytes(budget.limit)} (${formatBytes(budget.used)} read before it); files after it were not read`,
        'raise spec.limits.bytes in fleet.yaml (e.g. bytes: 512MiB) if the fleet is meant to be this large',
      ),
    );
    return { ok: false };
  }
  if (!r.ok) return { ok: false, failure: r };
  if (r.bytes.length > maxBytes) return { ok: false, failure: { ok: false, reason: 'too-large', size: r.bytes.length } };
  budget.used += r.bytes.length;
  const decoded = decodeUtf8(r.bytes);
  if (!decoded.ok) {
    ctx.diagnostics.push(
      error(
        'InvalidUtf8',
        ctx.display,
        decoded.line,
        decoded.col,
        `not UTF-8: byte ${decoded.byteOffset} (0x${decoded.byte.toString(16).padStart(2, '0')}) does not begin a valid UTF-8 character`,
        'save the file as UTF-8 (it may be in Latin-1 or Windows-1252, or damaged); Tower deploys text exactly as Git holds it',
      ),
    );
    return { ok: false };
  }
  return { ok: true, text: decoded.text, bytes: r.bytes.length };
}

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

export function readFlowFile(reader: RepoReader, library: RepoReader | undefined, ref: FlowRef, at: Location, diagnostics: Diagnostic[], budget: ReadBudget): FlowFile | null {
  const source = ref.library ? library : reader;
  const display = ref.library ? `${LIBRARY_PREFIX}${ref.path.replace(/\.json$/, '')}` : ref.path;
  if (!source) {
    diagnostics.push(error('UnknownLibraryFlow', at.file, at.line, at.col, `"${display}": no flow library is available here`));
    return null;
  }
  const r = readText(source, ref.path, LIMITS.flowBytes, { display, at, diagnostics, budget });
  if (!r.ok) {
    if (!r.failure) return null; // reported
    if (ref.library && r.failure.reason === 'not-found') {
      const names = library!.list('').filter((n) => n.endsWith('.json')).map((n) => `lib:${n.slice(0, -5)}`);
      diagnostics.push(error('UnknownLibraryFlow', at.file, at.line, at.col, `"${display}" is not in Tower's flow library`, names.length ? `available: ${names.join(', ')}` : undefined));
    } else {
      diagnostics.push(readFailure(display, r.failure, at));
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
