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
import { isRunning, otherColorOf, type LiveColor, type LiveInstance } from './live.js';
import { restartKey, restartVerdict, type RestartBook, type RestartPolicy } from './restarts.js';
import type { Action, Color } from './rollout.js';

/** How long a leftover consumer may finish the MQTT work it had taken before it is removed. */
export const LEFTOVER_GRACE_MS = 2_000;

export type RepairKind =
  | 'restart-switch' // the switch's router died: start it again on its route
  | 'restore-switch' // the switch is gone: serve the stable port again and route to the colour that ran
  | 'failover' // the routed colour died and a warm standby runs the same rev: route to it at once
  | 'restart' // a colour Tower keeps (routed, or parked warm) died: start it again
  | 'reopen-gate' // the routed colour's MQTT consumers are off: open its gate
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
  /** The instance's stable port as fleet.yaml has it (when the instance is in the fleet). */
  port?: number;
  restarts: RestartBook;
  now: number;
  policy?: RestartPolicy;
}

export function liveness(input: LivenessInput): Liveness {
  const { live, now } = input;
  const name = live.name;
  // Restarts since the instance last ran stably, whether or not something is down now.
  const counted = [live.switch?.routed, 'switch'].map((what) => (what ? (input.restarts[restartKey(name, what)]?.restarts ?? 0) : 0));
  const out: Liveness = { repairs: [], down: false, crashLoop: false, restarts: Math.max(...counted) };
  const restart = (what: string, kind: RepairKind, reason: string, actions: Action[], urgent: boolean) => {
    const key = restartKey(name, what);
    const v = restartVerdict(input.restarts[key], now, input.policy);
    out.restarts = Math.max(out.restarts, v.restarts);
    if (v.crashLoop) out.crashLoop = true;
    if (v.due) out.repairs.push({ instance: name, kind, reason, actions, urgent, restartKey: key });
    else out.nextRestartAt = Math.min(out.nextRestartAt ?? Infinity, v.at);
  };

  const sw = live.switch;
  const routed = sw?.routed;
  const routedColor = routed ? live.colors[routed] : undefined;

  if (sw && !sw.running) {
    out.down = true;
    out.message = 'the switch is not running';
    restart('switch', 'restart-switch', 'the switch of the stable address stopped', [{ type: 'ensureSwitch' }], true);
  } else if (!sw && input.port !== undefined) {
    // The colours run but nothing serves the stable port: serve it again, on the colour Tower applied last.
    // (Without a port — not in the fleet, and no record of it — there is nothing to serve: it is pruned.)
    const keep = live.applied?.color && live.colors[live.applied.color] ? live.applied.color : (['blue', 'green'] as Color[]).find((c) => isRunning(live.colors[c]));
    if (keep) {
      out.down = true;
      out.message = 'the switch is gone';
      const c = live.colors[keep]!;
      const actions: Action[] = isRunning(c) ? [{ type: 'ensureSwitch' }, { type: 'route', color: keep }, { type: 'openGate', color: keep }] : [{ type: 'ensureSwitch' }, { type: 'restart', color: keep }, { type: 'route', color: keep }];
      restart(isRunning(c) ? 'switch' : keep, 'restore-switch', `the switch is gone; ${keep} serves again`, actions, true);
    }
  }

  if (routed && routedColor && !isRunning(routedColor)) {
    out.down = true;
    const why = routedColor.exit?.reason ?? routedColor.status;
    out.message = `the routed colour ${routed} is not running (${why})`;
    const other = otherColorOf(routed);
    const standby = live.colors[other];
    if (isRunning(standby) && sameRelease(standby, routedColor)) {
      out.repairs.push({
        instance: name,
        kind: 'failover',
        reason: `${routed} died (${why}); ${other} runs the same rev warm`,
        actions: [{ type: 'route', color: other }, { type: 'openGate', color: other }, { type: 'closeGate', color: routed }, { type: 'park', color: routed, ...(standby.parkedUntil !== undefined ? { until: standby.parkedUntil } : {}) }],
        urgent: true,
      });
    } else {
      restart(routed, 'restart', `${routed} died (${why})`, [{ type: 'restart', color: routed }], true);
    }
  } else if (routed && isRunning(routedColor) && live.gate && !live.gate.open) {
    out.repairs.push({ instance: name, kind: 'reopen-gate', reason: `the gate of ${routed} is closed`, actions: [{ type: 'openGate', color: routed }], urgent: true });
  }

  // The colours nobody routes to: standbys Tower keeps warm, or leftovers.
  for (const color of ['blue', 'green'] as Color[]) {
    const c = live.colors[color];
    if (!c || color === routed || (routed === undefined && live.switch === undefined)) continue;
    const parkedUntil = c.parkedUntil;
    if (parkedUntil !== undefined && parkedUntil <= now) {
      out.repairs.push({ instance: name, kind: 'reap-standby', reason: `the keepWarm of ${color} ran out`, actions: [{ type: 'remove', color }], urgent: false });
    } else if (parkedUntil !== undefined) {
      if (!isRunning(c)) restart(color, 'restart', `the warm standby ${color} died (${c.exit?.reason ?? c.status})`, [{ type: 'restart', color }], false);
    } else {
      const actions: Action[] = isRunning(c) ? [{ type: 'closeGate', color }, { type: 'drain', color }, { type: 'remove', color, graceMs: LEFTOVER_GRACE_MS }] : [{ type: 'remove', color }];
      out.repairs.push({ instance: name, kind: 'remove-leftover', reason: `${color} is neither routed nor kept warm`, actions, urgent: false });
    }
  }
  return out;
}

/** Two colours run the same thing: the same flows rev and the same runtime config. */
export function sameRelease(a: Pick<LiveColor, 'rev' | 'config'>, b: Pick<LiveColor, 'rev' | 'config'>): boolean {
  return a.rev === b.rev && a.config !== undefined && b.config !== undefined && configHash(a.config) === configHash(b.config);
}
