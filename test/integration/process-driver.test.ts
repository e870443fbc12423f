/**
 * The process driver with real Node-RED processes (at most one at a time in this file):
 * layout and registry, environment isolation, process title, adoption by a new driver, a
 * reconciler that is SIGKILLed, PID reuse, version and port refusals, usage, and exit
 * supervision (watch) of its own children and of adopted processes.
 */
import { spawn } from 'node:child_process';
import { promises as fs, readFileSync, readlinkSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeRedAdmin } from '../../src/adapters/nodered/admin.js';
import { POLL_MS } from '../../src/adapters/runtime/process-watch.js';
import { installedNodeRed, nodeRedVersionMatches, processDriver, processTitle, type ColorRecord } from '../../src/adapters/runtime/process.js';
import { RuntimeError, type ColorExit, type ColorIdentity, type ColorSpec, type RuntimeDriver } from '../../src/adapters/runtime/types.js';
import { watchExits } from '../helpers/exits.js';
import { ADMIN, cleanUpStateDir, colorSpec, eventually, eventuallyGet, freePort, httpFlow, httpGet, isRunning, tempStateDir, transpileSrcForChild } from '../helpers/nodered.js';

const FLEET = 'driver-test';
let stateDir: string;
const childDirs: string[] = [];

beforeAll(() => {
  stateDir = tempStateDir();
});

afterAll(async () => {
  if (stateDir) await cleanUpStateDir(stateDir);
  for (const dir of childDirs) await fs.rm(dir, { recursive: true, force: true });
});

