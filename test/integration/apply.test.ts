/**
 * tower apply against real Node-RED processes, real switches and a real mosquitto:
 * the fleet from nothing, blue-green under load, rollbacks, prune, adoption.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import axios from 'axios';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { bufferIo } from '../../src/commands/io.js';
import { applyFleet } from '../../src/engine/apply.js';
import { openRuntime } from '../../src/runtime.js';
import type { RolloutEvent } from '../../src/engine/events.js';
import { loadDirectory } from '../../src/repository.js';
import { exampleFleetCopy, writeSmallFleet } from '../helpers/fleet-fixture.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';

let broker: Mosquitto;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  broker = await startMosquitto();
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await broker?.stop();
});

function workspace(): { dir: string; state: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tower-fleet-'));
  const state = mkdtempSync(join(tmpdir(), 'tower-state-'));
  cleanups.push(async () => {
    await tower('destroy', '--state-dir', state);
    rmSync(dir, { recursive: true, force: true });
    rmSync(state, { recursive: true, force: true });
  });
  return { dir, state };
}

async function tower(...args: string[]) {
  const io = bufferIo({ ...process.env, MQTT_URL: broker.url });
  const code = await main(args, io);
  return { code, out: io.out, err: io.err };
}

async function get(port: number, path = '/hello'): Promise<{ status: number; body: string }> {
  const r = await axios.get(`http://127.0.0.1:${port}${path}`, { validateStatus: () => true, responseType: 'text', timeout: 10_000 });
  return { status: r.status, body: String(r.data) };
}

/** Open-loop load: a request every intervalMs until stopped (bounded by maxRequests). */
function load(port: number, intervalMs: number, maxRequests: number) {
  const results: { ok: boolean; body: string }[] = [];
  const pending: Promise<void>[] = [];
  let stopped = false;
  const timer = setInterval(() => {
    if (stopped || pending.length >= maxRequests) return;
    pending.push(
      get(port)
        .then((r) => void results.push({ ok: r.status === 200, body: r.body }))
        .catch((e: Error) => void results.push({ ok: false, body: e.message })),
    );
  }, intervalMs);
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.all(pending);
      return results;
    },
  };
}

async function status(state: string) {
  const r = await tower('status', '--state-dir', state, '--format', 'json');
  return JSON.parse(r.out) as { instances: { name: string; color?: string; rev?: string; health: string; standby?: string; colorPort?: number }[] };
}

