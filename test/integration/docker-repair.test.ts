/**
 * The daemon's repairs under the docker driver, on a real private Docker engine: a container
 * that exits (killed behind Tower's back) is noticed through the engine's events and started
 * again — no commit, no poll — as the process driver's colours are. The daemon runs in this
 * process (the docker driver needs the tests' bind-mounted Node-RED), on a directory source.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import axios from 'axios';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerDriver } from '../../src/adapters/runtime/docker.js';
import { openStore } from '../../src/adapters/store/index.js';
import { directorySource } from '../../src/adapters/source/directory.js';
import { Daemon } from '../../src/engine/daemon.js';
import { destroyAll } from '../../src/engine/destroy.js';
import { openRuntime, type LocalRuntime } from '../../src/runtime.js';
import { buildTestImage, hostNodeRedRun, startDockerd, type PrivateDockerd } from '../helpers/dockerd.js';
import { writeSmallFleet } from '../helpers/fleet-fixture.js';

const IMAGE = 'tower-test/node-red:4.1.8';
let engine: PrivateDockerd | undefined;
const dirs: string[] = [];

beforeAll(async () => {
  engine = await startDockerd();
  await buildTestImage(engine.docker, IMAGE);
}, 60_000);

afterAll(async () => {
  await engine?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tmp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

async function until<T>(get: () => Promise<T | undefined> | T | undefined, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await Promise.resolve(get()).catch(() => undefined);
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

describe('daemon with the docker driver', () => {
  it('a container killed behind its back is started again at once, without a commit or a poll', async () => {
    const dir = tmp('tower-docker-repair-');
    const stateDir = tmp('tower-docker-repair-state-');
    const ports = await writeSmallFleet(dir, [{ name: 'web', text: 'd1', extraYaml: `      runtime: docker\n      image: ${IMAGE}` }], '{ order: sequential }');
    const base = await openRuntime({ stateDir, env: {} });
    const docker = dockerDriver({ docker: engine!.docker, stateDir, run: await hostNodeRedRun() });
    const rt: LocalRuntime = { ...base, drivers: () => [docker], driverFor: () => docker };
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>), done()) }));
    const store = await openStore({ dir: join(stateDir, 'store'), log: { warn: () => {}, info: () => {} } });
    await store.migrate();
    const daemon = new Daemon({ source: directorySource(dir), runtime: rt, store, log, intervalMs: 3_600_000, env: {} });
    const running = daemon.start();
    try {
      await until(() => (daemon.state.sync === 'Synced' ? true : undefined), 60_000, 'Synced');
      const hello = async () => String((await axios.get(`http://127.0.0.1:${ports.web}/hello`, { responseType: 'text', timeout: 3_000 })).data);
      expect(await hello()).toBe('d1 blue');

      await engine!.docker.getContainer('tower-small-web-blue').kill({ signal: 'SIGKILL' });
      const killed = Date.now();
      await until(() => hello().then((b) => (b === 'd1 blue' ? b : undefined)), 30_000, 'the stable address to answer again');
      const ms = Date.now() - killed;
      expect(ms).toBeLessThan(15_000);
      const s = await until(() => (daemon.state.instances[0]?.restarts === 1 && daemon.state.sync === 'Synced' ? daemon.state : undefined), 15_000, 'Synced with one restart');
      expect(s.instances[0]).toMatchObject({ name: 'web', color: 'blue', runtime: 'docker', health: 'Healthy', condition: 'Synced' });
      expect(lines.some((l) => l.msg === 'web/blue stopped: killed by SIGKILL')).toBe(true);
      expect(lines.some((l) => l.msg === 'repaired web: restart')).toBe(true);
    } finally {
      await daemon.stop();
      await running;
      await destroyAll(rt, 'small');
      await store.close();
      await rt.close();
    }
  });
});
