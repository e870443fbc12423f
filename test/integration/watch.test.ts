/**
 * The local directory source with real files and real inotify (chokidar): bursts of writes
 * collapse into one callback, ignored files raise none, close() stops it, and the content
 * hash moves with a flow file and not with editor litter.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { directoryReader } from '../../src/adapters/fs/repo-reader.js';
import { directoryRevision, directorySource, isIgnoredPath, watchDirectory, type ChangeBatch, type DirectoryWatcher } from '../../src/adapters/source/directory.js';
import { loadRepository } from '../../src/core/load.js';
import { LIBRARY_DIR } from '../../src/paths.js';
import { EXAMPLE } from '../helpers/fleet-fixture.js';

const root = mkdtempSync(join(tmpdir(), 'tower-watch-'));
const watchers: DirectoryWatcher[] = [];

afterAll(async () => {
  for (const w of watchers) await w.close();
  rmSync(root, { recursive: true, force: true });
});

let dirs = 0;
/** fleet-example in a fresh dir, with a .git and a node_modules already there. */
function fleetDir(): string {
  const dir = join(root, `fleet-${++dirs}`);
  cpSync(EXAMPLE, dir, { recursive: true });
  mkdirSync(join(dir, '.git'), { recursive: true });
  writeFileSync(join(dir, '.git', 'HEAD'), 'ref: refs/heads/main\n');
  mkdirSync(join(dir, 'node_modules', 'left-pad'), { recursive: true });
  return dir;
}

async function eventually(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(20);
  }
}

async function watched(dir: string, options: Parameters<typeof watchDirectory>[2] = {}) {
  const calls: ChangeBatch[] = [];
  const w = watchDirectory(dir, (b) => void calls.push(b), { debounceMs: 300, ...options });
  watchers.push(w);
  await w.ready;
  return { calls, w };
}

/** A flow file with one more (harmless) property: a real content change. */
function touchFlow(dir: string, file: string, value: string): void {
  const path = join(dir, file);
  const flows = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>[];
  flows[0]!.info = value;
  writeFileSync(path, JSON.stringify(flows, null, 4));
}

describe('watchDirectory', () => {
  it('turns a burst of 5 writes within 100 ms into one callback, and a later change into another', async () => {
    const dir = fleetDir();
    const { calls } = await watched(dir);
    const started = Date.now();
    for (let i = 0; i < 5; i++) {
      // An editor's save: the file, then its neighbours (format on save, a second file).
      touchFlow(dir, i % 2 === 0 ? 'flows/embeddings.json' : 'flows/storage.json', `burst ${i}`);
      await sleep(20);
    }
    expect(Date.now() - started).toBeLessThan(200);
    await eventually(() => calls.length >= 1);
    const firstAt = Date.now() - started;
    await sleep(1000);
    expect(calls).toEqual([{ paths: ['flows/embeddings.json', 'flows/storage.json'] }]);
    console.log(`[measure] watch: first callback ${firstAt} ms after the burst began (debounce 300 ms, write-stable 200 ms)`);

    writeFileSync(join(dir, 'plans', 'extra.yaml'), 'apiVersion: tower.redforge.dev/v1\nkind: DeployPlan\nmetadata: { name: extra }\nspec: { order: sequential }\n');
    await eventually(() => calls.length >= 2);
    await sleep(700);
    expect(calls).toHaveLength(2);
    expect(calls[1]).toEqual({ paths: ['plans/extra.yaml'] });
  });

  it('ignores .git, node_modules and editor swap and temp files', async () => {
    const dir = fleetDir();
    const { calls } = await watched(dir);
    writeFileSync(join(dir, '.git', 'index'), 'x');
    mkdirSync(join(dir, '.git', 'objects', 'ab'), { recursive: true });
    writeFileSync(join(dir, '.git', 'objects', 'ab', 'cdef'), 'x');
    writeFileSync(join(dir, 'node_modules', 'left-pad', 'index.js'), 'module.exports = 1;\n');
    writeFileSync(join(dir, 'flows', '.embeddings.json.swp'), 'vim');
    writeFileSync(join(dir, 'flows', '.embeddings.json.swx'), 'vim');
    writeFileSync(join(dir, 'flows', '4913'), '');
    writeFileSync(join(dir, 'fleet.yaml~'), 'backup');
    writeFileSync(join(dir, '.#fleet.yaml'), 'emacs lock');
    writeFileSync(join(dir, '#fleet.yaml#'), 'emacs autosave');
    writeFileSync(join(dir, 'flows', 'query.json___jb_tmp___'), 'jetbrains');
    rmSync(join(dir, 'flows', '4913'));
    await sleep(1200);
    expect(calls).toEqual([]);
  });

  it('ignores what the ignore option names (a state dir inside the fleet)', async () => {
    const dir = fleetDir();
    const { calls } = await watched(dir, { ignore: (rel) => rel === '.state' || rel.startsWith('.state/') });
    mkdirSync(join(dir, '.state'));
    writeFileSync(join(dir, '.state', 'registry.json'), '{}');
    await sleep(1000);
    expect(calls).toEqual([]);
  });

  it('close() stops it: nothing is called after, not even a pending burst', async () => {
    const dir = fleetDir();
    const { calls, w } = await watched(dir);
    touchFlow(dir, 'flows/query.json', 'before close');
    await w.close();
    await w.close();
    touchFlow(dir, 'flows/query.json', 'after close');
    await sleep(1000);
    expect(calls).toEqual([]);
  });

  it('under a steady stream of writes it still calls at least every maxWaitMs', async () => {
    const dir = fleetDir();
    const { calls } = await watched(dir, { debounceMs: 300, maxWaitMs: 600, writeStableMs: false });
    for (let i = 0; i < 16; i++) {
      writeFileSync(join(dir, 'flows', 'memory.json'), `[{"id":"t","type":"tab","info":"${i}"}]`);
      await sleep(100);
    }
    expect(calls.length).toBeGreaterThanOrEqual(2);
  });

  it('never overlaps calls: changes during a slow callback make exactly one more call', async () => {
    const dir = fleetDir();
    let active = 0;
    let maxActive = 0;
    const calls: ChangeBatch[] = [];
    const w = watchDirectory(
      dir,
      async (b) => {
        calls.push(b);
        active += 1;
        maxActive = Math.max(maxActive, active);
        await sleep(800);
        active -= 1;
      },
      { debounceMs: 100, writeStableMs: false },
    );
    watchers.push(w);
    await w.ready;
    writeFileSync(join(dir, 'a.txt'), '1');
    await eventually(() => calls.length === 1);
    writeFileSync(join(dir, 'b.txt'), '2');
    await sleep(200);
    writeFileSync(join(dir, 'c.txt'), '3');
    await eventually(() => calls.length === 2, 5000);
    await sleep(1200);
    expect(calls.map((c) => c.paths)).toEqual([['a.txt'], ['b.txt', 'c.txt']]);
    expect(maxActive).toBe(1);
  });
});

