/**
 * The durable state of the daemon, behind one interface with two backends: PostgreSQL
 * (production) and an embedded store (the default; no server, survives kill -9).
 *
 * - the rollout journal: each instance's rollout state (the pure state machine's SwapState)
 *   written before its actions run, so a reconciler killed in any phase resumes or cleans up;
 * - the deployment history: one record per rollout, with what changed, per-instance phases
 *   and timings, outcome and error;
 * - the audit trail: who/what changed the fleet, when, and why;
 * - the revisions: the last attempted and the last applied Git revision, kept apart.
 */

export type RolloutOutcome = 'running' | 'succeeded' | 'failed' | 'rolled-back' | 'superseded' | 'interrupted' | 'invalid';

export interface RolloutRecord {
  id: string;
  fleet: string;
  revision?: string;
  author?: string;
  message?: string;
  startedAt: string;
  finishedAt?: string;
  outcome: RolloutOutcome;
  error?: string;
  /** The plan that was executed (JSON), for the history and the status page. */
  plan?: unknown;
  /** Per instance: path, final outcome, phases with timings. Filled as the rollout goes. */
  instances?: Record<string, InstanceHistory>;
}

export interface InstanceHistory {
  path: string;
  outcome: string;
  error?: string;
  phases: { phase: string; startedAt: string; ms?: number }[];
}

export interface AuditEntry {
  at: string;
  fleet: string;
  /** What did it: "tower" for the reconciler, or e.g. "webhook", "drift" (someone edited an instance). */
  actor: string;
  action: string;
  revision?: string;
  detail?: unknown;
}

export interface RevisionState {
  /** The newest revision a rollout was started for (or rejected as invalid). */
  attempted?: { revision: string; at: string; outcome: RolloutOutcome; error?: string };
  /** The newest revision the whole fleet runs, verified. */
  applied?: { revision: string; at: string };
}

export interface StateStore {
  readonly kind: 'postgres' | 'embedded';
  /** Creates or upgrades the schema; idempotent. */
  migrate(): Promise<void>;

  beginRollout(rollout: Omit<RolloutRecord, 'outcome' | 'finishedAt'>): Promise<void>;
  /** Journal: the state machine's state of one instance, written before its actions run (JSON-serializable). */
  saveInstanceState(rolloutId: string, instance: string, state: unknown): Promise<void>;
  /** The history of one instance in a rollout (path, outcome, phases); merged into the record. */
  saveInstanceHistory(rolloutId: string, instance: string, history: InstanceHistory): Promise<void>;
  finishRollout(rolloutId: string, outcome: RolloutOutcome, finishedAt: string, error?: string): Promise<void>;
  /** The rollout of this fleet still marked running (after a crash), with its journal. */
  openRollout(fleet: string): Promise<{ rollout: RolloutRecord; states: Record<string, unknown> } | undefined>;
  /** Newest first. */
  history(fleet: string, limit: number): Promise<RolloutRecord[]>;
  getRollout(id: string): Promise<RolloutRecord | undefined>;

  audit(entry: AuditEntry): Promise<void>;
  /** Newest first. */
  auditTrail(fleet: string, limit: number): Promise<AuditEntry[]>;

  setAttempted(fleet: string, attempted: NonNullable<RevisionState['attempted']>): Promise<void>;
  setApplied(fleet: string, applied: NonNullable<RevisionState['applied']>): Promise<void>;
  revisions(fleet: string): Promise<RevisionState>;

  close(): Promise<void>;
}
