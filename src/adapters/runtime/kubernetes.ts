/**
 * The kubernetes runtime driver: each colour of an instance is a Deployment, with its
 * ConfigMap (settings.js, flows.json) and Secret (secret env, credentialSecret, admin hash and
 * token hash, encrypted node credentials) — kubernetes-objects.ts — in the fleet's namespace.
 *
 * The cluster is the only record: list(fleet) is one list of Deployments and one of pods by the
 * fleet's label, whatever the number of instances, and the colour's status, rev and flows hash
 * come from them (kubernetes-status.ts), so that a restarted Tower adopts what runs.
 *
 * create makes the Deployment at 0 replicas, then the ConfigMap and Secret owned by it (deleting
 * the Deployment, by hand too, takes them along); start scales it to the instance's `replicas`
 * and waits for their pods to exist (its readiness is the engine's to wait for); stop scales it to 0;
 * remove deletes all three (pods end gracefully: their preStop sleeps drainTimeout). A pod that
 * crashes is Kubernetes' to restart; watch() tells the engine (kubernetes-watch.ts).
 *
 * Tower does not pull images or know what a registry holds: cannotRun has nothing to say, and an
 * image the cluster cannot pull shows as ImagePullBackOff, which fails the rollout's DEPLOY.
 */
import type { IncomingMessage } from 'node:http';
import https from 'node:https';
import type { KubeApi, KubeList, KubeObject } from '../kubernetes/api.js';
import { decryptCredentials, loadCredentialSecret } from './credentials.js';
import { colorObjects, CONTAINER, fleetSelector, KUBE_ANNOTATIONS, KUBE_LABELS, objectName, ownedBy } from './kubernetes-objects.js';
import { colorOf, podsOf, type PodAddressing } from './kubernetes-status.js';
import { watchFleetPods } from './kubernetes-watch.js';
import { colorRedactor, LineSplitter, MAX_LOG_LINES, redactedLines, type Line } from './logs.js';
import { RuntimeError, type ColorIdentity, type ColorSpec, type RunningColor, type RuntimeDriver } from './types.js';

export interface KubernetesDriverOptions {
  api: KubeApi;
  /** Tower's state directory: the credentialSecret that encrypts node credentials (<stateDir>/secrets.json). */
  stateDir: string;
  /** Image for a spec without `image`; default: the official nodered/node-red:<nodeRedVersion>. */
  imageFor?: (spec: Pick<ColorSpec, 'nodeRedVersion'>) => string;
  credentialSecret?: string;
  /** How long start waits for the Deployment to make a pod. Default 30 s. */
  podTimeoutMs?: number;
  log?: (line: string) => void;
}

const MERGE = 'application/merge-patch+json';

