/**
 * Every interface the engine acts through, in one place. The engine owns them; adapters implement them and import nothing
 * else of the engine (lint enforces it), so a new runtime, switch, store or source is one adapter and no engine change.
 */
import type { Diagnostic } from '../core/diagnostics.js';
import type { RepoReader } from '../core/load.js';
import type { ClusterSettings, FlowNode, RuntimeConfig, RuntimeKind, SmokeCheck, SwitchKind } from '../core/model.js';
import type { PlanReport } from '../core/render.js';
import type { Color, Phase } from '../core/rollout.js';
import type { CommitInfo, FleetStatus, RolloutOutcome } from '../core/status.js';
import type { ExitInfo } from '../core/live.js';
import type { BrokerConnection } from '../core/broker-credentials.js';
import type { TrafficStats, TrafficSummary } from '../core/traffic.js';

export type { Color, CommitInfo, RolloutOutcome };
export { TowerError } from './errors.js';

// Runtime drivers
export interface ColorIdentity {
  fleet: string;
  instance: string;
  color: Color;
}

export interface AdminCredentials {
  username: string;
  password: string;
}

/** Everything needed to start one colour of an instance. */
export interface ColorSpec extends ColorIdentity {
  /** The colour's own port (the stable port belongs to the traffic switch); the exact flows to run, their rev and content hash. */
  port: number;
  flows: FlowNode[];
  rev: string;
  flowsHash: string;
  /** The process environment, secrets resolved. Never logged. secretEnv names those that hold secrets (a runtime that can keep them apart does). */
  env: Record<string, string>;
  secretEnv?: string[];
  nodeRedVersion: string;
  image?: string;
  resources: { memory?: string; cpu?: number | string };
  settings: Record<string, unknown>;
  context: 'memory' | 'shared';
  /** Where context 'shared' keeps context (Redis): one prefix for both colours of an instance. */
  sharedContext?: { url: string; prefix: string };
  labels: Record<string, string>;
  /** adminAuth credentials Node-RED is configured with. Never logged. */
  admin: AdminCredentials;
  /** How long the colour's requests in flight may take (drainTimeout), for a runtime that sizes its grace period itself (kubernetes). */
  drainMs?: number;
  /**
   * Replicas (see "Replicas" below): how many copies of the colour serve (absent = 1); the ports of replicas 2..N
   * for drivers whose replicas share the host (the engine allocates them; others ignore them); and what each
   * replica's environment adds to `env`, index k-1 for replica k (its gate topic and MQTT session, TOWER_REPLICA).
   */
  replicas?: number;
  replicaPorts?: number[];
  replicaEnv?: Record<string, string>[];
}

export type ColorStatus = 'created' | 'running' | 'exited' | 'unknown';

/** How a colour that stopped by itself ended. */
export type ExitRecord = ExitInfo;

export interface RunningColor extends ColorIdentity {
  runtime: RuntimeKind;
  /** pid (process driver), container id (docker driver) or pod name (kubernetes driver). */
  id: string;
  port: number;
  rev: string;
  flowsHash: string;
  status: ColorStatus;
  startedAt?: string;
  /** Base URL of the colour's Node-RED (Admin API and HTTP nodes). */
  url: string;
  logFile?: string;
  /** The last exit the driver knows of, for a colour that stopped by itself. */
  exit?: ExitRecord;
  /** Every replica when the colour has more than one (absent: the colour is its one replica); the colour's own fields are replica 1's. */
  replicas?: ReplicaView[];
  /** Why a colour that runs does not serve yet, as its runtime sees it (a pod not Ready): for the message of a readiness timeout. */
  notReady?: string;
  /** Keys of replicas on their way out (pods terminating gracefully): not replicas any more, but their Node-RED still runs. */
  leaving?: string[];
}

