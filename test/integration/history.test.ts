/**
 * tower history against a real embedded store, written as the daemon's recorder writes it
 * (rollouts, per-instance history, audit entries) and still open for writing, locked, while
 * the command reads it: newest first, who and what, phases and durations, the outcome and
 * error of a failed rollout, --limit, the JSON records bounded like the API's, --fleet,
 * and a state directory that manages nothing. And the same from PostgreSQL (DATABASE_URL).
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type OpenedStore } from '../../src/adapters/store/index.js';
import { main } from '../../src/cli.js';
import { bufferIo } from '../../src/commands/io.js';
import { STATUS_LIMITS } from '../../src/core/status.js';
import { startPostgres, type PostgresServer } from '../helpers/postgres.js';

const state = mkdtempSync(join(tmpdir(), 'tower-history-state-'));
let store: OpenedStore;
const LONG_ERROR = `smoke check failed: ${'x'.repeat(STATUS_LIMITS.messageChars + 500)}`;

async function tower(...args: string[]) {
  return towerWith('', ...args);
}

async function towerWith(databaseUrl: string, ...args: string[]) {
  const io = bufferIo({ ...process.env, DATABASE_URL: databaseUrl });
  const code = await main(args, io);
  return { code, out: io.out, err: io.err };
}

async function rollout(store: OpenedStore, id: string, startedAt: string, ms: number, fields: { revision: string; author?: string; message?: string; actor: string; outcome: 'succeeded' | 'rolled-back'; error?: string }) {
  const { actor, outcome, error, ...rest } = fields;
  await store.beginRollout({ id, fleet: 'redforge', startedAt, ...rest, plan: { order: 'sequential', waves: [] } });
  await store.audit({ at: startedAt, fleet: 'redforge', actor, action: 'rollout-started', revision: fields.revision });
  await store.saveInstanceHistory(id, 'ingest', {
    path: 'blue-green',
    outcome: outcome === 'succeeded' ? 'succeeded' : 'rolled-back',
    ...(error ? { error } : {}),
    phases: [
      { phase: 'DEPLOY', startedAt, ms: 930 },
      { phase: 'VERIFY', startedAt, ms: 210 },
    ],
  });
  await store.finishRollout(id, outcome, new Date(Date.parse(startedAt) + ms).toISOString(), error);
}

beforeAll(async () => {
  writeFileSync(join(state, 'registry.json'), JSON.stringify({ fleet: 'redforge', instances: {} }));
  // Open for writing (and locked) for the whole file, as a running daemon holds it.
  store = await openStore({ dir: join(state, 'store') });
  await store.migrate();
  await rollout(store, 'r1', '2026-12-01T10:00:00.000Z', 1_300, { revision: 'a'.repeat(40), author: 'Ann Example', message: 'ingest: bigger chunks\n\nlonger body', actor: 'tower', outcome: 'succeeded' });
  await rollout(store, 'r2', '2026-12-01T11:00:00.000Z', 4_200, { revision: 'b'.repeat(40), author: 'Bob Example', message: 'ingest: a broken flow', actor: 'tower', outcome: 'rolled-back', error: LONG_ERROR });
  await rollout(store, 'r3', '2026-12-01T12:00:00.000Z', 800, { revision: 'a'.repeat(40), actor: 'self-heal', outcome: 'succeeded' });
});

afterAll(async () => {
  await store?.close();
  rmSync(state, { recursive: true, force: true });
});

describe('tower history (embedded store)', () => {
  it('text: newest first, when, outcome, how long, revision, who and what; instances with their phases; the error', async () => {
    const r = await tower('history', '--state-dir', state);
    expect(r.code, r.err).toBe(0);
    const lines = r.out.split('\n');
    expect(lines[0]).toBe('fleet redforge: 3 rollouts, newest first');
    expect(lines[1]).toMatch(/^STARTED\s+OUTCOME\s+TOOK\s+REVISION\s+BY\s+WHAT$/);
    expect(lines[2]).toMatch(/^2026-12-01 12:00:00Z\s+succeeded\s+800 ms\s+aaaaaaaaaaaa\s+self-heal\s+-$/);
    expect(lines[3]).toBe('    ingest  blue-green  succeeded  DEPLOY 930 ms, VERIFY 210 ms');
    expect(lines[4]).toMatch(/^2026-12-01 11:00:00Z\s+rolled-back\s+4\.2 s\s+bbbbbbbbbbbb\s+Bob Example \(tower\)\s+ingest: a broken flow$/);
    expect(lines[5]).toMatch(/^ {4}ingest {2}blue-green {2}rolled-back {2}DEPLOY 930 ms, VERIFY 210 ms: smoke check failed: x+… \(and [\d,]+ more characters\)$/);
    expect(lines[6]).toMatch(/^ {4}error: smoke check failed: x+… \(and [\d,]+ more characters\)$/);
    expect(lines[7]).toMatch(/^2026-12-01 10:00:00Z\s+succeeded\s+1\.3 s\s+aaaaaaaaaaaa\s+Ann Example \(tower\)\s+ingest: bigger chunks$/);
    // The commit's body stays out of the table.
    expect(r.out).not.toContain('longer body');
  });

  it('--limit takes the newest N; outside 1..200 it is refused', async () => {
    const r = await tower('history', '--state-dir', state, '--limit', '1', '--format', 'json');
    expect((JSON.parse(r.out) as { history: { id: string }[] }).history.map((h) => h.id)).toEqual(['r3']);
    expect((await tower('history', '--state-dir', state, '--limit', '0')).code).toBe(1);
    expect((await tower('history', '--state-dir', state, '--limit', '201')).code).toBe(1);
  });

  it('json: the records, bounded like the API, with the actor', async () => {
    const r = await tower('history', '--state-dir', state, '--format', 'json');
    expect(r.code).toBe(0);
    const body = JSON.parse(r.out) as { fleet: string; history: Record<string, unknown>[] };
    expect(body.fleet).toBe('redforge');
    expect(body.history.map((h) => h.id)).toEqual(['r3', 'r2', 'r1']);
    expect(body.history[1]).toMatchObject({
      id: 'r2',
      revision: 'b'.repeat(40),
      author: 'Bob Example',
      message: 'ingest: a broken flow',
      actor: 'tower',
      outcome: 'rolled-back',
      startedAt: '2026-12-01T11:00:00.000Z',
      finishedAt: '2026-12-01T11:00:04.200Z',
      instances: { ingest: { path: 'blue-green', outcome: 'rolled-back', phases: [{ phase: 'DEPLOY', ms: 930 }, { phase: 'VERIFY', ms: 210 }] } },
    });
    const error = body.history[1]!.error as string;
    expect(error.length).toBeLessThan(STATUS_LIMITS.messageChars + 100);
    expect(error).toMatch(/… \(and [\d,]+ more characters\)$/);
    expect(body.history[2]!.message).toBe('ingest: bigger chunks\n\nlonger body');
  });

  it('--fleet names another fleet (nothing recorded: an empty history); a state directory that manages nothing says so, and is not created', async () => {
    const other = await tower('history', '--state-dir', state, '--fleet', 'elsewhere');
    expect(other).toMatchObject({ code: 0, out: 'fleet elsewhere: no rollouts yet\n' });
    const missing = join(state, 'no-such-dir');
    const r = await tower('history', '--state-dir', missing);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^nothing is managed from .*no-such-dir yet/);
    expect(JSON.parse((await tower('history', '--state-dir', missing, '--format', 'json')).out)).toEqual({ fleet: null, history: [] });
    expect(existsSync(missing)).toBe(false);
  });
});

describe('tower history (PostgreSQL)', () => {
  let server: PostgresServer | undefined;
  afterAll(async () => server?.stop());

  it('reads the rollouts from DATABASE_URL, read-only, for the fleet the state directory or --fleet names', async () => {
    server = await startPostgres();
    const url = await server.createDatabase();
    const pgStore = await openStore({ databaseUrl: url, dir: join(state, 'unused') });
    try {
      await pgStore.migrate();
      await rollout(pgStore, 'p1', '2026-12-02T09:00:00.000Z', 2_000, { revision: 'c'.repeat(40), author: 'Cy Example', message: 'from postgres', actor: 'tower', outcome: 'succeeded' });
    } finally {
      await pgStore.close();
    }
    const text = await towerWith(url, 'history', '--state-dir', state);
    expect(text.code, text.err).toBe(0);
    expect(text.out).toMatch(/^fleet redforge: 1 rollout, newest first\n/);
    expect(text.out).toMatch(/\n2026-12-02 09:00:00Z\s+succeeded\s+2 s\s+cccccccccccc\s+Cy Example \(tower\)\s+from postgres\n/);
    const json = JSON.parse((await towerWith(url, 'history', '--state-dir', join(state, 'elsewhere'), '--fleet', 'redforge', '--format', 'json')).out) as { history: { id: string; actor?: string }[] };
    expect(json.history).toEqual([expect.objectContaining({ id: 'p1', actor: 'tower' })]);
    const down = await towerWith(url.replace(/\/[^/]+$/, '/no_such_database'), 'history', '--state-dir', state);
    expect(down.code).toBe(1);
    expect(down.err).toMatch(/^tower history: cannot read the history of fleet redforge: /);
  });
});
