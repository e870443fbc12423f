/**
 * Health over time, per instance, for the fleet page's pictures: a bounded ring of samples
 * kept in memory (a restart forgets it; the metrics keep the long history). A sample is taken
 * when the status changes — at most one per `minIntervalMs` unless the health itself changed —
 * and instances that leave the status are forgotten.
 */
import type { FleetStatus } from '../core/status.js';

export interface HealthSample {
  /** ms since the epoch */
  at: number;
  health: string;
}

export interface HealthRingLimits {
  samples: number;
  instances: number;
  minIntervalMs: number;
}

export const HEALTH_RING_LIMITS: HealthRingLimits = { samples: 120, instances: 1_000, minIntervalMs: 15_000 };

export class HealthRing {
  private readonly rings = new Map<string, HealthSample[]>();

  constructor(private readonly limits: HealthRingLimits = HEALTH_RING_LIMITS) {}

  record(status: Pick<FleetStatus, 'instances'>, now: number): void {
    const names = new Set<string>();
    for (const i of status.instances.slice(0, this.limits.instances)) {
      names.add(i.name);
      const ring = this.rings.get(i.name) ?? [];
      const last = ring[ring.length - 1];
      if (last && last.health === i.health && now - last.at < this.limits.minIntervalMs) continue;
      ring.push({ at: now, health: i.health });
      if (ring.length > this.limits.samples) ring.splice(0, ring.length - this.limits.samples);
      this.rings.set(i.name, ring);
    }
    for (const name of [...this.rings.keys()]) if (!names.has(name)) this.rings.delete(name);
  }

  of(name: string): readonly HealthSample[] {
    return this.rings.get(name) ?? [];
  }

  all(): Record<string, readonly HealthSample[]> {
    return Object.fromEntries(this.rings);
  }
}
