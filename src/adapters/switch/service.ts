/**
 * A Kubernetes Service as the traffic switch of runtime: kubernetes: one Service per instance,
 * <fleet>-<instance>, port = the instance's port → targetPort http (Node-RED in the pod); the
 * switch is its selector, moved from colour to colour.
 *
 * Why the selector, not Tower's router in front: the Service is what the cluster already uses to
 * reach pods, it needs no process of Tower's in the data path (Tower may run outside the
 * cluster, or be restarted), and it keeps the guarantee that requests in flight on the old colour
 * finish, because nothing stops the old colour when the selector moves:
 *  - route() first waits until the new colour's pods are Ready (Kubernetes' readiness probe,
 *    not only Tower's Admin API check), then moves the selector, then waits until the Service's
 *    Endpoints list the new colour (so that the stable address answers from it when route()
 *    returns: the rollout's AUDIT reads it there);
 *  - established connections and requests in flight stay on the old pods, which keep running;
 *  - drain() waits until no address of the old colour is left in the Endpoints, then a settle
 *    time for kube-proxy and the API servers to apply it (bounded by drainTimeout);
 *  - the old colour is then kept warm (it keeps running) or removed, and a removed pod's preStop
 *    sleeps drainTimeout before Node-RED gets SIGTERM: a request that a node's kube-proxy still
 *    sent it, or a keep-alive connection still open to it, is served to the end of that time.
 * In-flight counts are not observable through a Service: status().inflight is always {}.
 *
 * url(): the Service as Tower reaches it — through the API server's service proxy from outside
 * the cluster, at its cluster DNS name from inside; peerUrl(): the DNS name, as pods reach it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubeApi, KubeList, KubeObject } from '../kubernetes/api.js';
import { colorLabels, fleetSelector, KUBE_LABELS, NODE_RED_PORT } from '../runtime/kubernetes-objects.js';
import { isPodReady } from '../runtime/kubernetes-status.js';
import type { Color } from '../runtime/types.js';
import { TowerError } from '../../engine/ports.js';
import type { DrainResult, SwitchStatus, TrafficSwitch } from './types.js';

export interface ServiceSwitchOptions {
  api: KubeApi;
  fleet: string;
  /** How long route() waits for the colour's pods to be Ready and then listed in the Endpoints. Default 60 s. */
  readyTimeoutMs?: number;
  /** After the old colour left the Endpoints, how long kube-proxy and the API servers get to follow (at most the drain's timeout). Default 1 s. */
  settleMs?: number;
}

interface EndpointsSubset {
  addresses?: { ip: string; targetRef?: { name?: string } }[];
  notReadyAddresses?: { ip: string; targetRef?: { name?: string } }[];
}

const MERGE = 'application/merge-patch+json';
const PORT_NAME = 'http';

