/**
 * A colour's status as the kubernetes driver reads it from its Deployment and pods
 * (kubernetes-status.ts, no requests): fixture objects shaped as the API server returns them.
 */
import { describe, expect, it } from 'vitest';
import type { KubeObject } from '../../src/adapters/kubernetes/api.js';
import { colorOf, podProblem } from '../../src/adapters/runtime/kubernetes-status.js';

const PROXY = { podAccess: 'proxy' as const, namespaceUrl: 'https://api.example:6443/api/v1/namespaces/ns' };
const DIRECT = { podAccess: 'direct' as const, namespaceUrl: PROXY.namespaceUrl };
const LABELS = { 'tower.redforge.dev/fleet': 'f', 'tower.redforge.dev/instance': 'web', 'tower.redforge.dev/color': 'green' };

function deployment(replicas: number, annotations: Record<string, string> = {}, status: unknown = {}): KubeObject {
  return { metadata: { name: 'f-web-green', uid: 'd1', labels: LABELS, annotations: { 'tower.redforge.dev/rev': 'r'.repeat(64), 'tower.redforge.dev/flows-hash': 'h'.repeat(64), ...annotations } }, spec: { replicas }, status };
}

function pod(name: string, status: Record<string, unknown>, more: Partial<KubeObject['metadata']> = {}): KubeObject {
  return { metadata: { name, uid: `u-${name}`, labels: LABELS, ownerReferences: [{ uid: 'd1', kind: 'Deployment', name: 'f-web-green' }], creationTimestamp: '2026-12-02T10:00:00Z', ...more }, spec: { containers: [{ name: 'node-red', readinessProbe: { httpGet: { path: '/auth/login', port: 'http' } } }] }, status };
}

const ready = { phase: 'Running', podIP: '10.1.2.3', conditions: [{ type: 'Ready', status: 'True' }], containerStatuses: [{ ready: true, restartCount: 0, state: { running: { startedAt: '2026-12-02T10:00:05Z' } } }] };
const starting = { phase: 'Running', podIP: '10.1.2.4', conditions: [{ type: 'Ready', status: 'False', reason: 'ContainersNotReady', message: 'containers with unready status: [node-red]' }], containerStatuses: [{ ready: false, restartCount: 0, state: { running: {} } }] };

