/**
 * The daemon's StateStore, one suite run against both backends: the embedded log store and
 * PostgreSQL (a private server started for this file). "Reopen" is always a new store object
 * on the same directory or database — what a daemon restart sees.
 *
 * Then what only one backend has: the embedded store survives SIGKILL of a writer at any
 * moment (a forked child, several times), ignores a torn last line with a warning, refuses a
 * damaged middle, and is locked to one process; PostgreSQL migrates safely from several
 * daemons at once, times statements out, and never shows the password in an error.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { inspect } from 'node:util';
import pg from 'pg';
import ts from 'typescript';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { StoreError, type Retention, type StoreErrorReason, type StoreLog } from '../../src/adapters/store/common.js';
import { LOCK_FILE, LOG_FILE, SNAPSHOT_FILE, openEmbeddedStore } from '../../src/adapters/store/embedded.js';
import { openStore } from '../../src/adapters/store/index.js';
import { MIGRATIONS } from '../../src/adapters/store/migrations/index.js';
import { openPostgresStore } from '../../src/adapters/store/postgres.js';
import type { InstanceHistory, RolloutRecord, StateStore } from '../../src/engine/ports.js';
import { freePort } from '../helpers/mosquitto.js';
import { startPostgres, type PostgresServer } from '../helpers/postgres.js';

const ROOT = resolve(import.meta.dirname, '../..');
const T0 = Date.parse('2026-03-01T12:00:00.000Z');
const at = (seconds: number) => new Date(T0 + seconds * 1000).toISOString();
const FLEET = 'redforge';

let serverStarting: Promise<PostgresServer> | undefined;
/** The private PostgreSQL server, started by the first test that needs it (embedded tests never wait for it). */
const postgres = () => (serverStarting ??= startPostgres());
const tempDirs: string[] = [];
const openStores: StateStore[] = [];
const children: ChildProcess[] = [];

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

