/**
 * Runtime drivers: how a colour (blue or green) of an instance runs — a Node-RED child
 * process (process driver, the embedded default) or a container (docker driver). One
 * interface; the engine never knows which it has.
 *
 * Every colour a driver starts carries its identity (fleet, instance, colour, revision,
 * flows hash) — in the process registry or as container labels — so that a restarted
 * reconciler lists exactly what runs and adopts it instead of starting duplicates.
 */
import type { FlowNode } from '../../core/model.js';

export type Color = 'blue' | 'green';

export interface ColorIdentity {
  fleet: string;
  instance: string;
  color: Color;
}

/** Everything needed to start one colour of an instance. */
export interface ColorSpec extends ColorIdentity {
  /** The colour's own port on 127.0.0.1 (the stable port belongs to the traffic switch). */
  port: number;
  /** The exact flow list to run; written as the flow file before start. */
  flows: FlowNode[];
  /** Node-RED's rev of flows (sha256 of JSON.stringify(flows)). */
  rev: string;
  /** Canonical content hash of flows (order-independent). */
  flowsHash: string;
  /** The process environment, secrets resolved. Never logged. */
  env: Record<string, string>;
  nodeRedVersion: string;
  image?: string;
  resources: { memory?: string; cpu?: number | string };
  /** Extra settings.js keys from fleet.yaml. */
  settings: Record<string, unknown>;
  context: 'memory' | 'shared';
  /** Where context 'shared' keeps context (Redis): the same prefix for both colours of an instance. */
  sharedContext?: { url: string; prefix: string };
  labels: Record<string, string>;
  /** adminAuth credentials Node-RED is configured with. Never logged. */
  admin: AdminCredentials;
}

export interface AdminCredentials {
  username: string;
  password: string;
}

export type ColorStatus = 'created' | 'running' | 'exited' | 'unknown';

/** A colour stopped running without being asked to (crash, kill, OOM, container removed). */
export interface ColorExit extends ColorIdentity {
  /** When it was noticed (ISO time). */
  at: string;
  /** Exit code when known, else null. */
  code: number | null;
  /** Signal name when known (SIGKILL...), else null. */
  signal: string | null;
  /** A short reason in words: "exited with code 1", "killed by SIGKILL", "out of memory", "container removed", "process gone". */
  reason: string;
}

export interface RunningColor extends ColorIdentity {
  runtime: 'process' | 'docker';
  /** pid (process driver) or container id (docker driver). */
  id: string;
  port: number;
  rev: string;
  flowsHash: string;
  status: ColorStatus;
  startedAt?: string;
  /** Base URL of the colour's Node-RED (Admin API and HTTP nodes): http://127.0.0.1:port */
  url: string;
  logFile?: string;
  /** The last exit the driver knows of, for a colour whose status is 'exited' (for the status page). */
  exit?: { at: string; code: number | null; signal: string | null; reason: string };
}

/** How a colour's last run ended, as far as its driver knows. */
export type ExitRecord = NonNullable<RunningColor['exit']>;

export interface ResourceUsage {
  cpuSeconds: number;
  rssBytes: number;
}

export interface RuntimeDriver {
  readonly kind: 'process' | 'docker';
  /** Every colour this driver manages for the fleet, from its own records. */
  list(fleet: string): Promise<RunningColor[]>;
  /** Prepares a colour (user dir, settings, flow file / container) without starting it. */
  create(spec: ColorSpec): Promise<RunningColor>;
  /** Starts a created colour; resolves when the process/container runs (not necessarily ready). */
  start(ref: ColorIdentity): Promise<RunningColor>;
  /** Stops gracefully (SIGTERM), killing after timeoutMs. Idempotent. */
  stop(ref: ColorIdentity, opts?: { timeoutMs?: number }): Promise<void>;
  /** Stops if needed and deletes everything the colour had. Idempotent. */
  remove(ref: ColorIdentity): Promise<void>;
  inspect(ref: ColorIdentity): Promise<RunningColor | undefined>;
  /** CPU and memory of a running colour, for metrics. */
  usage?(ref: ColorIdentity): Promise<ResourceUsage | undefined>;
  /**
   * Calls onExit, within a second, whenever a colour of this fleet that was running stops
   * without this driver having been asked to stop or remove it. Returns a function that
   * stops watching. Watching costs next to nothing when nothing happens.
   */
  watch(fleet: string, onExit: (exit: ColorExit) => void): () => void;
}

/** Thrown for problems the user can fix (version not installed, image missing...): clear message, no stack needed. */
export class RuntimeError extends Error {
  constructor(
    message: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RuntimeError';
  }
}
