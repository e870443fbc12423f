/**
 * Leader election by a coordination.k8s.io/v1 Lease (src/adapters/kubernetes/lease.ts) against
 * the stand-in API server, with RBAC on and exactly the rules of deploy/kubernetes/cluster/role.yaml:
 * the Role is proven sufficient for leadership, and leadership uses no verb beyond it.
 * Short durations (a 1 s lease, 600 ms renew deadline, 150 ms retry) keep the waits short. A TCP
 * relay that stops relaying stands for a network partition.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { connectKube, type KubeApi } from '../../src/adapters/kubernetes/api.js';
import { kubeLeaseLeadership, type KubeLeadership, type KubeLeaseOptions, type LeaseObject } from '../../src/adapters/kubernetes/lease.js';
import { TowerError } from '../../src/engine/ports.js';
import { api as raw, eventually } from '../helpers/kube-standin/client.js';
import { startStandin, type PolicyRule, type Standin } from '../helpers/kube-standin/server.js';

const NS = 'redforge';
const LEASE = 'tower-redforge';
const FAST = { leaseDurationSeconds: 1, renewDeadlineMs: 600, retryPeriodMs: 150 };
const ROLE = parseYaml(readFileSync(join(import.meta.dirname, '../../deploy/kubernetes/cluster/role.yaml'), 'utf8')) as { metadata: { namespace?: string }; rules: PolicyRule[] };
const LEASE_PATH = `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/${LEASE}`;

let s: Standin;
let rules: PolicyRule[];
let dir: string;
const leaderships: KubeLeadership[] = [];
/** API errors the leaderships met, by reason (KubeConflict, KubeAlreadyExists, KubeForbidden, …). */
const errors = new Map<string, number>();