/**
 * Replicas. A colour has N copies that serve alike; the colour is the unit of a rollout (they run the same flows and
 * config, a change is a new colour), a replica the unit of liveness. Each has a URL the Admin API and smoke checks
 * reach, and an index 1..N that its runtime keeps across its restarts: it names the replica's deploy gate and MQTT
 * session (core/instance-env.ts). The colour is 'running' while any replica runs; `start` starts the replicas that
 * do not run and leaves the others alone (so a repair restarts one replica, not the colour); stop, remove and the
 * Admin API actions apply to every replica. The switch spreads new connections over `Upstream.ports`.
 */
export interface ReplicaView {
  index: number;
  /** pid, container id or pod name. */
  id: string;
  url: string;
  status: ColorStatus;
  port?: number;
  /** Why it does not run, when it does not. */
  reason?: string;
  /**
   * What names its deploy gate and MQTT session (gateTopicFor, consumerClientIdFor) when the runtime cannot give a
   * replica its index in its environment — the pods of a Deployment share one template, so each is named by its pod
   * name ($(POD_NAME) in the template). Absent: its index.
   */
  key?: string;
}

/** A colour (or, with `replica`, one replica of it) stopped running without being asked to (crash, kill, OOM, container removed). */
export interface ColorExit extends ColorIdentity, ExitRecord {
  replica?: number;
}

export interface ResourceUsage { cpuSeconds: number; rssBytes: number }

export interface RuntimeDriver {
  readonly kind: RuntimeKind;
  /** Every colour this driver manages for the fleet, from its own records. */
  list(fleet: string): Promise<RunningColor[]>;
  /** Prepares a colour without starting it. */
  create(spec: ColorSpec): Promise<RunningColor>;
  /** Starts a created (or exited) colour; resolves when it runs (not necessarily ready). */
  start(ref: ColorIdentity): Promise<RunningColor>;
  /** Stops gracefully, killing after timeoutMs. Idempotent. */
  stop(ref: ColorIdentity, opts?: { timeoutMs?: number }): Promise<void>;
  /** Stops if needed and deletes everything the colour had. Idempotent. */
  remove(ref: ColorIdentity): Promise<void>;
  inspect(ref: ColorIdentity): Promise<RunningColor | undefined>;
  usage?(ref: ColorIdentity): Promise<ResourceUsage | undefined>;
  /** Node-RED's log of a colour: the last `lines` lines, then with `follow` each new one until `signal` aborts or the colour stops. Redacted: `secrets`, its node credentials, and its env values that `secretEnv` names or whose names look secret. */
  logs(ref: ColorIdentity, opts: { lines: number; follow?: boolean; signal?: AbortSignal; secrets?: readonly string[]; secretEnv?: readonly string[]; replica?: number }): AsyncIterable<string>;
  /**
   * Why this driver could not start the instance as configured (a Node-RED version it lacks,
   * an image the engine does not have), in words; undefined when it can. Asked before a
   * rollout changes anything, so that it does not fail half way.
   */
  cannotRun(instance: string, wants: { nodeRedVersion: string; image?: string }): Promise<string | undefined>;
  /**
   * Calls onExit, within a second, whenever a colour of this fleet that was running stops
   * without this driver having been asked to stop or remove it. Returns a function that
   * stops watching. Watching costs next to nothing when nothing happens.
   */
  watch(fleet: string, onExit: (exit: ColorExit) => void): () => void;
}

// Traffic switch
export interface Upstream {
  color: Color;
  port: number;
  /** Every replica's port (port among them) when the colour has several: new connections go round-robin over them. */
  ports?: number[];
}

/** A colour's share of new connections in a split, percent. */
export interface WeightedUpstream extends Upstream {
  weight: number;
}

export interface SwitchStatus {
  instance: string;
  listenPort: number;
  /** Where new requests go; undefined until the first route. */
  active?: Upstream;
  /** A weighted split between the routed colour and the other (a canary), when one is set. */
  split?: WeightedUpstream[];
  /** Requests in flight, per colour. */
  inflight: Partial<Record<Color, number>>;
  running: boolean;
}

export interface DrainResult {
  drained: boolean;
  /** Requests still in flight when the drain ended. */
  inflight: number;
}

