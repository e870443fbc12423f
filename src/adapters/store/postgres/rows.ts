/**
 * The PostgreSQL store's rows and the records they map to. jsonb columns are read back as
 * text (::text) and parsed here, so that a stored JSON null stays distinct from "absent", as
 * in the embedded store.
 */
import type { AuditEntry, InstanceHistory, RevisionState, RolloutOutcome, RolloutRecord } from '../../../engine/ports.js';

export interface RolloutRow {
  id: string;
  fleet: string;
  revision: string | null;
  author: string | null;
  message: string | null;
  started_at: Date;
  finished_at: Date | null;
  outcome: RolloutOutcome;
  error: string | null;
  plan: string | null;
  instances: string;
}

export const ROLLOUT_COLUMNS = 'id, fleet, revision, author, message, started_at, finished_at, outcome, error, plan::text AS plan, instances::text AS instances';

export function rowToRollout(row: RolloutRow): RolloutRecord {
  const r: RolloutRecord = { id: row.id, fleet: row.fleet, startedAt: row.started_at.toISOString(), outcome: row.outcome, instances: JSON.parse(row.instances) as Record<string, InstanceHistory> };
  if (row.revision !== null) r.revision = row.revision;
  if (row.author !== null) r.author = row.author;
  if (row.message !== null) r.message = row.message;
  if (row.finished_at !== null) r.finishedAt = row.finished_at.toISOString();
  if (row.error !== null) r.error = row.error;
  if (row.plan !== null) r.plan = JSON.parse(row.plan) as unknown;
  return r;
}

export interface AuditRow {
  fleet: string;
  at: Date;
  actor: string;
  action: string;
  revision: string | null;
  detail: string | null;
}

export const AUDIT_COLUMNS = 'fleet, at, actor, action, revision, detail::text AS detail';

export function rowToAudit(row: AuditRow): AuditEntry {
  const e: AuditEntry = { at: row.at.toISOString(), fleet: row.fleet, actor: row.actor, action: row.action };
  if (row.revision !== null) e.revision = row.revision;
  if (row.detail !== null) e.detail = JSON.parse(row.detail) as unknown;
  return e;
}

export interface RevisionsRow {
  attempted_revision: string | null;
  attempted_at: Date | null;
  attempted_outcome: RolloutOutcome | null;
  attempted_error: string | null;
  applied_revision: string | null;
  applied_at: Date | null;
}

export const REVISIONS_COLUMNS = 'attempted_revision, attempted_at, attempted_outcome, attempted_error, applied_revision, applied_at';

/** A fleet without a row has neither revision. */
export function rowToRevisions(row: RevisionsRow | undefined): RevisionState {
  const out: RevisionState = {};
  if (row?.attempted_revision != null && row.attempted_at && row.attempted_outcome) {
    out.attempted = { revision: row.attempted_revision, at: row.attempted_at.toISOString(), outcome: row.attempted_outcome };
    if (row.attempted_error !== null) out.attempted.error = row.attempted_error;
  }
  if (row?.applied_revision != null && row.applied_at) out.applied = { revision: row.applied_revision, at: row.applied_at.toISOString() };
  return out;
}
