/**
 * The observed fleet given as data (tower plan --observed FILE): what runs, per instance.
 * Accepts {instances: [{name, flows, rev?, config?}]} — also what `tower status --format json`
 * prints — and reports what is wrong with anything else.
 */
import { deployableFlows, flowsRev } from './flows.js';
import type { LiveInstance } from './live.js';
import type { FlowNode, ObservedFleet, ObservedInstance } from './model.js';

export function parseObserved(data: unknown): { observed?: ObservedFleet; error?: string } {
  if (!data || typeof data !== 'object' || !Array.isArray((data as { instances?: unknown }).instances)) {
    return { error: 'expected an object with an "instances" list: {"instances": [{"name": "ingest", "flows": [...]}]}' };
  }
  const instances: ObservedInstance[] = [];
  const list = (data as { instances: unknown[] }).instances;
  for (let i = 0; i < list.length; i++) {
    const raw = list[i] as Record<string, unknown> | null;
    if (!raw || typeof raw !== 'object' || typeof raw.name !== 'string') return { error: `instances[${i}]: needs a "name"` };
    let flows: FlowNode[] | null = null;
    if (Array.isArray(raw.flows)) flows = raw.flows as FlowNode[];
    else if (raw.flows && typeof raw.flows === 'object' && Array.isArray((raw.flows as { flows?: unknown }).flows)) flows = (raw.flows as { flows: FlowNode[] }).flows;
    else if (raw.flows !== null && raw.flows !== undefined) return { error: `instances[${i}] (${raw.name}): "flows" must be a list of nodes or null` };
    if (flows && flows.some((n) => !n || typeof n !== 'object' || typeof n.id !== 'string' || typeof n.type !== 'string')) {
      return { error: `instances[${i}] (${raw.name}): every node in "flows" needs a string id and type` };
    }
    instances.push({
      name: raw.name,
      flows,
      ...(typeof raw.rev === 'string' ? { rev: raw.rev } : {}),
      ...(raw.config && typeof raw.config === 'object' ? { config: raw.config as ObservedInstance['config'] } : {}),
    });
  }
  return { observed: { instances } };
}

/**
 * An observed fleet given as data, as decide takes it: each instance runs, healthy, on its
 * blue colour, which Tower started with what it runs now — so every difference from the
 * repository is out of date (there is no record to tell drift from).
 */
export function liveFromObserved(observed: ObservedFleet | undefined): LiveInstance[] {
  return (observed?.instances ?? []).map((o) => {
    const rev = o.rev ?? (o.flows ? flowsRev(deployableFlows(o.flows)) : '');
    return {
      name: o.name,
      switch: { kind: 'builtin', running: true, port: o.config?.port ?? 0, url: '', routed: 'blue' },
      colors: { blue: { color: 'blue', runtime: o.config?.runtime ?? 'process', status: 'running', port: 0, url: '', rev, ...(o.config ? { config: o.config } : {}) } },
      flows: o.flows,
      ...(o.flows ? { rev } : {}),
      adminUp: o.flows !== null,
    };
  });
}
