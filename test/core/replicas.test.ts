/**
 * The pure parts of replicas: each replica's environment, the UnsharedConsumer check, liveness
 * of a colour with a dead replica (restarted alone, the instance degraded), and the router's
 * replica picker (round-robin per connection, sticky, a refused replica skipped).
 */
import { describe, expect, it } from 'vitest';
import { consumerClientIdFor, gateTopicFor, replicaEnvironments } from '../../src/core/instance-env.js';
import type { LiveInstance } from '../../src/core/live.js';
import { replicaReadiness } from '../../src/core/live.js';
import { unsharedConsumerDiagnostics } from '../../src/core/replicas.js';
import { liveness } from '../../src/core/repairs.js';
import { replicaPicker } from '../../src/switch-router/replicas.js';

describe('replica environment', () => {
  it('gives replicas 2..N their own gate and session; replica 1 keeps the colour\'s', () => {
    expect(replicaEnvironments('f', 'web', 'blue', 1)).toEqual([]);
    const env = replicaEnvironments('f', 'web', 'blue', 3);
    expect(env.map((e) => e.TOWER_REPLICA)).toEqual(['1', '2', '3']);
    expect(env[0]!.TOWER_GATE_TOPIC).toBe(gateTopicFor('f', 'web', 'blue'));
    expect(env[0]!.TOWER_MQTT_CLIENT_ID).toBe(consumerClientIdFor('f', 'web', 'blue'));
    expect(env[2]).toMatchObject({ TOWER_GATE_TOPIC: 'tower/gate/f/web/blue/r3', TOWER_MQTT_CLIENT_ID: 'tower/f/web/blue/r3' });
    expect(new Set(env.map((e) => e.TOWER_MQTT_CLIENT_ID)).size).toBe(3);
  });

  it('names a replica its runtime cannot number by its key (a pod name)', () => {
    expect(gateTopicFor('f', 'web', 'blue', 'f-web-blue-7d9c-x2x')).toBe('tower/gate/f/web/blue/f-web-blue-7d9c-x2x');
    expect(consumerClientIdFor('f', 'web', 'blue', '$(TOWER_POD_NAME)')).toBe('tower/f/web/blue/$(TOWER_POD_NAME)');
  });
});

describe('UnsharedConsumer', () => {
  const at = { file: 'fleet.yaml', line: 9, col: 17 };
  const consumer = (topic: string, broker = 'tower-gate-consumer') => ({ id: `in-${topic}`, type: 'mqtt in', z: 't', name: 'jobs', topic, broker });
  it('refuses a gated consumer on a plain topic when the instance has replicas', () => {
    const d = unsharedConsumerDiagnostics('worker', 2, [consumer('jobs'), consumer('$share/worker/jobs'), consumer('errors/#', 'fleet-broker'), consumer('')], at);
    expect(d).toHaveLength(1);
    expect(d[0]).toMatchObject({ code: 'UnsharedConsumer', severity: 'error', line: 9, col: 17 });
    expect(d[0]!.message).toContain('subscribes to "jobs" through the deploy gate');
    expect(d[0]!.hint).toContain('$share/worker/jobs');
    expect(unsharedConsumerDiagnostics('worker', 1, [consumer('jobs')], at)).toEqual([]);
  });
});