describe('tower apply', () => {
  it('rolls fleet-example out from nothing, and a second apply changes nothing', async () => {
    const { dir, ports } = await exampleFleetCopy();
    const state = mkdtempSync(join(tmpdir(), 'tower-state-'));
    cleanups.push(async () => {
      await tower('destroy', '--state-dir', state);
      rmSync(dir, { recursive: true, force: true });
      rmSync(state, { recursive: true, force: true });
    });
    const first = await tower('apply', dir, '--state-dir', state);
    expect(first.err).toBe('');
    expect(first.code).toBe(0);
    expect(first.out).toMatch(/wave 1\/3: ingest, embeddings, errors/);
    expect(first.out).toMatch(/converged/);
    const s = await status(state);
    expect(s.instances.map((i) => [i.name, i.health])).toEqual(Object.keys(ports).sort().map((n) => [n, 'Healthy']));
    // The pipeline works end to end through the stable addresses.
    const ingest = await axios.post(`http://127.0.0.1:${ports.ingest}/ingest`, { filename: 'a.md', content: '# Tower\nTower rolls Node-RED flows out blue-green.' }, { validateStatus: () => true });
    expect(ingest.status).toBe(202);
    // Adoption: a new tower apply finds what runs; nothing to do, nothing restarted.
    const again = await tower('apply', dir, '--state-dir', state);
    expect(again.code).toBe(0);
    expect(again.out).toContain('No changes.');
    const s2 = await status(state);
    expect(s2.instances.map((i) => i.colorPort)).toEqual(s.instances.map((i) => i.colorPort));
  });

  it('swaps blue-green under load without a failed request, and keeps the old colour warm', async () => {
    const { dir, state } = workspace();
    const ports = await writeSmallFleet(dir, [{ name: 'web', text: 'v1', delayMs: 200 }], '{ order: sequential }');
    expect((await tower('apply', dir, '--state-dir', state)).code).toBe(0);
    expect((await get(ports.web!)).body).toBe('v1 blue');

    await writeSmallFleet(dir, [{ name: 'web', text: 'v2', delayMs: 200 }], '{ order: sequential }', ports);
    const traffic = load(ports.web!, 20, 400);
    const r = await tower('apply', dir, '--state-dir', state);
    const results = await traffic.stop();
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/web: DRAIN[\s\S]*web: DEPLOY[\s\S]*web: VERIFY[\s\S]*web: RESUME[\s\S]*web: AUDIT/);
    expect(results.length).toBeGreaterThan(20);
    expect(results.filter((x) => !x.ok)).toEqual([]);
    expect(results.some((x) => x.body === 'v1 blue')).toBe(true);
    expect(results.some((x) => x.body === 'v2 green')).toBe(true);
    expect((await get(ports.web!)).body).toBe('v2 green');
    const s = await status(state);
    expect(s.instances[0]).toMatchObject({ color: 'green', health: 'Healthy', standby: 'blue' });

    // git revert: back to v1 — the warm blue colour is verified and switched to, not started.
    await writeSmallFleet(dir, [{ name: 'web', text: 'v1', delayMs: 200 }], '{ order: sequential }', ports);
    const started = Date.now();
    const back = await tower('apply', dir, '--state-dir', state);
    expect(back.code).toBe(0);
    expect(back.out).toContain('(swap)');
    expect(Date.now() - started).toBeLessThan(5_000);
    expect((await get(ports.web!)).body).toBe('v1 blue');
  });

  it('a failing smoke check rolls back: green is removed, blue keeps serving', async () => {
    const { dir, state } = workspace();
    const ports = await writeSmallFleet(dir, [{ name: 'api', text: 'good' }], '{ order: sequential }');
    expect((await tower('apply', dir, '--state-dir', state)).code).toBe(0);
    await writeSmallFleet(dir, [{ name: 'api', text: 'bad', smokeExpect: 'good' }], '{ order: sequential }', ports);
    const r = await tower('apply', dir, '--state-dir', state);
    expect(r.code).toBe(1);
    expect(r.err).toContain('failed: api in VERIFY: smoke green: "says hello": expected the body to contain "good", got: bad green');
    expect(r.err).toContain('api: rolled back');
    expect((await get(ports.api!)).body).toBe('good blue');
    const s = await status(state);
    expect(s.instances[0]).toMatchObject({ color: 'blue', health: 'Healthy' });
    expect(s.instances[0]!.standby).toBeUndefined();
  });

  it('a Node-RED that crashes during VERIFY rolls back', async () => {
    const { dir, state } = workspace();
    const ports = await writeSmallFleet(dir, [{ name: 'crashy', text: 'one' }], '{ order: sequential }');
    expect((await tower('apply', dir, '--state-dir', state)).code).toBe(0);
    await writeSmallFleet(dir, [{ name: 'crashy', text: 'two' }], '{ order: sequential }', ports);

    const repo = loadDirectory(dir);
    const rt = await openRuntime({ stateDir: state, env: process.env });
    const events: RolloutEvent[] = [];
    try {
      const outcome = await applyFleet(rt, { fleet: repo.fleet!, instances: repo.instances, diagnostics: [] }, {
        env: process.env,
        onEvent: (e) => {
          events.push(e);
          if (e.type === 'phase' && e.phase === 'VERIFY') {
            // Kill the new colour the moment verification starts.
            process.kill(readPid(state, 'crashy', 'green'), 'SIGKILL');
          }
        },
      });
      expect(outcome.result!.ok).toBe(false);
      expect(outcome.result!.failure).toMatchObject({ instance: 'crashy', phase: 'VERIFY' });
    } finally {
      await rt.close();
    }
    expect((await get(ports.crashy!)).body).toBe('one blue');
    expect((await status(state)).instances[0]).toMatchObject({ color: 'blue', health: 'Healthy' });
  });

  it('rollback-all: a failure in wave 2 takes wave 1 back to its previous flows', async () => {
    const { dir, state } = workspace();
    const plan = '{ order: waves, waves: [[front], [back]], onFailure: rollback-all }';
    const ports = await writeSmallFleet(dir, [{ name: 'front', text: 'f1' }, { name: 'back', text: 'b1' }], plan);
    expect((await tower('apply', dir, '--state-dir', state)).code).toBe(0);
    await writeSmallFleet(dir, [{ name: 'front', text: 'f2' }, { name: 'back', text: 'b2', smokeExpect: 'nope' }], plan, ports);
    const r = await tower('apply', dir, '--state-dir', state);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/rolling back front/);
    expect((await get(ports.front!)).body).toBe('f1 blue');
    expect((await get(ports.back!)).body).toBe('b1 blue');
  });

  it('a layout-only change is deployed in place: no new colour, nothing restarted', async () => {
    const { dir, state } = workspace();
    const ports = await writeSmallFleet(dir, [{ name: 'ui', text: 'same' }], '{ order: sequential }');
    expect((await tower('apply', dir, '--state-dir', state)).code).toBe(0);
    const before = (await status(state)).instances[0]!;
    const file = join(dir, 'flows', 'ui.json');
    const flows = JSON.parse(readFileSync(file, 'utf8')) as { x?: number; y?: number }[];
    writeFileSync(file, JSON.stringify(flows.map((n) => (n.x !== undefined ? { ...n, x: n.x + 40, y: (n.y ?? 0) + 20 } : n))));
    const plan = await tower('apply', dir, '--state-dir', state, '--dry-run');
    expect(plan.out).toContain('update in place (layout only)');
    const r = await tower('apply', dir, '--state-dir', state);
    expect(r.code).toBe(0);
    expect(r.out).toContain('(in-place)');
    const after = (await status(state)).instances[0]!;
    expect(after).toMatchObject({ color: before.color, colorPort: before.colorPort, health: 'Healthy' });
    expect(after.rev).not.toBe(before.rev);
    expect(await get(ports.ui!)).toMatchObject({ status: 200, body: 'same blue' });
  });

  it('a switch that died is started again by the next apply, on its last route', async () => {
    const { dir, state } = workspace();
    const ports = await writeSmallFleet(dir, [{ name: 'sw', text: 'up' }], '{ order: sequential }');
    expect((await tower('apply', dir, '--state-dir', state)).code).toBe(0);
    const router = JSON.parse(readFileSync(join(state, 'switch', 'sw.json'), 'utf8')) as { pid: number };
    process.kill(router.pid, 'SIGKILL');
    await expect(get(ports.sw!)).rejects.toThrow();
    const r = await tower('apply', dir, '--state-dir', state);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/repair: sw: the switch of the stable address stopped — restart-switch done/);
    expect(await get(ports.sw!)).toMatchObject({ status: 200, body: 'up blue' });
  });

  it('prunes an instance removed from fleet.yaml', async () => {
    const { dir, state } = workspace();
    const ports = await writeSmallFleet(dir, [{ name: 'keep', text: 'k' }, { name: 'gone', text: 'g' }], '{ order: sequential }');
    expect((await tower('apply', dir, '--state-dir', state)).code).toBe(0);
    await writeSmallFleet(dir, [{ name: 'keep', text: 'k' }], '{ order: sequential }', ports);
    const r = await tower('apply', dir, '--state-dir', state);
    expect(r.code).toBe(0);
    expect(r.out).toContain('gone');
    await expect(get(ports.gone!)).rejects.toThrow();
    expect((await status(state)).instances.map((i) => i.name)).toEqual(['keep']);
  });

  it('invalid input: exit 2, nothing changes', async () => {
    const { dir, state } = workspace();
    await writeSmallFleet(dir, [{ name: 'x', text: 'x' }], '{ order: waves, waves: [[y]] }');
    const r = await tower('apply', dir, '--state-dir', state);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/fleet\.yaml:\d+:\d+: error: .*"y" is not an instance/);
    expect((await status(state)).instances).toEqual([]);
  });
});

/** The pid the process driver recorded for a colour. */
function readPid(state: string, instance: string, color: string): number {
  return (JSON.parse(readFileSync(join(state, 'instances', instance, color, 'colour.json'), 'utf8')) as { pid: number }).pid;
}
