/**
 * Liveness: what keeps an instance serving, whatever the revision. A dead switch, a dead
 * routed colour, a closed gate on the routed colour are repaired on every pass, `selfHeal` or
 * not — as a kubelet restarts a container. Colours Tower means to keep (routed or parked
 * warm) are restarted when they die, with backoff; colours it does not mean to keep
 * (leftovers of an interrupted rollout, expired standbys) are removed.
 *
 * Pure: the observation and the restart book go in, repairs come out.
 */
import { configHash } from './flows.js';
import { COLORS, deadReplicas, isRunning, otherColorOf, runtimeRestartsReplicas, type LiveColor, type LiveInstance } from './live.js';
import { restartKey, restartVerdict, type RestartBook, type RestartPolicy } from './restarts.js';
import type { Action } from './rollout.js';

/** How long a leftover consumer may finish the MQTT work it had taken before it is removed. */
export const LEFTOVER_GRACE_MS = 2_000;

export type RepairKind =
  | 'restart-switch' // the switch's router died: start it again on its route
  | 'restore-switch' // the switch is gone: serve the stable port again and route to the colour that ran
  | 'failover' // the routed colour died and a warm standby runs the same rev: route to it at once
  | 'restart' // a colour Tower keeps (routed, or parked warm) died: start it again
  | 'reopen-gate' // the routed colour's MQTT consumers are off: open its gate
  | 'forget-replicas' // replicas of the routed colour are gone (pods replaced): end their sessions, which would keep a share of the work
  | 'remove-leftover' // a colour nobody routes to nor keeps warm: drain and remove it
  | 'reap-standby'; // a parked colour whose keepWarm ran out

export interface Repair {
  instance: string;
  kind: RepairKind;
  reason: string;
  actions: Action[];
  /** Serving depends on it: made before any rollout. Others are housekeeping, made when nothing else is to do. */
  urgent: boolean;
  /** The restart counted against this key's backoff, when the repair restarts something. */
  restartKey?: string;
  /** Otherwise: a failure of the repair is counted against this key, so that it backs off too. */
  failureKey?: string;
}

/** Where an instance stands on liveness. */
export interface Liveness {
  repairs: Repair[];
  /** Something that serves the instance is down (switch or routed colour). */
  down: boolean;
  crashLoop: boolean;
  restarts: number;
  /** When a repair that waits for its backoff becomes due (ms since the epoch). */
  nextRestartAt?: number;
  message?: string;
}

export interface LivenessInput {
  live: LiveInstance;
  /** The instance's stable port as fleet.yaml has it, else as Tower recorded it. */
  port?: number;
  restarts: RestartBook;
  /** Repairs that failed, by failureKey: they wait for their backoff before they are tried again. */
  failures?: RestartBook;
  now: number;
  policy?: RestartPolicy;
}

