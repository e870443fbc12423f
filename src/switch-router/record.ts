/**
 * The router's state file, stateDir/switch/<instance>.json (mode 0600): how the adapter finds
 * a router (pid, ports, control token) and the route a restarted router resumes.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Upstream } from '../adapters/switch/types.js';
import type { WeightedUpstream } from './split.js';

/** What main.ts keeps in stateDir/switch/<instance>.json (mode 0600) and the adapter reads. */
export interface RouterRecord {
  instance: string;
  pid: number;
  listenPort: number;
  controlPort: number;
  token: string;
  active?: Upstream;
  /** A weighted split a restarted router resumes (see split.ts). */
  split?: WeightedUpstream[];
  startedAt: string;
}

export function readRecord(file: string): RouterRecord | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as RouterRecord;
  } catch {
    return undefined;
  }
}

/** tmp + rename: a reader (or a crash) never sees half a file. */
export function writeRecord(file: string, record: RouterRecord): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}