/** What serves an instance's stable address and forwards to the routed colour; it outlives Tower. */
export interface TrafficSwitch {
  readonly kind: SwitchKind;
  /** Makes sure the stable port is served (idempotent; a dead router resumes its route). */
  ensure(instance: string, listenPort: number): Promise<SwitchStatus>;
  /** Atomically sends new requests to upstream; requests in flight finish where they started. */
  route(instance: string, upstream: Upstream): Promise<SwitchStatus>;
  /**
   * Splits new connections between the routed colour and the other by weight (two entries,
   * weights adding up to 100); undefined ends the split. Switches that cannot weigh or count
   * traffic leave split and stats out (fleet.yaml's canary asks for the builtin switch).
   */
  split?(instance: string, upstreams: WeightedUpstream[] | undefined): Promise<SwitchStatus>;
  /** Cumulative per-colour counters since the switch started (see core/traffic.ts). */
  stats?(instance: string): Promise<TrafficStats>;
  /** Resolves when no request is in flight to color (any of its replicas), or when timeoutMs has passed. */
  drain(instance: string, color: Color, timeoutMs: number): Promise<DrainResult>;
  status(instance: string): Promise<SwitchStatus | undefined>;
  list(): Promise<SwitchStatus[]>;
  /** Stops serving the stable port and forgets the instance. Idempotent. */
  remove(instance: string): Promise<void>;
  /** The stable address of a port (of an instance: a Service has its own name), as Tower reaches it; peerUrl as instances reach each other, when that differs. */
  url(listenPort: number, instance?: string): string;
  peerUrl?(listenPort: number, instance: string): string;
  /** Calls onExit, within a second, when the switch of an instance stops serving by itself. Returns a function that stops watching. */
  watch?(onExit: (instance: string) => void): () => void;
}

// MQTT
/** The fleet's broker; its login (user, password, TLS) reaches instances through their credential store. Never logged. */
export interface Broker extends BrokerConnection {
  /** Tower runs this broker (embedded) rather than being given it (MQTT_URL). */
  embedded: boolean;
}

/** The deploy gate: opens and closes a colour's MQTT consumers through retained messages. */
export interface DeployGate {
  open(topicBase: string): Promise<void>;
  close(topicBase: string): Promise<void>;
  /** Removes the retained command and state. */
  clear(topicBase: string): Promise<void>;
  /** Ends the persistent session of a colour that no longer runs. */
  endSession(clientId: string): Promise<void>;
  /** The retained state ("open", "closed", …) or null. */
  state(topicBase: string): Promise<string | null>;
  /**
   * The keys of the replicas with a gate state retained under a colour's gate (<topicBase>/<key>/state), pods gone
   * included: what a replica named by its pod leaves on the broker when Kubernetes replaces the pod.
   */
  replicaKeys?(topicBase: string): Promise<string[]>;
  end(): Promise<void>;
}

// Node-RED
export interface AdminClient {
  getFlows(): Promise<{ rev: string; flows: FlowNode[] }>;
  setFlows(flows: readonly FlowNode[], options: { rev?: string; type: 'full' | 'flows' | 'nodes' | 'reload' }): Promise<string>;
  waitUntilReady(timeoutMs: number): Promise<unknown>;
}

export interface SmokeResult {
  name: string;
  ok: boolean;
  message: string;
}

/** Runs smoke checks against a colour; `redact` takes the instance's secrets out of what they quote of its answers. */
export type SmokeRunner = (opts: { baseUrl: string; checks: SmokeCheck[]; mqtt?: BrokerConnection; defaultTimeoutMs: number; redact?: (text: string) => string }) => Promise<SmokeResult[]>;

// Registry
/** What Tower recorded when it started a colour. */
export interface ColorRecord {
  port: number;
  rev: string;
  flowsHash: string;
  /** The runtime config (env as references, never values) it was started with. */
  config: RuntimeConfig;
  startedAt: string;
  /** Parked for an instant swap back until this time (ISO). */
  keepWarmUntil?: string;
}

