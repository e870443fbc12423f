/**
 * The fleet model: what fleet.yaml and the deploy plans say, after defaults are applied.
 * Field names mirror the YAML, which is a public contract (see schemas/).
 */
import type { AbSpec, CanarySpec, RawAb, RawCanary } from './canary.js';

export const API_VERSION = 'tower.redforge.dev/v1';

/** A Node-RED node as it appears in a flow export. Everything but id and type is free-form. */
export interface FlowNode {
  id: string;
  type: string;
  z?: string;
  [property: string]: unknown;
}

/** A secret by reference: read from Tower's environment or a file when it is needed, never from Git. */
export type SecretRef = { fromEnv: string; optional?: boolean } | { fromFile: string; optional?: boolean };
export type EnvValue = string | number | boolean | SecretRef;
/** Node credentials by reference: node id → credential field → where its value comes from. */
export type CredentialRefs = Record<string, Record<string, SecretRef>>;

export interface HttpSmokeCheck {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: unknown;
  expect?: {
    status?: number;
    body?: string;
    bodyContains?: string;
    json?: { path: string; equals?: unknown; exists?: boolean };
  };
}

export interface MqttSmokeCheck {
  publish: { topic: string; payload?: unknown; qos?: 0 | 1 | 2 };
  expect: { topic: string; payloadContains?: string };
}

export interface SmokeCheck {
  name?: string;
  timeout?: string;
  http?: HttpSmokeCheck;
  mqtt?: MqttSmokeCheck;
}

export type RuntimeKind = 'process' | 'docker' | 'kubernetes';
/** How an update reaches traffic; canary's steps and analysis are Instance.canary. */
export type Strategy = 'blue-green' | 'recreate' | 'canary' | 'ab';
/** strategy as fleet.yaml writes it: a name, { canary: … } or { ab: … }. */
export type StrategySetting = 'blue-green' | 'recreate' | { canary: RawCanary } | { ab: RawAb };
export type ContextMode = 'memory' | 'shared';
/** What serves an instance's stable address: Tower's own router (builtin), the operator's nginx, or a Kubernetes Service (runtime: kubernetes). */
export type SwitchKind = 'builtin' | 'nginx' | 'service';

/**
 * Where the colours of runtime: kubernetes run (fleet.yaml spec.kubernetes): the namespace, and
 * how Tower reaches the API server — in-cluster (its pod's service account) or a kubeconfig
 * (KUBECONFIG, else ~/.kube/config) and one of its contexts. Absent access: in-cluster when Tower
 * runs in a pod, else the kubeconfig.
 */
export interface ClusterSettings {
  namespace?: string;
  access?: 'in-cluster' | 'kubeconfig';
  context?: string;
  /** How Tower reaches Node-RED in the pods: through the API server's pod proxy, or at the pod IP. Default: direct in-cluster, proxy otherwise. */
  podAccess?: 'proxy' | 'direct';
}

/** Settings an instance inherits from spec.defaults unless it sets its own. */
export interface InstanceSettings {
  runtime?: RuntimeKind;
  strategy?: StrategySetting;
  nodeRedVersion?: string;
  image?: string;
  env?: Record<string, EnvValue>;
  resources?: { memory?: string; cpu?: number | string };
  labels?: Record<string, string>;
  settings?: Record<string, unknown>;
  context?: ContextMode;
  switch?: SwitchKind;
  keepWarm?: string;
  drainTimeout?: string;
  /** How many copies of each colour serve the instance (processes or containers behind the switch, or a Deployment's pods). */
  replicas?: number;
}

export const DEFAULT_SETTINGS = {
  runtime: 'process',
  strategy: 'blue-green',
  nodeRedVersion: '4.1',
  context: 'memory',
  keepWarm: '2m',
  drainTimeout: '30s',
  replicas: 1,
} as const satisfies InstanceSettings;

/**
 * What the instance's Node-RED process is made of. A change to any of these needs a new
 * process (a blue-green swap); a change to flows alone may not.
 */
export interface RuntimeConfig {
  runtime: RuntimeKind;
  nodeRedVersion: string;
  image?: string;
  env: Record<string, EnvValue>;
  resources: { memory?: string; cpu?: number | string };
  settings: Record<string, unknown>;
  context: ContextMode;
  port: number;
  /** Copies of each colour, when more than one (absent: 1, so that a fleet without replicas keeps its config hash); a change is a new colour, as for the rest of this config. */
  replicas?: number;
  /** Node credentials by reference (a change of references is a new process; of values, not). */
  credentials?: CredentialRefs;
}

export interface Instance {
  name: string;
  port: number;
  /** Flow references as written in fleet.yaml: repository paths or lib:<name>. */
  flows: string[];
  smoke: SmokeCheck[];
  strategy: Strategy;
  /** strategy: canary's steps and analysis. */
  canary?: CanarySpec;
  /** strategy: ab's variants, weight and duration. */
  ab?: AbSpec;
  labels: Record<string, string>;
  keepWarm: string;
  drainTimeout: string;
  /** Absent: builtin. */
  switch?: SwitchKind;
  config: RuntimeConfig;
}

export type PlanOrder = 'sequential' | 'waves' | 'dag';
export type OnFailure = 'rollback-all' | 'rollback-wave' | 'halt';

export interface PlanSpec {
  order: PlanOrder;
  sequence?: string[];
  waves?: string[][];
  dependsOn?: Record<string, string[]>;
  maxParallel?: number;
  onFailure?: OnFailure;
}

export interface DeployPlan {
  /** metadata.name, or "default" when fleet.yaml names no plan. */
  name: string;
  /** Where the plan came from, for messages: a file, "fleet.yaml (inline)" or "(default)". */
  source: string;
  spec: PlanSpec;
}

export interface Fleet {
  name: string;
  labels: Record<string, string>;
  selfHeal: boolean;
  /** spec.kubernetes, for instances with runtime: kubernetes. */
  kubernetes?: ClusterSettings;
  instances: Instance[];
  plan: DeployPlan;
}

/** An instance with the one flow list Node-RED will run, and its hashes. */
export interface DesiredInstance extends Instance {
  flowList: FlowNode[];
  /** Node-RED's own rev for flowList: sha256 of JSON.stringify(flows), credentials removed. */
  rev: string;
}

/** The live state of an instance, as observed by an adapter (or given with --observed). */
export interface ObservedInstance {
  name: string;
  /** null when the instance exists but its flows could not be read. */
  flows: FlowNode[] | null;
  rev?: string;
  /** Absent when unknown: config is then not compared. */
  config?: Partial<RuntimeConfig>;
}

export interface ObservedFleet {
  instances: ObservedInstance[];
}

/** settings.js keys Tower sets itself; fleet.yaml `settings` cannot override them. */
export const MANAGED_SETTINGS = [
  'uiHost',
  'uiPort',
  'userDir',
  'flowFile',
  'credentialSecret',
  'adminAuth',
  'runtimeState',
  'httpAdminRoot',
  'https',
  'contextStorage',
] as const;

export function isSecretRef(value: EnvValue): value is SecretRef {
  return typeof value === 'object' && value !== null;
}
