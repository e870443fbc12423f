/**
 * The docker driver's watch() against a real, private Docker engine, with busybox containers
 * labelled as colours of the fleet standing in for Node-RED (an exit is an exit): an OOM kill,
 * a removal behind Tower's back, the driver's own remove(), and an event stream that is cut
 * (as when the Docker engine restarts) and reconnected. The Node-RED colour killed with
 * `docker kill` is in docker-driver.test.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { containerName, dockerDriver, LABELS } from '../../src/adapters/runtime/docker.js';
import type { ColorExit, ColorIdentity, RuntimeDriver } from '../../src/adapters/runtime/types.js';
import { buildTestImage, socketProxy, startDockerd, type PrivateDockerd } from '../helpers/dockerd.js';
import { nextExit, sleep, watchExits, watching } from '../helpers/exits.js';

const IMAGE = 'tower-test/node-red:4.1.8';
const FLEET = 'dwatch';

describe('docker driver watch() (real private dockerd)', () => {
  let engine: PrivateDockerd | undefined;
  let stateDir = '';
  let driver: RuntimeDriver;
  /** Everything driver's watcher reported, for the whole file; and the driver's log. */
  const exits: ColorExit[] = [];
  const lines: string[] = [];
  let unwatch = () => {};

  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'tower-docker-watch-'));
    engine = await startDockerd();
    await buildTestImage(engine.docker, IMAGE);
    driver = dockerDriver({ docker: engine.docker, stateDir, log: (line) => lines.push(line) });
    unwatch = watchExits(driver, FLEET, exits);
    await watching(lines);
  });

  afterAll(async () => {
    unwatch();
    await engine?.stop();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  const standIns: Dockerode.Container[] = [];
  // A failed assertion must not leave stand-ins behind for the next test.
  afterEach(async () => {
    for (const c of standIns.splice(0)) await c.remove({ force: true }).catch(() => undefined);
  });

  /** A container labelled like a colour of the fleet, running a shell command instead of Node-RED. */
  async function standIn(ref: ColorIdentity, script: string, hostConfig: Dockerode.HostConfig = {}): Promise<Dockerode.Container> {
    const c = await engine!.docker.createContainer({
      name: containerName(ref),
      Image: IMAGE,
      Cmd: ['sh', '-c', script],
      Labels: { [LABELS.fleet]: ref.fleet, [LABELS.instance]: ref.instance, [LABELS.color]: ref.color, [LABELS.port]: '1', [LABELS.rev]: 'r', [LABELS.flowsHash]: 'h' },
      HostConfig: { NetworkMode: 'host', ...hostConfig },
    });
    standIns.push(c);
    await c.start();
    return c;
  }
  const sleeper = (instance: string, color: 'blue' | 'green' = 'blue') => standIn({ fleet: FLEET, instance, color }, 'exec busybox sleep 600');

  it('remove() of a running colour by the driver is not reported; an oom is "out of memory"', async () => {
    const before = exits.length;
    await sleeper('quiet');
    await sleep(100);
    await driver.remove({ fleet: FLEET, instance: 'quiet', color: 'blue' });

    // tail keeps its whole (endless) line in memory: past 16 MiB the kernel kills it.
    const t0 = Date.now();
    await standIn({ fleet: FLEET, instance: 'hog', color: 'green' }, 'busybox head -c 500000000 /dev/zero | busybox tail', { Memory: 16 * 2 ** 20, MemorySwap: 16 * 2 ** 20 });
    const { exit, ms } = await nextExit(exits, before, t0, 5_000);
    expect(exit).toMatchObject({ instance: 'hog', color: 'green', code: 137, signal: 'SIGKILL', reason: 'out of memory' });
    expect(ms).toBeLessThan(5_000);
    expect(await driver.inspect({ fleet: FLEET, instance: 'hog', color: 'green' })).toMatchObject({ status: 'exited', exit: { reason: 'out of memory', code: 137 } });
    await driver.remove({ fleet: FLEET, instance: 'hog', color: 'green' });
    await sleep(200);
    expect(exits).toHaveLength(before + 1);
  });

  it('docker rm -f behind Tower: killed, then "container removed"', async () => {
    const before = exits.length;
    const c = await sleeper('gone', 'green');
    await sleep(100);
    const t0 = Date.now();
    await c.remove({ force: true });
    const killed = await nextExit(exits, before, t0);
    const gone = await nextExit(exits, before + 1, t0);
    expect(gone.ms).toBeLessThan(1_000);
    expect([killed.exit.reason, gone.exit.reason]).toEqual(['killed by SIGKILL', 'container removed']);
    expect(gone.exit).toMatchObject({ fleet: FLEET, instance: 'gone', color: 'green', code: null, signal: null });
    await sleep(200);
    expect(exits).toHaveLength(before + 2);
  });

  it('a cut event stream is reconnected; what died meanwhile is reported then, and the stream hears again', async () => {
    const proxy = await socketProxy(engine!.socketPath);
    const proxied: string[] = [];
    const heard: ColorExit[] = [];
    const watcher = dockerDriver({ docker: new Dockerode({ socketPath: proxy.socketPath }), stateDir, log: (line) => proxied.push(line) });
    const a = await sleeper('cut-a');
    const b = await sleeper('cut-b');
    const stop = watchExits(watcher, FLEET, heard);
    try {
      await watching(proxied);
      proxy.down();
      await engine!.docker.getContainer(a.id).kill();
      await sleep(400);
      expect(heard).toEqual([]);
      const t0 = Date.now();
      proxy.up();
      const missed = await nextExit(heard, 0, t0, 6_000);
      expect(missed.exit).toMatchObject({ instance: 'cut-a', code: 137, signal: 'SIGKILL', reason: 'killed by SIGKILL' });
      await watching(proxied, 2);
      expect(proxied.some((l) => l.startsWith(`docker: event stream of fleet ${FLEET} ended`))).toBe(true);
      const t1 = Date.now();
      await b.kill();
      const live = await nextExit(heard, 1, t1);
      expect(live.exit).toMatchObject({ instance: 'cut-b', reason: 'killed by SIGKILL' });
      expect(live.ms).toBeLessThan(1_000);
    } finally {
      stop();
      await proxy.close();
    }
    // The stopped watcher hears nothing more, not even that a and b are removed behind Tower.
    await a.remove({ force: true });
    await b.remove({ force: true });
    await sleep(200);
    expect(heard).toHaveLength(2);
  });
});
