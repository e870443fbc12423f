/**
 * The stand-in's controller manager, reduced to what Tower's objects need:
 *  - deployments: pods straight from a Deployment's template (no ReplicaSets), named
 *    <deployment>-<template hash>-<suffix>, owned by the Deployment; a changed template replaces
 *    its pods; replicas scale up and down; status (replicas, ready, available, updated,
 *    observedGeneration, conditions) as `kubectl rollout status` reads it;
 *  - garbage collection: a pod whose owner is gone is deleted (gracefully);
 *  - endpoints: each Service's Endpoints, from the ready, not terminating pods its selector
 *    matches (others under notReadyAddresses), with its ports resolved by name.
 * It runs on every change, coalesced, and on a slow tick.
 */
import { createHash } from 'node:crypto';
import { clone, iso, labelSelectorOf, mapSelector, matchesLabels, type KubeObject, type ObjectStore } from './store.js';

export interface Graceful {
  /** Deletes a pod the way the API server does: deletionTimestamp now, the kubelet ends it. */
  deletePod(namespace: string, name: string, graceSeconds?: number): void;
}

export class Controllers {
  private scheduled = false;
  private readonly timer: NodeJS.Timeout;
  private readonly onEvent = (e: { resource: string }) => {
    if (e.resource !== 'events' && e.resource !== 'endpoints') this.kick();
  };

  constructor(
    private readonly store: ObjectStore,
    private readonly graceful: Graceful,
  ) {
    store.events.on('event', this.onEvent);
    this.timer = setInterval(() => this.kick(), 1_000);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
    this.store.events.off('event', this.onEvent);
  }

