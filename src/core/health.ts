/**
 * Health of an instance, from a fixed vocabulary with an order (Argo CD style): one small
 * pure function from what was observed to {status, message}. Whether the flows match Git
 * (drift) is sync status, reported next to health, not part of it.
 */

export type HealthStatus = 'Healthy' | 'Progressing' | 'Degraded' | 'Suspended' | 'Missing' | 'Unknown';

const ORDER: HealthStatus[] = ['Healthy', 'Suspended', 'Progressing', 'Missing', 'Degraded', 'Unknown'];

export function isWorse(a: HealthStatus, b: HealthStatus): boolean {
  return ORDER.indexOf(a) > ORDER.indexOf(b);
}

export interface Health {
  status: HealthStatus;
  message: string;
}

export interface InstanceObservation {
  /** The switch serves the stable port. */
  switchUp: boolean;
  /** Colour the switch routes to, if any. */
  routedTo?: string;
  /** The routed colour's process or container runs. */
  activeRunning: boolean;
  /** Why it does not, as its runtime says (exit code, CrashLoopBackOff, ImagePullBackOff…). */
  activeExit?: string;
  /** Its Admin API answers (401 counts as up). */
  adminUp: boolean;
  /** Its flows are stopped through /flows/state. */
  flowsStopped?: boolean;
  /** A rollout is changing this instance now. */
  rollingOut?: boolean;
}

export function assessInstance(o: InstanceObservation): Health {
  if (o.rollingOut) return { status: 'Progressing', message: 'a rollout is changing this instance' };
  if (!o.switchUp && !o.activeRunning) return { status: 'Missing', message: 'nothing runs for this instance' };
  if (!o.switchUp) return { status: 'Degraded', message: 'the stable address is not served (switch down)' };
  if (!o.routedTo) return { status: 'Degraded', message: 'the switch routes nowhere' };
  if (!o.activeRunning) return { status: 'Degraded', message: `the ${o.routedTo} colour the switch routes to is not running${o.activeExit ? ` (${o.activeExit})` : ''}` };
  if (!o.adminUp) return { status: 'Degraded', message: `Node-RED (${o.routedTo}) does not answer` };
  if (o.flowsStopped) return { status: 'Suspended', message: 'flows are stopped' };
  return { status: 'Healthy', message: `${o.routedTo} serves` };
}
