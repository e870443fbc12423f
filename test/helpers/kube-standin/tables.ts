/**
 * Server-side printing: the meta.k8s.io/v1 Table a real API server answers when kubectl asks
 * for `as=Table`, with the columns and cell strings of the built-in printers (pkg/printers/internalversion)
 * for the kinds the stand-in serves.
 */
import type { KubeObject } from './store.js';

interface Column {
  name: string;
  type: string;
  format?: string;
  description: string;
  priority: number;
}

type Cells = (o: KubeObject, now: number) => (string | number)[];

const col = (name: string, priority = 0, type = 'string', format?: string): Column => ({ name, type, ...(format ? { format } : {}), description: name, priority });

const PRINTERS: Record<string, { columns: Column[]; cells: Cells }> = {
  Pod: {
    columns: [col('Name', 0, 'string', 'name'), col('Ready'), col('Status'), col('Restarts', 0, 'string'), col('Age'), col('IP', 1), col('Node', 1), col('Nominated Node', 1), col('Readiness Gates', 1)],
    cells: (o, now) => {
      const s = (o.status ?? {}) as { phase?: string; podIP?: string; containerStatuses?: { ready: boolean; restartCount: number; state?: { waiting?: { reason?: string }; terminated?: { reason?: string } }; lastState?: { terminated?: { finishedAt?: string } } }[]; conditions?: { type: string; status: string; reason?: string }[] };
      const cs = s.containerStatuses ?? [];
      const containers = ((o.spec as { containers?: unknown[] }).containers ?? []).length;
      let reason = s.phase ?? 'Pending';
      for (const c of cs) {
        if (c.state?.waiting?.reason) reason = c.state.waiting.reason;
        else if (c.state?.terminated?.reason) reason = c.state.terminated.reason;
      }
      const unschedulable = s.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
      if (reason === 'Pending' && unschedulable) reason = 'Pending';
      if (o.metadata.deletionTimestamp) reason = 'Terminating';
      const restarts = cs.reduce((n, c) => n + c.restartCount, 0);
      const last = cs.map((c) => c.lastState?.terminated?.finishedAt).filter(Boolean)[0];
      return [o.metadata.name, `${cs.filter((c) => c.ready).length}/${containers}`, reason, restarts && last ? `${restarts} (${age(last, now)} ago)` : String(restarts), age(o.metadata.creationTimestamp, now), s.podIP ?? '<none>', (o.spec as { nodeName?: string }).nodeName ?? '<none>', '<none>', '<none>'];
    },
  },
  Deployment: {
    columns: [col('Name', 0, 'string', 'name'), col('Ready'), col('Up-to-date', 0, 'integer'), col('Available', 0, 'integer'), col('Age'), col('Containers', 1), col('Images', 1), col('Selector', 1)],
    cells: (o, now) => {
      const spec = o.spec as { replicas?: number; selector?: { matchLabels?: Record<string, string> }; template: { spec: { containers: { name: string; image: string }[] } } };
      const st = (o.status ?? {}) as { readyReplicas?: number; updatedReplicas?: number; availableReplicas?: number };
      const cs = spec.template.spec.containers;
      return [o.metadata.name, `${st.readyReplicas ?? 0}/${spec.replicas ?? 0}`, st.updatedReplicas ?? 0, st.availableReplicas ?? 0, age(o.metadata.creationTimestamp, now), cs.map((c) => c.name).join(','), cs.map((c) => c.image).join(','), selector(spec.selector?.matchLabels)];
    },
  },
  Service: {
    columns: [col('Name', 0, 'string', 'name'), col('Type'), col('Cluster-IP'), col('External-IP'), col('Port(s)'), col('Age'), col('Selector', 1)],
    cells: (o, now) => {
      const spec = o.spec as { type?: string; clusterIP?: string; ports?: { port: number; protocol?: string }[]; selector?: Record<string, string> };
      return [o.metadata.name, spec.type ?? 'ClusterIP', spec.clusterIP ?? '<none>', '<none>', (spec.ports ?? []).map((p) => `${p.port}/${p.protocol ?? 'TCP'}`).join(',') || '<none>', age(o.metadata.creationTimestamp, now), selector(spec.selector)];
    },
  },
  ConfigMap: {
    columns: [col('Name', 0, 'string', 'name'), col('Data', 0, 'integer'), col('Age')],
    cells: (o, now) => [o.metadata.name, Object.keys((o.data ?? {}) as object).length + Object.keys((o.binaryData ?? {}) as object).length, age(o.metadata.creationTimestamp, now)],
  },
  Secret: {
    columns: [col('Name', 0, 'string', 'name'), col('Type'), col('Data', 0, 'integer'), col('Age')],
    cells: (o, now) => [o.metadata.name, String(o.type ?? 'Opaque'), Object.keys((o.data ?? {}) as object).length, age(o.metadata.creationTimestamp, now)],
  },
  Endpoints: {
    columns: [col('Name', 0, 'string', 'name'), col('Endpoints'), col('Age')],
    cells: (o, now) => {
      const subsets = (o.subsets ?? []) as { addresses?: { ip: string }[]; ports?: { port: number }[] }[];
      const eps = subsets.flatMap((s) => (s.addresses ?? []).flatMap((a) => (s.ports ?? []).map((p) => `${a.ip}:${p.port}`)));
      return [o.metadata.name, eps.join(',') || '<none>', age(o.metadata.creationTimestamp, now)];
    },
  },
  Lease: {
    columns: [col('Name', 0, 'string', 'name'), col('Holder'), col('Age')],
    cells: (o, now) => [o.metadata.name, (o.spec as { holderIdentity?: string } | undefined)?.holderIdentity ?? '', age(o.metadata.creationTimestamp, now)],
  },
  Event: {
    columns: [col('Last Seen'), col('Type'), col('Reason'), col('Object'), col('Message')],
    cells: (o, now) => {
      const involved = o.involvedObject as { kind: string; name: string };
      return [age(o.lastTimestamp as string, now), String(o.type), String(o.reason), `${involved.kind.toLowerCase()}/${involved.name}`, String(o.message)];
    },
  },
  Namespace: {
    columns: [col('Name', 0, 'string', 'name'), col('Status'), col('Age')],
    cells: (o, now) => [o.metadata.name, 'Active', age(o.metadata.creationTimestamp, now)],
  },
};

const DEFAULT = { columns: [col('Name', 0, 'string', 'name'), col('Age')], cells: ((o, now) => [o.metadata.name, age(o.metadata.creationTimestamp, now)]) as Cells };

export function wantsTable(accept: string | undefined): boolean {
  return /as=Table/.test(accept ?? '');
}

export function toTable(kind: string, items: KubeObject[], resourceVersion: string): Record<string, unknown> {
  const p = PRINTERS[kind] ?? DEFAULT;
  const now = Date.now();
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion },
    columnDefinitions: p.columns,
    rows: items.map((o) => ({ cells: p.cells(o, now), object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata } })),
  };
}

/** kubectl's short durations: 45s, 3m12s, 5h, 2d. */
function age(at: string | undefined, now: number): string {
  if (!at) return '<unknown>';
  const s = Math.max(0, Math.floor((now - Date.parse(at)) / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return `${m}m${s % 60 ? `${s % 60}s` : ''}`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  return h < 48 ? `${h}h` : `${Math.floor(h / 24)}d`;
}

function selector(labels: Record<string, string> | undefined): string {
  const s = Object.entries(labels ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
  return s || '<none>';
}