  private kick(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      try {
        this.deployments();
        this.collectGarbage();
        this.endpoints();
      } catch (err) {
        console.error('stand-in controllers:', err);
      }
    });
  }

  private deployments(): void {
    for (const d of this.store.list('deployments', undefined)) {
      if (d.metadata.deletionTimestamp) continue;
      const spec = d.spec as { replicas: number; selector: Parameters<typeof labelSelectorOf>[0]; template: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec: unknown } };
      const hash = templateHash(spec.template);
      const ns = d.metadata.namespace!;
      const owned = this.store.list('pods', ns, (p) => (p.metadata.ownerReferences ?? []).some((o) => o.uid === d.metadata.uid));
      const live = owned.filter((p) => !p.metadata.deletionTimestamp);
      const stale = live.filter((p) => p.metadata.labels?.['pod-template-hash'] !== hash);
      for (const p of stale) this.graceful.deletePod(ns, p.metadata.name);
      const current = live.filter((p) => p.metadata.labels?.['pod-template-hash'] === hash);
      for (let i = current.length; i < spec.replicas; i++) {
        const pod: KubeObject = {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: {
            name: '',
            generateName: `${d.metadata.name}-${hash}-`,
            namespace: ns,
            labels: { ...(spec.template.metadata?.labels ?? {}), 'pod-template-hash': hash },
            ...(spec.template.metadata?.annotations ? { annotations: spec.template.metadata.annotations } : {}),
            ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: d.metadata.name, uid: d.metadata.uid!, controller: true, blockOwnerDeletion: true }],
          },
          spec: clone(spec.template.spec),
          status: { phase: 'Pending', qosClass: 'BestEffort' },
        };
        this.store.create('pods', 'Pod', pod);
      }
      // Scale down: the newest go first.
      const extra = current.sort((a, b) => (b.metadata.creationTimestamp ?? '').localeCompare(a.metadata.creationTimestamp ?? '')).slice(0, Math.max(0, current.length - spec.replicas));
      for (const p of extra) this.graceful.deletePod(ns, p.metadata.name);
      const mine = this.store.list('pods', ns, (p) => (p.metadata.ownerReferences ?? []).some((o) => o.uid === d.metadata.uid) && !p.metadata.deletionTimestamp);
      const ready = mine.filter(isReady).length;
      const updated = mine.filter((p) => p.metadata.labels?.['pod-template-hash'] === hash).length;
      const old = (d.status ?? {}) as { conditions?: { type: string; status: string; lastTransitionTime?: string; lastUpdateTime?: string }[] };
      const available = ready >= spec.replicas;
      const transition = (type: string, ok: boolean, reason: string, message: string) => {
        const was = old.conditions?.find((c) => c.type === type);
        const at = was && was.status === (ok ? 'True' : 'False') ? was.lastTransitionTime : iso(new Date());
        return { type, status: ok ? 'True' : 'False', lastUpdateTime: at, lastTransitionTime: at, reason, message };
      };
      const status = {
        observedGeneration: d.metadata.generation,
        replicas: mine.length,
        updatedReplicas: updated,
        readyReplicas: ready,
        availableReplicas: ready,
        ...(mine.length - ready > 0 ? { unavailableReplicas: mine.length - ready } : {}),
        conditions: [
          transition('Available', available, available ? 'MinimumReplicasAvailable' : 'MinimumReplicasUnavailable', available ? 'Deployment has minimum availability.' : 'Deployment does not have minimum availability.'),
          transition('Progressing', true, available && updated === spec.replicas ? 'NewReplicaSetAvailable' : 'ReplicaSetUpdated', `ReplicaSet "${d.metadata.name}-${hash}" ${available ? 'has successfully progressed' : 'is progressing'}.`),
        ],
      };
      // Zero fields are left out, as the API server's JSON does.
      for (const k of ['readyReplicas', 'availableReplicas', 'updatedReplicas', 'replicas'] as const) if (status[k] === 0) delete (status as Record<string, unknown>)[k];
      if (JSON.stringify(d.status) !== JSON.stringify(status)) {
        d.status = status;
        this.store.replace('deployments', 'Deployment', d, { subresource: 'status', ignoreVersion: true });
      }
    }
  }

  private collectGarbage(): void {
    const owners = new Set(this.store.list('deployments', undefined).map((d) => d.metadata.uid));
    for (const p of this.store.list('pods', undefined)) {
      const refs = p.metadata.ownerReferences ?? [];
      if (refs.length && refs.every((o) => o.kind === 'Deployment' && !owners.has(o.uid)) && !p.metadata.deletionTimestamp) this.graceful.deletePod(p.metadata.namespace!, p.metadata.name);
    }
  }

  private endpoints(): void {
    const services = this.store.list('services', undefined);
    const wanted = new Set<string>();
    for (const s of services) {
      const spec = s.spec as { selector?: Record<string, string>; ports?: { name?: string; port: number; targetPort?: number | string; protocol?: string }[] };
      if (!spec.selector) continue;
      const ns = s.metadata.namespace!;
      wanted.add(`${ns}/${s.metadata.name}`);
      const pods = this.store.list('pods', ns, (p) => matchesLabels(p.metadata.labels, mapSelector(spec.selector)) && Boolean((p.status as { podIP?: string } | undefined)?.podIP));
      const address = (p: KubeObject) => ({ ip: (p.status as { podIP: string }).podIP, nodeName: (p.spec as { nodeName?: string }).nodeName, targetRef: { kind: 'Pod', namespace: ns, name: p.metadata.name, uid: p.metadata.uid } });
      const ready = pods.filter((p) => isReady(p) && !p.metadata.deletionTimestamp);
      const notReady = pods.filter((p) => !(isReady(p) && !p.metadata.deletionTimestamp));
      // One subset per distinct resolution of the ports (named target ports may differ per pod; Tower's never do).
      const portsOf = (p: KubeObject) =>
        (spec.ports ?? []).map((sp) => {
          const target = typeof sp.targetPort === 'string' ? (p.spec as { containers: { ports?: { name?: string; containerPort: number }[] }[] }).containers.flatMap((c) => c.ports ?? []).find((cp) => cp.name === sp.targetPort)?.containerPort : (sp.targetPort ?? sp.port);
          return { ...(sp.name ? { name: sp.name } : {}), port: target, protocol: sp.protocol ?? 'TCP' };
        });
      const groups = new Map<string, { addresses: unknown[]; notReadyAddresses: unknown[]; ports: unknown[] }>();
      for (const [list, field] of [[ready, 'addresses'], [notReady, 'notReadyAddresses']] as const) {
        for (const p of list) {
          const ports = portsOf(p);
          if (ports.some((x) => x.port === undefined)) continue;
          const k = JSON.stringify(ports);
          const g = groups.get(k) ?? { addresses: [], notReadyAddresses: [], ports };
          g[field].push(address(p));
          groups.set(k, g);
        }
      }
      const subsets = [...groups.values()].map((g) => ({ ...(g.addresses.length ? { addresses: g.addresses } : {}), ...(g.notReadyAddresses.length ? { notReadyAddresses: g.notReadyAddresses } : {}), ports: g.ports }));
      const existing = this.store.get('endpoints', ns, s.metadata.name);
      const body: KubeObject = { apiVersion: 'v1', kind: 'Endpoints', metadata: { name: s.metadata.name, namespace: ns, labels: s.metadata.labels ?? {} }, ...(subsets.length ? { subsets } : {}) };
      if (!existing) this.store.create('endpoints', 'Endpoints', body);
      else if (JSON.stringify(existing.subsets) !== JSON.stringify(body.subsets) || JSON.stringify(existing.metadata.labels ?? {}) !== JSON.stringify(body.metadata.labels)) {
        this.store.replace('endpoints', 'Endpoints', { ...body, metadata: { ...existing.metadata, labels: body.metadata.labels } }, { ignoreVersion: true });
      }
    }
    for (const e of this.store.list('endpoints', undefined)) if (!wanted.has(`${e.metadata.namespace}/${e.metadata.name}`)) this.store.remove('endpoints', e.metadata.namespace, e.metadata.name);
  }
}

export function isReady(p: KubeObject): boolean {
  return ((p.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** pod-template-hash: a short stable hash of the template, as the Deployment controller labels its ReplicaSets. */
export function templateHash(template: unknown): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  const bytes = createHash('sha256').update(JSON.stringify(template)).digest();
  let s = '';
  for (let i = 0; i < 10; i++) s += alphabet[bytes[i]! % alphabet.length];
  return s;
}
