/**
 * tower history: the fleet's rollouts, newest first — outcome, when and how long, who
 * (the commit's author and the actor that started it: tower for a new revision, self-heal,
 * repair) and what (revision, commit message), and per instance its path, outcome and phases
 * with their durations. Read from the daemon's store (the embedded one in <state>/store, or
 * PostgreSQL with DATABASE_URL), opened read-only: it works beside a running daemon, takes
 * no lock and writes nothing. `tower apply` keeps no history; the daemon (`tower run`) does.
 *
 * JSON gives the records as the API's /api/v1/history does (texts bounded the same way), with
 * the actor added; text gives a compact table.
 */
import { boundRecord } from '../engine/history.js';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { StateDir } from '../adapters/fs/state-dir.js';
import { openStore } from '../adapters/store/index.js';
import { capText, count } from '../core/bounds.js';
import { formatDuration } from '../core/duration.js';
import type { RolloutRecord } from '../engine/ports.js';
import type { Io } from './io.js';

/** As the API: at most this many rollouts in one answer. */
export const MAX_HISTORY = 200;
/** Audit entries read to find who started each rollout (the store keeps 5,000 by default). */
const AUDIT_READ = 5_000;
/** Instances listed under one rollout in the text table. */
const INSTANCES_SHOWN = 20;

export interface HistoryOptions {
  stateDir: string;
  limit: number;
  format: 'text' | 'json';
  /** The fleet, when the state directory does not name it (a PostgreSQL store read from another machine). */
  fleet?: string;
}

export type HistoryEntry = RolloutRecord & { actor?: string };

/** Exit 0 with the history (empty too), 1 when the store cannot be read. */
export async function historyCommand(options: HistoryOptions, io: Io): Promise<number> {
  const stateDir = resolve(options.stateDir);
  // Not created when it is not there: a look at history changes nothing.
  const fleet = options.fleet ?? (existsSync(stateDir) ? new StateDir(stateDir).read().fleet : undefined);
  if (!fleet) {
    if (options.format === 'json') io.stdout(`${JSON.stringify({ fleet: null, history: [] }, null, 2)}\n`);
    else io.stdout(`nothing is managed from ${options.stateDir} yet (name the fleet with --fleet to read a PostgreSQL store from elsewhere)\n`);
    return 0;
  }
  let entries: HistoryEntry[];
  try {
    const store = await openStore({ databaseUrl: io.env.DATABASE_URL, dir: join(stateDir, 'store'), readOnly: true });
    try {
      await store.migrate();
      const records = await store.history(fleet, Math.min(Math.max(1, options.limit), MAX_HISTORY));
      const actors = new Map<string, string>();
      for (const a of await store.auditTrail(fleet, AUDIT_READ)) if (a.action === 'rollout-started') actors.set(`${a.at} ${a.revision ?? ''}`, a.actor);
      entries = records.map((r) => {
        const actor = actors.get(`${r.startedAt} ${r.revision ?? ''}`);
        return { ...boundRecord(r), ...(actor ? { actor } : {}) };
      });
    } finally {
      await store.close();
    }
  } catch (err) {
    io.stderr(`tower history: cannot read the history of fleet ${fleet}: ${(err as Error).message}\n`);
    return 1;
  }
  if (options.format === 'json') io.stdout(`${JSON.stringify({ fleet, history: entries }, null, 2)}\n`);
  else io.stdout(historyText(fleet, entries));
  return 0;
}

/** The compact table: one line per rollout, one per instance under it, its error if any. */
export function historyText(fleet: string, entries: readonly HistoryEntry[]): string {
  if (entries.length === 0) return `fleet ${fleet}: no rollouts yet\n`;
  const header = ['STARTED', 'OUTCOME', 'TOOK', 'REVISION', 'BY', 'WHAT'];
  const rows = entries.map((e) => [
    e.startedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
    e.outcome,
    e.finishedAt ? formatDuration(Math.max(0, Date.parse(e.finishedAt) - Date.parse(e.startedAt))) : '-',
    e.revision ? e.revision.slice(0, 12) : '-',
    capText([e.author, e.actor && (e.author ? `(${e.actor})` : e.actor)].filter(Boolean).join(' ') || '-', 40),
    capText((e.message ?? '').split('\n')[0]!.trim(), 72) || '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `${cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()}\n`;
  let out = `fleet ${fleet}: ${count(entries.length)} rollout${entries.length === 1 ? '' : 's'}, newest first\n${line(header)}`;
  entries.forEach((e, i) => {
    out += line(rows[i]!);
    const instances = Object.entries(e.instances ?? {});
    for (const [name, h] of instances.slice(0, INSTANCES_SHOWN)) {
      const phases = h.phases.map((p) => `${p.phase} ${p.ms !== undefined ? formatDuration(p.ms) : '?'}`).join(', ');
      out += `    ${name}  ${h.path}  ${h.outcome}${phases ? `  ${phases}` : ''}${h.error ? `: ${capText(h.error, 200)}` : ''}\n`;
    }
    if (instances.length > INSTANCES_SHOWN) out += `    and ${count(instances.length - INSTANCES_SHOWN)} more instances\n`;
    if (e.error) out += `    error: ${capText(e.error, 300)}\n`;
  });
  return out;
}

