/**
 * What both StateStore backends share: the one error type, input checks that make the two
 * behave alike (timestamps normalized to ISO, values JSON round-tripped), and retention.
 * No imports but types, so that a child process can load the embedded store transpiled.
 */
import type { AuditEntry, InstanceHistory, RevisionState, RolloutOutcome, RolloutRecord } from '../../engine/ports.js';

/**
 * Why a store call failed, as the reconcile loop acts on it (PascalCase: also a metric label).
 * Transient ones (Unavailable, Timeout) are worth a retry with backoff; the rest are not.
 */
export type StoreErrorReason =
  | 'Unavailable' // cannot reach or keep the database
  | 'Timeout' // a statement ran past its timeout
  | 'AuthFailed' // the database refused the credentials
  | 'Locked' // another process has the embedded store open
  | 'Corrupt' // the embedded store's files are damaged beyond a torn last line
  | 'Incompatible' // written by a newer Tower
  | 'NotFound' // no such rollout
  | 'Conflict' // a rollout with that id exists
  | 'Invalid' // the caller passed something that cannot be stored
  | 'Closed' // close() was called
  | 'Failed'; // anything else (I/O error, unexpected database error)

const TRANSIENT: ReadonlySet<StoreErrorReason> = new Set(['Unavailable', 'Timeout']);

/** The only error the stores throw. Never carries a cause: a driver error may hold a secret. */
export class StoreError extends Error {
  override readonly name = 'StoreError';
  readonly reason: StoreErrorReason;
  readonly transient: boolean;
  /** PostgreSQL's SQLSTATE or Node's errno code, when there was one. */
  readonly code?: string;

  constructor(reason: StoreErrorReason, message: string, code?: string) {
    super(message);
    this.reason = reason;
    this.transient = TRANSIENT.has(reason);
    if (code !== undefined) this.code = code;
  }
}

/** The subset of a pino logger the stores use. */
export interface StoreLog {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export const silentLog: StoreLog = { warn: () => undefined, info: () => undefined };

/** How much finished history each fleet keeps. Running rollouts are never dropped. */
export interface Retention {
  /** Finished rollouts per fleet (with their history). Default 500. */
  rollouts: number;
  /** Audit entries per fleet. Default 5000. */
  audit: number;
}

export const DEFAULT_RETENTION: Retention = { rollouts: 500, audit: 5000 };

export function retentionFrom(partial: Partial<Retention> | undefined): Retention {
  const r = { ...DEFAULT_RETENTION, ...partial };
  for (const key of ['rollouts', 'audit'] as const) {
    if (!Number.isSafeInteger(r[key]) || r[key] < 1) throw new StoreError('Invalid', `retention.${key} must be a positive integer, not ${String(r[key])}`);
  }
  return r;
}

const OUTCOMES: ReadonlySet<string> = new Set<RolloutOutcome>(['running', 'succeeded', 'failed', 'rolled-back', 'superseded', 'interrupted', 'invalid']);

export function checkOutcome(outcome: string, field: string): RolloutOutcome {
  if (!OUTCOMES.has(outcome)) throw new StoreError('Invalid', `${field}: unknown outcome ${JSON.stringify(outcome)}`);
  return outcome as RolloutOutcome;
}

/** Names and ids: non-empty strings of sane length (they become keys and index entries). */
export function checkName(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 512) throw new StoreError('Invalid', `${field} must be a non-empty string of at most 512 characters`);
  return value;
}

export function checkOptionalString(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new StoreError('Invalid', `${field} must be a string`);
  return value;
}

/**
 * A timestamp as the stores keep it: ISO 8601 in UTC with milliseconds. PostgreSQL returns
 * timestamptz in exactly this form, so both backends give back the same strings.
 */
export function isoTime(value: unknown, field: string): string {
  const t = typeof value === 'string' ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(t)) throw new StoreError('Invalid', `${field} must be an ISO 8601 timestamp, not ${JSON.stringify(value)}`);
  return new Date(t).toISOString();
}

/**
 * The JSON text of a value, or Invalid. Both backends store this text, so a Date becomes a
 * string and undefined properties vanish alike. NUL is refused because jsonb refuses it.
 */
export function jsonText(value: unknown, field: string): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new StoreError('Invalid', `${field} is not JSON-serializable: ${(err as Error).message}`);
  }
  if (text === undefined) throw new StoreError('Invalid', `${field} is not JSON-serializable (${typeof value})`);
  if (text.includes('\\u0000')) throw new StoreError('Invalid', `${field} contains a NUL character, which PostgreSQL's jsonb cannot store`);
  return text;
}