describe('kubernetes colour status', () => {
  it('created, stopped, running: from replicas, the stopped annotation and the pods', () => {
    expect(colorOf(deployment(0), [], PROXY)).toMatchObject({ status: 'created', id: 'f-web-green', rev: 'r'.repeat(64), flowsHash: 'h'.repeat(64) });
    expect(colorOf(deployment(0, { 'tower.redforge.dev/stopped': '2026-12-02T10:01:00Z' }), [], PROXY)).toMatchObject({ status: 'exited', exit: { at: '2026-12-02T10:01:00Z', reason: 'stopped (scaled to 0 replicas)' } });
    const running = colorOf(deployment(2), [pod('a', starting), pod('b', ready)], PROXY)!;
    // The ready pod answers for the colour.
    expect(running).toMatchObject({ status: 'running', id: 'b', url: 'https://api.example:6443/api/v1/namespaces/ns/pods/b:1880/proxy', startedAt: '2026-12-02T10:00:05Z' });
    expect(running.notReady).toBeUndefined();
    expect(colorOf(deployment(1), [pod('b', ready)], DIRECT)!.url).toBe('http://10.1.2.3:1880');
    expect(colorOf(deployment(1), [pod('b', { ...ready, podIP: 'fd00::5' })], DIRECT)!.url).toBe('http://[fd00::5]:1880');
  });

  it('a pod starting runs, not ready, and says why; pods being deleted or of another Deployment do not count', () => {
    const c = colorOf(deployment(1), [pod('a', starting), pod('old', ready, { deletionTimestamp: '2026-12-02T10:02:00Z' }), pod('other', ready, { ownerReferences: [{ uid: 'd0', kind: 'Deployment', name: 'x' }] })], PROXY)!;
    expect(c.status).toBe('running');
    expect(c.id).toBe('a');
    expect(c.notReady).toBe('pod a is not Ready: ContainersNotReady (containers with unready status: [node-red]); its readiness probe GET /auth/login on port http has not passed; 0 restarts');
    expect(colorOf(deployment(1), [], PROXY)).toMatchObject({ status: 'running', notReady: 'Deployment f-web-green has no pod yet', url: 'http://no-pod-yet.invalid:1880' });
  });

  it('stuck pods make an exited colour with Kubernetes\' reason, unless another pod is ready', () => {
    const crash = pod('a', { phase: 'Running', conditions: [{ type: 'Ready', status: 'False' }], containerStatuses: [{ ready: false, restartCount: 4, state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 40s restarting failed container' } }, lastState: { terminated: { exitCode: 137, reason: 'OOMKilled', finishedAt: '2026-12-02T10:03:00Z' } } }] });
    expect(colorOf(deployment(1), [crash], PROXY)).toMatchObject({ status: 'exited', exit: { at: '2026-12-02T10:03:00Z', code: 137, signal: 'SIGKILL', reason: 'CrashLoopBackOff: back-off 40s restarting failed container (last: out of memory; 4 restarts)' } });
    expect(colorOf(deployment(2), [crash, pod('b', ready)], PROXY)!.status).toBe('running');
    const unschedulable = pod('u', { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/3 nodes are available: 3 Insufficient memory.', lastTransitionTime: '2026-12-02T10:04:00Z' }] });
    expect(podProblem(unschedulable)).toEqual({ at: '2026-12-02T10:04:00Z', code: null, signal: null, reason: 'Unschedulable: 0/3 nodes are available: 3 Insufficient memory.' });
    const config = pod('c', { phase: 'Pending', containerStatuses: [{ ready: false, restartCount: 0, state: { waiting: { reason: 'CreateContainerConfigError', message: 'secret "f-web-green" not found' } } }] });
    expect(podProblem(config)?.reason).toBe('CreateContainerConfigError: secret "f-web-green" not found');
    // Waiting to be created is not stuck.
    expect(podProblem(pod('w', { phase: 'Pending', containerStatuses: [{ state: { waiting: { reason: 'ContainerCreating' } } }] }))).toBeUndefined();
    // A Deployment that cannot make pods at all.
    const quota = deployment(1, {}, { conditions: [{ type: 'ReplicaFailure', status: 'True', reason: 'FailedCreate', message: 'pods "f-web-green-x" is forbidden: exceeded quota', lastTransitionTime: '2026-12-02T10:05:00Z' }] });
    expect(colorOf(quota, [], PROXY)).toMatchObject({ status: 'exited', exit: { reason: 'ReplicaFailure: pods "f-web-green-x" is forbidden: exceeded quota' } });
  });

  it('with replicas, each pod is a replica: its URL, its status and reason, an index by creation, its name as the key of its gate and session', () => {
    const crash = pod('c', { phase: 'Running', conditions: [{ type: 'Ready', status: 'False' }], containerStatuses: [{ ready: false, restartCount: 3, state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 20s' } } }] }, { creationTimestamp: '2026-12-02T10:00:01Z' });
    const later = pod('a', ready, { creationTimestamp: '2026-12-02T10:09:00Z' });
    const c = colorOf(deployment(3, { 'tower.redforge.dev/replicas': '3' }), [later, crash, pod('b', starting)], PROXY)!;
    expect(c.status).toBe('running');
    expect(c.replicas).toEqual([
      { index: 1, id: 'b', key: 'b', url: `${PROXY.namespaceUrl}/pods/b:1880/proxy`, status: 'running' },
      { index: 2, id: 'c', key: 'c', url: `${PROXY.namespaceUrl}/pods/c:1880/proxy`, status: 'exited', reason: 'pod c: CrashLoopBackOff: back-off 20s' },
      { index: 3, id: 'a', key: 'a', url: `${PROXY.namespaceUrl}/pods/a:1880/proxy`, status: 'running' },
    ]);
    // The ready pod still answers for the colour.
    expect(c.url).toBe(`${PROXY.namespaceUrl}/pods/a:1880/proxy`);
    // A pod terminating is no replica, but still runs: it is leaving.
    const going = colorOf(deployment(2, { 'tower.redforge.dev/replicas': '2' }), [later, pod('b', ready), pod('g', ready, { deletionTimestamp: '2026-12-02T10:10:00Z' })], PROXY)!;
    expect(going.replicas?.map((r) => r.id)).toEqual(['b', 'a']);
    expect(going.leaving).toEqual(['g']);
    // One replica: the colour is its pod, as before; stopped: no pods, no replicas.
    expect(colorOf(deployment(1, { 'tower.redforge.dev/replicas': '1' }), [later], PROXY)!.replicas).toBeUndefined();
    expect(colorOf(deployment(0, { 'tower.redforge.dev/replicas': '3', 'tower.redforge.dev/stopped': '2026-12-02T10:01:00Z' }), [], PROXY)!.replicas).toBeUndefined();
  });

  it('is not Tower\'s without its labels, and not listed while being deleted', () => {
    expect(colorOf({ ...deployment(1), metadata: { name: 'x', uid: 'd1', labels: { app: 'x' } } }, [], PROXY)).toBeUndefined();
    expect(colorOf({ ...deployment(1), metadata: { ...deployment(1).metadata, deletionTimestamp: '2026-12-02T10:06:00Z' } }, [], PROXY)).toBeUndefined();
  });
});
