import { resolve } from 'node:path';
import { decide } from '../core/decide.js';
import { replicaReadiness } from '../core/live.js';
import { observeFleet } from '../engine/observe.js';
import { openRuntime } from '../runtime.js';
import type { Io } from './io.js';

export interface StatusRow {
  name: string;
  color?: string;
  port?: number;
  colorPort?: number;
  rev?: string;
  health: string;
  message: string;
  standby?: string;
  /** The standby colour's share of new connections while a canary splits them. */
  canaryWeight?: number;
  runtime?: string;
  /** Replicas of the serving colour ready, of how many, when it has several. */
  replicas?: { ready: number; total: number };
}

/** tower status: what runs — instance, colour, port, rev, health. */
export async function statusCommand(options: { stateDir: string; format: 'text' | 'json' }, io: Io): Promise<number> {
  const rt = await openRuntime({ stateDir: resolve(options.stateDir), env: io.env });
  try {
    const fleet = rt.registry.read().fleet;
    if (!fleet) {
      if (options.format === 'json') io.stdout(JSON.stringify({ fleet: null, instances: [] }, null, 2) + '\n');
      else io.stdout(`nothing is managed from ${options.stateDir} yet (run tower apply)\n`);
      return 0;
    }
    const live = await observeFleet(rt, fleet);
    // Health only: without a repository there is nothing to compare the flows with.
    const { instances } = decide({ mode: 'hold', canPlan: false, live, restarts: {}, now: Date.now() });
    const rows: StatusRow[] = instances.map((v) => {
      const l = live.find((x) => x.name === v.name)!;
      const active = v.routed ? l.colors[v.routed] : undefined;
      return {
        name: v.name,
        ...(v.routed ? { color: v.routed } : {}),
        ...(l.switch ? { port: l.switch.port } : {}),
        ...(active ? { colorPort: active.port, runtime: active.runtime } : {}),
        ...(l.rev ? { rev: l.rev } : {}),
        health: v.health.status,
        message: v.health.message,
        ...(v.standby ? { standby: v.standby } : {}),
        ...(replicaReadiness(active) ? { replicas: replicaReadiness(active)! } : {}),
        ...(l.switch?.canaryWeight !== undefined ? { canaryWeight: l.switch.canaryWeight } : {}),
      };
    });
    if (options.format === 'json') {
      io.stdout(JSON.stringify({ fleet, instances: rows }, null, 2) + '\n');
    } else {
      io.stdout(`fleet ${fleet}\n`);
      // A REPLICAS column ("2/3" ready) only when an instance has several.
      const withReplicas = rows.some((r) => r.replicas);
      const header = ['INSTANCE', 'COLOUR', 'PORT', 'REV', 'HEALTH', ...(withReplicas ? ['REPLICAS'] : []), ''];
      const table = rows.map((r) => [r.name, r.color ?? '-', r.port ? String(r.port) : '-', r.rev ? r.rev.slice(0, 12) : '-', r.health, ...(withReplicas ? [r.replicas ? `${r.replicas.ready}/${r.replicas.total}` : '-'] : []), r.canaryWeight !== undefined ? `(canary ${r.standby ?? 'other colour'} ${r.canaryWeight}%)` : r.standby ? `(${r.standby} warm)` : r.health === 'Healthy' ? '' : r.message]);
      const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
      for (const row of [header, ...table]) io.stdout(row.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd() + '\n');
    }
    return rows.every((r) => r.health === 'Healthy') ? 0 : 1;
  } finally {
    await rt.close();
  }
}