export function liveness(input: LivenessInput): Liveness {
  const { live, now } = input;
  const name = live.name;
  // Restarts since the instance last ran stably, whether or not something is down now.
  const counted = [live.switch?.routed, 'switch'].map((what) => (what ? (input.restarts[restartKey(name, what)]?.restarts ?? 0) : 0));
  const out: Liveness = { repairs: [], down: false, crashLoop: false, restarts: Math.max(...counted) };
  const later = (at: number) => (out.nextRestartAt = Math.min(out.nextRestartAt ?? Infinity, at));
  /** A restart: counted, backed off, CrashLoop after a few. */
  const restart = (what: string, kind: RepairKind, reason: string, actions: Action[], urgent: boolean) => {
    const key = restartKey(name, what);
    const v = restartVerdict(input.restarts[key], now, input.policy);
    out.restarts = Math.max(out.restarts, v.restarts);
    if (v.crashLoop) out.crashLoop = true;
    if (v.due) out.repairs.push({ instance: name, kind, reason, actions, urgent, restartKey: key });
    else later(v.at);
  };
  /** Any other repair: tried again only after its backoff, should it fail. */
  const attempt = (kind: RepairKind, reason: string, actions: Action[], urgent: boolean, what: string = kind) => {
    const key = restartKey(name, what);
    const v = restartVerdict(input.failures?.[key], now, input.policy);
    if (v.due) out.repairs.push({ instance: name, kind, reason, actions, urgent, failureKey: key });
    else later(v.at);
  };

  const sw = live.switch;
  const routed = sw?.routed;
  const routedColor = routed ? live.colors[routed] : undefined;
  const other = routed ? otherColorOf(routed) : undefined;
  const standby = other ? live.colors[other] : undefined;
  // Failing over is for instances without MQTT consumers: a dead colour's persistent session
  // holds the messages sent since it died, and only its restart hands them on.
  const mayFailOver = live.gated === false && isRunning(standby);

  if (sw && !sw.running) {
    out.down = true;
    out.message = 'the switch is not running';
    restart('switch', 'restart-switch', 'the switch of the stable address stopped', [{ type: 'ensureSwitch' }], true);
  } else if (!sw && input.port !== undefined) {
    // The colours run but nothing serves the stable port: serve it again, on the colour Tower applied last.
    // (Without a port — not in the fleet, and no record of it — there is nothing to serve: it is pruned.)
    const keep = live.applied?.color && live.colors[live.applied.color] ? live.applied.color : COLORS.find((c) => isRunning(live.colors[c]));
    if (keep) {
      out.down = true;
      out.message = 'the switch is gone';
      const c = live.colors[keep]!;
      const actions: Action[] = isRunning(c) ? [{ type: 'ensureSwitch' }, { type: 'route', color: keep }, { type: 'openGate', color: keep }] : [{ type: 'ensureSwitch' }, { type: 'restart', color: keep }, { type: 'route', color: keep }];
      restart(isRunning(c) ? 'switch' : keep, 'restore-switch', `the switch is gone; ${keep} serves again`, actions, true);
    }
  }

  const failover = (why: string, park: boolean) =>
    attempt('failover', `${routed} ${why}; ${other} runs the same rev warm`, [{ type: 'route', color: other! }, { type: 'openGate', color: other! }, ...(park ? [{ type: 'park' as const, color: routed!, ...(standby!.parkedUntil !== undefined ? { until: standby!.parkedUntil } : {}) }] : [])], true);
  if (routed && routedColor && !isRunning(routedColor)) {
    out.down = true;
    const why = routedColor.exit?.reason ?? routedColor.status;
    out.message = `the routed colour ${routed} is not running (${why})`;
    if (mayFailOver && sameRelease(standby!, routedColor)) failover(`died (${why})`, true);
    else restart(routed, 'restart', `${routed} died (${why})`, [{ type: 'restart', color: routed }], true);
  } else if (routed && !routedColor && mayFailOver && live.applied && sameRelease(standby!, live.applied)) {
    // The routed colour is gone altogether (its container removed): the standby runs what was applied.
    out.down = true;
    out.message = `the routed colour ${routed} is gone`;
    failover('is gone', false);
  } else if (routed && isRunning(routedColor) && live.gate && !live.gate.open) {
    attempt('reopen-gate', `the gate of ${routed} is closed`, [{ type: 'openGate', color: routed }], true);
  }
  // A pod lost without stopping (its node died) left a persistent session in the shared subscription: the broker
  // queues its share of the messages for it until it expires. Ending it gives them to the replicas that run.
  const gone = live.gate?.gone ?? [];
  if (routed && gone.length) {
    attempt('forget-replicas', `${routed}: ${gone.length} replica(s) gone with their MQTT session left on the broker (${gone.slice(0, 3).join(', ')}${gone.length > 3 ? ', …' : ''})`, [{ type: 'forgetReplicas', color: routed, keys: gone }], true);
  }
  // A replica of the routed colour died while the others serve: the driver starts that replica alone
  // (restart starts what does not run); its gate reopens by itself from the retained command.
  // A runtime that restarts replicas itself (Kubernetes) is left to it: the instance is Degraded meanwhile.
  if (routed && isRunning(routedColor) && deadReplicas(routedColor).length) {
    out.message = replicaMessage(routed, routedColor);
    if (!runtimeRestartsReplicas(routedColor)) restart(routed, 'restart', out.message, [{ type: 'restart', color: routed }], true);
  }

  // The colours nobody routes to: standbys Tower keeps warm, or leftovers.
  for (const color of COLORS) {
    const c = live.colors[color];
    if (!c || color === routed || (routed === undefined && live.switch === undefined)) continue;
    const parkedUntil = c.parkedUntil;
    if (parkedUntil !== undefined && parkedUntil <= now) {
      attempt('reap-standby', `the keepWarm of ${color} ran out`, [{ type: 'remove', color }], false, `reap-${color}`);
    } else if (parkedUntil !== undefined) {
      if (!isRunning(c)) restart(color, 'restart', `the warm standby ${color} died (${c.exit?.reason ?? c.status})`, [{ type: 'restart', color }], false);
      else if (deadReplicas(c).length && !runtimeRestartsReplicas(c)) restart(color, 'restart', `the warm standby ${replicaMessage(color, c)}`, [{ type: 'restart', color }], false);
    } else {
      // A canary left behind (its rollout ended without Tower) still gets a share of new connections: route them all back first.
      const unsplit: Action[] = routed && live.switch?.canaryWeight !== undefined ? [{ type: 'route', color: routed }] : [];
      const actions: Action[] = isRunning(c) ? [...unsplit, { type: 'closeGate', color }, { type: 'drain', color }, { type: 'remove', color, graceMs: LEFTOVER_GRACE_MS }] : [...unsplit, { type: 'remove', color }];
      attempt('remove-leftover', `${color} is neither routed nor kept warm`, actions, false, `leftover-${color}`);
    }
  }
  return out;
}

/** Two colours run the same thing: the same flows rev and the same runtime config. */
export function sameRelease(a: Pick<LiveColor, 'rev' | 'config'>, b: Pick<LiveColor, 'rev' | 'config'>): boolean {
  return a.rev === b.rev && a.config !== undefined && b.config !== undefined && configHash(a.config) === configHash(b.config);
}

/** "blue: 2/3 replicas run; replica 2 died (killed by SIGKILL)". */
export function replicaMessage(color: string, c: LiveColor): string {
  const dead = deadReplicas(c);
  const total = c.replicas?.length ?? 1;
  return `${color}: ${total - dead.length}/${total} replicas run; ${dead.map((r) => `replica ${r.index} ${r.status === 'exited' ? 'died' : 'is ' + r.status}${r.reason ? ` (${r.reason})` : ''}`).join(', ')}`;
}