const readRecord = (ref: ColorIdentity): ColorRecord => JSON.parse(readFileSync(path.join(stateDir, 'instances', ref.instance, ref.color, 'colour.json'), 'utf8')) as ColorRecord;
const statFields = (pid: number) => {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Kills pid with SIGKILL and waits (at most 1 s, the watch() promise) for the next exit in `exits`. */
async function killAndHear(pid: number, exits: ColorExit[]): Promise<{ exit: ColorExit; ms: number }> {
  const before = exits.length;
  const t0 = Date.now();
  process.kill(pid, 'SIGKILL');
  const exit = await eventually(async () => exits[before], 1_000, 10);
  return { exit, ms: Date.now() - t0 };
}

describe('nodeRedVersionMatches', () => {
  it.each([
    ['4.1.8', '4.1', true],
    ['4.1.8', '4', true],
    ['4.1.8', '4.1.8', true],
    ['4.1.8', 'v4.1.8', true],
    ['4.1.8', '3.1', false],
    ['4.1.8', '4.1.7', false],
    ['4.10.0', '4.1', false],
    ['4.1.8', '4.1.80', false],
    ['4.1.8', '', false],
  ])('installed %s, wanted %s -> %s', (installed, wanted, expected) => {
    expect(nodeRedVersionMatches(installed, wanted)).toBe(expected);
  });
});

describe('processDriver refusals', () => {
  it('a Node-RED version that is not installed is a RuntimeError saying what is installed and what to do', async () => {
    const driver = processDriver({ stateDir });
    const spec = colorSpec({ fleet: FLEET, instance: 'old', color: 'blue', port: await freePort(), flows: [], nodeRedVersion: '3.1' });
    const err = await driver.create(spec).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect(err).toMatchObject({ reason: 'NodeRedVersionNotInstalled' });
    const message = (err as Error).message;
    expect(message).toContain('3.1');
    expect(message).toContain(installedNodeRed().version);
    expect(message).toMatch(/runtime: docker/);
    expect(message).toMatch(/install Node-RED 3\.1/);
    expect(await driver.inspect(spec)).toBeUndefined();
  });

  it('a port already in use is a RuntimeError; nothing is spawned', async () => {
    const driver = processDriver({ stateDir });
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const ref = { fleet: FLEET, instance: 'busy', color: 'green' as const };
      await driver.create(colorSpec({ ...ref, port, flows: [] }));
      const err = await driver.start(ref).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RuntimeError);
      expect(err).toMatchObject({ reason: 'PortInUse' });
      expect((err as Error).message).toContain(`port ${port}`);
      expect(await driver.inspect(ref)).toMatchObject({ status: 'created', id: '' });
      await driver.remove(ref);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});

describe('processDriver and fleets sharing a state dir', () => {
  it("refuses to create over another fleet's colour, and never removes it", async () => {
    const driver = processDriver({ stateDir });
    const mine = { fleet: FLEET, instance: 'shared', color: 'blue' as const };
    const theirs = { ...mine, fleet: 'other-fleet' };
    await driver.create(colorSpec({ ...mine, port: await freePort(), flows: [] }));
    await expect(driver.create(colorSpec({ ...theirs, port: await freePort(), flows: [] }))).rejects.toMatchObject({ reason: 'FleetMismatch' });
    await driver.remove(theirs);
    expect(await driver.list('other-fleet')).toEqual([]);
    expect(await driver.inspect(mine)).toMatchObject({ status: 'created' });
    await driver.remove(mine);
    expect(await driver.inspect(mine)).toBeUndefined();
  });
});

describe('processDriver with a running Node-RED', () => {
  const ref = { fleet: FLEET, instance: 'ingest', color: 'blue' as const };
  const lines: string[] = [];
  let drv: RuntimeDriver;
  let spec: ColorSpec;
  let pid: number;
  let admin: NodeRedAdmin;
  const envSecret = 'env-secret-91c2';
  /** What drv's watcher reported, for the whole block: stops asked for must leave it empty. */
  const exits: ColorExit[] = [];
  let unwatch = () => {};

  beforeAll(async () => {
    drv = processDriver({ stateDir, log: (line) => lines.push(line) });
    unwatch = watchExits(drv, FLEET, exits);
    const port = await freePort();
    const flows = httpFlow({
      url: '/env',
      func: "msg.payload = { leak: env.get('TOWER_TEST_LEAK') ?? null, mine: env.get('MY_VAR') ?? null, api: env.get('API_KEY') ?? null, path: env.get('PATH') ? 'set' : null }; return msg;",
    });
    spec = colorSpec({ ...ref, port, flows, env: { MY_VAR: 'visible', API_KEY: envSecret, TOWER_INSTANCE: 'ingest' } });
    process.env.TOWER_TEST_LEAK = '1';
    try {
      await drv.create(spec);
      const started = await drv.start(ref);
      pid = Number(started.id);
    } finally {
      delete process.env.TOWER_TEST_LEAK;
    }
    admin = new NodeRedAdmin({ baseUrl: `http://127.0.0.1:${port}`, credentials: ADMIN, timeoutMs: 3_000 });
    await admin.waitUntilReady(20_000);
  });

  it('lays out the colour: user dir, flow file exactly JSON.stringify(flows), a registry record without secrets', async () => {
    expect(drv.kind).toBe('process');
    const dir = path.join(stateDir, 'instances', 'ingest', 'blue');
    expect(readFileSync(path.join(dir, 'userDir', 'flows.json'), 'utf8')).toBe(JSON.stringify(spec.flows));
    const record = readRecord(ref);
    expect(record).toMatchObject({ fleet: FLEET, instance: 'ingest', color: 'blue', port: spec.port, rev: spec.rev, flowsHash: spec.flowsHash, pid, status: 'running', nodeRedVersion: installedNodeRed().version });
    expect(record.pidStartTime).toBe(Number(statFields(pid)[19]));
    expect(Date.parse(record.startedAt!)).toBeGreaterThan(Date.now() - 60_000);
    const registryText = readFileSync(path.join(dir, 'colour.json'), 'utf8');
    for (const secret of [envSecret, 'visible', ADMIN.password]) expect(registryText).not.toContain(secret);
    // The credential secret and settings are readable by the owner only; settings.js holds a bcrypt hash, not the password.
    expect(statSync(path.join(stateDir, 'secrets.json')).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(dir, 'userDir', 'settings.js')).mode & 0o777).toBe(0o600);
    // spec.env lives beside the registry, owner-only, so that a restarted Tower can start the colour again.
    expect(statSync(path.join(dir, 'env.json')).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(path.join(dir, 'env.json'), 'utf8'))).toEqual(spec.env);
    expect(readFileSync(path.join(dir, 'userDir', 'settings.js'), 'utf8')).not.toContain(ADMIN.password);
    // The rev Node-RED computed from the file is the one the spec carries.
    expect((await admin.getFlows()).rev).toBe(spec.rev);
  });

  it("isolates the environment: the daemon's variables stay out, spec.env is in", async () => {
    const res = await httpGet(`http://127.0.0.1:${spec.port}/env`);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({ leak: null, mine: 'visible', api: envSecret, path: 'set' });
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
    expect(environ.map((e) => e.split('=')[0]).sort()).toEqual(expect.arrayContaining(['API_KEY', 'MY_VAR', 'TOWER_INSTANCE']));
    expect(environ.some((e) => e.startsWith('TOWER_TEST_LEAK='))).toBe(false);
  });

  it('runs detached: own session and process group, output to the log file, not to us', () => {
    const fields = statFields(pid);
    expect(Number(fields[2])).toBe(pid); // pgrp (field 5)
    expect(Number(fields[3])).toBe(pid); // session (field 6)
    const logFile = path.join(stateDir, 'instances', 'ingest', 'blue', 'node-red.log');
    expect(readlinkSync(`/proc/${pid}/fd/1`)).toBe(logFile);
    expect(readlinkSync(`/proc/${pid}/fd/2`)).toBe(logFile);
    expect(readFileSync(logFile, 'utf8')).toMatch(/Server now running at http:\/\/127\.0\.0\.1:/);
  });

  it('titles the process node-red tower:<fleet>/<instance>/<color>; the pid check still knows it', async () => {
    const title = processTitle(ref);
    expect(title).toBe('node-red tower:driver-test/ingest/blue');
    // Node-RED sets the title once it listens (waitUntilReady saw it answer): it replaces argv, so ps shows it.
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0]).toBe(title);
    // comm holds 15 bytes: "node-red tower:", which stat's name field carries, spaces and all.
    expect(readFileSync(`/proc/${pid}/comm`, 'utf8').trim()).toBe(title.slice(0, 15));
    expect(readFileSync(`/proc/${pid}/stat`, 'utf8')).toContain(`${pid} (${title.slice(0, 15)}) `);
    expect(await processDriver({ stateDir }).inspect(ref)).toMatchObject({ id: String(pid), status: 'running' });
  });

  it('usage(): plausible CPU seconds and RSS', async () => {
    const usage = await drv.usage!(ref);
    expect(usage).toBeDefined();
    expect(usage!.cpuSeconds).toBeGreaterThan(0.1);
    expect(usage!.cpuSeconds).toBeLessThan(120);
    expect(usage!.rssBytes).toBeGreaterThan(30 * 2 ** 20);
    expect(usage!.rssBytes).toBeLessThan(1024 * 2 ** 20);
  });

  it('a new driver on the same state dir adopts the colour: same pid, rev, flowsHash', async () => {
    const fresh = processDriver({ stateDir });
    const listed = await fresh.list(FLEET);
    expect(listed).toEqual([
      expect.objectContaining({ fleet: FLEET, instance: 'ingest', color: 'blue', runtime: 'process', id: String(pid), port: spec.port, rev: spec.rev, flowsHash: spec.flowsHash, status: 'running', url: `http://127.0.0.1:${spec.port}` }),
    ]);
    expect(await fresh.list('other-fleet')).toEqual([]);
    expect(await fresh.inspect(ref)).toEqual(listed[0]);
    // start is idempotent on a running colour; create refuses to clobber it.
    expect((await fresh.start(ref)).id).toBe(String(pid));
    await expect(fresh.create(spec)).rejects.toMatchObject({ reason: 'ColorRunning' });
  });

  it('stop and start by the adopting driver: graceful, idempotent; the old token survives a restart of the same colour', async () => {
    const token = await admin.accessToken();
    const fresh = processDriver({ stateDir });
    const freshExits: ColorExit[] = [];
    const unwatchFresh = watchExits(fresh, FLEET, freshExits);
    await fresh.stop(ref, { timeoutMs: 10_000 });
    expect(isRunning(pid)).toBe(false);
    // Asked for: neither the stopping driver (polling) nor drv (the child's exit event) reports it.
    await sleep(POLL_MS * 2);
    unwatchFresh();
    expect(freshExits).toEqual([]);
    expect(exits).toEqual([]);
    expect(await fresh.inspect(ref)).toMatchObject({ status: 'exited' });
    expect((await admin.health(1_000)).up).toBe(false);
    await fresh.stop(ref);
    // The adopting driver never saw the spec, yet it can start the stopped colour again (rollback to a stopped colour).
    const restarted = await fresh.start(ref);
    expect(restarted.id).not.toBe(String(pid));
    pid = Number(restarted.id);
    await admin.waitUntilReady(20_000);
    expect(await admin.accessToken()).toBe(token);
    // Node-RED keeps sessions in userDir/.sessions.json: the token from before the restart still opens the API.
    const res = await fetch(`http://127.0.0.1:${spec.port}/flows`, { headers: { Authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(3_000) });
    expect(res.status).toBe(200);
  });

  it('stop escalates to SIGKILL when Node-RED does not exit within timeoutMs', async () => {
    // A function node whose finalize blocks the event loop for 20 s: Node-RED cannot finish a graceful stop.
    const stubborn = spec.flows.map((n) => (n.type === 'function' ? { ...n, finalize: 'const t = Date.now(); while (Date.now() - t < 20000) {}' } : n));
    await admin.setFlows(stubborn, { rev: (await admin.getFlows()).rev, type: 'full' });
    // POST /flows answers before the new nodes start; stop only once they run (their finalize is what blocks).
    await eventuallyGet(`http://127.0.0.1:${spec.port}/env`, (r) => r.status === 200);
    const t0 = Date.now();
    await drv.stop(ref, { timeoutMs: 300 });
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(isRunning(pid)).toBe(false);
    expect(lines.some((l) => l.includes('ignored SIGTERM, killing it'))).toBe(true);
    // SIGKILLed, but by stop(): asked for, so not reported.
    await sleep(100);
    expect(exits).toEqual([]);
    // Node-RED saved the deployed flows into the colour's flow file; put the spec's flows back before restarting.
    await drv.create(spec);
    pid = Number((await drv.start(ref)).id);
    expect((await admin.waitUntilReady(20_000)).rev).toBe(spec.rev);
  });

  it('SIGKILL of the Node-RED process: watch() hears it within a second, list() reports the colour exited and how; remove is idempotent', async () => {
    const { exit, ms } = await killAndHear(pid, exits);
    expect(ms).toBeLessThan(1_000);
    expect(exit).toEqual({ fleet: FLEET, instance: 'ingest', color: 'blue', at: expect.any(String), code: null, signal: 'SIGKILL', reason: 'killed by SIGKILL' });
    expect(Date.parse(exit.at)).toBeGreaterThan(Date.now() - 5_000);
    const { fleet: _f, instance: _i, color: _c, ...how } = exit;
    // Written into colour.json, so that a new driver (and the status page) knows it too.
    const [exited] = await processDriver({ stateDir }).list(FLEET);
    expect(exited).toMatchObject({ instance: 'ingest', color: 'blue', id: String(pid), status: 'exited', exit: how });
    expect(readRecord(ref)).toMatchObject({ status: 'exited', exit: how });
    expect(exits).toHaveLength(1);
    unwatch();
    expect(await drv.usage!(ref)).toBeUndefined();
    await drv.remove(ref);
    await drv.remove(ref);
    expect(await drv.list(FLEET)).toEqual([]);
    await expect(fs.stat(path.join(stateDir, 'instances', 'ingest'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('logs lifecycle lines without env values or credentials', () => {
    expect(lines.some((l) => l.includes('started driver-test/ingest/blue'))).toBe(true);
    for (const line of lines) for (const secret of [envSecret, 'visible', ADMIN.password]) expect(line).not.toContain(secret);
  });
});

describe('processDriver and recycled pids', () => {
  it('a recorded pid that now belongs to another process is exited, and stop does not signal it', async () => {
    const driver = processDriver({ stateDir });
    const ref = { fleet: FLEET, instance: 'reused', color: 'green' as const };
    await driver.create(colorSpec({ ...ref, port: await freePort(), flows: [] }));
    const file = path.join(stateDir, 'instances', 'reused', 'green', 'colour.json');
    const record = readRecord(ref);
    // Our own pid stands in for a recycled one: alive, but not started when the record says.
    await fs.writeFile(file, JSON.stringify({ ...record, pid: process.pid, pidStartTime: 1, status: 'running' }));
    expect(await driver.inspect(ref)).toMatchObject({ status: 'exited', id: String(process.pid) });
    expect(await driver.usage!(ref)).toBeUndefined();
    await driver.stop(ref, { timeoutMs: 200 });
    expect(isRunning(process.pid)).toBe(true);
    // With the right start time the same record is running: the check is the start time, not the pid.
    await fs.writeFile(file, JSON.stringify({ ...record, pid: process.pid, pidStartTime: Number(statFields(process.pid)[19]), status: 'running' }));
    expect(await driver.inspect(ref)).toMatchObject({ status: 'running' });
    await fs.writeFile(file, JSON.stringify(record));
    await driver.remove(ref);
  });
});

describe('processDriver when the reconciler dies', () => {
  it('the Node-RED process outlives a SIGKILLed reconciler and a new driver adopts it', async () => {
    const out = await transpileSrcForChild();
    childDirs.push(out);
    const script = path.join(out, 'reconciler.mjs');
    await fs.writeFile(
      script,
      [
        "import { processDriver } from './src/adapters/runtime/process.js';",
        'const [spec, stateDir] = [JSON.parse(process.argv[2]), process.argv[3]];',
        'const driver = processDriver({ stateDir });',
        'await driver.create(spec);',
        'const started = await driver.start(spec);',
        "process.stdout.write(JSON.stringify(started) + '\\n');",
        "process.kill(process.pid, 'SIGKILL');",
      ].join('\n'),
    );
    const ref = { fleet: FLEET, instance: 'survivor', color: 'green' as const };
    const spec = colorSpec({ ...ref, port: await freePort(), flows: httpFlow({ url: '/alive', func: "msg.payload = 'alive'; return msg;" }) });
    const child = spawn(process.execPath, [script, JSON.stringify(spec), stateDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`reconciler stand-in did not finish: ${stderr}`));
      }, 30_000);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal });
      });
    });
    expect(exit, stderr).toEqual({ code: null, signal: 'SIGKILL' });
    const started = JSON.parse(stdout.trim()) as { id: string };

    const admin = new NodeRedAdmin({ baseUrl: `http://127.0.0.1:${spec.port}`, credentials: ADMIN, timeoutMs: 3_000 });
    expect((await admin.waitUntilReady(20_000)).rev).toBe(spec.rev);
    expect(await httpGet(`http://127.0.0.1:${spec.port}/alive`)).toEqual({ status: 200, text: 'alive' });
    const [adopted] = await processDriver({ stateDir }).list(FLEET);
    expect(adopted).toMatchObject({ instance: 'survivor', id: started.id, rev: spec.rev, status: 'running' });
    // Its parent is gone: the process was re-parented, not killed with it.
    expect(Number(statFields(Number(started.id))[1])).not.toBe(child.pid);

    // Not our child, so no exit event: a driver that watches polls /proc, and one that stopped watching does not.
    const watcher = processDriver({ stateDir });
    const idle = processDriver({ stateDir });
    const heard: ColorExit[] = [];
    const unheard: ColorExit[] = [];
    const unwatch = watchExits(watcher, FLEET, heard);
    watchExits(idle, FLEET, unheard)();
    expect(await watcher.list(FLEET)).toEqual([expect.objectContaining({ instance: 'survivor', status: 'running' })]);
    expect(await idle.list(FLEET)).toEqual([expect.objectContaining({ instance: 'survivor', status: 'running' })]);
    const heardKill = await killAndHear(Number(started.id), heard);
    expect(heardKill.ms).toBeLessThan(1_000);
    // Neither code nor signal reach a process that is not the parent.
    expect(heardKill.exit).toEqual({ fleet: FLEET, instance: 'survivor', color: 'green', at: expect.any(String), code: null, signal: null, reason: 'process gone' });
    await sleep(POLL_MS * 2);
    unwatch();
    expect(heard).toHaveLength(1);
    expect(unheard).toEqual([]);
    expect(await idle.inspect(ref)).toMatchObject({ status: 'exited', exit: { reason: 'process gone', code: null, signal: null } });
    await processDriver({ stateDir }).remove(ref);
    expect(isRunning(Number(started.id))).toBe(false);
  });
});
