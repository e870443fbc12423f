/**
 * Drift: someone deploys from the Node-RED editor. The daemon reports it (status, metric,
 * log); with selfHeal: true it puts Git's flows back. Also: a newer revision supersedes a
 * rollout in progress between waves.
 */
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import axios from 'axios';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { NodeRedAdmin } from '../../src/adapters/nodered/admin.js';
import { main } from '../../src/cli.js';
import { bufferIo } from '../../src/commands/io.js';
import type { FlowNode } from '../../src/core/model.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';
import { writeSmallFleet } from '../helpers/fleet-fixture.js';
import { initBare, WorkClone } from '../helpers/git.js';

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
  return String((await axios.get(`http://127.0.0.1:${port}/hello`, { responseType: 'text', timeout: 10_000 })).data);
}

/** What a person does in the Node-RED editor: change the function and deploy. */
async function editorDeploy(state: string, port: number, text: string): Promise<void> {
  const credentials = JSON.parse(readFileSync(join(state, 'admin.json'), 'utf8')) as { username: string; password: string };
  const admin = new NodeRedAdmin({ baseUrl: `http://127.0.0.1:${port}`, credentials });
  const { rev, flows } = await admin.getFlows();
  const edited = flows.map((n: FlowNode) => (n.type === 'function' ? { ...n, func: `msg.payload = ${JSON.stringify(text)};\nreturn msg;` } : n));
  await admin.setFlows(edited, { rev, type: 'nodes' });
}

async function fleetRepo(selfHeal: boolean) {
  const bare = await initBare(join(tmp('tower-bare-'), 'fleet.git'));
  const clone = await WorkClone.create(bare, tmp('tower-clone-'));
  const ports = await writeSmallFleet(clone.dir, [{ name: 'web', text: 'git' }], '{ order: sequential }');
  if (selfHeal) writeFileSync(join(clone.dir, 'fleet.yaml'), readFileSync(join(clone.dir, 'fleet.yaml'), 'utf8').replace('spec:\n', 'spec:\n  selfHeal: true\n'));
  const first = await clone.commit('fleet');
  await clone.push();
  const state = tmp('tower-state-');
  states.push(state);
  const d = await startDaemon(['--repo', bare, '--state-dir', state, '--interval', '1s'], process.env);
  daemons.push(d);
  await d.waitFor((s) => s.appliedRevision === first && s.sync === 'Synced', 30_000, 'the first revision');
  return { clone, ports, first, state, d };
}

describe('drift', () => {
  it('is reported (status, metric, log) and left alone without selfHeal', async () => {
    const { ports, state, d } = await fleetRepo(false);
    await editorDeploy(state, ports.web!, 'edited by hand');
    const s = await d.waitFor((x) => x.drift.includes('web'), 15_000, 'drift to be reported');
    expect(s.instances[0]).toMatchObject({ name: 'web', drift: true });
    expect(s.sync).toBe('OutOfSync');
    const metrics = String((await axios.get(`${d.url}metrics`, { responseType: 'text' })).data);
    expect(metrics).toMatch(/tower_instance_drift\{instance="web"\} 1/);
    expect(d.logs.some((l) => String(l.msg).startsWith('drift') && (l.instances as string[] | undefined)?.includes('web'))).toBe(true);
    await new Promise((r) => setTimeout(r, 2_500)); // a few passes: nothing is changed back
    expect(await hello(ports.web!)).toBe('edited by hand');
  });

  it('is undone with selfHeal: true', async () => {
    const { ports, state, d } = await fleetRepo(true);
    await editorDeploy(state, ports.web!, 'edited by hand');
    await d.waitForLog((l) => String(l.msg).startsWith('drift'), 15_000);
    await d.waitFor((x) => x.sync === 'Synced' && !x.drift.includes('web'), 30_000, 'self-heal');
    expect(await hello(ports.web!)).toMatch(/^git (blue|green)$/);
  });
});

describe('supersede', () => {
  it('a newer revision stops a rollout between waves and takes over', async () => {
    const bare = await initBare(join(tmp('tower-bare-'), 'fleet.git'));
    const clone = await WorkClone.create(bare, tmp('tower-clone-'));
    const plan = '{ order: waves, waves: [[a], [b], [c]] }';
    const fleet = (text: string) => ['a', 'b', 'c'].map((name) => ({ name, text }));
    const ports = await writeSmallFleet(clone.dir, fleet('v1'), plan);
    const first = await clone.commit('v1');
    await clone.push();
    const state = tmp('tower-state-');
    states.push(state);
    const d = await startDaemon(['--repo', bare, '--state-dir', state, '--interval', '300s'], { ...process.env, TOWER_WEBHOOK_SECRET: 'x'.repeat(20) });
    daemons.push(d);
    await d.waitFor((s) => s.appliedRevision === first && s.sync === 'Synced', 45_000, 'the first revision');

    await writeSmallFleet(clone.dir, fleet('v2'), plan, ports);
    const second = await clone.commit('v2');
    await clone.push();
    const mark = d.logs.length;
    process.kill(d.child.pid!, 'SIGHUP'); // a pass now
    await d.waitForLog((l) => l.msg === 'wave started' && l.wave === 1, 20_000, mark);
    await writeSmallFleet(clone.dir, fleet('v3'), plan, ports);
    const third = await clone.commit('v3');
    await clone.push();
    // A trigger during a rollout makes the daemon fetch at once; the rollout stops after its wave.
    process.kill(d.child.pid!, 'SIGHUP');
    const s = await d.waitFor((x) => x.appliedRevision === third && x.sync === 'Synced', 60_000, 'the newest revision');
    for (const name of ['a', 'b', 'c']) expect(await hello(ports[name]!)).toMatch(/^v3 /);
    const v2 = s.history.find((h) => h.revision === second);
    expect(v2?.outcome, JSON.stringify(s.history.map((h) => [h.revision?.slice(0, 7), h.outcome]))).toBe('superseded');
    expect(d.logs.some((l) => l.msg === 'rollout superseded by a newer revision')).toBe(true);
  });
});