export interface InstanceRecord {
  port: number;
  colors: Partial<Record<Color, ColorRecord>>;
  /** What Tower last applied and verified. */
  applied?: { color: Color; rev: string; flowsHash: string; config: RuntimeConfig; at: string; revision?: string };
}

export interface Registry {
  fleet?: string;
  instances: Record<string, InstanceRecord>;
}

export interface RegistryStore {
  read(): Registry;
  write(registry: Registry): void;
  update(change: (r: Registry) => void): Registry;
}

// State store
export interface RolloutRecord {
  id: string;
  fleet: string;
  revision?: string;
  author?: string;
  message?: string;
  startedAt: string;
  finishedAt?: string;
  outcome: RolloutOutcome;
  error?: string;
  /** The plan that was executed (JSON). */
  plan?: unknown;
  instances?: Record<string, InstanceHistory>;
}

export interface InstanceHistory {
  path: string;
  outcome: string;
  error?: string;
  phases: { phase: string; startedAt: string; ms?: number }[];
}

export interface AuditEntry {
  at: string;
  fleet: string;
  /** "tower" for the reconciler, "self-heal", "drift", "repair", … */
  actor: string;
  action: string;
  revision?: string;
  detail?: unknown;
}

export interface RevisionState {
  /** The newest revision a rollout was started for (or rejected as invalid). */
  attempted?: { revision: string; at: string; outcome: RolloutOutcome; error?: string };
  /** The newest revision the whole fleet runs, verified. */
  applied?: { revision: string; at: string };
}

/**
 * The durable state: the rollout trace (each instance's state, written before its actions run, so that a restart
 * can say where a rollout was interrupted), the history, the audit trail, and the attempted and applied revisions.
 */
export interface StateStore {
  readonly kind: 'postgres' | 'embedded';
  migrate(): Promise<void>;
  beginRollout(rollout: Omit<RolloutRecord, 'outcome' | 'finishedAt'>): Promise<void>;
  saveInstanceState(rolloutId: string, instance: string, state: unknown): Promise<void>;
  saveInstanceHistory(rolloutId: string, instance: string, history: InstanceHistory): Promise<void>;
  finishRollout(rolloutId: string, outcome: RolloutOutcome, finishedAt: string, error?: string): Promise<void>;
  /** The rollout of this fleet still marked running (after a crash), with its trace. */
  openRollout(fleet: string): Promise<{ rollout: RolloutRecord; states: Record<string, unknown> } | undefined>;
  history(fleet: string, limit: number): Promise<RolloutRecord[]>;
  getRollout(id: string): Promise<RolloutRecord | undefined>;
  audit(entry: AuditEntry): Promise<void>;
  auditTrail(fleet: string, limit: number): Promise<AuditEntry[]>;
  setAttempted(fleet: string, attempted: NonNullable<RevisionState['attempted']>): Promise<void>;
  setApplied(fleet: string, applied: NonNullable<RevisionState['applied']>): Promise<void>;
  revisions(fleet: string): Promise<RevisionState>;
  close(): Promise<void>;
}

// Source
export interface FetchResult {
  /** The branch head (for a directory: a content hash). */
  revision: string;
  /** It differs from what was fetched before (true the first time); `previous` is that. */
  changed: boolean;
  previous?: string;
}

export interface SourceCheckout {
  /** The whole tree of the revision, and within it the directory holding fleet.yaml (read through `reader`). */
  dir: string;
  fleetDir: string;
  reader: RepoReader;
  commit?: CommitInfo;
}

/** Where the desired state comes from: a Git remote or a local directory. */
export interface FleetSource {
  readonly kind: 'git' | 'directory';
  /** For logs and the status page; never holds credentials. */
  describe(): string;
  fetch(): Promise<FetchResult>;
  checkout(revision: string): Promise<SourceCheckout>;
  /** Calls onChange when the source changes by itself (a directory being edited). */
  watch?(onChange: () => void): { close(): Promise<void> };
}

