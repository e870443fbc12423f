/**
 * Level-triggered, end to end on real processes: the daemon converges on what runs, not on
 * what changed. No commit, no edit and no poll (the interval is an hour) is needed for it to
 * notice and repair a killed colour, a killed switch or a destroyed fleet; a colour that keeps
 * dying is reported CrashLoop and restarted no faster than its backoff; a broken fleet.yaml
 * shows as such (not Synced) and its errors go as soon as it is fixed.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import axios from 'axios';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { bufferIo } from '../../src/commands/io.js';
import { startDaemon, type DaemonProcess, type Status } from '../helpers/daemon.js';
import { writeSmallFleet } from '../helpers/fleet-fixture.js';

const dirs: string[] = [];
const daemons: DaemonProcess[] = [];
const states: string[] = [];

afterEach(async () => {
  for (const d of daemons.splice(0)) await d.kill('SIGKILL');
});

afterAll(async () => {
  for (const s of states) await main(['destroy', '--state-dir', s], bufferIo(process.env)).catch(() => 1);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tmp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

async function hello(port: number): Promise<string> {
  return String((await axios.get(`http://127.0.0.1:${port}/hello`, { responseType: 'text', timeout: 5_000 })).data);
}

/** Polls the stable address until it answers 200; returns how long that took. */
async function untilServing(port: number, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await hello(port).then(() => true, () => false)) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`127.0.0.1:${port} did not answer within ${timeoutMs} ms`);
}

const synced = (s: Status) => s.sync === 'Synced';

function colourPid(state: string, instance: string, color: string): number {
  return (JSON.parse(readFileSync(join(state, 'instances', instance, color, 'colour.json'), 'utf8')) as { pid: number }).pid;
}

async function fleet(text = 'v1', env: NodeJS.ProcessEnv = process.env) {
  const dir = tmp('tower-repair-');
  const state = tmp('tower-repair-state-');
  states.push(state);
  const ports = await writeSmallFleet(dir, [{ name: 'web', text }], '{ order: sequential }');
  const d = await startDaemon(['--repo', dir, '--state-dir', state, '--interval', '1h'], env);
  daemons.push(d);
  await d.waitFor(synced, 30_000, 'the fleet to converge');
  return { dir, state, ports, d };
}

async function metrics(d: DaemonProcess): Promise<string> {
  return String((await axios.get(`${d.url}metrics`, { responseType: 'text' })).data);
}

