/**
 * Diagnostics: every problem Tower finds in a fleet repository, with the place it was
 * found and, where we can tell, how to fix it. Codes are PascalCase reasons (Flux style),
 * reused as condition reasons, metric labels and GitHub annotation titles.
 */

export type Severity = 'error' | 'warning';

export type DiagnosticCode =
  | 'FileNotFound'
  | 'FileTooLarge'
  | 'PathOutsideRepository'
  | 'InvalidUtf8'
  | 'NestingTooDeep'
  | 'LimitExceeded'
  | 'YamlSyntax'
  | 'YamlAliasLimit'
  | 'SchemaViolation'
  | 'UnknownKind'
  | 'DuplicateInstanceName'
  | 'DuplicatePort'
  | 'DuplicatePlanName'
  | 'PlanNotFound'
  | 'UnknownInstance'
  | 'InstanceNotInPlan'
  | 'InstanceInPlanTwice'
  | 'DependencyCycle'
  | 'PlanFieldIgnored'
  | 'FlowSyntax'
  | 'FlowFormat'
  | 'DuplicateNodeId'
  | 'DanglingWire'
  | 'DanglingLink'
  | 'MissingTab'
  | 'ImplicitTab'
  | 'MissingSubflow'
  | 'MissingGroup'
  | 'CredentialsInFlow'
  | 'UnknownCredentialNode'
  | 'UnknownLibraryFlow'
  /** An instance with replicas whose gated MQTT consumer is on a plain topic: every replica would process each message. */
  | 'UnsharedConsumer'
  /** A switch that cannot serve the instance's runtime (runtime: kubernetes is served by switch: service, and only it). */
  | 'SwitchMismatch'
  /** strategy: canary or ab that cannot run as written (weights, durations, percentages, names, a switch that cannot split). */
  | 'InvalidCanary'
  /** tower plan --observed: the live fleet given as a file could not be read. */
  | 'ObservedInvalid'
  /** A command failed in a way that is Tower's fault, not the input's (JSON output still carries it). */
  | 'InternalError';

export interface Position {
  line: number; // 1-based
  col: number; // 1-based
}

export interface Diagnostic {
  severity: Severity;
  code: DiagnosticCode;
  /** Repository-relative path, always with forward slashes. */
  file: string;
  line: number;
  col: number;
  message: string;
  /** How to fix it, when we can say. */
  hint?: string;
  /** Instances this problem affects (flow problems are found per instance). */
  instances?: string[];
  /** Node id, for flow problems. */
  nodeId?: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  const where = `${d.file}:${d.line}:${d.col}`;
  const scope = d.instances?.length ? ` [instance${d.instances.length > 1 ? 's' : ''} ${d.instances.join(', ')}]` : '';
  const hint = d.hint ? ` — ${d.hint}` : '';
  return `${where}: ${d.severity}: ${d.message}${hint}${scope}`;
}

/** An exception that escaped the loader or the planner, as JSON output carries it. */
export function internalError(err: unknown): Diagnostic {
  return {
    severity: 'error',
    code: 'InternalError',
    file: '(tower)',
    line: 1,
    col: 1,
    message: `internal error: ${err instanceof Error ? err.message : String(err)}`,
    hint: 'this is a bug in Tower, not in the repository; please report it with the input that caused it',
  };
}

export function hasErrors(diagnostics: readonly Diagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === 'error');
}

/** Stable order: file, line, column, then message — so output and snapshots are deterministic. */
export function sortDiagnostics(diagnostics: Diagnostic[]): Diagnostic[] {
  return diagnostics.sort(
    (a, b) =>
      cmp(a.file, b.file) || a.line - b.line || a.col - b.col || cmp(a.code, b.code) || cmp(a.message, b.message),
  );
}

/** Diagnostics reported per file; the rest are counted in one more. */
export const MAX_DIAGNOSTICS_PER_FILE = 100;

/**
 * Sorted diagnostics with at most `max` per file, each message and hint at most
 * MAX_MESSAGE_CHARS long. A generated or damaged file can hold 90,000 problems (a dependsOn of unknown names); what
 * a person — or a pull-request comment — can use is the first ones and how many more there are.
 */
export function capPerFile(sorted: readonly Diagnostic[], max = MAX_DIAGNOSTICS_PER_FILE): Diagnostic[] {
  const out: Diagnostic[] = [];
  let i = 0;
  while (i < sorted.length) {
    const file = sorted[i]!.file;
    let j = i;
    while (j < sorted.length && sorted[j]!.file === file) j++;
    if (j - i <= max) {
      for (let k = i; k < j; k++) out.push(boundedText(sorted[k]!));
    } else {
      for (let k = i; k < i + max; k++) out.push(boundedText(sorted[k]!));
      const rest = sorted.slice(i + max, j);
      const first = rest[0]!;
      out.push({
        severity: hasErrors(rest) ? 'error' : 'warning',
        code: first.code,
        file,
        line: first.line,
        col: first.col,
        message: `and ${rest.length} more problems in this file (the first ${max} are shown)`,
      });
    }
    i = j;
  }
  return out;
}

/** Characters of a message or hint; a value quoted from the input (an id, a name) may be 300,000. */
export const MAX_MESSAGE_CHARS = 1000;

function cut(text: string): string {
  return text.length > MAX_MESSAGE_CHARS ? `${text.slice(0, MAX_MESSAGE_CHARS - 40)}… (${text.length - MAX_MESSAGE_CHARS + 40} more characters)` : text;
}

/** The diagnostic with its message and hint cut to MAX_MESSAGE_CHARS. */
export function boundedText(d: Diagnostic): Diagnostic {
  if (d.message.length <= MAX_MESSAGE_CHARS && (d.hint === undefined || d.hint.length <= MAX_MESSAGE_CHARS)) return d;
  return { ...d, message: cut(d.message), ...(d.hint !== undefined ? { hint: cut(d.hint) } : {}) };
}

/**
 * The same flow file problem is found once for every instance that includes the file;
 * report it once and name all of those instances.
 */
export function mergeDuplicates(diagnostics: readonly Diagnostic[]): Diagnostic[] {
  const byKey = new Map<string, Diagnostic>();
  for (const d of diagnostics) {
    const key = `${d.file}\0${d.line}\0${d.col}\0${d.code}\0${d.message}`;
    const seen = byKey.get(key);
    if (!seen) {
      byKey.set(key, { ...d, instances: d.instances ? [...d.instances] : undefined });
    } else if (d.instances) {
      const merged = new Set([...(seen.instances ?? []), ...d.instances]);
      seen.instances = [...merged].sort();
    }
  }
  return [...byKey.values()];
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Maps byte offsets of a text to 1-based line and column. Built once per file, on demand. */
export class LineIndex {
  private readonly starts: number[] = [0];

  constructor(text: string) {
    for (let i = 0; i < text.length; i++) {
      if (text.charCodeAt(i) === 10) this.starts.push(i + 1);
    }
  }

  position(offset: number): Position {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.starts[mid] ?? 0) <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: offset - (this.starts[lo] ?? 0) + 1 };
  }
}