export function kubernetesDriver(options: KubernetesDriverOptions): RuntimeDriver {
  const { api } = options;
  const log = options.log ?? (() => {});
  const imageFor = options.imageFor ?? ((spec: Pick<ColorSpec, 'nodeRedVersion'>) => `nodered/node-red:${spec.nodeRedVersion}`);
  const addressing: PodAddressing = { podAccess: api.podAccess, namespaceUrl: `${api.server}${api.core('').replace(/\/$/, '')}` };
  let secret: Promise<string> | undefined;
  const credentialSecret = (): Promise<string> => {
    secret ??= options.credentialSecret !== undefined ? Promise.resolve(options.credentialSecret) : loadCredentialSecret(options.stateDir);
    secret.catch(() => (secret = undefined));
    return secret;
  };

  const deploymentPath = (name: string) => api.apps(`deployments/${encodeURIComponent(name)}`);
  const colorPods = (ref: ColorIdentity) => api.request<KubeList>('GET', api.core(`pods?labelSelector=${fleetSelector(ref.fleet, { [KUBE_LABELS.instance]: ref.instance, [KUBE_LABELS.color]: ref.color })}`));

  async function inspect(ref: ColorIdentity): Promise<RunningColor | undefined> {
    const deployment = await api.request<KubeObject>('GET', deploymentPath(objectName(ref)), { ok: [404] });
    if (!deployment || deployment.metadata.labels?.[KUBE_LABELS.fleet] !== ref.fleet) return undefined;
    return colorOf(deployment, (await colorPods(ref))?.items ?? [], addressing);
  }

  async function removeObjects(name: string): Promise<void> {
    const background = { body: { propagationPolicy: 'Background' }, ok: [404] };
    await api.request('DELETE', deploymentPath(name), background);
    await api.request('DELETE', api.core(`configmaps/${encodeURIComponent(name)}`), { ok: [404] });
    await api.request('DELETE', api.core(`secrets/${encodeURIComponent(name)}`), { ok: [404] });
  }

  return {
    kind: 'kubernetes',

    // Kubernetes pulls images; what its registries hold is not known here.
    cannotRun: async () => undefined,

    async list(fleet) {
      const selector = fleetSelector(fleet);
      const [deployments, pods] = await Promise.all([api.request<KubeList>('GET', api.apps(`deployments?labelSelector=${selector}`)), api.request<KubeList>('GET', api.core(`pods?labelSelector=${selector}`))]);
      return (deployments?.items ?? []).flatMap((d) => colorOf(d, pods?.items ?? [], addressing) ?? []);
    },

    async create(spec) {
      const objects = colorObjects(spec, { image: spec.image ?? imageFor(spec), credentialSecret: await credentialSecret(), drainMs: spec.drainMs ?? 30_000, replicas: spec.replicas ?? 1 });
      const name = objects.deployment.metadata.name;
      // The Redis store and its client are not in the Node-RED image; a pod's context is its own.
      if (spec.context === 'shared') log(`kubernetes: ${name} wants context: shared, which runtime: kubernetes does not wire to Redis yet; its context stays in the pod and is lost on a swap`);
      const existing = await api.request<KubeObject>('GET', deploymentPath(name), { ok: [404] });
      if (existing && existing.metadata.labels?.[KUBE_LABELS.fleet] !== spec.fleet) {
        throw new RuntimeError(`kubernetes: Deployment ${name} in namespace ${api.namespace} exists but is not Tower's (no label ${KUBE_LABELS.fleet}=${spec.fleet}): rename or remove it`, 'NameConflict');
      }
      // What an earlier attempt left under this colour's name is replaced.
      await removeObjects(name);
      const deployment = await api.request<KubeObject>('POST', api.apps('deployments'), { body: objects.deployment });
      try {
        await api.request('POST', api.core('configmaps'), { body: ownedBy(objects.configMap, deployment!) });
        await api.request('POST', api.core('secrets'), { body: ownedBy(objects.secret, deployment!) });
      } catch (err) {
        await removeObjects(name).catch(() => undefined);
        throw err;
      }
      return colorOf(deployment!, [], addressing)!;
    },

    async start(ref) {
      const name = objectName(ref);
      const deployment = await api.request<KubeObject>('GET', deploymentPath(name), { ok: [404] });
      if (!deployment) throw new RuntimeError(`kubernetes: Deployment ${name} does not exist: nothing to start`, 'NotFound');
      const replicas = Math.max(1, Number(deployment.metadata.annotations?.[KUBE_ANNOTATIONS.replicas]) || 1);
      await api.request('PATCH', deploymentPath(name), { contentType: MERGE, body: { metadata: { annotations: { [KUBE_ANNOTATIONS.stopped]: null } }, spec: { replicas } } });
      // Resolves once every replica's pod exists (their URLs are the pods'), so that the engine asks each of them;
      // whether they become ready is the engine's to wait for. With pods running already this changes nothing:
      // a pod that died is Kubernetes' to restart.
      const deadline = Date.now() + (options.podTimeoutMs ?? 30_000);
      for (;;) {
        const color = await inspect(ref);
        if (!color) throw new RuntimeError(`kubernetes: Deployment ${name} vanished while starting`, 'NotFound');
        if (color.status === 'exited' || (color.id !== name && (replicas <= 1 || (color.replicas?.length ?? 0) >= replicas))) return color;
        if (Date.now() > deadline) {
          const made = color.id === name ? 'no pod' : `${color.replicas?.length ?? 1} of its ${replicas} pods`;
          throw new RuntimeError(`kubernetes: Deployment ${name} made ${made} within ${options.podTimeoutMs ?? 30_000} ms (kubectl describe deployment ${name} -n ${api.namespace} says why)`, 'NoPod');
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    },

    async stop(ref) {
      const name = objectName(ref);
      await api.request('PATCH', deploymentPath(name), { contentType: MERGE, ok: [404], body: { metadata: { annotations: { [KUBE_ANNOTATIONS.stopped]: new Date().toISOString() } }, spec: { replicas: 0 } } });
    },

    async remove(ref) {
      await removeObjects(objectName(ref));
    },

    inspect,

    /** The log of the colour's pod (a ready one first), redacted with what its Secret holds. */
    async *logs(ref, opts) {
      const name = objectName(ref);
      const deployment = await api.request<KubeObject>('GET', deploymentPath(name), { ok: [404] });
      if (!deployment || deployment.metadata.labels?.[KUBE_LABELS.fleet] !== ref.fleet) throw new RuntimeError(`${name} does not exist`, 'NotFound');
      const pods = (await colorPods(ref))?.items ?? [];
      const color = colorOf(deployment, pods, addressing);
      // --replica k: the k-th pod, as the colour's replicas are numbered.
      const pod = opts.replica !== undefined ? podsOf(deployment, pods)[opts.replica - 1] : podsOf(deployment, pods).find((p) => p.metadata.name === color?.id);
      if (!pod) throw new RuntimeError(opts.replica !== undefined ? `${name} has no replica ${opts.replica}` : `${name} has no pod (it is not running)`, 'NotFound');
      const stored = await api.request<KubeObject>('GET', api.core(`secrets/${encodeURIComponent(name)}`), { ok: [404] });
      const secretData = Object.fromEntries(Object.entries((stored?.data ?? {}) as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
      const containers = (deployment.spec as { template: { spec: { containers: { env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { key: string } } }[] }[] } } }).template.spec.containers;
      const env: Record<string, string> = {};
      for (const e of containers[0]?.env ?? []) {
        // Plain values are written with $ doubled (the kubelet expands $(VAR)).
        const value = e.valueFrom?.secretKeyRef ? secretData[e.valueFrom.secretKeyRef.key] : e.value?.replaceAll('$$', '$');
        if (value !== undefined) env[e.name] = value;
      }
      const secretValue = options.credentialSecret ?? (await credentialSecret().catch(() => undefined));
      const credentials = secretData['flows_cred.json'] ? decryptCredentials(secretValue, JSON.parse(secretData['flows_cred.json'])) : undefined;
      // Every value the Secret holds is a secret, whatever its name.
      const redact = colorRedactor({ env, ...(credentials ? { credentials } : {}), credentialSecret: secretValue, secretEnv: [...(opts.secretEnv ?? []), ...containers.flatMap((c) => (c.env ?? []).filter((e) => e.valueFrom?.secretKeyRef).map((e) => e.name))], secrets: opts.secrets });
      const lines = Math.max(0, Math.min(opts.lines, MAX_LOG_LINES));
      const path = api.core(`pods/${encodeURIComponent(pod.metadata.name)}/log?container=${CONTAINER}&tailLines=${lines}${opts.follow ? '&follow=true' : ''}`);
      yield* redactedLines(podLogLines(api, path, opts.signal), redact);
    },

    watch: (fleet, onExit) => watchFleetPods(api, fleet, onExit, log),
  };
}

/** pods/log as lines, streamed (follow) until the pod's log ends or `signal` aborts. */
async function* podLogLines(api: KubeApi, path: string, signal: AbortSignal | undefined): AsyncGenerator<Line> {
  const via = await api.via();
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = https.request(`${api.server}${path}`, { agent: via.httpsAgent, headers: via.headers, signal }, resolve);
    req.once('error', reject);
    req.end();
  }).catch((err: Error) => {
    if (signal?.aborted) return undefined;
    throw new RuntimeError(`kubernetes: reading the log (${path}): ${err.message}`, 'KubeUnreachable');
  });
  if (!res) return;
  if ((res.statusCode ?? 0) !== 200) {
    let text = '';
    for await (const c of res) text += (c as Buffer).toString('utf8');
    res.destroy();
    throw new RuntimeError(`kubernetes: reading the log: HTTP ${res.statusCode}: ${text.slice(0, 300)}`, 'KubeLogFailed');
  }
  const splitter = new LineSplitter();
  try {
    for await (const chunk of res) for (const line of splitter.push(chunk as Buffer)) yield line;
  } catch (err) {
    if (!signal?.aborted) throw err;
  }
  const last = splitter.flush();
  if (last) yield last;
}