describe('the daemon repairs what runs, without any commit', () => {
  it('a serving colour killed with SIGKILL is restarted: the stable address answers again, nothing else changes', async () => {
    const { state, ports, d } = await fleet();
    const color = (await d.status()).instances[0]!.color!;
    process.kill(colourPid(state, 'web', color), 'SIGKILL');
    const ms = await untilServing(ports.web!, 15_000);
    expect(ms).toBeLessThan(10_000);
    expect(await hello(ports.web!)).toBe(`v1 ${color}`);
    const s = await d.waitFor((x) => synced(x) && x.instances[0]!.restarts === 1, 10_000, 'Synced with one restart');
    expect(s.instances[0]).toMatchObject({ color, health: 'Healthy', condition: 'Synced' });
    expect(d.logs.some((l) => l.msg === 'repaired web: restart')).toBe(true);
    const text = await metrics(d);
    expect(text).toMatch(new RegExp(`tower_instance_restarts_total\\{instance="web",what="${color}",kind="restart"\\} 1`));
    // Prometheus' own lint, on what a live daemon serves (CPU and memory of the colours included).
    expect(text).toMatch(/tower_nodered_cpu_seconds_total\{instance="web",color="(blue|green)"\} [0-9.]+/);
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(lint.error, 'promtool (Debian package prometheus) must be installed').toBeUndefined();
    expect(`${lint.stdout}${lint.stderr}`.trim()).toBe('');
    expect(lint.status).toBe(0);
  });

  it('a colour that keeps dying is CrashLoop, and its restarts back off', async () => {
    const { state, ports, d } = await fleet();
    const color = (await d.status()).instances[0]!.color!;
    for (let kill = 1; kill <= 4; kill++) {
      // Up again, and the repair that restarted it is done (so each kill is one restart).
      await d.waitFor((x) => x.instances[0]?.restarts === kill - 1 && x.instances[0]?.health === 'Healthy', 20_000, `restart ${kill - 1}`);
      process.kill(colourPid(state, 'web', color), 'SIGKILL');
      if (kill === 4) {
        const s = await d.waitFor((x) => x.instances[0]?.condition === 'CrashLoop', 10_000, 'CrashLoop');
        expect(s.sync).not.toBe('Synced');
        expect(s.instances[0]!.healthMessage).toMatch(/^CrashLoop: restarted 3 times/);
        expect(await metrics(d)).toMatch(/tower_instance_crashloop\{instance="web"\} 1/);
      }
    }
    await untilServing(ports.web!, 20_000);
    await d.waitFor((x) => x.instances[0]?.restarts === 4 && x.instances[0]?.health === 'Healthy', 20_000, 'the fourth restart');
    const restarts = d.logs.filter((l) => l.msg === 'repaired web: restart').map((l) => Number(l.time));
    expect(restarts).toHaveLength(4);
    // 1 s, 2 s, 4 s between restarts at least: the backoff is honoured (a few ms of clock slack).
    expect(restarts[2]! - restarts[1]!).toBeGreaterThanOrEqual(1_990);
    expect(restarts[3]! - restarts[2]!).toBeGreaterThanOrEqual(3_990);
    expect(d.logs.some((l) => String(l.msg).startsWith('CrashLoop'))).toBe(true);
  });

  it('a colour that dies beside a rollout is repaired at once, not when the rollout is over', async () => {
    const dir = tmp('tower-repair-aside-');
    const state = tmp('tower-repair-aside-state-');
    states.push(state);
    const ports = await writeSmallFleet(dir, [{ name: 'a', text: 'a1' }, { name: 'b', text: 'b1' }], '{ order: sequential }');
    const d = await startDaemon(['--repo', dir, '--state-dir', state, '--interval', '1h'], process.env);
    daemons.push(d);
    await d.waitFor(synced, 30_000, 'the fleet to converge');
    const color = (await d.status()).instances.find((i) => i.name === 'b')!.color!;
    // a's new flows answer slowly: its smoke check alone takes 3 s.
    const mark = d.logs.length;
    await writeSmallFleet(dir, [{ name: 'a', text: 'a2', delayMs: 3_000 }, { name: 'b', text: 'b1' }], '{ order: sequential }', ports);
    await d.waitForLog((l) => l.instance === 'a' && l.phase === 'VERIFY', 20_000, mark);
    process.kill(colourPid(state, 'b', color), 'SIGKILL');
    await untilServing(ports.b!, 10_000);
    expect((await d.status()).rollout, 'the rollout of a is still under way').not.toBeNull();
    const repaired = await d.waitForLog((l) => l.msg === 'repaired b: restart', 10_000, mark);
    const done = await d.waitForLog((l) => String(l.msg).startsWith('rollout succeeded'), 20_000, mark);
    expect(d.logs.indexOf(done)).toBeGreaterThan(d.logs.indexOf(repaired));
    await d.waitFor(synced, 20_000, 'Synced after both');
  });

  it('a killed switch is started again on its route', async () => {
    const { state, ports, d } = await fleet();
    const pid = (JSON.parse(readFileSync(join(state, 'switch', 'web.json'), 'utf8')) as { pid: number }).pid;
    process.kill(pid, 'SIGKILL');
    await untilServing(ports.web!, 15_000);
    await d.waitFor((x) => synced(x) && x.instances[0]!.health === 'Healthy', 10_000, 'Synced again');
    expect(d.logs.some((l) => l.msg === 'repaired web: restart-switch')).toBe(true);
  });

  it('a destroyed fleet comes back when the daemon starts again', async () => {
    const { dir, state, ports, d } = await fleet();
    await d.kill('SIGTERM');
    const destroyed = bufferIo(process.env);
    expect(await main(['destroy', '--state-dir', state], destroyed)).toBe(0);
    await expect(hello(ports.web!)).rejects.toThrow();
    const again = await startDaemon(['--repo', dir, '--state-dir', state, '--interval', '1h'], process.env);
    daemons.push(again);
    const s = await again.waitFor(synced, 30_000, 'the fleet to come back');
    expect(s.instances[0]).toMatchObject({ name: 'web', health: 'Healthy', condition: 'Synced' });
    expect(await hello(ports.web!)).toMatch(/^v1 (blue|green)$/);
  });
});

describe('status is derived each pass', () => {
  it('an invalid fleet.yaml is not Synced and shows its errors; fixed, the errors go', async () => {
    const { dir, ports, d } = await fleet();
    const good = readFileSync(join(dir, 'fleet.yaml'), 'utf8');
    writeFileSync(join(dir, 'fleet.yaml'), good.replace(`port: ${ports.web}`, 'port: not-a-port'));
    const bad = await d.waitFor((x) => x.validation.length > 0, 15_000, 'the validation errors');
    expect(bad.sync).not.toBe('Synced');
    expect(bad.validation[0]).toMatchObject({ file: 'fleet.yaml', severity: 'error' });
    expect(bad.reason).toBe('InvalidRevision');
    expect(await metrics(d)).toMatch(/tower_fleet_in_sync 0/);
    expect(await hello(ports.web!)).toMatch(/^v1 /); // nothing changed on the fleet
    writeFileSync(join(dir, 'fleet.yaml'), good);
    const fixed = await d.waitFor((x) => x.validation.length === 0 && synced(x), 15_000, 'the errors to go');
    expect(fixed.lastError).toBeUndefined();
    expect(await metrics(d)).toMatch(/tower_fleet_in_sync 1/);
  });
});
