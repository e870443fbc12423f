/**
 * What a colour on Kubernetes is, read from its Deployment and its pods — the only record the
 * kubernetes driver keeps, so that a restarted Tower adopts what runs (rev and flows hash are
 * the Deployment's annotations). Pure: no requests here.
 *
 * Status, as the engine knows it from the other runtimes:
 *  - created: made by create (replicas 0), never started;
 *  - exited: stopped by Tower (replicas 0, the stopped annotation), or no pod is ready and one
 *    is stuck for a reason waiting will not fix (CrashLoopBackOff, ImagePullBackOff,
 *    unschedulable, …): the reason and Kubernetes' message go into the exit record, which the
 *    status page and `tower status` show, and which fails a rollout's DEPLOY at once;
 *  - running: anything else (pods starting count: "runs, not necessarily ready").
 * The colour's URL is one pod's (a ready one first): through the API server's pod proxy, or at
 * the pod IP from inside the cluster. A colour with a ready pod runs.
 *
 * With `replicas` > 1 each pod is a replica (RunningColor.replicas): its own URL, its status
 * (exited with Kubernetes' reason when it is stuck), an index by creation (then name) — a pod
 * Kubernetes replaced comes last — and its name as the key of its deploy gate and MQTT session
 * (the pods share one template: their env names them by $(TOWER_POD_NAME), kubernetes-objects.ts).
 */
import type { KubeObject } from '../kubernetes/api.js';
import { exitInfo, signalOfExitCode } from './exit.js';
import { KUBE_ANNOTATIONS, KUBE_LABELS, NODE_RED_PORT } from './kubernetes-objects.js';
import type { ColorIdentity, ExitRecord, ReplicaView, RunningColor } from './types.js';

/** Waiting reasons of a container that will not start by waiting for it. */
export const STUCK_REASONS = new Set(['CrashLoopBackOff', 'ImagePullBackOff', 'ErrImagePull', 'ErrImageNeverPull', 'InvalidImageName', 'CreateContainerConfigError', 'CreateContainerError', 'RunContainerError']);

/** Where Tower reaches a pod's Node-RED: the API server's pod proxy (base = the API server and namespace path) or the pod IP. */
export interface PodAddressing {
  podAccess: 'proxy' | 'direct';
  /** https://apiserver/api/v1/namespaces/<ns> */
  namespaceUrl: string;
}

/** A URL that never connects: a colour without a pod yet has no address. */
const NO_ADDRESS = `http://no-pod-yet.invalid:${NODE_RED_PORT}`;

interface ContainerStatus {
  ready?: boolean;
  restartCount?: number;
  state?: { waiting?: { reason?: string; message?: string }; running?: { startedAt?: string }; terminated?: Terminated };
  lastState?: { terminated?: Terminated };
}
interface Terminated {
  exitCode?: number;
  signal?: number;
  reason?: string;
  finishedAt?: string;
}
interface PodStatus {
  phase?: string;
  podIP?: string;
  startTime?: string;
  conditions?: { type: string; status: string; reason?: string; message?: string; lastTransitionTime?: string }[];
  containerStatuses?: ContainerStatus[];
}

export function identityOf(labels: Record<string, string> | undefined): ColorIdentity | undefined {
  const fleet = labels?.[KUBE_LABELS.fleet];
  const instance = labels?.[KUBE_LABELS.instance];
  const color = labels?.[KUBE_LABELS.color];
  return fleet && instance && (color === 'blue' || color === 'green') ? { fleet, instance, color } : undefined;
}

export function isPodReady(pod: KubeObject): boolean {
  return ((pod.status as PodStatus | undefined)?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** The pods of a Deployment that are not on their way out. */
export function podsOf(deployment: KubeObject, pods: readonly KubeObject[]): KubeObject[] {
  return pods
    .filter((p) => !p.metadata.deletionTimestamp && (p.metadata.ownerReferences ?? []).some((o) => o.uid === deployment.metadata.uid))
    .sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '') || a.metadata.name.localeCompare(b.metadata.name));
}

/** Why a pod will not become ready by waiting, or undefined. */
export function podProblem(pod: KubeObject): ExitRecord | undefined {
  const status = (pod.status ?? {}) as PodStatus;
  const unschedulable = (status.conditions ?? []).find((c) => c.type === 'PodScheduled' && c.status === 'False' && c.reason === 'Unschedulable');
  if (unschedulable) return { at: unschedulable.lastTransitionTime ?? pod.metadata.creationTimestamp ?? '', code: null, signal: null, reason: `Unschedulable: ${unschedulable.message ?? 'no node fits the pod'}` };
  for (const c of status.containerStatuses ?? []) {
    const waiting = c.state?.waiting;
    if (!waiting?.reason || !STUCK_REASONS.has(waiting.reason)) continue;
    const last = c.lastState?.terminated;
    const code = last?.exitCode ?? null;
    const ended = last ? exitInfo(last.finishedAt ?? '', code, signalOfExitCode(code), last.reason === 'OOMKilled') : undefined;
    return {
      at: last?.finishedAt ?? status.startTime ?? pod.metadata.creationTimestamp ?? '',
      code,
      signal: ended?.signal ?? null,
      reason: `${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}${ended ? ` (last: ${ended.reason}; ${c.restartCount ?? 0} restarts)` : ''}`,
    };
  }
  return undefined;
}

