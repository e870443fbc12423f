/**
 * Which leadership `tower run` uses (TOWER_LEADER, README "Several daemons"):
 * - kubernetes: a coordination.k8s.io Lease tower-<fleet> in spec.kubernetes.namespace;
 * - redis: the Redis lease at REDIS_URL;
 * - lock: none between machines, a lock in the state directory (one daemon per directory);
 * - auto (the default): the Lease when the fleet runs on Kubernetes (spec.kubernetes, or an
 *   instance with runtime: kubernetes), else Redis with REDIS_URL, else the lock.
 * The Lease's name and namespace, and for auto the choice itself, come from fleet.yaml: they are
 * read once, from the newest revision, before this daemon first tries to lead, and kept until it
 * restarts (a renamed fleet or a moved namespace takes effect with the next start). When
 * fleet.yaml cannot be read then (the remote is down), what the state directory remembers of the
 * fleet it ran decides; a state directory that ran nothing waits for fleet.yaml.
 */
import type { Logger } from 'pino';
import type { ClusterSettings, Fleet } from '../core/model.js';
import type { Leadership } from '../engine/ports.js';
import type { LeaderMode } from './run-config.js';

export interface FleetIdentity {
  name: string;
  kubernetes?: ClusterSettings;
  /** spec.kubernetes is set, or an instance runs with runtime: kubernetes. */
  onKubernetes: boolean;
}

export function fleetIdentity(fleet: Fleet): FleetIdentity {
  return { name: fleet.name, ...(fleet.kubernetes ? { kubernetes: fleet.kubernetes } : {}), onKubernetes: fleet.kubernetes !== undefined || fleet.instances.some((i) => i.config.runtime === 'kubernetes') };
}

export interface ChooseOptions {
  mode: Exclude<LeaderMode, 'lock' | 'redis'>;
  /** Reads the newest revision's fleet; rejects when it cannot (retried). */
  identify(): Promise<FleetIdentity>;
  /**
   * What this state directory knows of the fleet it ran (its name, and its cluster if it ran on
   * Kubernetes), for when fleet.yaml cannot be read: a daemon whose remote is down at start
   * still keeps what runs alive, as it did before leaders were chosen from fleet.yaml.
   */
  remembered?: () => FleetIdentity | undefined;
  kubernetes(fleet: FleetIdentity): Leadership;
  /** With REDIS_URL: the Redis leadership (auto, for a fleet that does not run on Kubernetes). */
  redis?: () => Leadership;
  log: Pick<Logger, 'info' | 'warn' | 'error'>;
  retryMs?: number;
}

/** Always leads: the state-dir lock (taken at start) keeps a second daemon out. */
const ALONE: Leadership = {
  acquire: async () => true,
  stillLeader: async () => true,
  isLeader: () => true,
  release: async () => {},
};

/** A Leadership that becomes the chosen one on its first acquire, once fleet.yaml says what to choose. */
export function chosenLeadership(options: ChooseOptions): Leadership & { chosen(): string | undefined } {
  let chosen: Leadership | undefined;
  let what: string | undefined;
  /** Why no leadership could be chosen yet (the last error), until one is. */
  let blocked: string | undefined;
  const retryMs = options.retryMs ?? 5_000;

  async function choose(isStopping: () => boolean): Promise<Leadership | undefined> {
    let logged: string | undefined;
    while (!isStopping()) {
      try {
        const fleet = await options.identify().catch((err: unknown) => {
          const known = options.remembered?.();
          // Explicitly kubernetes: only a remembered cluster says where the Lease is.
          if (!known || (options.mode === 'kubernetes' && !known.onKubernetes)) throw err;
          options.log.warn({ err: (err as Error).message, fleet: known.name, onKubernetes: known.onKubernetes }, 'fleet.yaml cannot be read: choosing the leader lease as this state directory last ran the fleet');
          return known;
        });
        if (options.mode === 'kubernetes' || fleet.onKubernetes) {
          what = `kubernetes lease tower-${fleet.name}`;
          return options.kubernetes(fleet);
        }
        what = options.redis ? 'redis lease' : 'state-dir lock';
        return options.redis ? options.redis() : ALONE;
      } catch (err) {
        const message = (err as Error).message;
        if (message !== logged) options.log.error({ err: message, leader: options.mode }, 'cannot tell which leader lease to take: not acting until fleet.yaml (or the cluster) can be read');
        logged = message;
        blocked = `cannot tell which leader lease to take: ${message}`;
      }
      const until = Date.now() + retryMs;
      while (!isStopping() && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    }
    return undefined;
  }

  return {
    async acquire(isStopping) {
      chosen ??= await choose(isStopping);
      blocked = undefined;
      if (!chosen) return false;
      return chosen.acquire(isStopping);
    },
    stillLeader: async () => (chosen ? chosen.stillLeader() : false),
    isLeader: () => chosen?.isLeader() ?? false,
    release: async () => chosen?.release(),
    chosen: () => what,
    blockedBy: () => (chosen ? undefined : blocked),
  };
}