describe('liveness with replicas', () => {
  const live = (statuses: ('running' | 'exited')[]): LiveInstance => ({
    name: 'web',
    switch: { kind: 'builtin', running: true, port: 1881, url: 'http://127.0.0.1:1881', routed: 'blue' },
    colors: {
      blue: {
        color: 'blue', runtime: 'process', status: 'running', port: 4001, url: 'http://127.0.0.1:4001', rev: 'r',
        replicas: statuses.map((status, i) => ({ index: i + 1, url: `http://127.0.0.1:${4001 + i}`, port: 4001 + i, status, ...(status === 'exited' ? { reason: 'killed by SIGKILL' } : {}) })),
      },
    },
    flows: [], adminUp: true,
  });

  it('restarts the colour whose replica died (the driver starts only that one); the instance is not down', () => {
    const out = liveness({ live: live(['running', 'exited', 'running']), port: 1881, restarts: {}, now: 0 });
    expect(out.down).toBe(false);
    expect(out.repairs).toEqual([expect.objectContaining({ kind: 'restart', urgent: true, actions: [{ type: 'restart', color: 'blue' }], restartKey: 'web/blue' })]);
    expect(out.message).toBe('blue: 2/3 replicas run; replica 2 died (killed by SIGKILL)');
    expect(replicaReadiness(live(['running', 'exited', 'running']).colors.blue)).toEqual({ ready: 2, total: 3 });
  });

  it('leaves a dead pod to Kubernetes: degraded, reported, no restart of the colour', () => {
    const l = live(['running', 'exited']);
    l.colors.blue!.runtime = 'kubernetes';
    const out = liveness({ live: l, port: 1881, restarts: {}, now: 0 });
    expect(out.repairs).toEqual([]);
    expect(out.down).toBe(false);
    expect(out.message).toBe('blue: 1/2 replicas run; replica 2 died (killed by SIGKILL)');
    // Every pod stuck: the colour itself is not running, and that is still repaired (scaled up again).
    const all = live(['exited', 'exited']);
    all.colors.blue = { ...all.colors.blue!, runtime: 'kubernetes', status: 'exited' };
    expect(liveness({ live: all, port: 1881, restarts: {}, now: 0 }).repairs).toEqual([expect.objectContaining({ kind: 'restart', actions: [{ type: 'restart', color: 'blue' }] })]);
  });

  it('ends the sessions of replicas gone without stopping (pods replaced), and only when there are some', () => {
    const l = live(['running', 'running']);
    l.gate = { open: true, gone: ['f-web-blue-abc-x1'] };
    expect(liveness({ live: l, port: 1881, restarts: {}, now: 0 }).repairs).toEqual([expect.objectContaining({ kind: 'forget-replicas', urgent: true, actions: [{ type: 'forgetReplicas', color: 'blue', keys: ['f-web-blue-abc-x1'] }] })]);
    l.gate = { open: true, gone: [] };
    expect(liveness({ live: l, port: 1881, restarts: {}, now: 0 }).repairs).toEqual([]);
  });

  it('has nothing to do when every replica runs', () => {
    expect(liveness({ live: live(['running', 'running']), port: 1881, restarts: {}, now: 0 }).repairs).toEqual([]);
  });
});

describe('the router\'s replica picker', () => {
  const upstream = { color: 'blue' as const, port: 1, ports: [1, 2, 3] };
  it('gives new connections the replicas in turn, and a connection keeps its replica while the route stands', () => {
    const pick = replicaPicker();
    const conns = [{}, {}, {}, {}];
    expect(conns.map((c) => pick.pick(c, upstream))).toEqual([1, 2, 3, 1]);
    expect(pick.pick(conns[1]!, upstream)).toBe(2);
    const next = { color: 'green' as const, port: 7, ports: [7, 8] };
    expect(new Set(conns.map((c) => pick.pick(c, next)))).toEqual(new Set([7, 8]));
  });

  it('passes a refused request to a replica not tried yet, and leaves the refused one out for a while', () => {
    let now = 0;
    const pick = replicaPicker(() => now);
    const c = {};
    expect(pick.pick(c, upstream)).toBe(1);
    const other = pick.refused(c, upstream, 1, new Set([1]));
    expect(other).not.toBe(1);
    expect(pick.refused(c, upstream, other!, new Set([1, other!]))).toBe(6 - 1 - other!);
    expect(pick.refused(c, upstream, 3, new Set([1, 2, 3]))).toBeUndefined();
    // while 1, 2 and 3 were refused lately, all are tried anyway; once 1 is forgiven it is picked
    now = 500;
    pick.refused({}, upstream, 2, new Set([2]));
    now = 1_200;
    const fresh = Array.from({ length: 4 }, () => pick.pick({}, upstream));
    expect(fresh).not.toContain(2);
  });

  it('a route of one port is passed through', () => {
    expect(replicaPicker().pick({}, { color: 'blue', port: 9 })).toBe(9);
  });
});

describe('nginx with replicas', () => {
  it('writes one server per replica into the upstream, and one server when the colour has one', async () => {
    const { renderConf } = await import('../../src/adapters/switch/nginx.js');
    const three = renderConf({ instance: 'web', listenPort: 1881, generation: 'g', active: { color: 'green', port: 4001, ports: [4001, 4002, 4003] } }, 300);
    expect(three.match(/^ {2}server 127\.0\.0\.1:\d+;.*$/gm)).toEqual(['  server 127.0.0.1:4001;  # green replica 1', '  server 127.0.0.1:4002;  # green replica 2', '  server 127.0.0.1:4003;  # green replica 3']);
    const one = renderConf({ instance: 'web', listenPort: 1881, generation: 'g', active: { color: 'blue', port: 4001 } }, 300);
    expect(one.match(/^ {2}server 127\.0\.0\.1:\d+;.*$/gm)).toEqual(['  server 127.0.0.1:4001;  # blue']);
  });
});