export function podUrl(pod: KubeObject | undefined, at: PodAddressing): string {
  if (!pod) return NO_ADDRESS;
  if (at.podAccess === 'proxy') return `${at.namespaceUrl}/pods/${pod.metadata.name}:${NODE_RED_PORT}/proxy`;
  const ip = (pod.status as PodStatus | undefined)?.podIP;
  return ip ? `http://${ip.includes(':') ? `[${ip}]` : ip}:${NODE_RED_PORT}` : NO_ADDRESS;
}

/** The colour a Deployment holds, from it and the pods of its fleet; undefined for one that is not Tower's or is being deleted. */
export function colorOf(deployment: KubeObject, fleetPods: readonly KubeObject[], at: PodAddressing): RunningColor | undefined {
  const identity = identityOf(deployment.metadata.labels);
  if (!identity || deployment.metadata.deletionTimestamp) return undefined;
  const annotations = deployment.metadata.annotations ?? {};
  const wanted = (deployment.spec as { replicas?: number } | undefined)?.replicas ?? 1;
  const pods = podsOf(deployment, fleetPods);
  const ready = pods.filter(isPodReady);
  const shown = ready[0] ?? pods[0];
  let status: RunningColor['status'] = 'running';
  let exit: ExitRecord | undefined;
  if (wanted === 0) {
    const stopped = annotations[KUBE_ANNOTATIONS.stopped];
    status = stopped ? 'exited' : 'created';
    if (stopped) exit = { at: stopped, code: null, signal: null, reason: 'stopped (scaled to 0 replicas)' };
  } else if (ready.length === 0) {
    exit = pods.map(podProblem).find((p) => p !== undefined) ?? replicaFailure(deployment);
    if (exit) status = 'exited';
  }
  const notReady = status === 'running' && ready.length === 0 ? (pods[0] ? whyNotReady(pods[0]) : `Deployment ${deployment.metadata.name} has no pod yet`) : undefined;
  const replicas = Number(annotations[KUBE_ANNOTATIONS.replicas]) > 1 && pods.length ? pods.map((p, i) => replicaOf(p, i + 1, at)) : undefined;
  const leaving = fleetPods.filter((p) => p.metadata.deletionTimestamp && (p.metadata.ownerReferences ?? []).some((o) => o.uid === deployment.metadata.uid)).map((p) => p.metadata.name);
  const started = shown ? ((shown.status as PodStatus | undefined)?.containerStatuses?.[0]?.state?.running?.startedAt ?? (shown.status as PodStatus | undefined)?.startTime) : undefined;
  return {
    runtime: 'kubernetes',
    ...identity,
    id: shown?.metadata.name ?? deployment.metadata.name,
    port: NODE_RED_PORT,
    rev: annotations[KUBE_ANNOTATIONS.rev] ?? '',
    flowsHash: annotations[KUBE_ANNOTATIONS.flowsHash] ?? '',
    status,
    ...(started ? { startedAt: started } : {}),
    url: podUrl(shown, at),
    ...(exit ? { exit } : {}),
    ...(notReady ? { notReady } : {}),
    ...(replicas ? { replicas } : {}),
    ...(replicas && leaving.length ? { leaving } : {}),
  };
}

/** One pod of a colour with replicas: it runs (starting counts) unless it is stuck for a reason waiting will not fix. */
function replicaOf(pod: KubeObject, index: number, at: PodAddressing): ReplicaView {
  const problem = podProblem(pod);
  return { index, id: pod.metadata.name, key: pod.metadata.name, url: podUrl(pod, at), status: problem ? 'exited' : 'running', ...(problem ? { reason: `pod ${pod.metadata.name}: ${problem.reason}` } : {}) };
}

/** A running pod that is not Ready: its Ready condition and what its readiness probe asks. */
function whyNotReady(pod: KubeObject): string {
  const status = (pod.status ?? {}) as PodStatus;
  const cond = (status.conditions ?? []).find((c) => c.type === 'Ready');
  const container = status.containerStatuses?.[0];
  const probe = ((pod.spec as { containers?: { readinessProbe?: { httpGet?: { path?: string; port?: unknown } } }[] } | undefined)?.containers?.[0]?.readinessProbe)?.httpGet;
  const waiting = container?.state?.waiting?.reason;
  return `pod ${pod.metadata.name} is not Ready: ${cond?.reason ?? status.phase ?? 'unknown'}${cond?.message ? ` (${cond.message})` : ''}${waiting ? `, container ${waiting}` : ''}${probe ? `; its readiness probe GET ${probe.path ?? '/'} on port ${String(probe.port)} has not passed` : ''}; ${container?.restartCount ?? 0} restarts`;
}

/** A Deployment that cannot make its pods at all (a quota, an admission webhook) says so in a ReplicaFailure condition. */
function replicaFailure(deployment: KubeObject): ExitRecord | undefined {
  const c = ((deployment.status as PodStatus | undefined)?.conditions ?? []).find((x) => x.type === 'ReplicaFailure' && x.status === 'True');
  return c ? { at: c.lastTransitionTime ?? '', code: null, signal: null, reason: `ReplicaFailure: ${c.message ?? c.reason ?? 'pods cannot be created'}` } : undefined;
}
