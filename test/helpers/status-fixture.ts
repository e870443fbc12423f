/**
 * Crafted daemon statuses for the status page tests: the RedForge example fleet in sync, a
 * rollout in progress, a rejected revision. Each call returns a fresh object to mutate.
 */
import type { FleetStatus, InstanceStatus } from '../../src/core/status.js';
import type { RolloutRecord } from '../../src/engine/ports.js';
import type { AppDeps } from '../../src/server/app.js';

export const REV_A = 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678';
export const REV_B = 'b2c3d4e5f60718293a4b5c6d7e8f901234567890';
export const REV_C = 'c3d4e5f60718293a4b5c6d7e8f90123456789012';
export const FLOWS_REV = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';
export const NOW = new Date('2025-06-01T12:00:00Z');

/** An ISO time `seconds` before now: fixtures are relative, so a real clock shows "2 min ago" too. */
function ago(now: Date, seconds: number): string {
  return new Date(now.getTime() - seconds * 1000).toISOString();
}

function instance(now: Date, name: string, port: number, color: 'blue' | 'green', extra: Partial<InstanceStatus> = {}): InstanceStatus {
  return {
    name,
    color,
    port,
    rev: FLOWS_REV,
    health: 'Healthy',
    healthMessage: 'Admin API answers; flows running',
    condition: 'Synced',
    message: 'runs the desired flows',
    drift: false,
    restarts: 0,
    nodeRedVersion: '4.1.8',
    runtime: 'process',
    lastDeploy: ago(now, 1080),
    ...extra,
  };
}

export function syncedStatus(now = NOW): FleetStatus {
  return {
    fleet: 'redforge',
    source: { kind: 'git', location: 'https://git.example.com/redforge/fleet.git#main', lastFetchAt: ago(now, 30), newestRevision: REV_A },
    desiredRevision: REV_A,
    attemptedRevision: REV_A,
    appliedRevision: REV_A,
    attempted: { revision: REV_A, at: ago(now, 1070), outcome: 'succeeded' },
    commit: { revision: REV_A, author: 'Ada Lovelace', email: 'ada@example.com', message: 'Raise the chunk size to 400\n\nLonger chunks embed better.', date: ago(now, 1200) },
    sync: 'Synced',
    reason: 'Converged',
    message: `every instance runs ${REV_A.slice(0, 12)}`,
    leader: true,
    instances: [
      instance(now, 'embeddings', 1882, 'green', { standby: 'blue' }),
      instance(now, 'errors', 1885, 'blue'),
      instance(now, 'ingest', 1881, 'green', { standby: 'blue' }),
      instance(now, 'query', 1884, 'blue'),
      instance(now, 'storage', 1883, 'blue'),
    ],
    rollout: null,
    validation: [],
    drift: [],
    lastPassAt: ago(now, 29),
  };
}

/** Wave 1 running: ingest in VERIFY, embeddings done (awaiting cleanup), errors in DEPLOY. */
export function rollingOutStatus(now = NOW): FleetStatus {
  const s = syncedStatus(now);
  s.sync = 'Progressing';
  s.reason = 'OutOfDate';
  s.message = 'a rollout is in progress';
  s.desiredRevision = REV_B;
  s.source.newestRevision = REV_B;
  s.attemptedRevision = REV_B;
  s.attempted = { revision: REV_B, at: ago(now, 10), outcome: 'running' };
  s.commit = { revision: REV_B, author: 'Grace Hopper', email: 'grace@example.com', message: 'Add the response primitive', date: ago(now, 120) };
  s.instances[2]!.health = 'Progressing';
  s.instances[2]!.healthMessage = 'green starting';
  s.rollout = {
    id: 'r-2',
    revision: REV_B,
    startedAt: ago(now, 10),
    waves: [
      { index: 0, instances: ['ingest', 'embeddings', 'errors'], state: 'running' },
      { index: 1, instances: ['storage'], state: 'pending' },
      { index: 2, instances: ['query'], state: 'pending' },
    ],
    instances: {
      ingest: { wave: 0, phase: 'VERIFY', path: 'blue-green' },
      embeddings: { wave: 0, phase: 'CLEANUP', path: 'swap', outcome: 'awaiting-cleanup' },
      errors: { wave: 0, phase: 'DEPLOY', path: 'in-place' },
      storage: { wave: 1 },
      query: { wave: 2 },
    },
  };
  return s;
}