export function serviceSwitch(options: ServiceSwitchOptions): TrafficSwitch {
  const { api, fleet } = options;
  const readyTimeoutMs = options.readyTimeoutMs ?? 60_000;
  const settleMs = options.settleMs ?? 1_000;
  const serviceName = (instance: string) => `${fleet}-${instance}`;
  const servicePath = (instance: string) => api.core(`services/${encodeURIComponent(serviceName(instance))}`);

  const colorPods = async (instance: string, color: Color) =>
    (await api.request<KubeList>('GET', api.core(`pods?labelSelector=${fleetSelector(fleet, { [KUBE_LABELS.instance]: instance, [KUBE_LABELS.color]: color })}`)))?.items.filter((p) => !p.metadata.deletionTimestamp) ?? [];

  /** The pod names the Service's Endpoints list, ready or not. */
  async function endpointPods(instance: string): Promise<{ ready: Set<string>; all: Set<string> }> {
    const ep = await api.request<KubeObject>('GET', api.core(`endpoints/${encodeURIComponent(serviceName(instance))}`), { ok: [404] });
    const ready = new Set<string>();
    const all = new Set<string>();
    for (const s of ((ep?.subsets ?? []) as EndpointsSubset[])) {
      for (const a of s.addresses ?? []) {
        if (!a.targetRef?.name) continue;
        ready.add(a.targetRef.name);
        all.add(a.targetRef.name);
      }
      for (const a of s.notReadyAddresses ?? []) if (a.targetRef?.name) all.add(a.targetRef.name);
    }
    return { ready, all };
  }

  function statusOf(svc: KubeObject): SwitchStatus | undefined {
    const instance = svc.metadata.labels?.[KUBE_LABELS.instance];
    if (!instance || svc.metadata.labels?.[KUBE_LABELS.fleet] !== fleet || svc.metadata.deletionTimestamp) return undefined;
    const spec = svc.spec as { selector?: Record<string, string>; ports?: { port: number }[] };
    const color = spec.selector?.[KUBE_LABELS.color];
    return {
      instance,
      listenPort: spec.ports?.[0]?.port ?? 0,
      ...(color === 'blue' || color === 'green' ? { active: { color, port: NODE_RED_PORT } } : {}),
      inflight: {},
      // A Service has no process to die: it serves as long as it exists.
      running: true,
    };
  }

  async function status(instance: string): Promise<SwitchStatus | undefined> {
    const svc = await api.request<KubeObject>('GET', servicePath(instance), { ok: [404] });
    return svc ? statusOf(svc) : undefined;
  }

  async function until<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = await check();
      if (got !== undefined) return got;
      if (Date.now() > deadline) throw new TowerError(`service switch: ${what} after ${timeoutMs} ms`, 'ServiceNotReady');
      await sleep(200);
    }
  }

  return {
    kind: 'service',

    url(listenPort, instance) {
      if (!instance) throw new TowerError(`service switch: the stable address of port ${listenPort} needs the instance's name (its Service)`, 'NoInstance', 'stalled');
      if (api.podAccess === 'proxy') return `${api.server}${servicePath(instance)}:${PORT_NAME}/proxy`;
      return `http://${serviceName(instance)}.${api.namespace}.svc:${listenPort}`;
    },

    peerUrl: (listenPort, instance) => `http://${serviceName(instance)}.${api.namespace}.svc:${listenPort}`,

    async ensure(instance, listenPort) {
      const current = await api.request<KubeObject>('GET', servicePath(instance), { ok: [404] });
      if (current && current.metadata.labels?.[KUBE_LABELS.fleet] !== fleet) {
        throw new TowerError(`service switch: Service ${serviceName(instance)} in namespace ${api.namespace} exists but is not Tower's (no label ${KUBE_LABELS.fleet}=${fleet}): rename or remove it`, 'NameConflict', 'stalled');
      }
      const ports = [{ name: PORT_NAME, port: listenPort, targetPort: PORT_NAME, protocol: 'TCP' }];
      if (!current) {
        const labels = { [KUBE_LABELS.fleet]: fleet, [KUBE_LABELS.instance]: instance, 'app.kubernetes.io/managed-by': 'redforge-tower' };
        // No selector until the first route: no pod is behind it before a colour is verified.
        const created = await api.request<KubeObject>('POST', api.core('services'), { body: { apiVersion: 'v1', kind: 'Service', metadata: { name: serviceName(instance), labels }, spec: { type: 'ClusterIP', ports } } });
        return statusOf(created!)!;
      }
      if ((current.spec as { ports?: { port: number }[] }).ports?.[0]?.port !== listenPort) {
        return statusOf((await api.request<KubeObject>('PATCH', servicePath(instance), { contentType: MERGE, body: { spec: { ports } } }))!)!;
      }
      return statusOf(current)!;
    },

    async route(instance, upstream) {
      const { color } = upstream;
      const pods = await until(`no pod of ${instance}/${color} is Ready`, readyTimeoutMs, async () => {
        const all = await colorPods(instance, color);
        return all.length > 0 && all.every(isPodReady) ? all : undefined;
      });
      const patched = await api.request<KubeObject>('PATCH', servicePath(instance), { contentType: MERGE, body: { spec: { selector: colorLabels({ fleet, instance, color }) } } });
      const names = new Set(pods.map((p) => p.metadata.name));
      // The stable address answers from the new colour once its pods are the Endpoints' ready addresses.
      await until(`the Endpoints of ${serviceName(instance)} do not list ${color}`, readyTimeoutMs, async () => {
        const ep = await endpointPods(instance);
        return [...ep.ready].some((n) => names.has(n)) && [...ep.all].every((n) => names.has(n)) ? true : undefined;
      });
      return statusOf(patched!)!;
    },

    async drain(instance, color, timeoutMs): Promise<DrainResult> {
      const started = Date.now();
      const old = new Set((await colorPods(instance, color)).map((p) => p.metadata.name));
      let left = old.size;
      while (Date.now() - started < timeoutMs) {
        const ep = await endpointPods(instance);
        left = [...ep.all].filter((n) => old.has(n)).length;
        if (left === 0) break;
        await sleep(Math.min(200, Math.max(1, timeoutMs - (Date.now() - started))));
      }
      if (left === 0) await sleep(Math.max(0, Math.min(settleMs, timeoutMs - (Date.now() - started))));
      return { drained: left === 0, inflight: left };
    },

    status,

    async list() {
      const services = await api.request<KubeList>('GET', api.core(`services?labelSelector=${fleetSelector(fleet)}`));
      return (services?.items ?? []).flatMap((s) => statusOf(s) ?? []);
    },

    async remove(instance) {
      const current = await api.request<KubeObject>('GET', servicePath(instance), { ok: [404] });
      if (!current || current.metadata.labels?.[KUBE_LABELS.fleet] !== fleet) return;
      await api.request('DELETE', servicePath(instance), { ok: [404] });
    },
  };
}
