/**
 * Exit supervision for the process driver: a Node-RED process that stops without being asked
 * is noticed within a second, written into its colour.json (status 'exited' and how it ended),
 * and reported to whoever watches the fleet. The driver never restarts anything; the engine
 * decides that.
 *
 * - A child this driver spawned: its 'exit' event, at once. The handle is kept but unref'd,
 *   so the daemon can still exit while Node-RED runs on.
 * - A colour adopted from an earlier driver (not our child, so nobody tells us): one stat of
 *   /proc/<pid> per such colour every 500 ms, and only while someone watches.
 *
 * A stop that was asked for is marked in colour.json (stopRequestedAt) before the signal, so
 * its exit is never reported — whichever driver on the state dir asked for it. A colour whose
 * record says running but whose process is already gone when watching begins (it died while
 * Tower was down) is reported at the first poll: nobody had noticed it yet.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeAtomic } from '../fs/atomic.js';
import { exitInfo } from './exit.js';
import { runs } from './proc.js';
import type { ColorRecord, ReplicaRef } from './process.js';
import type { ColorExit, ExitRecord } from './types.js';

/** How often an adopted colour's pid is looked at while someone watches. */
export const POLL_MS = 500;

export interface ExitSupervisor {
  /** A child start() spawned, once its record (pid, start time, status running) is written. */
  spawned(record: ColorRecord, child: ChildProcess): void;
  /** A colour the registry says is running: followed by polling unless it is our child (the poll tells whether it still runs). */
  seen(record: ColorRecord): void;
  watch(fleet: string, onExit: (exit: ColorExit) => void): () => void;
}

export interface ExitSupervisorOptions {
  /** Where the replica's colour.json lives. */
  recordFile(ref: ReplicaRef): string;
  /** The fleet's colours whose records say running, read when someone starts watching. */
  running(fleet: string): Promise<ColorRecord[]>;
  log(line: string): void;
}

interface Tracked {
  ref: ReplicaRef;
  pid: number;
  startTime: number | null;
  /** Set for our own children: their exit event tells, no polling. */
  child?: ChildProcess;
}

interface Watcher {
  fleet: string;
  onExit: (exit: ColorExit) => void;
}

export function exitSupervisor(options: ExitSupervisorOptions): ExitSupervisor {
  const { recordFile, log } = options;
  const tracked = new Map<string, Tracked>();
  const watchers = new Set<Watcher>();
  let timer: NodeJS.Timeout | undefined;
  // Each replica of a colour is followed on its own (replica 1 is the colour itself).
  const key = (ref: ReplicaRef) => `${ref.fleet}/${ref.instance}/${ref.color}${(ref.replica ?? 1) > 1 ? `/r${ref.replica}` : ''}`;
  const identity = (r: ReplicaRef): ReplicaRef => ({ fleet: r.fleet, instance: r.instance, color: r.color, ...((r.replica ?? 1) > 1 ? { replica: r.replica } : {}) });

  function noticed(t: Tracked, code: number | null, signal: string | null): void {
    if (tracked.get(key(t.ref)) === t) tracked.delete(key(t.ref));
    const exit = settle(t, exitInfo(new Date().toISOString(), code, signal));
    if (!exit) return;
    log(`process: ${key(t.ref)} (pid ${t.pid}) stopped unasked: ${exit.reason}`);
    for (const w of [...watchers]) {
      if (w.fleet !== t.ref.fleet) continue;
      try {
        w.onExit({ ...identity(t.ref), ...exit });
      } catch (err) {
        log(`process: a watcher of fleet ${w.fleet} threw on ${key(t.ref)}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  /**
   * Writes the exit into colour.json if the record still describes this process, and says
   * what to report: nothing when the colour was asked to stop, removed, or runs again.
   * Synchronous on purpose: no start() or stop() of this driver can interleave with it.
   */
  function settle(t: Tracked, exit: ExitRecord): ExitRecord | undefined {
    const file = recordFile(t.ref);
    let record: ColorRecord;
    try {
      record = JSON.parse(readFileSync(file, 'utf8')) as ColorRecord;
    } catch {
      return undefined; // removed (or unreadable: list() will say so)
    }
    if (record.fleet !== t.ref.fleet || record.pid !== t.pid || record.pidStartTime !== t.startTime) return undefined;
    if (record.stopRequestedAt) return undefined;
    if (record.status === 'running') {
      write(file, { ...record, status: 'exited', exit });
      return exit;
    }
    if (record.status === 'exited' && record.exit) {
      // Another driver on the state dir noticed first; a child's exit event knows more than a poll.
      const known = record.exit.code !== null || record.exit.signal !== null;
      if (!known && (exit.code !== null || exit.signal !== null)) {
        write(file, { ...record, exit });
        return exit;
      }
      return record.exit;
    }
    return undefined;
  }

  function write(file: string, record: ColorRecord): void {
    try {
      writeAtomic(file, `${JSON.stringify(record, null, 2)}\n`);
    } catch (err) {
      log(`process: could not record the exit of ${key(record)}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  function poll(): void {
    for (const t of [...tracked.values()]) {
      if (t.child || ![...watchers].some((w) => w.fleet === t.ref.fleet)) continue;
      if (!runs(t.pid, t.startTime)) noticed(t, null, null);
    }
  }

  function seen(record: ColorRecord): void {
    if (record.pid === null || record.status !== 'running') return;
    const current = tracked.get(key(record));
    if (current && current.pid === record.pid && current.startTime === record.pidStartTime) return;
    tracked.set(key(record), { ref: identity(record), pid: record.pid, startTime: record.pidStartTime });
  }

  return {
    spawned(record, child) {
      if (record.pid === null) return;
      const t: Tracked = { ref: identity(record), pid: record.pid, startTime: record.pidStartTime, child };
      tracked.set(key(t.ref), t);
      // It may have died while start() wrote its record; the event has fired then.
      if (child.exitCode !== null || child.signalCode !== null) noticed(t, child.exitCode, child.signalCode);
      else child.once('exit', (code, signal) => noticed(t, code, signal));
    },

    seen,

    watch(fleet, onExit) {
      const watcher: Watcher = { fleet, onExit };
      watchers.add(watcher);
      if (!timer) {
        timer = setInterval(poll, POLL_MS);
        timer.unref();
      }
      options.running(fleet).then(
        (records) => records.forEach(seen),
        (err: unknown) => log(`process: could not read the registry of fleet ${fleet} to watch it: ${err instanceof Error ? err.message : String(err)}`),
      );
      return () => {
        watchers.delete(watcher);
        if (watchers.size === 0 && timer) {
          clearInterval(timer);
          timer = undefined;
        }
      };
    },
  };
}
