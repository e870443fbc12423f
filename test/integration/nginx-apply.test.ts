/**
 * fleet.yaml chooses the switch: `switch: nginx` puts an instance behind the operator's nginx
 * (a private one here). A blue-green rollout through it under open-loop load fails no request,
 * as through the built-in switch; without nginx configured, nothing starts and the error says
 * what to set.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import axios from 'axios';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { bufferIo } from '../../src/commands/io.js';
import { writeSmallFleet } from '../helpers/fleet-fixture.js';
import { startNginx, type PrivateNginx } from '../helpers/nginx.js';

let nginx: PrivateNginx;
const dirs: string[] = [];

beforeAll(async () => {
  nginx = await startNginx();
});

afterAll(async () => {
  for (const d of dirs) if (d.includes('state')) await main(['destroy', '--state-dir', d], bufferIo(env())).catch(() => 1);
  await nginx?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function env(): NodeJS.ProcessEnv {
  return { ...process.env, TOWER_NGINX_CONF_DIR: nginx.confDir, TOWER_NGINX_PID_FILE: nginx.pidFile, TOWER_NGINX_RELOAD: nginx.reloadCommand };
}

function tmp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

async function tower(environment: NodeJS.ProcessEnv, ...args: string[]) {
  const io = bufferIo(environment);
  const code = await main(args, io);
  return { code, out: io.out, err: io.err };
}

async function hello(port: number): Promise<{ ok: boolean; body: string }> {
  const r = await axios.get(`http://127.0.0.1:${port}/hello`, { validateStatus: () => true, responseType: 'text', timeout: 10_000 }).catch((e: Error) => ({ status: 0, data: e.message }));
  return { ok: r.status === 200, body: String(r.data) };
}

const NGINX_FLEET = '      switch: nginx';

describe('switch: nginx', () => {
  it('serves the stable address through nginx, and swaps blue-green under load without a failed request', async () => {
    const dir = tmp('tower-nginx-fleet-');
    const state = tmp('tower-nginx-state-');
    const ports = await writeSmallFleet(dir, [{ name: 'web', text: 'v1', delayMs: 200, extraYaml: NGINX_FLEET }], '{ order: sequential }');
    const first = await tower(env(), 'apply', dir, '--state-dir', state);
    expect(first.code, first.err).toBe(0);
    expect(await hello(ports.web!)).toEqual({ ok: true, body: 'v1 blue' });
    expect(readdirSync(nginx.confDir)).toEqual(['tower-web.conf']);
    expect(existsSync(join(state, 'switch', 'web.json')), 'no built-in router for it').toBe(false);

    await writeSmallFleet(dir, [{ name: 'web', text: 'v2', delayMs: 200, extraYaml: NGINX_FLEET }], '{ order: sequential }', ports);
    const results: { ok: boolean; body: string }[] = [];
    const pending: Promise<void>[] = [];
    const timer = setInterval(() => {
      if (pending.length < 400) pending.push(hello(ports.web!).then((r) => void results.push(r)));
    }, 20);
    const r = await tower(env(), 'apply', dir, '--state-dir', state);
    clearInterval(timer);
    await Promise.all(pending);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/web: DRAIN[\s\S]*web: RESUME[\s\S]*web: AUDIT/);
    expect(results.length).toBeGreaterThan(20);
    expect(results.filter((x) => !x.ok)).toEqual([]);
    expect(results.some((x) => x.body === 'v1 blue')).toBe(true);
    expect(results.some((x) => x.body === 'v2 green')).toBe(true);
    expect(await hello(ports.web!)).toEqual({ ok: true, body: 'v2 green' });

    expect((await tower(env(), 'destroy', '--state-dir', state)).code).toBe(0);
    expect(readdirSync(nginx.confDir)).toEqual([]);
  });

  it('without nginx configured, nothing starts, and the error says what to set', async () => {
    const dir = tmp('tower-nginx-fleet-');
    const state = tmp('tower-nginx-state-');
    const ports = await writeSmallFleet(dir, [{ name: 'api', text: 'x', extraYaml: NGINX_FLEET }], '{ order: sequential }');
    const { TOWER_NGINX_CONF_DIR: _dir, ...without } = env();
    const r = await tower(without, 'apply', dir, '--state-dir', state);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/instance api: switch: nginx needs the nginx Tower writes to: set TOWER_NGINX_CONF_DIR/);
    expect((await hello(ports.api!)).ok).toBe(false);
  });
});
