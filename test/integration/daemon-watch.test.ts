/**
 * The daemon watches each driver the runtime gives it, once — and stops watching one the runtime
 * replaced: when spec.kubernetes changes, runtime.ts makes a new kubernetes driver, and the old
 * one's pods watch (a request held open on the API server) must not run on beside the new one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { directorySource } from '../../src/adapters/source/directory.js';
import { openStore } from '../../src/adapters/store/index.js';
import { Daemon } from '../../src/engine/daemon.js';
import type { RuntimeDriver } from '../../src/engine/ports.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { writeSmallFleet } from '../helpers/fleet-fixture.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A runtime whose driver can be replaced, as useCluster replaces the kubernetes driver; it records each watch. */
class SwappingRuntime extends FakeRuntime {
  readonly watches: { driver: string; fleet: string; stopped: boolean }[] = [];
  current: RuntimeDriver = this.watching('first');
  override drivers(): RuntimeDriver[] {
    return [this.current];
  }
  watching(name: string): RuntimeDriver {
    return {
      ...this.driver,
      watch: (fleet) => {
        const w = { driver: name, fleet, stopped: false };
        this.watches.push(w);
        return () => void (w.stopped = true);
      },
    };
  }
}

async function until<T>(check: () => T | undefined, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the daemon\'s driver watches', () => {
  it('watches a driver once, stops the watch of a driver the runtime replaced, and stops the rest when it stops', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tower-watch-'));
    const state = mkdtempSync(join(tmpdir(), 'tower-watch-state-'));
    dirs.push(dir, state);
    await writeSmallFleet(dir, [{ name: 'web', text: 'v1' }], '{ order: sequential }');
    const rt = new SwappingRuntime('small');
    const store = await openStore({ dir: join(state, 'store'), log: { warn: () => {}, info: () => {} } });
    await store.migrate();
    const daemon = new Daemon({ source: directorySource(dir), runtime: rt, store, log: pino({ level: 'silent' }), intervalMs: 3_600_000, env: {} });
    const running = daemon.start();
    try {
      await until(() => (daemon.state.sync === 'Synced' ? true : undefined), 30_000, 'Synced');
      daemon.trigger('look again', false);
      await until(() => (rt.watches.length ? true : undefined), 10_000, 'the first watch');
      daemon.trigger('and again', false);
      await new Promise((r) => setTimeout(r, 300));
      expect(rt.watches).toEqual([{ driver: 'first', fleet: 'small', stopped: false }]);

      rt.current = rt.watching('second');
      daemon.trigger('the cluster changed', false);
      await until(() => (rt.watches.length === 2 ? true : undefined), 10_000, 'the second watch');
      expect(rt.watches).toEqual([
        { driver: 'first', fleet: 'small', stopped: true },
        { driver: 'second', fleet: 'small', stopped: false },
      ]);
    } finally {
      await daemon.stop();
      await running;
      await store.close();
    }
    expect(rt.watches.map((w) => w.stopped)).toEqual([true, true]);
  }, 60_000);
});
