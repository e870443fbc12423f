/**
 * Leadership among Tower replicas by a coordination.k8s.io/v1 Lease, the way client-go's
 * leaderelection does it (tools/leaderelection, LeaseLock):
 *
 * - acquire: GET the Lease; absent → create it naming us (a 409 AlreadyExists: someone else was
 *   first). Present and held by someone else → it is theirs until it has gone unchanged for
 *   leaseDurationSeconds *as observed on our own clock* since we first saw that record; clocks
 *   of different machines are never compared (renewTime is written for people and kubectl).
 *   Free (no holder, or expired) → update it naming us, with the resourceVersion we read:
 *   a 409 Conflict means another replica wrote first, and it won.
 * - renew: the same update every retryPeriod while we lead. A renew that fails is tried again on
 *   the next tick; when none has succeeded for renewDeadline — counted from when the last good
 *   one was *sent* — the term is over, before anyone else may take the lease (renewDeadline <
 *   leaseDuration, and the others wait a full leaseDuration from when *they* saw our last renew).
 *   A Lease that names someone else ends the term at once.
 * - release on a clean stop: the holder is cleared (leaseDurationSeconds 1), so that a standby
 *   takes over on its next try instead of waiting for the lease to expire.
 *
 * Loss is signalled as the Redis lease does: isLeader() turns false at once (the executor checks
 * it between waves), stillLeader() before every pass, and onLost is called once.
 */
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import type { Leadership } from '../../engine/ports.js';
import { TowerError } from '../../engine/ports.js';
import type { KubeApi, KubeObject } from './api.js';

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export interface LeaseObject extends KubeObject {
  spec?: LeaseSpec;
}

export interface LeaseLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface KubeLeaseOptions {
  api: Pick<KubeApi, 'request' | 'coordination' | 'namespace'>;
  /** The Lease's name: tower-<fleet>. */
  name: string;
  /** Unique per replica; default <hostname>_<random> (a pod's hostname is its name). */
  identity?: string;
  /** How long a standby waits, from when it saw the last renew, before it takes over. Default 15. */
  leaseDurationSeconds?: number;
  /** How long the leader keeps acting without a successful renew. Default 10 s; below leaseDuration. */
  renewDeadlineMs?: number;
  /** How often the leader renews and a standby tries. Default 2 s; below renewDeadline. */
  retryPeriodMs?: number;
  labels?: Record<string, string>;
  log?: LeaseLog;
  /** Called once per lost term, with why. */
  onLost?: (reason: string) => void;
}

export interface KubeLeadership extends Leadership {
  readonly name: string;
  readonly identity: string;
  /** For tests: stop renewing without releasing — what a replica that dies leaves behind. */
  abandon(): void;
}

/** The defaults of client-go's leader election (and kube-controller-manager's). */
export const LEASE_DEFAULTS = { leaseDurationSeconds: 15, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 } as const;

export function defaultIdentity(): string {
  return `${hostname()}_${randomBytes(6).toString('hex')}`;
}