// Leadership, reporting, metrics
/** Leadership among daemons pointed at the same fleet, or always true. */
export interface Leadership {
  /** Resolves when this daemon leads (or when stopping); never throws. */
  acquire(isStopping: () => boolean): Promise<boolean>;
  /** False once leadership was lost. */
  stillLeader(): Promise<boolean>;
  /** The same from what is known locally, without asking: checked between waves. */
  isLeader(): boolean;
  release(): Promise<void>;
  /** Why this daemon cannot even try to lead (no lease to take: the cluster cannot be reached), for the status; undefined when it can. */
  blockedBy?(): string | undefined;
}

export type FinishedOutcome = 'succeeded' | 'rolled-back' | 'failed' | 'superseded' | 'interrupted';

export interface InstanceReport {
  name: string;
  wave?: number;
  path: string;
  outcome: string;
  phases: { phase: Phase; ms: number }[];
  error?: string;
  ms?: number;
}

export interface RolloutStarted {
  revision: string;
  plan: PlanReport;
}

export interface RolloutFinished {
  revision: string;
  outcome: FinishedOutcome;
  error?: string;
  instances: InstanceReport[];
  ms: number;
}

export interface RevisionRejected {
  revision: string;
  diagnostics: Diagnostic[];
}

/** Where revisions' outcomes are reported (GitHub commit statuses and check runs). Never blocks. */
export interface Reporter {
  rolloutStarted(e: RolloutStarted): void;
  rolloutFinished(e: RolloutFinished): void;
  revisionRejected(e: RevisionRejected): void;
}

/** The adapters of one state directory: what the engine observes and acts through. */
export interface FleetRuntime {
  registry: RegistryStore;
  /** The admin credentials every managed Node-RED is configured with. */
  adminCredentials: AdminCredentials;
  /** The drivers that may hold colours of the fleet. */
  drivers(): RuntimeDriver[];
  /** Where runtime: kubernetes runs (fleet.yaml spec.kubernetes), given before a pass observes; kept for the next start. */
  useCluster?(fleet: string, settings: ClusterSettings | undefined): void;
  driverFor(kind: RuntimeKind): RuntimeDriver;
  /** The switch of a kind (a stalled TowerError when it is not configured), and every configured one. */
  switchFor(kind: SwitchKind): TrafficSwitch;
  switches(): TrafficSwitch[];
  /** The fleet's broker and deploy gate, once ensureBroker has run. */
  broker?: Broker;
  gate?: DeployGate;
  /** Connects to the fleet's broker (MQTT_URL), or starts the embedded one (again, if it died). */
  ensureBroker(): Promise<Broker>;
  /** One Admin API client per URL (each login is a session Node-RED keeps). */
  admin(url: string): AdminClient;
  smoke: SmokeRunner;
  freePort(): Promise<number>;
  /** Where instances with context: shared keep context (Redis), once ensureSharedContext has run (or REDIS_URL is set). */
  redisUrl?: string;
  /** REDIS_URL, or the embedded Redis, started now (again, if it died); undefined without either (redis-server not installed). */
  ensureSharedContext(): Promise<string | undefined>;
  /** The value of a Prometheus query (a canary's analysis.prometheus): one number, or an error. */
  readMetric?(url: string, query: string): Promise<number>;
  /** Stops the embedded broker and Redis, if Tower runs them (destroy); their data stays in the state directory. */
  stopEmbedded(): Promise<void>;
  close(): Promise<void>;
}

export interface MetricsSink {
  reconcile(result: string, seconds: number): void;
  phase(phase: string, path: string, seconds: number): void;
  deployment(outcome: string): void;
  appliedRevisionAt(at: Date): void;
  restart(instance: string, what: string, kind: string): void;
  fromStatus(status: FleetStatus): void;
  /** A canary's weight and both colours' numbers over its current step (an A/B experiment's: with the variants' names). */
  canary?(instance: string, color: Color, weight: number, canary: TrafficSummary, baseline: TrafficSummary, variants?: [string, string]): void;
}
