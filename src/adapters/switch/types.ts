/**
 * The traffic switch: what serves an instance's stable address (fleet.yaml `port`) and
 * forwards to the active colour. It lives outside the reconciler's process, so requests
 * keep flowing when `tower apply` exits or the daemon is killed.
 *
 * Tower ships a built-in switch (a small router process); nginx — or a Kubernetes Service —
 * can be the switch in production by implementing this interface.
 */
import type { Color } from '../runtime/types.js';

export interface Upstream {
  color: Color;
  port: number;
}

export interface SwitchStatus {
  instance: string;
  listenPort: number;
  /** Where new requests go; undefined until the first route. */
  active?: Upstream;
  /** Requests in flight, per colour. */
  inflight: Partial<Record<Color, number>>;
  running: boolean;
}

export interface DrainResult {
  drained: boolean;
  /** Requests still in flight when the drain ended. */
  inflight: number;
}

export interface TrafficSwitch {
  readonly kind: string;
  /** Makes sure the instance's stable port is served (idempotent). Answers 503 until routed. */
  ensure(instance: string, listenPort: number): Promise<SwitchStatus>;
  /** Atomically sends new requests to upstream; requests in flight finish where they started. */
  route(instance: string, upstream: Upstream): Promise<SwitchStatus>;
  /** Resolves when no request is in flight to color, or when timeoutMs has passed. */
  drain(instance: string, color: Color, timeoutMs: number): Promise<DrainResult>;
  status(instance: string): Promise<SwitchStatus | undefined>;
  list(): Promise<SwitchStatus[]>;
  /** Stops serving the stable port and forgets the instance. Idempotent. */
  remove(instance: string): Promise<void>;
}