afterEach(async () => {
  for (const s of openStores.splice(0)) await s.close().catch(() => undefined);
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

afterAll(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await (await serverStarting?.catch(() => undefined))?.stop();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** Log lines a store wrote, for assertions. */
function captureLog(): StoreLog & { lines: { level: string; msg: string; obj: object }[] } {
  const lines: { level: string; msg: string; obj: object }[] = [];
  return {
    lines,
    warn: (obj, msg) => lines.push({ level: 'warn', msg, obj }),
    info: (obj, msg) => lines.push({ level: 'info', msg, obj }),
  };
}

interface Place {
  /** A new store object on the same data: a daemon restart. */
  open(log?: StoreLog, readOnly?: boolean): Promise<StateStore>;
}

interface Backend {
  name: 'embedded' | 'postgres';
  /** A new, empty place for a store. */
  fresh(retention?: Partial<Retention>): Promise<Place>;
}

const backends: Backend[] = [
  {
    name: 'embedded',
    async fresh(retention) {
      const dir = join(tempDir('tower-store-'), 'store');
      return {
        async open(log, readOnly) {
          const s = await openStore({ dir, retention, log, readOnly });
          openStores.push(s);
          return s;
        },
      };
    },
  },
  {
    name: 'postgres',
    async fresh(retention) {
      const url = await (await postgres()).createDatabase();
      return {
        async open(log, readOnly) {
          const s = await openStore({ databaseUrl: url, dir: '/nonexistent', retention, log, readOnly });
          openStores.push(s);
          return s;
        },
      };
    },
  },
];

function rollout(id: string, startedAt: string, extra: Partial<RolloutRecord> = {}): Omit<RolloutRecord, 'outcome' | 'finishedAt'> {
  return { id, fleet: FLEET, revision: `rev-${id}`, author: 'ada', message: `deploy ${id}`, startedAt, ...extra };
}

function history(outcome: string, phases: string[]): InstanceHistory {
  return { path: 'blue-green', outcome, phases: phases.map((phase, i) => ({ phase, startedAt: at(i), ms: 100 + i })) };
}

async function reason(p: Promise<unknown>): Promise<StoreErrorReason> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(StoreError);
    return (err as StoreError).reason;
  }
  throw new Error('expected the call to fail');
}

/** Everything a store answers about a fleet, to compare before and after a restart. */
async function dump(s: StateStore, fleet = FLEET) {
  const h = await s.history(fleet, 10_000);
  return {
    history: h,
    rollouts: await Promise.all(h.map((r) => s.getRollout(r.id))),
    open: await s.openRollout(fleet),
    audit: await s.auditTrail(fleet, 10_000),
    revisions: await s.revisions(fleet),
  };
}

describe.each(backends)('StateStore: $name', (backend) => {
  it('migrate() is idempotent, also on a reopened store', async () => {
    const place = await backend.fresh();
    const s = await place.open();
    await s.migrate();
    await s.migrate();
    await s.beginRollout(rollout('r1', at(0)));
    await s.migrate();
    await s.close();
    const s2 = await place.open();
    await s2.migrate();
    expect((await s2.getRollout('r1'))?.outcome).toBe('running');
    expect(s2.kind).toBe(backend.name);
  });

  it('journals a rollout (last state wins), finds it running after a restart, and not after finish', async () => {
    const place = await backend.fresh();
    const s = await place.open();
    await s.migrate();
    const plan = { waves: [['ingest', 'query']], unchanged: [] };
    await s.beginRollout(rollout('r1', at(0), { plan }));
    for (let n = 1; n <= 3; n++) await s.saveInstanceState('r1', 'ingest', { phase: ['DRAIN', 'DEPLOY', 'VERIFY'][n - 1], n });
    await s.saveInstanceState('r1', 'query', { phase: 'DRAIN', n: 1 });
    await s.saveInstanceHistory('r1', 'ingest', history('running', ['DRAIN', 'DEPLOY']));
    await s.saveInstanceHistory('r1', 'ingest', history('succeeded', ['DRAIN', 'DEPLOY', 'VERIFY']));

    const open = await s.openRollout(FLEET);
    expect(open?.rollout).toEqual({ ...rollout('r1', at(0), { plan }), outcome: 'running', instances: { ingest: history('succeeded', ['DRAIN', 'DEPLOY', 'VERIFY']) } });
    expect(open?.states).toEqual({ ingest: { phase: 'VERIFY', n: 3 }, query: { phase: 'DRAIN', n: 1 } });
    expect(await s.openRollout('another-fleet')).toBeUndefined();
    await s.close();

    const s2 = await place.open();
    await s2.migrate();
    expect(await s2.openRollout(FLEET)).toEqual(open);
    await s2.finishRollout('r1', 'succeeded', at(90));
    expect(await s2.openRollout(FLEET)).toBeUndefined();
    const done = await s2.getRollout('r1');
    expect(done).toMatchObject({ id: 'r1', outcome: 'succeeded', finishedAt: at(90), plan, instances: { ingest: { outcome: 'succeeded' } } });
    expect(done?.error).toBeUndefined();
    await s2.close();

    const s3 = await place.open();
    expect(await s3.openRollout(FLEET)).toBeUndefined();
    expect(await s3.getRollout('r1')).toEqual(done);
    expect(await s3.getRollout('nope')).toBeUndefined();
  });

  it('after a crash, openRollout gives the newest rollout still running; a finish records its error', async () => {
    const s = await (await backend.fresh()).open();
    await s.migrate();
    await s.beginRollout(rollout('old', at(0)));
    await s.beginRollout(rollout('new', at(10)));
    await s.saveInstanceState('new', 'ingest', 'a plain string state');
    expect(await s.openRollout(FLEET)).toMatchObject({ rollout: { id: 'new' }, states: { ingest: 'a plain string state' } });
    await s.finishRollout('new', 'failed', at(20), 'verify: smoke check "converts text" got 500');
    expect(await s.openRollout(FLEET)).toMatchObject({ rollout: { id: 'old' }, states: {} });
    expect(await s.getRollout('new')).toMatchObject({ outcome: 'failed', error: 'verify: smoke check "converts text" got 500' });
  });

  it('history is newest first, per fleet, with a limit (ties: the later begun first)', async () => {
    const s = await (await backend.fresh()).open();
    await s.migrate();
    for (const [id, t] of [['c', 30], ['a', 10], ['e', 50], ['b', 20], ['d', 40], ['d2', 40]] as const) await s.beginRollout(rollout(id, at(t)));
    await s.finishRollout('b', 'rolled-back', at(25), 'wave 1 failed');
    await s.beginRollout({ ...rollout('x', at(99)), fleet: 'other' });
    expect((await s.history(FLEET, 3)).map((r) => r.id)).toEqual(['e', 'd2', 'd']);
    expect((await s.history(FLEET, 100)).map((r) => r.id)).toEqual(['e', 'd2', 'd', 'c', 'b', 'a']);
    expect((await s.history(FLEET, 100))[4]).toMatchObject({ id: 'b', outcome: 'rolled-back', error: 'wave 1 failed', finishedAt: at(25) });
    expect(await s.history(FLEET, 0)).toEqual([]);
    expect((await s.history('other', 10)).map((r) => r.id)).toEqual(['x']);
    expect(await s.history('nobody', 10)).toEqual([]);
  });

  it('audit trail is newest first, per fleet, with a limit', async () => {
    const s = await (await backend.fresh()).open();
    await s.migrate();
    for (const t of [3, 1, 4, 2, 5]) await s.audit({ at: at(t), fleet: FLEET, actor: t % 2 ? 'tower' : 'webhook', action: `act-${t}`, revision: `rev${t}`, detail: { t, nested: { list: [t, null, 'x'] } } });
    await s.audit({ at: at(6), fleet: 'other', actor: 'drift', action: 'edited by hand' });
    const trail = await s.auditTrail(FLEET, 3);
    expect(trail.map((e) => e.action)).toEqual(['act-5', 'act-4', 'act-3']);
    expect(trail[0]).toEqual({ at: at(5), fleet: FLEET, actor: 'tower', action: 'act-5', revision: 'rev5', detail: { t: 5, nested: { list: [5, null, 'x'] } } });
    expect(await s.auditTrail(FLEET, 100)).toHaveLength(5);
    expect(await s.auditTrail('other', 100)).toEqual([{ at: at(6), fleet: 'other', actor: 'drift', action: 'edited by hand' }]);
  });

  it('keeps the attempted and the applied revision apart', async () => {
    const place = await backend.fresh();
    const s = await place.open();
    await s.migrate();
    expect(await s.revisions(FLEET)).toEqual({});
    await s.setApplied(FLEET, { revision: 'aaa', at: at(1) });
    await s.setAttempted(FLEET, { revision: 'bbb', at: at(2), outcome: 'failed', error: 'verify failed on ingest' });
    expect(await s.revisions(FLEET)).toEqual({ applied: { revision: 'aaa', at: at(1) }, attempted: { revision: 'bbb', at: at(2), outcome: 'failed', error: 'verify failed on ingest' } });
    await s.setAttempted(FLEET, { revision: 'ccc', at: at(3), outcome: 'running' });
    await s.setAttempted('other', { revision: 'zzz', at: at(3), outcome: 'invalid', error: 'fleet.yaml:3:1: error' });
    expect(await s.revisions(FLEET)).toEqual({ applied: { revision: 'aaa', at: at(1) }, attempted: { revision: 'ccc', at: at(3), outcome: 'running' } });
    await s.setApplied(FLEET, { revision: 'ccc', at: at(4) });
    await s.close();
    const s2 = await place.open();
    expect(await s2.revisions(FLEET)).toEqual({ applied: { revision: 'ccc', at: at(4) }, attempted: { revision: 'ccc', at: at(3), outcome: 'running' } });
    expect(await s2.revisions('other')).toEqual({ attempted: { revision: 'zzz', at: at(3), outcome: 'invalid', error: 'fleet.yaml:3:1: error' } });
  });

  it('concurrent writes from Promise.all lose nothing', async () => {
    const place = await backend.fresh();
    const s = await place.open();
    await s.migrate();
    await s.beginRollout(rollout('r', at(0)));
    const N = 60;
    await Promise.all([
      ...Array.from({ length: N }, (_, i) => s.audit({ at: at(i), fleet: FLEET, actor: 'tower', action: 'step', detail: { i } })),
      ...Array.from({ length: N }, (_, i) => s.saveInstanceHistory('r', `i${i}`, history('succeeded', ['DEPLOY']))),
      ...Array.from({ length: N }, (_, i) => s.saveInstanceState('r', `i${i}`, { i })),
      ...Array.from({ length: 10 }, (_, i) => s.beginRollout({ ...rollout(`p${i}`, at(100 + i)), fleet: `fleet-${i}` })),
    ]);
    const check = async (store: StateStore) => {
      const trail = await store.auditTrail(FLEET, 1000);
      expect(new Set(trail.map((e) => (e.detail as { i: number }).i)).size).toBe(N);
      expect(Object.keys((await store.getRollout('r'))?.instances ?? {})).toHaveLength(N);
      const open = await store.openRollout(FLEET);
      expect(Object.keys(open?.states ?? {})).toHaveLength(N);
      expect(open?.states.i7).toEqual({ i: 7 });
      for (let i = 0; i < 10; i++) expect((await store.openRollout(`fleet-${i}`))?.rollout.id).toBe(`p${i}`);
    };
    await check(s);
    await s.close();
    await check(await place.open());
  });

  it('close() then reopen keeps everything; a closed store refuses calls', async () => {
    const place = await backend.fresh();
    const s = await place.open();
    await s.migrate();
    for (let i = 0; i < 8; i++) {
      await s.beginRollout(rollout(`r${i}`, at(i * 10), { plan: { i } }));
      await s.saveInstanceState(`r${i}`, 'ingest', { i });
      await s.saveInstanceHistory(`r${i}`, 'ingest', history(i % 2 ? 'failed' : 'succeeded', ['DRAIN', 'DEPLOY']));
      if (i < 7) await s.finishRollout(`r${i}`, i % 2 ? 'rolled-back' : 'succeeded', at(i * 10 + 5), i % 2 ? 'smoke failed' : undefined);
      await s.audit({ at: at(i * 10), fleet: FLEET, actor: 'tower', action: 'rollout', revision: `rev-r${i}`, detail: { i } });
    }
    await s.setAttempted(FLEET, { revision: 'rev-r7', at: at(70), outcome: 'running' });
    await s.setApplied(FLEET, { revision: 'rev-r6', at: at(65) });
    const before = await dump(s);
    expect(before.history).toHaveLength(8);
    expect(before.open?.rollout.id).toBe('r7');
    await s.close();
    await s.close();
    expect(await reason(s.history(FLEET, 1))).toBe('Closed');
    expect(await reason(s.audit({ at: at(1), fleet: FLEET, actor: 'a', action: 'b' }))).toBe('Closed');
    const s2 = await place.open();
    expect(await dump(s2)).toEqual(before);
  });

  it('refuses what it cannot store, with typed errors, and stores nothing of it', async () => {
    const s = await (await backend.fresh()).open();
    await s.migrate();
    await s.beginRollout(rollout('r', at(0)));
    expect(await reason(s.saveInstanceState('nope', 'ingest', {}))).toBe('NotFound');
    expect(await reason(s.saveInstanceHistory('nope', 'ingest', history('x', [])))).toBe('NotFound');
    expect(await reason(s.finishRollout('nope', 'succeeded', at(1)))).toBe('NotFound');
    expect(await reason(s.beginRollout(rollout('r', at(5))))).toBe('Conflict');
    expect(await reason(s.saveInstanceState('r', 'ingest', { big: 1n }))).toBe('Invalid');
    expect(await reason(s.saveInstanceState('r', 'ingest', undefined))).toBe('Invalid');
    expect(await reason(s.saveInstanceState('r', 'ingest', { s: 'nul \u0000 char' }))).toBe('Invalid');
    expect(await reason(s.beginRollout(rollout('r2', 'yesterday')))).toBe('Invalid');
    expect(await reason(s.finishRollout('r', 'running', at(1)))).toBe('Invalid');
    expect(await reason(s.audit({ at: at(1), fleet: '', actor: 'a', action: 'b' }))).toBe('Invalid');
    expect((await s.history(FLEET, 10)).map((r) => r.id)).toEqual(['r']);
    expect(await s.openRollout(FLEET)).toMatchObject({ rollout: { startedAt: at(0) }, states: {} });
  });

  it('stores values as JSON and times as UTC ISO, the same in both backends', async () => {
    const s = await (await backend.fresh()).open();
    await s.migrate();
    await s.beginRollout(rollout('with-null-plan', '2026-03-01T13:00:00+01:00', { plan: null }));
    await s.beginRollout(rollout('without-plan', at(1)));
    await s.saveInstanceState('with-null-plan', 'a', null);
    await s.saveInstanceState('with-null-plan', 'b', { when: new Date(T0), gone: undefined, list: [1, 'two', { three: 3 }] });
    const r = await s.getRollout('with-null-plan');
    expect(r?.startedAt).toBe('2026-03-01T12:00:00.000Z');
    expect(r && 'plan' in r && r.plan === null).toBe(true);
    expect('plan' in ((await s.getRollout('without-plan')) ?? {})).toBe(false);
    expect((await s.history(FLEET, 1))[0]?.id).toBe('without-plan');
    await s.finishRollout('without-plan', 'superseded', at(2));
    const states = (await s.openRollout(FLEET))?.states;
    expect(states).toEqual({ a: null, b: { when: new Date(T0).toISOString(), list: [1, 'two', { three: 3 }] } });
  });

  it('opens read-only beside a writer: sees what was written, refuses writes', async () => {
    const place = await backend.fresh();
    const writer = await place.open();
    await writer.migrate();
    await writer.beginRollout(rollout('r', at(0)));
    await writer.saveInstanceState('r', 'ingest', { phase: 'DEPLOY' });
    await writer.audit({ at: at(1), fleet: FLEET, actor: 'tower', action: 'begin' });
    const reader = await place.open(undefined, true);
    await reader.migrate();
    expect(await dump(reader)).toEqual(await dump(writer));
    expect(await reason(reader.audit({ at: at(2), fleet: FLEET, actor: 'tower', action: 'x' }))).toBe('Invalid');
    expect(await reason(reader.finishRollout('r', 'succeeded', at(2)))).toBe('Invalid');
    await reader.close();
    await writer.finishRollout('r', 'succeeded', at(3));
  });

  it('keeps history bounded: the newest finished rollouts and audit entries, never a running rollout', async () => {
    const place = await backend.fresh({ rollouts: 3, audit: 4 });
    const s = await place.open();
    await s.migrate();
    await s.beginRollout(rollout('still-running', at(0)));
    await s.saveInstanceState('still-running', 'ingest', { phase: 'DEPLOY' });
    for (let i = 1; i <= 6; i++) {
      await s.beginRollout(rollout(`r${i}`, at(i)));
      await s.saveInstanceState(`r${i}`, 'ingest', { i });
      await s.finishRollout(`r${i}`, 'succeeded', at(i + 0.5));
    }
    for (let i = 1; i <= 10; i++) await s.audit({ at: at(i), fleet: FLEET, actor: 'tower', action: `a${i}` });
    const expected = async (store: StateStore) => {
      expect((await store.history(FLEET, 100)).map((r) => r.id)).toEqual(['r6', 'r5', 'r4', 'still-running']);
      expect(await store.getRollout('r1')).toBeUndefined();
      expect(await store.openRollout(FLEET)).toMatchObject({ rollout: { id: 'still-running' }, states: { ingest: { phase: 'DEPLOY' } } });
      expect((await store.auditTrail(FLEET, 100)).map((e) => e.action)).toEqual(['a10', 'a9', 'a8', 'a7']);
    };
    await expected(s);
    await s.close();
    await expected(await place.open());
  });
});

// ---------------------------------------------------------------- embedded only

/** The embedded store's modules as plain JS, so that a child node process can load them. */
function transpileStoreForChild(): string {
  const out = tempDir('tower-store-child-');
  const files = [
    'src/adapters/store/embedded.ts',
    'src/adapters/store/embedded/compaction.ts',
    'src/adapters/store/embedded/files.ts',
    'src/adapters/store/embedded/lock.ts',
    'src/adapters/store/embedded/log.ts',
    'src/adapters/store/embedded/model.ts',
    'src/adapters/store/common.ts',
    'src/engine/ports.ts',
  ];
  for (const file of files) {
    const { outputText } = ts.transpileModule(readFileSync(join(ROOT, file), 'utf8'), { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 }, fileName: file });
    const target = join(out, file.replace(/\.ts$/, '.js'));
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, outputText);
  }
  writeFileSync(join(out, 'package.json'), JSON.stringify({ type: 'module' }));
  // The writer: batches of 8 audit entries plus one journal write, all concurrent (group
  // commit); after each batch is acknowledged it prints the highest n it holds. "hold" only
  // opens the store and waits (for the lock tests).
  writeFileSync(
    join(out, 'child.js'),
    `
import { openEmbeddedStore } from './src/adapters/store/embedded.js';
const [dir, mode, keep, compactBytes] = process.argv.slice(2);
const log = { warn: (o, m) => process.stderr.write('WARN ' + m + '\\n'), info: (o, m) => process.stderr.write('INFO ' + m + '\\n') };
const store = await openEmbeddedStore({ dir, log, compactBytes: Number(compactBytes ?? 16384), retention: { audit: Number(keep ?? 1e9), rollouts: 1e9 } });
if (mode === 'hold') {
  process.stdout.write('ready\\n');
  setInterval(() => {}, 1000);
} else {
  let n = (await store.auditTrail('crash', 1))[0]?.detail?.n ?? 0;
  const id = 'r-' + process.pid;
  await store.beginRollout({ id, fleet: 'crash', startedAt: new Date(${T0} + n).toISOString() });
  for (let round = 0; round < 100000; round++) {
    const batch = [];
    for (let k = 0; k < 8; k++) {
      n++;
      batch.push(store.audit({ at: new Date(${T0} + n).toISOString(), fleet: 'crash', actor: 'child', action: 'write', detail: { n, pad: 'x'.repeat(n % 97) } }));
    }
    batch.push(store.saveInstanceState(id, 'ingest', { n }));
    await Promise.all(batch);
    process.stdout.write(n + '\\n');
  }
}
`,
  );
  return out;
}