/** The newest revision was rejected: validation errors; the fleet stays on REV_A. */
export function invalidStatus(now = NOW): FleetStatus {
  const s = syncedStatus(now);
  s.source.newestRevision = REV_C;
  s.attemptedRevision = REV_C;
  const error = 'invalid: 2 errors, first: flows/text-chunker.json:14:7: wire to missing node "n9"';
  s.attempted = { revision: REV_C, at: ago(now, 29), outcome: 'invalid', error };
  s.lastError = error;
  s.sync = 'OutOfSync';
  s.reason = 'InvalidRevision';
  s.message = `the newest revision ${REV_C.slice(0, 12)} is invalid (2 errors); the fleet keeps ${REV_A.slice(0, 12)}`;
  s.validation = [
    { severity: 'error', code: 'DanglingWire', file: 'flows/text-chunker.json', line: 14, col: 7, message: 'wire to missing node "n9"', hint: 'Export the node n9 too, or remove the wire.', instances: ['ingest'], nodeId: 'n3' },
    { severity: 'error', code: 'SchemaViolation', file: 'fleet.yaml', line: 9, col: 13, message: 'port must be an integer' },
    { severity: 'warning', code: 'CredentialsInFlow', file: 'flows/storage.json', line: 3, col: 5, message: 'credentials are stored in the flow file' },
  ];
  return s;
}

export function history(now = NOW): RolloutRecord[] {
  return [
    { id: 'r-0', fleet: 'redforge', revision: REV_C, author: 'Linus', message: 'Try a broken wire', startedAt: ago(now, 10800), finishedAt: ago(now, 10800), outcome: 'invalid', error: 'invalid: 2 errors' },
    { id: 'r-1', fleet: 'redforge', revision: REV_A, author: 'Ada Lovelace', message: 'Raise the chunk size to 400\n\nLonger chunks embed better.', startedAt: ago(now, 1080), finishedAt: ago(now, 1071), outcome: 'succeeded' },
    { id: 'r-00', fleet: 'redforge', revision: REV_B, author: 'Grace Hopper', message: 'Smoke check for /convert', startedAt: ago(now, 68400), finishedAt: ago(now, 68396), outcome: 'rolled-back', error: 'ingest in VERIFY: smoke green: "converts text": expected status 200, got 500' },
  ];
}

/**
 * Stands in for the daemon behind createApp: a status the test replaces or mutates, and the
 * 'status' event the test fires by hand (as Daemon.emit('status') would).
 */
export interface StatusProvider {
  status: FleetStatus;
  history: RolloutRecord[];
  listeners: Set<() => void>;
  /** Fires every subscribed listener, as the daemon's 'status' event does. */
  emit(): void;
  deps: AppDeps;
}

export function statusProvider(initial: FleetStatus, records: RolloutRecord[] = history()): StatusProvider {
  const listeners = new Set<() => void>();
  const provider: StatusProvider = {
    status: initial,
    history: records,
    listeners,
    emit(): void {
      for (const listener of [...listeners]) listener();
    },
    deps: {
      status: () => provider.status,
      history: async (limit: number) => provider.history.slice(0, limit),
      version: '0.1.0-test',
      subscribe(listener: () => void) {
        listeners.add(listener);
        return () => void listeners.delete(listener);
      },
    },
  };
  return provider;
}

/** Polls until check returns true, at most timeoutMs. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
