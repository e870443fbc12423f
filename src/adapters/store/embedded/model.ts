/**
 * The embedded store's state in memory, and the records that change it. The log is a list of
 * these records and the snapshot a picture of the Memory they built: apply() is the only way
 * the state changes, live (when a write is queued) and on replay alike, so both agree.
 *
 * Retention (finished rollouts and audit entries per fleet) is applied as records are applied,
 * so memory, snapshot and replay agree and stay bounded.
 */
import type { AuditEntry, InstanceHistory, RevisionState, RolloutOutcome, RolloutRecord } from '../../../engine/ports.js';
import { setKey, StoreError, type Retention } from '../common.js';

/** The snapshot format this Tower writes and the newest it reads. */
export const FORMAT = 1;

export type Attempted = NonNullable<RevisionState['attempted']>;
export type Applied = NonNullable<RevisionState['applied']>;

/** One line of the log. */
export type LogRecord = { seq: number } & (
  | { type: 'rollout.begin'; rollout: RolloutRecord }
  | { type: 'rollout.state'; id: string; instance: string; state: unknown }
  | { type: 'rollout.history'; id: string; instance: string; history: InstanceHistory }
  | { type: 'rollout.finish'; id: string; outcome: RolloutOutcome; finishedAt: string; error?: string }
  | { type: 'audit'; entry: AuditEntry }
  | { type: 'revision.attempted'; fleet: string; attempted: Attempted }
  | { type: 'revision.applied'; fleet: string; applied: Applied }
);

/** Distributes Omit over the union, so that each variant keeps its own fields. */
export type Unsequenced<T> = T extends unknown ? Omit<T, 'seq'> : never;

export interface Snapshot {
  format: number;
  seq: number;
  rollouts: { seq: number; record: RolloutRecord }[];
  journal: [string, [string, unknown][]][];
  audit: { seq: number; entry: AuditEntry }[];
  revisions: [string, RevisionState][];
}

interface StoredRollout {
  seq: number;
  record: RolloutRecord;
}

interface StoredAudit {
  seq: number;
  entry: AuditEntry;
}

const newestRolloutFirst = (a: StoredRollout, b: StoredRollout) => (a.record.startedAt < b.record.startedAt ? 1 : a.record.startedAt > b.record.startedAt ? -1 : b.seq - a.seq);
const oldestAuditFirst = (a: StoredAudit, b: StoredAudit) => (a.entry.at < b.entry.at ? -1 : a.entry.at > b.entry.at ? 1 : a.seq - b.seq);

/** The whole state in memory; apply() is the only way it changes, live and on replay. */
export class Memory {
  seq = 0;
  readonly rollouts = new Map<string, StoredRollout>();
  readonly byFleet = new Map<string, Set<string>>();
  readonly journal = new Map<string, Map<string, unknown>>();
  /** Per fleet, oldest first by (at, seq), so that the usual append is a push. */
  readonly audit = new Map<string, StoredAudit[]>();
  readonly revisions = new Map<string, RevisionState>();

  constructor(private readonly retention: Retention) {}

  apply(rec: LogRecord): void {
    this.seq = rec.seq;
    switch (rec.type) {
      case 'rollout.begin':
        this.addRollout(rec.seq, rec.rollout);
        return;
      case 'rollout.state': {
        if (!this.rollouts.has(rec.id)) return;
        let states = this.journal.get(rec.id);
        if (!states) this.journal.set(rec.id, (states = new Map()));
        states.set(rec.instance, rec.state);
        return;
      }
      case 'rollout.history': {
        const r = this.rollouts.get(rec.id)?.record;
        if (!r) return;
        r.instances ??= {};
        setKey(r.instances, rec.instance, rec.history);
        return;
      }
      case 'rollout.finish': {
        const r = this.rollouts.get(rec.id)?.record;
        if (!r) return;
        r.outcome = rec.outcome;
        r.finishedAt = rec.finishedAt;
        if (rec.error === undefined) delete r.error;
        else r.error = rec.error;
        // The journal only serves to resume a running rollout.
        this.journal.delete(rec.id);
        this.pruneRollouts(r.fleet);
        return;
      }
      case 'audit':
        this.addAudit(rec.seq, rec.entry);
        return;
      case 'revision.attempted':
        this.revisions.set(rec.fleet, { ...this.revisions.get(rec.fleet), attempted: rec.attempted });
        return;
      case 'revision.applied':
        this.revisions.set(rec.fleet, { ...this.revisions.get(rec.fleet), applied: rec.applied });
        return;
      default:
        throw new StoreError('Incompatible', `unknown record type ${JSON.stringify((rec as { type?: unknown }).type)}: written by a newer Tower?`);
    }
  }

  addRollout(seq: number, record: RolloutRecord): void {
    this.rollouts.set(record.id, { seq, record });
    let ids = this.byFleet.get(record.fleet);
    if (!ids) this.byFleet.set(record.fleet, (ids = new Set()));
    ids.add(record.id);
  }

  addAudit(seq: number, entry: AuditEntry): void {
    let list = this.audit.get(entry.fleet);
    if (!list) this.audit.set(entry.fleet, (list = []));
    const item = { seq, entry };
    let i = list.length;
    // Entries usually come in time order; walk back only past newer ones (bounded by the list).
    while (i > 0 && oldestAuditFirst(list[i - 1]!, item) > 0) i--;
    list.splice(i, 0, item);
    if (list.length > this.retention.audit) list.splice(0, list.length - this.retention.audit);
  }

  fleetRollouts(fleet: string): StoredRollout[] {
    const out: StoredRollout[] = [];
    for (const id of this.byFleet.get(fleet) ?? []) {
      const r = this.rollouts.get(id);
      if (r) out.push(r);
    }
    return out.sort(newestRolloutFirst);
  }

  private pruneRollouts(fleet: string): void {
    const finished = this.fleetRollouts(fleet).filter((r) => r.record.outcome !== 'running');
    for (const old of finished.slice(this.retention.rollouts)) {
      this.rollouts.delete(old.record.id);
      this.byFleet.get(fleet)?.delete(old.record.id);
      this.journal.delete(old.record.id);
    }
  }

  snapshot(): Snapshot {
    const audit: StoredAudit[] = [];
    for (const list of this.audit.values()) audit.push(...list);
    return {
      format: FORMAT,
      seq: this.seq,
      rollouts: [...this.rollouts.values()].sort((a, b) => a.seq - b.seq),
      journal: [...this.journal].map(([id, states]) => [id, [...states]]),
      audit,
      revisions: [...this.revisions],
    };
  }

  load(s: Snapshot): void {
    this.seq = s.seq;
    for (const r of s.rollouts) this.addRollout(r.seq, r.record);
    for (const [id, states] of s.journal) this.journal.set(id, new Map(states));
    for (const a of s.audit) this.addAudit(a.seq, a.entry);
    for (const [fleet, rev] of s.revisions) this.revisions.set(fleet, rev);
  }
}
