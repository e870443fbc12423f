/**
 * Replicas behind one colour (fleet.yaml `replicas: N`): the route names every replica's port,
 * and new client connections are spread over them round-robin. A connection stays on the
 * replica it was given while the route stands (keep-alive requests of one client land on one
 * Node-RED); a new route gives it a replica of the new colour. A replica that refuses a
 * connection (it died; the engine restarts it) is skipped for a moment, and the request, of
 * which nothing was sent yet, goes to the next one.
 */
import type { Upstream } from '../adapters/switch/types.js';

/** How long a replica that refused a connection is left out of the rotation. */
export const REFUSED_SKIP_MS = 1_000;

export interface ReplicaPicker {
  /** The port for a request arriving on this client connection. */
  pick(connection: object, upstream: Upstream): number;
  /** `port` refused: the next replica not yet tried for this request (undefined when none is left). */
  refused(connection: object, upstream: Upstream, port: number, tried: ReadonlySet<number>): number | undefined;
}

/** Whether a route spreads over several replicas. */
export function spreads(upstream: Upstream): boolean {
  return (upstream.ports?.length ?? 0) > 1;
}

export function replicaPicker(now: () => number = Date.now): ReplicaPicker {
  const given = new WeakMap<object, { upstream: Upstream; port: number }>();
  const refusedUntil = new Map<number, number>();
  let turn = 0;

  function next(upstream: Upstream, skip: ReadonlySet<number>): number | undefined {
    const ports = upstream.ports!;
    const candidates = ports.filter((p) => !skip.has(p));
    if (!candidates.length) return undefined;
    const up = candidates.filter((p) => (refusedUntil.get(p) ?? 0) <= now());
    const from = up.length ? up : candidates; // all refused lately: try anyway
    return from[turn++ % from.length];
  }

  return {
    pick(connection, upstream) {
      if (!spreads(upstream)) return upstream.port;
      const had = given.get(connection);
      if (had && had.upstream === upstream) return had.port;
      const port = next(upstream, new Set())!;
      given.set(connection, { upstream, port });
      return port;
    },
    refused(connection, upstream, port, tried) {
      if (!spreads(upstream)) return undefined;
      refusedUntil.set(port, now() + REFUSED_SKIP_MS);
      const alt = next(upstream, new Set([...tried, port]));
      if (alt !== undefined) given.set(connection, { upstream, port: alt });
      return alt;
    },
  };
}

/** A valid ports list of a route: 2..64 ports, each 1..65535, among them the route's port. */
export function validReplicaPorts(ports: unknown, port: number): boolean {
  return Array.isArray(ports) && ports.length >= 1 && ports.length <= 64 && ports.includes(port) && ports.every((p) => Number.isInteger(p) && p > 0 && p < 65536);
}