describe('directory revisions', () => {
  let dir: string;

  beforeAll(() => {
    dir = fleetDir();
  });

  it('changes when a flow file changes, not when an ignored file changes, and comes back with the content', async () => {
    const r0 = await directoryRevision(dir);
    expect(r0.revision).toMatch(/^[0-9a-f]{64}$/);
    expect(r0.files).toBe(14); // fleet.yaml, README.md, 9 flows, 3 plans — not .git/HEAD
    expect((await directoryRevision(dir)).revision).toBe(r0.revision);

    writeFileSync(join(dir, 'flows', '.text-chunker.json.swp'), 'swap');
    writeFileSync(join(dir, 'fleet.yaml~'), 'backup');
    writeFileSync(join(dir, '.git', 'ORIG_HEAD'), 'x');
    writeFileSync(join(dir, 'node_modules', 'left-pad', 'index.js'), 'x');
    expect((await directoryRevision(dir)).revision).toBe(r0.revision);

    const original = readFileSync(join(dir, 'flows', 'text-chunker.json'));
    touchFlow(dir, 'flows/text-chunker.json', 'edited');
    const r1 = await directoryRevision(dir);
    expect(r1.revision).not.toBe(r0.revision);

    writeFileSync(join(dir, 'flows', 'text-chunker.json'), original);
    expect((await directoryRevision(dir)).revision).toBe(r0.revision);

    // A rename is a change even with the same bytes.
    writeFileSync(join(dir, 'notes.md'), 'n');
    const withNotes = await directoryRevision(dir);
    rmSync(join(dir, 'notes.md'));
    writeFileSync(join(dir, 'notes2.md'), 'n');
    expect((await directoryRevision(dir)).revision).not.toBe(withNotes.revision);
    rmSync(join(dir, 'notes2.md'));
  });

  it('refuses directories that are too big to be a fleet', async () => {
    await expect(directoryRevision(dir, { maxFiles: 5 })).rejects.toThrow(/more than 5 files/);
    await expect(directoryRevision(dir, { maxBytes: 1000 })).rejects.toThrow(/more than 1000 bytes/);
  });

  it('directorySource: fetch says changed like a commit would, checkout reads a fleet that loads, watch calls back', async () => {
    const src = directorySource(dir);
    expect(src.describe()).toBe(dir);
    const a = await src.fetch();
    expect(a.changed).toBe(true);
    expect(await src.fetch()).toEqual({ revision: a.revision, changed: false, previous: a.revision });
    const co = await src.checkout(a.revision);
    expect(co.commit.revision).toBe(a.revision);
    expect(co.commit.author).toBe('local');
    expect(loadRepository(co.reader, { library: directoryReader(LIBRARY_DIR) }).valid).toBe(true);

    let changes = 0;
    const w = src.watch(() => void (changes += 1));
    watchers.push(w);
    await w.ready;
    touchFlow(dir, 'flows/response.json', 'from the watcher test');
    await eventually(() => changes === 1);
    const b = await src.fetch();
    expect(b).toEqual({ revision: expect.not.stringMatching(a.revision), changed: true, previous: a.revision });
    await w.close();
  });

  it('the ignore helper', () => {
    for (const p of ['.git', '.git/HEAD', 'a/node_modules/x.js', 'flows/.a.json.swp', 'x.swo', 'fleet.yaml~', '.#fleet.yaml', 'flows/#a.json#', '4913', 'a.json___jb_old___', '.DS_Store']) {
      expect(isIgnoredPath(p), p).toBe(true);
    }
    for (const p of ['', 'fleet.yaml', 'flows/a.json', 'plans/waves.yaml', '.github/workflows/ci.yml', 'swp', 'gitignore', 'flows/a.json.bak']) {
      expect(isIgnoredPath(p), p).toBe(false);
    }
  });
});
