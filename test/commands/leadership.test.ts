/**
 * Which leadership `tower run` takes (src/commands/leadership.ts, TOWER_LEADER): the setting as
 * parsed, and auto's choice from real fleet.yaml files loaded by the loader.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { directoryReader } from '../../src/adapters/fs/repo-reader.js';
import { parseRunConfig } from '../../src/commands/run-config.js';
import { chosenLeadership, fleetIdentity, type FleetIdentity } from '../../src/commands/leadership.js';
import { loadRepository } from '../../src/core/load.js';
import type { Leadership } from '../../src/engine/ports.js';

const FLOWS = JSON.stringify([{ id: 't', type: 'tab', label: 't' }]);
function fleet(instanceYaml: string, specYaml = ''): FleetIdentity {
  const files: Record<string, string> = {
    'fleet.yaml': `apiVersion: tower.redforge.dev/v1\nkind: Fleet\nmetadata: { name: redforge }\nspec:\n${specYaml}  instances:\n    - name: web\n      flows: [flows/web.json]\n      port: 1881\n${instanceYaml}`,
    'flows/web.json': FLOWS,
  };
  const dir = mkdtempSync(join(tmpdir(), 'tower-leader-'));
  try {
    mkdirSync(join(dir, 'flows'));
    for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
    return identityOf(loadRepository(directoryReader(dir)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function identityOf(repo: ReturnType<typeof loadRepository>): FleetIdentity {
  expect(repo.fleet, JSON.stringify(repo.diagnostics)).toBeDefined();
  return fleetIdentity(repo.fleet!);
}

const named = (name: string): Leadership & { name: string } => ({ name, acquire: async () => true, stillLeader: async () => true, isLeader: () => true, release: async () => {} });
const log = { info: () => {}, warn: () => {}, error: () => {} };

async function choice(mode: 'auto' | 'kubernetes', identity: FleetIdentity, redis: boolean): Promise<string | undefined> {
  let made: string | undefined;
  const l = chosenLeadership({
    mode,
    identify: async () => identity,
    kubernetes: (f) => ((made = `lease tower-${f.name} in ${f.kubernetes?.namespace ?? '(context)'}`), named(made)),
    ...(redis ? { redis: () => ((made = 'redis'), named('redis')) } : {}),
    log,
  });
  expect(await l.acquire(() => false)).toBe(true);
  return made ?? 'alone';
}

describe('tower run: which leader', () => {
  it('TOWER_LEADER is auto by default; kubernetes, redis (with REDIS_URL), lock; anything else is refused', () => {
    const env = { TOWER_REPO: 'https://example.com/fleet.git' };
    expect(parseRunConfig({}, env, () => '').config?.leader).toBe('auto');
    expect(parseRunConfig({}, { ...env, TOWER_LEADER: 'kubernetes' }, () => '').config).toMatchObject({ leader: 'kubernetes', leaderLeaseSeconds: 15 });
    expect(parseRunConfig({ leader: 'lock' }, env, () => '').config?.leader).toBe('lock');
    expect(parseRunConfig({}, { ...env, TOWER_LEADER: 'redis' }, () => '').errors).toEqual(['--leader redis: set REDIS_URL (the Redis that holds the lease)']);
    expect(parseRunConfig({}, { ...env, TOWER_LEADER: 'zookeeper' }, () => '').errors).toEqual(['--leader zookeeper: one of auto, kubernetes, redis, lock']);
    expect(parseRunConfig({}, { ...env, TOWER_LEADER_LEASE: '1m' }, () => '').config?.leaderLeaseSeconds).toBe(60);
    expect(parseRunConfig({}, { ...env, TOWER_LEADER_LEASE: '1500ms' }, () => '').errors[0]).toMatch(/^TOWER_LEADER_LEASE 1500ms: whole seconds/);
  });

  it('auto: the Lease tower-<fleet> when the fleet runs on Kubernetes, else Redis with REDIS_URL, else none (the state-dir lock)', async () => {
    const onCluster = fleet('      runtime: kubernetes\n', '  kubernetes: { namespace: apps }\n');
    expect(onCluster).toMatchObject({ name: 'redforge', onKubernetes: true, kubernetes: { namespace: 'apps' } });
    expect(await choice('auto', onCluster, true)).toBe('lease tower-redforge in apps');
    const oneInstance = fleet('      runtime: kubernetes\n');
    expect(await choice('auto', oneInstance, false)).toBe('lease tower-redforge in (context)');
    const onHost = fleet('');
    expect(onHost.onKubernetes).toBe(false);
    expect(await choice('auto', onHost, true)).toBe('redis');
    expect(await choice('auto', onHost, false)).toBe('alone');
    // Explicit: the Lease whatever the fleet runs on.
    expect(await choice('kubernetes', onHost, true)).toBe('lease tower-redforge in (context)');
  });

  it('leads nothing until fleet.yaml can be read, and gives up when stopping', async () => {
    let asked = 0;
    const l = chosenLeadership({ mode: 'kubernetes', identify: async () => { asked++; throw new Error('no fleet.yaml'); }, kubernetes: () => named('x'), log, retryMs: 50 });
    let stop = false;
    setTimeout(() => (stop = true), 300);
    expect(await l.acquire(() => stop)).toBe(false);
    expect(asked).toBeGreaterThanOrEqual(2);
    expect(l.isLeader()).toBe(false);
    expect(await l.stillLeader()).toBe(false);
  });

  it('with fleet.yaml unreadable at start, what the state directory remembers decides; nothing remembered, it waits', async () => {
    const down = async (): Promise<FleetIdentity> => {
      throw new Error('git fetch: the remote is unreachable');
    };
    const pick = async (mode: 'auto' | 'kubernetes', remembered: FleetIdentity | undefined) => {
      let made = 'none';
      let stop = false;
      setTimeout(() => (stop = true), 200);
      const l = chosenLeadership({ mode, identify: down, remembered: () => remembered, kubernetes: (f) => ((made = `lease tower-${f.name} in ${f.kubernetes?.namespace ?? '(context)'}`), named(made)), log, retryMs: 50 });
      const led = await l.acquire(() => stop);
      return { led, made };
    };
    // A daemon that ran a fleet on this machine keeps it alive while its remote is down.
    expect(await pick('auto', { name: 'redforge', onKubernetes: false })).toEqual({ led: true, made: 'none' });
    // One that ran it on a cluster takes that cluster's Lease (runtime.ts remembers spec.kubernetes).
    expect(await pick('auto', { name: 'redforge', kubernetes: { namespace: 'apps' }, onKubernetes: true })).toEqual({ led: true, made: 'lease tower-redforge in apps' });
    expect(await pick('kubernetes', { name: 'redforge', kubernetes: { namespace: 'apps' }, onKubernetes: true })).toEqual({ led: true, made: 'lease tower-redforge in apps' });
    // Explicitly kubernetes, without a remembered cluster: the Lease's namespace is unknown — wait.
    expect(await pick('kubernetes', { name: 'redforge', onKubernetes: false })).toEqual({ led: false, made: 'none' });
    // A state directory that ran nothing has nothing to keep alive: wait for fleet.yaml.
    expect(await pick('auto', undefined)).toEqual({ led: false, made: 'none' });
  });

  it('says why it cannot lead while no lease can be chosen (the cluster cannot be reached), and stops saying so once one is', async () => {
    let reachable = false;
    const l = chosenLeadership({
      mode: 'auto',
      identify: async () => fleet('      runtime: kubernetes\n'),
      kubernetes: () => {
        if (!reachable) throw new Error('kubernetes: cannot load the kubeconfig: ENOENT');
        return named('lease');
      },
      log,
      retryMs: 20,
    });
    expect(l.blockedBy!()).toBeUndefined();
    const leading = l.acquire(() => false);
    await new Promise((r) => setTimeout(r, 60));
    expect(l.blockedBy!()).toBe('cannot tell which leader lease to take: kubernetes: cannot load the kubeconfig: ENOENT');
    reachable = true;
    expect(await leading).toBe(true);
    expect(l.blockedBy!()).toBeUndefined();
  });
});
