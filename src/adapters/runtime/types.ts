/**
 * Runtime drivers: how a colour (blue or green) of an instance runs — a Node-RED child
 * process (process driver, the embedded default) or a container (docker driver). The
 * interface is the engine's (src/engine/ports.ts); the engine never knows which it has.
 *
 * Every colour a driver starts carries its identity (fleet, instance, colour, rev, flows
 * hash) — in the process registry or as container labels — so that a restarted reconciler
 * lists exactly what runs and adopts it instead of starting duplicates.
 */
import { TowerError } from '../../engine/ports.js';

export type { AdminCredentials, Color, ColorExit, ColorIdentity, ColorSpec, ColorStatus, ExitRecord, ReplicaView, ResourceUsage, RunningColor, RuntimeDriver } from '../../engine/ports.js';

/** Reasons that retrying cannot fix: the input must change. */
const STALLED = new Set(['NodeRedVersionNotInstalled', 'ImageMissing', 'InvalidName', 'FleetMismatch', 'StateCorrupt', 'NameConflict']);

/** Thrown for problems the user can fix (version not installed, image missing...): clear message, no stack needed. */
export class RuntimeError extends TowerError {
  constructor(message: string, reason: string, options?: { cause?: unknown }) {
    super(message, reason, STALLED.has(reason) ? 'stalled' : 'retryable', options);
    this.name = 'RuntimeError';
  }
}