/** A TCP relay in front of the stand-in that can stop relaying: a network partition where requests hang, unanswered. */
async function partitionable(standin: Standin): Promise<{ url: string; freeze(): void; close(): Promise<void> }> {
  const target = Number(new URL(standin.url).port);
  const sockets = new Set<net.Socket>();
  let frozen = false;
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('error', () => {});
    if (frozen) return; // accepted, never answered
    const upstream = net.connect(target, '127.0.0.1');
    sockets.add(upstream);
    upstream.on('error', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}`,
    freeze() {
      frozen = true;
      for (const s of sockets) s.pause();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

function connect(standin: Pick<Standin, 'kubeconfig'>, url?: string): KubeApi {
  const file = standin.kubeconfig(join(dir, `kubeconfig-${Math.random().toString(36).slice(2)}`), NS);
  if (url) writeFileSync(file, readFileSync(file, 'utf8').replace(/server: .*/, `server: ${url}`));
  const kube = connectKube({ namespace: NS, access: 'kubeconfig' }, { KUBECONFIG: file, HOME: dir });
  // The real client, counting what the API server answered with.
  return {
    ...kube,
    request: async (method, path, o) => {
      try {
        return await kube.request(method, path, o);
      } catch (err) {
        const reason = err instanceof TowerError ? err.reason : 'Other';
        errors.set(reason, (errors.get(reason) ?? 0) + 1);
        throw err;
      }
    },
  } as KubeApi;
}

function leadership(kube: KubeApi, identity: string, extra: Partial<KubeLeaseOptions> = {}): KubeLeadership {
  const l = kubeLeaseLeadership({ api: kube, name: LEASE, identity, ...FAST, ...extra });
  leaderships.push(l);
  return l;
}

async function lease(standin = s): Promise<LeaseObject> {
  const r = await raw<LeaseObject>(standin, 'GET', LEASE_PATH);
  expect(r.status, r.text).toBe(200);
  return r.body;
}

/** Between tests, straight from the stand-in's store: the Role does not let Tower delete leases. */
function deleteLease(): void {
  s.store.remove('leases', NS, LEASE);
}

const never = () => false;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tower-kube-lease-'));
  // A copy: tests take rules away from it to deny what the Role allows.
  rules = structuredClone(ROLE.rules);
  s = await startStandin({ rules, run: false });
  s.namespace(NS);
});

afterAll(async () => {
  for (const l of leaderships) l.abandon();
  await s?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('Lease leadership (coordination.k8s.io/v1) on the stand-in, with the Role of deploy/kubernetes', () => {
  it('the Role names the Lease tower-<fleet> and allows get, create and update on leases, nothing else on them', () => {
    const onLeases = ROLE.rules.filter((r) => r.apiGroups.includes('coordination.k8s.io'));
    expect(onLeases.flatMap((r) => r.resources)).toEqual(['leases', 'leases']);
    expect(onLeases.flatMap((r) => r.verbs).sort()).toEqual(['create', 'get', 'update']);
    expect(onLeases.find((r) => r.verbs.includes('get'))?.resourceNames).toEqual([LEASE]);
  });

  it('of two contenders exactly one leads; the Lease says who, for how long, since when', async () => {
    const kube = connect(s);
    const a = leadership(kube, 'tower-a');
    const b = leadership(kube, 'tower-b');
    expect(await a.acquire(never)).toBe(true);
    let bStop = false;
    const bWaits = b.acquire(() => bStop);
    // Several renew periods: a keeps it, b keeps waiting.
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, 100));
      expect([a.isLeader(), b.isLeader()]).toEqual([true, false]);
    }
    expect(await a.stillLeader()).toBe(true);
    const l = await lease();
    expect(l.spec).toMatchObject({ holderIdentity: 'tower-a', leaseDurationSeconds: 1, leaseTransitions: 0 });
    // MicroTime, as the real API server parses it: six fractional digits.
    expect(l.spec!.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(Date.parse(l.spec!.renewTime!)).toBeGreaterThan(Date.parse(l.spec!.acquireTime!));
    bStop = true;
    expect(await bWaits).toBe(false);
    // Leadership used exactly the lease verbs the Role allows, and all of them (update: renews).
    expect([...s.used].filter((u) => u.startsWith('coordination.k8s.io/')).sort()).toEqual(['coordination.k8s.io/leases create', 'coordination.k8s.io/leases get', 'coordination.k8s.io/leases update']);
    expect([...s.used].filter((u) => !u.startsWith('coordination.k8s.io/'))).toEqual([]);
    expect([...s.requests.keys()].filter((k) => k.includes('forbidden'))).toEqual([]);
    // The real kubectl reads it as from a cluster (describe also lists events, which the Role
    // does not grant: kubectl goes on without them).
    expect(await s.kubectl(['get', 'lease', LEASE], NS)).toMatch(new RegExp(`^${LEASE}\\s+tower-a\\s+`, 'm'));
    const described = await s.kubectl(['describe', 'lease', LEASE], NS);
    expect(described).toMatch(/Holder Identity:\s+tower-a/);
    expect(described).toMatch(/Lease Duration Seconds:\s+1/);
    await a.release();
    expect((await lease()).spec?.holderIdentity).toBe('');
    deleteLease();
  });

  it('a leader that dies (stops renewing, no release) is replaced once its lease has expired, not before', async () => {
    const kube = connect(s);
    const a = leadership(kube, 'tower-a');
    const b = leadership(kube, 'tower-b');
    expect(await a.acquire(never)).toBe(true);
    const bLeads = b.acquire(never);
    await new Promise((r) => setTimeout(r, 400));
    expect(b.isLeader()).toBe(false);
    const renewedAt = Date.parse((await lease()).spec!.renewTime!);
    const crashedAt = Date.now();
    a.abandon();
    expect(await bLeads).toBe(true);
    const tookOverAt = Date.now();
    // b counts the lease from when it saw a's last renew: at least a lease duration after that renew.
    expect(tookOverAt - renewedAt).toBeGreaterThanOrEqual(1_000);
    expect(tookOverAt - crashedAt).toBeLessThan(3_000);
    const l = await lease();
    expect(l.spec).toMatchObject({ holderIdentity: 'tower-b', leaseTransitions: 1 });
    expect(a.isLeader()).toBe(false);
    await b.release();
    deleteLease();
  });

  it('a clean stop releases the lease: the standby takes over at once, long before it would expire', async () => {
    const kube = connect(s);
    const slow = { leaseDurationSeconds: 10, renewDeadlineMs: 6_000, retryPeriodMs: 150 };
    const a = leadership(kube, 'tower-a', slow);
    const b = leadership(kube, 'tower-b', slow);
    expect(await a.acquire(never)).toBe(true);
    const bLeads = b.acquire(never);
    await new Promise((r) => setTimeout(r, 300));
    expect(b.isLeader()).toBe(false);
    const stoppedAt = Date.now();
    await a.release();
    expect(a.isLeader()).toBe(false);
    expect(await bLeads).toBe(true);
    expect(Date.now() - stoppedAt).toBeLessThan(1_500);
    expect((await lease()).spec).toMatchObject({ holderIdentity: 'tower-b', leaseTransitions: 1, leaseDurationSeconds: 10 });
    await b.release();
    deleteLease();
  });

  it('a 409 race never yields two leaders: 8 contenders, 6 rounds, each round one leader who then stops', async () => {
    const kube = connect(s);
    errors.clear();
    // A renew deadline well above a loaded machine's stalls: a winner that lost its term to a stall would be a flake, not a finding.
    const contenders = Array.from({ length: 8 }, (_, i) => leadership(kube, `tower-${i}`, { leaseDurationSeconds: 3, renewDeadlineMs: 2_000, retryPeriodMs: 60 }));
    let overlap = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        if (contenders.filter((c) => c.isLeader()).length > 1) overlap++;
        await new Promise((r) => setImmediate(r));
      }
    })();
    const leaders: string[] = [];
    let done = false;
    const running = new Map<string, Promise<boolean>>();
    const start = (c: KubeLeadership) => running.set(c.identity, c.acquire(() => done));
    // Round 0 starts on no Lease at all (the creates race), the others on a released one (the updates race).
    try {
      for (const c of contenders) start(c);
      for (let round = 0; round < 6; round++) {
        const winner = await eventually(() => contenders.find((c) => c.isLeader()), 10_000, `round ${round}: a leader`);
        // Let the others try a few times against the winner.
        await new Promise((r) => setTimeout(r, 200));
        expect(contenders.filter((c) => c.isLeader()).map((c) => c.identity)).toEqual([winner.identity]);
        expect((await lease()).spec?.holderIdentity).toBe(winner.identity);
        leaders.push(winner.identity);
        await winner.release();
        start(winner);
      }
    } finally {
      // Contenders left running would hold the Lease against every later test.
      done = true;
      await Promise.all(running.values());
      sampling = false;
      await sampler;
      for (const c of contenders) await c.release();
    }
    expect(overlap).toBe(0);
    expect(leaders).toHaveLength(6);
    // The race was real: creates and updates lost to another replica's write.
    expect(errors.get('KubeAlreadyExists') ?? 0).toBeGreaterThanOrEqual(1);
    expect(errors.get('KubeConflict') ?? 0).toBeGreaterThanOrEqual(1);
    expect((await lease()).spec?.leaseTransitions).toBeGreaterThanOrEqual(5);
    deleteLease();
  });

  it('a leader whose renews are forbidden (RBAC) steps down within the renew deadline, before the lease could pass on', async () => {
    const kube = connect(s);
    const lost: string[] = [];
    const a = leadership(kube, 'tower-a', { onLost: (why) => lost.push(why) });
    expect(await a.acquire(never)).toBe(true);
    const deniedAt = Date.now();
    const update = rules.find((r) => r.verbs.includes('update') && r.apiGroups.includes('coordination.k8s.io'))!;
    update.verbs = update.verbs.filter((v) => v !== 'update');
    try {
      await eventually(() => !a.isLeader(), 3_000, 'a to step down');
      const steppedDownAt = Date.now();
      // Its last good renew was at most one retry period before the denial; the deadline is 600 ms from it.
      expect(steppedDownAt - deniedAt).toBeLessThan(1_000);
      expect(await a.stillLeader()).toBe(false);
      expect(lost).toHaveLength(1);
      expect(lost[0]).toContain('renew deadline');
      expect([...s.requests.keys()]).toContain('update leases forbidden');
    } finally {
      update.verbs.push('update');
    }
    // The Lease still names a: a standby takes it only after it has expired.
    const b = leadership(kube, 'tower-b');
    expect(await b.acquire(never)).toBe(true);
    expect((await lease()).spec?.holderIdentity).toBe('tower-b');
    await b.release();
    deleteLease();
  });

  it('a leader that cannot reach the API server at all steps down within the renew deadline', async () => {
    const own = await startStandin({ rules: structuredClone(ROLE.rules), run: false });
    const kube = connect(own);
    const lost: string[] = [];
    const a = leadership(kube, 'tower-a', { onLost: (why) => lost.push(why) });
    try {
      expect(await a.acquire(never)).toBe(true);
      expect((await lease(own)).spec?.holderIdentity).toBe('tower-a');
    } finally {
      await own.stop();
    }
    const stoppedAt = Date.now();
    await eventually(() => !a.isLeader(), 3_000, 'a to step down');
    expect(Date.now() - stoppedAt).toBeLessThan(1_000);
    expect(lost).toHaveLength(1);
    // And it does not lead again while it cannot ask.
    let stop = false;
    setTimeout(() => (stop = true), 500).unref();
    expect(await a.acquire(() => stop)).toBe(false);
    expect(a.isLeader()).toBe(false);
  });

  it('a leader whose requests hang (a partition: connections accepted, never answered) steps down by its own clock', async () => {
    const relay = await partitionable(s);
    const kube = connect(s, relay.url);
    const lost: string[] = [];
    const a = leadership(kube, 'tower-a', { onLost: (why) => lost.push(why) });
    try {
      expect(await a.acquire(never)).toBe(true);
      await new Promise((r) => setTimeout(r, 300));
      expect(a.isLeader()).toBe(true);
      const frozenAt = Date.now();
      relay.freeze();
      await eventually(() => !a.isLeader(), 3_000, 'a to step down');
      expect(Date.now() - frozenAt).toBeLessThan(1_000);
      expect(lost).toEqual([expect.stringContaining('renew deadline')]);
      // The Lease, untouched since, passes to a standby that can reach the API server once it has expired.
      const b = leadership(connect(s), 'tower-b');
      expect(await b.acquire(never)).toBe(true);
      expect((await lease()).spec).toMatchObject({ holderIdentity: 'tower-b' });
      await b.release();
    } finally {
      a.abandon();
      await relay.close();
      deleteLease();
    }
  });
});
