/**
 * What the actions know of a colour's replicas: where each answers, the ports they start on,
 * and the audit of a colour that has several (through the stable address a login holds for one
 * Node-RED only, so each replica is asked directly).
 */
import type { RuntimeKind } from '../core/model.js';
import type { Color } from '../core/rollout.js';
import type { InstanceActions } from './actions.js';
import { TowerError, type FleetRuntime } from './ports.js';

/** What a run knows of a colour: where it and its replicas answer. */
export interface KnownColor {
  port: number;
  url: string;
  runtime: RuntimeKind;
  replicas?: KnownReplica[];
}
type KnownReplica = { index: number; url: string; port?: number; key?: string };

export function known(c: { port: number; url: string; runtime: RuntimeKind; replicas?: KnownReplica[] | undefined }): KnownColor {
  return { port: c.port, url: c.url, runtime: c.runtime, ...(c.replicas?.length ? { replicas: c.replicas.map((r) => ({ index: r.index, url: r.url, ...(r.port !== undefined ? { port: r.port } : {}), ...(r.key ? { key: r.key } : {}) })) } : {}) };
}

/** n ports nobody listens on, all different (two asks in a row may get the same one). */
export async function distinctPorts(rt: FleetRuntime, n: number): Promise<number[]> {
  const ports = new Set<number>();
  for (let tries = 0; ports.size < n && tries < n * 20; tries++) ports.add(await rt.freePort());
  if (ports.size < n) throw new TowerError(`cannot find ${n} free ports for the replicas`, 'NoFreePort');
  return [...ports];
}

/**
 * The audit of a colour with replicas. Through the stable address each new connection may reach
 * another replica, and an Admin API login holds for the one Node-RED that gave it: so the switch
 * must route to exactly this colour's replicas, the HTTP smoke checks must pass through it, and
 * each replica, asked directly, must run the desired rev.
 */
export async function auditReplicas(a: InstanceActions, color: Color, stable: string): Promise<void> {
  const rt = a.deps.runtime;
  const desired = a.desired!;
  const routed = (await a.sw().status(a.instance))?.active;
  const ports = a.colors[color]?.replicas?.map((r) => r.port) ?? [];
  if (routed?.color !== color || (routed.ports && ports.some((p) => p !== undefined && !routed.ports!.includes(p)))) {
    throw new TowerError(`the switch of ${stable} does not route to every replica of ${color}`, 'AuditFailed', 'stalled');
  }
  const checks = (desired.smoke ?? []).filter((c) => c.http);
  if (checks.length) {
    const failed = (await rt.smoke({ baseUrl: stable, checks, defaultTimeoutMs: 5_000, redact: a.redact })).filter((r) => !r.ok);
    if (failed.length) throw new TowerError(`through ${stable}: ${failed.map((f) => `"${f.name}": ${f.message}`).join('; ')}`, 'AuditFailed', 'stalled');
  }
  for (const { index, url } of a.replicaUrls(color)) {
    const got = await rt.admin(url).getFlows();
    if (got.rev !== desired.rev) throw new TowerError(`${color} replica ${index} serves rev ${got.rev.slice(0, 12)}, expected ${desired.rev.slice(0, 12)}`, 'AuditFailed', 'stalled');
  }
}