interface ChildRun {
  child: ChildProcess;
  /** Highest n the child reported acknowledged so far. */
  acked(): number;
  stderr(): string;
  waitFor(pred: () => boolean, timeoutMs: number): Promise<void>;
  exited: Promise<void>;
}

function runChild(childDir: string, dir: string, mode: 'write' | 'hold', keep = 1e9, compactBytes = 16 * 1024): ChildRun {
  const child = spawn(process.execPath, [join(childDir, 'child.js'), dir, mode, String(keep), String(compactBytes)], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let acked = 0;
  let ready = false;
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    const lines = out.split('\n');
    out = lines.pop() ?? '';
    for (const line of lines) {
      if (line === 'ready') ready = true;
      else if (/^\d+$/.test(line)) acked = Math.max(acked, Number(line));
    }
  });
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  return {
    child,
    acked: () => (mode === 'hold' ? (ready ? 1 : 0) : acked),
    stderr: () => err,
    exited,
    async waitFor(pred, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (!pred()) {
        if (child.exitCode !== null) throw new Error(`the child exited (${child.exitCode}): ${err}`);
        if (Date.now() > deadline) throw new Error(`the child did not get there in ${timeoutMs} ms: ${err}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
  };
}

describe('embedded store: crash safety, torn writes, compaction, lock', () => {
  let childDir: string;
  beforeAll(() => {
    childDir = transpileStoreForChild();
  });

  // Two ways to kill: at a random moment with everything kept (every write ever acknowledged
  // is checked), and aimed at compaction — killed the moment the snapshot's tmp file appears,
  // with a small retention so that snapshots are small and frequent (the newest entries are checked).
  it.each([
    { name: 'at random moments, everything kept', keep: 1e9, compactBytes: 16 * 1024, rounds: 6, aim: false },
    { name: 'aimed at compaction, 200 entries kept', keep: 200, compactBytes: 4 * 1024, rounds: 8, aim: true },
  ])('loses no acknowledged write when the writer is SIGKILLed mid-stream, again and again: $name', async ({ keep, compactBytes, rounds, aim }) => {
    const dir = join(tempDir('tower-crash-'), 'store');
    mkdirSync(dir, { recursive: true });
    let ackedTotal = 0;
    let torn = 0;
    let compactions = 0;
    let midCompaction = 0;
    for (let round = 0; round < rounds; round++) {
      const run = runChild(childDir, dir, 'write', keep, compactBytes);
      // Past start-up and a random stretch of writes; then kill it while it writes.
      const target = ackedTotal + (aim ? 50 : 200 + Math.floor(Math.random() * 1200));
      await run.waitFor(() => run.acked() >= target, 20_000);
      if (aim) {
        const watcher = watch(dir, (_event, file) => {
          if (file === `${SNAPSHOT_FILE}.tmp`) run.child.kill('SIGKILL');
        });
        await Promise.race([run.exited, new Promise((r) => setTimeout(r, 5_000))]);
        watcher.close();
      } else {
        await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 15)));
      }
      run.child.kill('SIGKILL');
      await run.exited;
      expect(run.child.signalCode).toBe('SIGKILL');
      const acked = run.acked();
      compactions += (run.stderr().match(/INFO state store compacted/g) ?? []).length;
      if (existsSync(join(dir, `${SNAPSHOT_FILE}.tmp`))) midCompaction++;

      const log = captureLog();
      const s = await openEmbeddedStore({ dir, log, retention: { audit: keep, rollouts: 1e9 } });
      torn += log.lines.filter((l) => /torn last record/.test(l.msg)).length;
      const seen = new Set((await s.auditTrail('crash', 10_000)).map((e) => (e.detail as { n: number }).n));
      const missing: number[] = [];
      // With a small retention, up to one unacknowledged batch (8) may have pushed older ones out.
      for (let n = Math.max(1, acked - keep + 9); n <= acked; n++) if (!seen.has(n)) missing.push(n);
      expect(missing, `round ${round}: acknowledged ${acked}`).toEqual([]);
      // The journal of this round's rollout holds at least the last acknowledged state.
      const open = await s.openRollout('crash');
      expect(open?.rollout.id).toBe(`r-${run.child.pid}`);
      expect((open?.states.ingest as { n: number }).n).toBeGreaterThanOrEqual(acked);
      expect(log.lines.filter((l) => l.level === 'warn' && !/torn last record|taking over a lock/.test(l.msg))).toEqual([]);
      await s.close();
      ackedTotal = Math.max(...seen);
    }
    console.info(`crash test (${aim ? 'aimed' : 'random'}): ${rounds} SIGKILLs, ${ackedTotal} writes, ${compactions} compactions, ${midCompaction} kills with a snapshot half-written, ${torn} torn tails ignored`);
    expect(compactions).toBeGreaterThan(0);
  });

  it('ignores a torn last line with a warning, and appends after it cleanly', async () => {
    const dir = join(tempDir('tower-torn-'), 'store');
    const s = await openEmbeddedStore({ dir });
    await s.beginRollout(rollout('r', at(0)));
    await s.saveInstanceState('r', 'ingest', { n: 1 });
    await s.close();
    const good = readFileSync(join(dir, LOG_FILE), 'utf8');
    // A write cut short: half a record, no newline.
    appendFileSync(join(dir, LOG_FILE), '{"seq":3,"type":"rollout.state","id":"r","instance":"ingest","state":{"n":');

    const log = captureLog();
    const s2 = await openEmbeddedStore({ dir, log });
    expect(log.lines).toEqual([expect.objectContaining({ level: 'warn', msg: expect.stringMatching(/ignoring a torn last record \(it has no newline/), obj: expect.objectContaining({ line: 3 }) })]);
    expect((await s2.openRollout(FLEET))?.states).toEqual({ ingest: { n: 1 } });
    expect(readFileSync(join(dir, LOG_FILE), 'utf8')).toBe(good);
    await s2.saveInstanceState('r', 'ingest', { n: 2 });
    await s2.close();

    // A complete line that is not JSON (e.g. zeros after a power cut) is a torn tail too.
    appendFileSync(join(dir, LOG_FILE), '\u0000\u0000\u0000\n');
    const log3 = captureLog();
    const s3 = await openEmbeddedStore({ dir, log: log3 });
    expect(log3.lines.map((l) => l.msg)).toEqual([expect.stringMatching(/ignoring a torn last record \(it is not a JSON record\)/)]);
    expect((await s3.openRollout(FLEET))?.states).toEqual({ ingest: { n: 2 } });
    await s3.close();
    const s4 = await openEmbeddedStore({ dir, log: log3 });
    expect((await s4.openRollout(FLEET))?.states).toEqual({ ingest: { n: 2 } });
    expect(log3.lines).toHaveLength(1);
  });

  it('refuses to open a log damaged in the middle rather than drop acknowledged records', async () => {
    const dir = join(tempDir('tower-corrupt-'), 'store');
    const s = await openEmbeddedStore({ dir });
    for (let i = 0; i < 3; i++) await s.audit({ at: at(i), fleet: FLEET, actor: 'tower', action: `a${i}` });
    await s.close();
    const lines = readFileSync(join(dir, LOG_FILE), 'utf8').split('\n');
    lines[1] = lines[1]!.slice(0, 20);
    writeFileSync(join(dir, LOG_FILE), lines.join('\n'));
    const err = await openEmbeddedStore({ dir }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).reason).toBe('Corrupt');
    expect((err as StoreError).message).toMatch(/damaged at line 2 .* line 3 after it is intact/);
    // Refusing also released the lock.
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
  });

  it('compacts into a snapshot past compactBytes and reopens to the same state', async () => {
    const dir = join(tempDir('tower-compact-'), 'store');
    const log = captureLog();
    const s = await openEmbeddedStore({ dir, log, compactBytes: 8 * 1024, retention: { rollouts: 20, audit: 50 } });
    for (let i = 0; i < 60; i++) {
      await s.beginRollout(rollout(`r${i}`, at(i), { plan: { waves: [[`i${i}`]] } }));
      await Promise.all([s.saveInstanceState(`r${i}`, 'ingest', { i }), s.saveInstanceHistory(`r${i}`, 'ingest', history('succeeded', ['DEPLOY'])), s.audit({ at: at(i), fleet: FLEET, actor: 'tower', action: 'x', detail: { i } })]);
      if (i < 59) await s.finishRollout(`r${i}`, 'succeeded', at(i + 0.5));
    }
    const before = await dump(s);
    expect(before.history).toHaveLength(21);
    expect(before.audit).toHaveLength(50);
    await s.close();
    const compactions = log.lines.filter((l) => l.msg === 'state store compacted').length;
    expect(compactions).toBeGreaterThan(2);
    expect(statSync(join(dir, SNAPSHOT_FILE)).size).toBeGreaterThan(0);
    expect(statSync(join(dir, LOG_FILE)).size).toBeLessThan(Math.max(8 * 1024, statSync(join(dir, SNAPSHOT_FILE)).size) + 2048);
    // A crash between the snapshot's rename and the log's truncation: the old log is replayed
    // on top of the snapshot, and its records (seq <= the snapshot's) must be skipped.
    const snap = JSON.parse(readFileSync(join(dir, SNAPSHOT_FILE), 'utf8')) as { seq: number };
    const options = { dir, retention: { rollouts: 20, audit: 50 } };
    const s2 = await openEmbeddedStore(options);
    expect(await dump(s2)).toEqual(before);
    await s2.audit({ at: at(100), fleet: FLEET, actor: 'tower', action: 'after' });
    await s2.close();
    const logText = readFileSync(join(dir, LOG_FILE), 'utf8');
    const stale = `{"seq":${snap.seq},"type":"audit","entry":{"at":"${at(0)}","fleet":"${FLEET}","actor":"tower","action":"replayed twice?"}}\n`;
    writeFileSync(join(dir, LOG_FILE), stale + logText);
    writeFileSync(join(dir, `${SNAPSHOT_FILE}.tmp`), '{"half a snapshot');
    const s3 = await openEmbeddedStore(options);
    expect((await s3.auditTrail(FLEET, 100)).map((e) => e.action)).not.toContain('replayed twice?');
    expect((await s3.auditTrail(FLEET, 1))[0]?.action).toBe('after');
    expect(existsSync(join(dir, `${SNAPSHOT_FILE}.tmp`))).toBe(false);
    await s3.close();
  });

  it('is locked to one process: a second open fails naming the holder; a dead holder is taken over', async () => {
    const dir = join(tempDir('tower-lock-'), 'store');
    const s = await openEmbeddedStore({ dir });
    expect(await reason(openEmbeddedStore({ dir }))).toBe('Locked');
    await s.close();

    const run = runChild(childDir, dir, 'hold');
    await run.waitFor(() => run.acked() === 1, 20_000);
    const err = await openEmbeddedStore({ dir }).then(
      () => undefined,
      (e: unknown) => e as StoreError,
    );
    expect(err?.reason).toBe('Locked');
    expect(err?.message).toContain(`open by another process (pid ${run.child.pid}`);
    expect(err?.message).toMatch(/only one Tower may write a store directory/);
    run.child.kill('SIGKILL');
    await run.exited;

    const log = captureLog();
    const s2 = await openEmbeddedStore({ dir, log });
    expect(log.lines.map((l) => l.msg)).toEqual(['state store: taking over a lock whose process is gone']);
    await s2.close();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);

    // A lock with our own pid, left by an earlier life of this pid (pid 1 in a container).
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: process.pid, since: at(0), token: 'old' }));
    const s3 = await openEmbeddedStore({ dir });
    await s3.close();
    // A live pid whose start time differs: the pid was reused by another process.
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: process.ppid, start: '1', since: at(0), token: 'reused' }));
    const s4 = await openEmbeddedStore({ dir });
    await s4.close();
  });
});

// ---------------------------------------------------------------- postgres only

describe('postgres store: migrations, timeouts, secrets', () => {
  let server: PostgresServer;
  beforeAll(async () => {
    server = await postgres();
  });

  it('records each migration once, however often and however many daemons migrate at once', async () => {
    const url = await server.createDatabase();
    const stores = await Promise.all(Array.from({ length: 4 }, () => openStore({ databaseUrl: url, dir: '/nonexistent' })));
    openStores.push(...stores);
    await Promise.all(stores.map((s) => s.migrate()));
    await Promise.all(stores.map((s) => s.migrate()));
    const db = url.slice(url.lastIndexOf('/') + 1);
    const { rows } = await server.sql('SELECT version, name FROM tower_migrations ORDER BY version', [], db);
    expect(rows).toEqual(MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
    // All of them work on the one schema.
    await Promise.all(stores.map((s, i) => s.beginRollout(rollout(`r${i}`, at(i)))));
    expect(await stores[0]!.history(FLEET, 10)).toHaveLength(4);
  });

  it('refuses a schema newer than it knows', async () => {
    const url = await server.createDatabase();
    const s = await openStore({ databaseUrl: url, dir: '/nonexistent' });
    openStores.push(s);
    await s.migrate();
    await server.sql("INSERT INTO tower_migrations (version, name) VALUES (999, 'from the future')", [], url.slice(url.lastIndexOf('/') + 1));
    const err = await s.migrate().then(
      () => undefined,
      (e: unknown) => e as StoreError,
    );
    expect(err?.reason).toBe('Incompatible');
    expect(err?.message).toMatch(/schema is at version 999, this Tower knows up to 1/);
  });

  it('fails a statement that waits past the statement timeout as Timeout, instead of hanging', async () => {
    const url = await server.createDatabase();
    const s = openPostgresStore({ url, statementTimeoutMs: 300 });
    openStores.push(s);
    await s.migrate();
    await s.beginRollout(rollout('r', at(0)));
    const blocker = new pg.Client({ connectionString: url });
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query("SELECT * FROM tower_rollouts WHERE id = 'r' FOR UPDATE");
      const started = Date.now();
      const err = await s.finishRollout('r', 'succeeded', at(1)).then(
        () => undefined,
        (e: unknown) => e as StoreError,
      );
      expect(err?.reason).toBe('Timeout');
      expect(err?.transient).toBe(true);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await blocker.query('ROLLBACK');
      await blocker.end();
    }
    await s.finishRollout('r', 'succeeded', at(1));
    expect((await s.getRollout('r'))?.outcome).toBe('succeeded');
  });

  it('never shows the password: refused login, denied query, unreachable server, malformed URL, logs', async () => {
    const db = `secrets_${process.pid}`;
    const superUrl = await server.createDatabase(db);
    const admin = await openStore({ databaseUrl: superUrl, dir: '/nonexistent' });
    openStores.push(admin);
    await admin.migrate();
    const right = 'R1ght/P@ss:w%rd-7c2e';
    const wrong = 'Wr0ng/P@ss:w%rd-91ab';
    await server.sql(`CREATE ROLE tower_app LOGIN PASSWORD '${right}'`);
    const forbidden = [right, wrong, encodeURIComponent(right), encodeURIComponent(wrong)];
    const log = captureLog();
    const leaks = (err: unknown) => {
      const texts = [String(err), (err as Error).stack ?? '', JSON.stringify(err), inspect(err, { depth: 10, showHidden: true }), JSON.stringify(log.lines)];
      return forbidden.filter((p) => texts.some((t) => t.includes(p)));
    };
    const failure = async (p: Promise<unknown>): Promise<StoreError> => {
      const err = await p.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(StoreError);
      expect(leaks(err)).toEqual([]);
      return err as StoreError;
    };

    // The server refuses the password.
    const badLogin = await openStore({ databaseUrl: server.urlFor(db, 'tower_app', wrong), dir: '/nonexistent', log });
    openStores.push(badLogin);
    const refused = await failure(badLogin.history(FLEET, 1));
    expect(refused.reason).toBe('AuthFailed');
    expect(refused.message).toMatch(/password authentication failed for user "tower_app"/);
    expect(refused.message).toContain('tower_app:***@127.0.0.1');
    expect(inspect(badLogin, { depth: 10, showHidden: true })).not.toContain(wrong);

    // Logged in, but the role may not read the tables: a query error.
    const noGrant = await openStore({ databaseUrl: server.urlFor(db, 'tower_app', right), dir: '/nonexistent', log });
    openStores.push(noGrant);
    const denied = await failure(noGrant.history(FLEET, 1));
    expect(denied.message).toMatch(/permission denied for table tower_rollouts/);
    expect(denied.code).toBe('42501');
    await failure(noGrant.migrate());

    // Nothing listens there.
    const closedPort = await freePort();
    const nowhere = await openStore({ databaseUrl: `postgres://tower_app:${encodeURIComponent(wrong)}@127.0.0.1:${closedPort}/${db}`, dir: '/nonexistent', log });
    openStores.push(nowhere);
    const unreachable = await failure(nowhere.history(FLEET, 1));
    expect(unreachable.reason).toBe('Unavailable');
    expect(unreachable.transient).toBe(true);

    // A URL that does not parse, and a password given as a query parameter.
    await failure(openStore({ databaseUrl: `postgres://tower_app:${wrong}@127.0.0.1:notaport/${db}`, dir: '/nonexistent' }));
    const viaQuery = await openStore({ databaseUrl: `postgres://tower_app@127.0.0.1:${server.port}/${db}?password=${encodeURIComponent(wrong)}`, dir: '/nonexistent', log });
    openStores.push(viaQuery);
    expect(viaQuery.location).not.toContain('password');
    expect((await failure(viaQuery.history(FLEET, 1))).reason).toBe('AuthFailed');
    expect(forbidden.filter((p) => JSON.stringify(log.lines).includes(p))).toEqual([]);
  });
});