/** Limits as both backends read them: whole, at least 0, at most 10,000. */
export function checkLimit(limit: number): number {
  if (!Number.isFinite(limit)) return 0;
  return Math.min(10_000, Math.max(0, Math.floor(limit)));
}

/** Sets an own property even when the key is "__proto__" (names come from outside). */
export function setKey<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function plainObject(text: string, field: string): Record<string, unknown> {
  const value: unknown = JSON.parse(text);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new StoreError('Invalid', `${field} must be an object`);
  return value as Record<string, unknown>;
}

/** A new rollout as both backends store it, with the JSON texts PostgreSQL needs. */
export interface NormalizedRollout {
  record: RolloutRecord;
  planText?: string;
  instancesText: string;
}

export function normalizeBegin(r: Omit<RolloutRecord, 'outcome' | 'finishedAt'>): NormalizedRollout {
  if (typeof r !== 'object' || r === null) throw new StoreError('Invalid', 'rollout must be an object');
  const record: RolloutRecord = { id: checkName(r.id, 'rollout.id'), fleet: checkName(r.fleet, 'rollout.fleet'), startedAt: isoTime(r.startedAt, 'rollout.startedAt'), outcome: 'running' };
  for (const key of ['revision', 'author', 'message', 'error'] as const) {
    const value = checkOptionalString(r[key], `rollout.${key}`);
    if (value !== undefined) record[key] = value;
  }
  const instancesText = r.instances === undefined ? '{}' : jsonText(r.instances, 'rollout.instances');
  record.instances = plainObject(instancesText, 'rollout.instances') as Record<string, InstanceHistory>;
  const out: NormalizedRollout = { record, instancesText };
  if (r.plan !== undefined) {
    out.planText = jsonText(r.plan, 'rollout.plan');
    record.plan = JSON.parse(out.planText) as unknown;
  }
  return out;
}

export function normalizeHistory(history: InstanceHistory): { value: InstanceHistory; text: string } {
  const text = jsonText(history, 'history');
  return { value: plainObject(text, 'history') as unknown as InstanceHistory, text };
}

export function normalizeState(state: unknown): { value: unknown; text: string } {
  const text = jsonText(state, 'state');
  return { value: JSON.parse(text) as unknown, text };
}

export function normalizeAudit(entry: AuditEntry): { value: AuditEntry; detailText?: string } {
  if (typeof entry !== 'object' || entry === null) throw new StoreError('Invalid', 'audit entry must be an object');
  const value: AuditEntry = { at: isoTime(entry.at, 'audit.at'), fleet: checkName(entry.fleet, 'audit.fleet'), actor: checkName(entry.actor, 'audit.actor'), action: checkName(entry.action, 'audit.action') };
  const revision = checkOptionalString(entry.revision, 'audit.revision');
  if (revision !== undefined) value.revision = revision;
  if (entry.detail === undefined) return { value };
  const detailText = jsonText(entry.detail, 'audit.detail');
  value.detail = JSON.parse(detailText) as unknown;
  return { value, detailText };
}

export function normalizeAttempted(a: NonNullable<RevisionState['attempted']>): NonNullable<RevisionState['attempted']> {
  if (typeof a !== 'object' || a === null) throw new StoreError('Invalid', 'attempted must be an object');
  const value: NonNullable<RevisionState['attempted']> = { revision: checkName(a.revision, 'attempted.revision'), at: isoTime(a.at, 'attempted.at'), outcome: checkOutcome(a.outcome, 'attempted.outcome') };
  const error = checkOptionalString(a.error, 'attempted.error');
  if (error !== undefined) value.error = error;
  return value;
}

export function normalizeApplied(a: NonNullable<RevisionState['applied']>): NonNullable<RevisionState['applied']> {
  if (typeof a !== 'object' || a === null) throw new StoreError('Invalid', 'applied must be an object');
  return { revision: checkName(a.revision, 'applied.revision'), at: isoTime(a.at, 'applied.at') };
}

/** finishRollout's arguments, checked alike by both backends. */
export function normalizeFinish(outcome: RolloutOutcome, finishedAt: string, error: string | undefined): { outcome: RolloutOutcome; finishedAt: string; error?: string } {
  const o = checkOutcome(outcome, 'outcome');
  if (o === 'running') throw new StoreError('Invalid', 'finishRollout: "running" is not an outcome a rollout finishes with');
  const out: { outcome: RolloutOutcome; finishedAt: string; error?: string } = { outcome: o, finishedAt: isoTime(finishedAt, 'finishedAt') };
  const e = checkOptionalString(error, 'error');
  if (e !== undefined) out.error = e;
  return out;
}