/** MicroTime as the API server parses it (RFC 3339 with exactly six fractional digits). */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export function kubeLeaseLeadership(options: KubeLeaseOptions): KubeLeadership {
  const { api, name } = options;
  const identity = options.identity ?? defaultIdentity();
  const durationS = options.leaseDurationSeconds ?? LEASE_DEFAULTS.leaseDurationSeconds;
  const renewDeadlineMs = options.renewDeadlineMs ?? LEASE_DEFAULTS.renewDeadlineMs;
  const retryMs = options.retryPeriodMs ?? LEASE_DEFAULTS.retryPeriodMs;
  if (!Number.isInteger(durationS) || durationS < 1) throw new Error(`leaseDurationSeconds must be a whole number of seconds, at least 1 (not ${durationS})`);
  if (!(renewDeadlineMs < durationS * 1000)) throw new Error(`the renew deadline (${renewDeadlineMs} ms) must be shorter than the lease duration (${durationS} s)`);
  if (!(retryMs > 0 && retryMs * 1.2 < renewDeadlineMs)) throw new Error(`the retry period (${retryMs} ms) must be positive and well below the renew deadline (${renewDeadlineMs} ms)`);
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) || name.length > 253) throw new Error(`"${name}" is not a valid Lease name (a lowercase RFC 1123 subdomain)`);
  const log = options.log;
  const path = api.coordination(`leases/${name}`);
  const collection = api.coordination('leases');
  const requestMs = Math.max(100, Math.min(renewDeadlineMs, 5_000));
  const clock = () => performance.now();

  /** The record last seen, and when (our clock): a holder's lease runs from when we saw it change. */
  let observed: { key: string; at: number } | undefined;
  /** The resourceVersion of the Lease as we last wrote or read it. */
  let resourceVersion: string | undefined;
  let leading = false;
  /** Our clock's end of the term: last good renew sent + renewDeadline. */
  let validUntil = 0;
  let tick: NodeJS.Timeout | undefined;
  let expiry: NodeJS.Timeout | undefined;
  let renewing = false;
  let term = 0;

  const isConflict = (err: unknown) => err instanceof TowerError && (err.reason === 'KubeConflict' || err.reason === 'KubeAlreadyExists');

  /**
   * One try, as client-go's tryAcquireOrRenew: 'held' when the Lease names us now (sentAt: our
   * clock before the read, from which the term's validity counts), else who holds it.
   * Throws when the API server cannot be asked or refuses (403).
   */
  async function tryAcquireOrRenew(renewOnly: boolean): Promise<{ held: true; sentAt: number } | { held: false; holder: string }> {
    const sentAt = clock();
    const current = await api.request<LeaseObject>('GET', path, { ok: [404], timeoutMs: requestMs });
    const wall = new Date();
    if (!current) {
      if (renewOnly) return { held: false, holder: '' };
      const body = lease({ holderIdentity: identity, leaseDurationSeconds: durationS, acquireTime: microTime(wall), renewTime: microTime(wall), leaseTransitions: 0 });
      try {
        const created = await api.request<LeaseObject>('POST', collection, { body, timeoutMs: requestMs });
        remember(created);
        return { held: true, sentAt };
      } catch (err) {
        if (isConflict(err)) return { held: false, holder: '(created by another replica just now)' };
        throw err;
      }
    }
    const spec = current.spec ?? {};
    const key = recordKey(spec);
    // When the answer came, not when the question left: the holder may have renewed in between,
    // and its lease runs from its renew (client-go's observedTime is taken after the Get too).
    const seenAt = clock();
    if (observed?.key !== key) observed = { key, at: seenAt };
    const holder = spec.holderIdentity ?? '';
    const mine = holder === identity;
    if (renewOnly && !mine) return { held: false, holder };
    const theirs = holder !== '' && !mine && seenAt < observed.at + (spec.leaseDurationSeconds ?? durationS) * 1000;
    if (theirs) return { held: false, holder };
    const transitions = spec.leaseTransitions ?? 0;
    const next: LeaseSpec = {
      holderIdentity: identity,
      leaseDurationSeconds: durationS,
      acquireTime: mine && spec.acquireTime ? spec.acquireTime : microTime(wall),
      renewTime: microTime(wall),
      leaseTransitions: mine ? transitions : transitions + 1,
    };
    const body: LeaseObject = { ...current, metadata: { ...current.metadata, labels: { ...current.metadata.labels, ...options.labels } }, spec: next };
    try {
      const updated = await api.request<LeaseObject>('PUT', path, { body, timeoutMs: requestMs });
      remember(updated);
      return { held: true, sentAt };
    } catch (err) {
      // Optimistic concurrency: someone wrote since our read; whoever it was won this round.
      if (isConflict(err)) return { held: false, holder: `(written by another replica just now; it held ${holder || 'nothing'})` };
      throw err;
    }
  }

  function remember(saved: LeaseObject | undefined): void {
    resourceVersion = saved?.metadata.resourceVersion;
    if (saved?.spec) observed = { key: recordKey(saved.spec), at: clock() };
  }

  function lease(spec: LeaseSpec): LeaseObject {
    return { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace: api.namespace, ...(options.labels ? { labels: options.labels } : {}) }, spec };
  }

  function stopTimers(): void {
    if (tick) clearTimeout(tick);
    if (expiry) clearTimeout(expiry);
    tick = expiry = undefined;
  }

  function lose(reason: string): void {
    if (!leading) return;
    leading = false;
    validUntil = 0;
    stopTimers();
    log?.warn({ lease: name, identity, reason }, 'leader lease lost: this replica stops acting');
    options.onLost?.(reason);
  }

  /** Our own clock ends the term at validUntil, even while a renew hangs. */
  function armExpiry(): void {
    if (expiry) clearTimeout(expiry);
    expiry = setTimeout(() => lose(`no renew succeeded within the renew deadline (${renewDeadlineMs} ms)`), Math.max(0, validUntil - clock()));
    expiry.unref();
  }

  function scheduleRenew(): void {
    const myTerm = term;
    tick = setTimeout(() => {
      if (!leading || term !== myTerm) return;
      if (renewing) return scheduleRenew();
      renewing = true;
      tryAcquireOrRenew(true).then(
        (r) => {
          renewing = false;
          if (!leading || term !== myTerm) return;
          if (!r.held) return lose(r.holder ? `the Lease names ${r.holder} now` : 'the Lease was deleted');
          validUntil = r.sentAt + renewDeadlineMs;
          armExpiry();
          scheduleRenew();
        },
        (err: unknown) => {
          renewing = false;
          if (!leading || term !== myTerm) return;
          log?.warn({ lease: name, err: (err as Error).message, leadsForMs: Math.max(0, Math.round(validUntil - clock())) }, 'cannot renew the leader lease; trying again');
          scheduleRenew();
        },
      );
    }, retryMs);
    tick.unref();
  }

  const leadership: KubeLeadership = {
    name,
    identity,

    async acquire(isStopping) {
      let waitingFor: string | undefined;
      let lastError: string | undefined;
      while (!isStopping()) {
        try {
          const r = await tryAcquireOrRenew(false);
          lastError = undefined;
          if (r.held) {
            leading = true;
            term++;
            validUntil = r.sentAt + renewDeadlineMs;
            if (isStopping()) break;
            armExpiry();
            scheduleRenew();
            log?.info({ lease: `${api.namespace}/${name}`, identity }, 'leader lease acquired');
            return true;
          }
          if (r.holder !== waitingFor) {
            waitingFor = r.holder;
            log?.info({ lease: `${api.namespace}/${name}`, holder: r.holder }, 'another replica leads this fleet; waiting to take over');
          }
        } catch (err) {
          const message = (err as Error).message;
          if (message !== lastError) log?.warn({ lease: `${api.namespace}/${name}`, err: message }, 'cannot read or write the leader lease; not acting until it can');
          lastError = message;
        }
        await sleepUnless(retryMs * (1 + Math.random() * 0.2), isStopping);
      }
      if (leading) await leadership.release();
      return false;
    },

    isLeader: () => leading && clock() < validUntil,

    // Local, like client-go's IsLeader: the renew loop asks the API server every retryPeriod.
    stillLeader: async () => leading && clock() < validUntil,

    async release() {
      const was = leading;
      leading = false;
      validUntil = 0;
      term++;
      stopTimers();
      if (!was) return;
      const wall = new Date();
      // client-go's release: no holder, and a lease of one second, so that a standby acquires on its next try.
      const released = (transitions: number, rv: string | undefined): LeaseObject => {
        const body = lease({ holderIdentity: '', leaseDurationSeconds: 1, acquireTime: microTime(wall), renewTime: microTime(wall), leaseTransitions: transitions });
        if (rv) body.metadata.resourceVersion = rv;
        return body;
      };
      try {
        try {
          await api.request('PUT', path, { body: released(lastTransitions(), resourceVersion), timeoutMs: requestMs });
        } catch (err) {
          if (!isConflict(err)) throw err;
          // Written since our last renew: clear it only if it still names us.
          const current = await api.request<LeaseObject>('GET', path, { ok: [404], timeoutMs: requestMs });
          if (current?.spec?.holderIdentity !== identity) return;
          await api.request('PUT', path, { body: released(current.spec.leaseTransitions ?? 0, current.metadata.resourceVersion), timeoutMs: requestMs });
        }
        log?.info({ lease: `${api.namespace}/${name}`, identity }, 'leader lease released');
      } catch (err) {
        log?.warn({ lease: name, err: (err as Error).message }, `cannot release the leader lease; it expires within ${durationS} s`);
      }
    },

    abandon() {
      leading = false;
      validUntil = 0;
      term++;
      stopTimers();
    },
  };

  function lastTransitions(): number {
    return (JSON.parse(observed?.key ?? '{}') as LeaseSpec).leaseTransitions ?? 0;
  }

  return leadership;
}

function recordKey(spec: LeaseSpec): string {
  return JSON.stringify({ holderIdentity: spec.holderIdentity ?? '', leaseDurationSeconds: spec.leaseDurationSeconds, acquireTime: spec.acquireTime, renewTime: spec.renewTime, leaseTransitions: spec.leaseTransitions ?? 0 });
}

/** Waits ms, looking at isStopping every 100 ms (the daemon's stop is a flag, not a signal). */
async function sleepUnless(ms: number, isStopping: () => boolean): Promise<void> {
  const end = performance.now() + ms;
  while (!isStopping()) {
    const left = end - performance.now();
    if (left <= 0) return;
    await new Promise((r) => setTimeout(r, Math.min(left, 100)));
  }
}
