/**
 * What the kubernetes driver puts in the cluster for one colour of an instance, all named
 * <fleet>-<instance>-<color> and labelled fleet / instance / colour:
 *
 *  - a Deployment (made with replicas 0 by create, scaled to 1 by start): the Node-RED image,
 *    its args pointing at the settings from the ConfigMap, resources as requests and limits,
 *    plain env as values and secret env as secretKeyRefs, a readiness probe on Node-RED's own
 *    /auth/login, and a preStop sleep of drainTimeout inside a grace period longer than it — so
 *    that a pod taken out of the Service keeps serving what is in flight. Annotations carry the
 *    rev and flows hash: a restarted Tower adopts what runs from them;
 *  - a ConfigMap: settings.js and flows.json (Node-RED copies the flows into its userDir, an
 *    emptyDir, on first start, so that what is deployed later has somewhere to go);
 *  - a Secret: the secret env values, the credentialSecret, the admin password hash and the
 *    encrypted flows_cred.json. ConfigMap and Secret are owned by the Deployment, so they go with it.
 * The rev is an annotation, not a label: a label value is at most 63 characters, a rev 64.
 */
import { createHash, createHmac } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { deployableFlows } from '../../core/flows.js';
import { consumerClientIdFor, gateTopicFor } from '../../core/instance-env.js';
import type { KubeObject } from '../kubernetes/api.js';
import { encryptCredentials, extractCredentials } from './credentials.js';
import { renderSettings } from './settings.js';
import { RuntimeError, type ColorIdentity, type ColorSpec } from './types.js';

const DOMAIN = 'tower.redforge.dev';
export const KUBE_LABELS = { fleet: `${DOMAIN}/fleet`, instance: `${DOMAIN}/instance`, color: `${DOMAIN}/color` } as const;
export const KUBE_ANNOTATIONS = { rev: `${DOMAIN}/rev`, flowsHash: `${DOMAIN}/flows-hash`, nodeRedVersion: `${DOMAIN}/node-red-version`, stopped: `${DOMAIN}/stopped`, replicas: `${DOMAIN}/replicas` } as const;
/** The port Node-RED listens on in every pod (each pod has its own address). */
export const NODE_RED_PORT = 1880;
export const CONTAINER = 'node-red';
const ENV_CREDENTIAL_SECRET = 'TOWER_CREDENTIAL_SECRET';
const ENV_ADMIN_HASH = 'TOWER_ADMIN_PASSWORD_HASH';
const ENV_ADMIN_TOKEN_SHA = 'TOWER_ADMIN_TOKEN_SHA256';

/**
 * The token Tower sends Node-RED in pods (settings.ts adminTokenAuth), derived from the admin
 * password so that every Tower replica knows it and nothing else needs storing; pods get its hash.
 */
export function adminToken(password: string): string {
  return createHmac('sha256', password).update('redforge-tower kubernetes admin token v1').digest('hex');
}

export function objectName(ref: ColorIdentity): string {
  const name = `${ref.fleet}-${ref.instance}-${ref.color}`;
  // Pod names add 17 characters (-<hash>-<suffix>) and must stay a DNS label in places (hostname).
  if (name.length > 63 - 17) throw new RuntimeError(`kubernetes: "${name}" is too long for a Deployment whose pods keep a valid hostname (at most ${63 - 17} characters): shorten the fleet or instance name`, 'InvalidName');
  return name;
}

export function colorLabels(ref: ColorIdentity): Record<string, string> {
  return { [KUBE_LABELS.fleet]: ref.fleet, [KUBE_LABELS.instance]: ref.instance, [KUBE_LABELS.color]: ref.color };
}

export function fleetSelector(fleet: string, more: Record<string, string> = {}): string {
  return encodeURIComponent(Object.entries({ [KUBE_LABELS.fleet]: fleet, ...more }).map(([k, v]) => `${k}=${v}`).join(','));
}

/** resources in Kubernetes quantities: memory as written (256Mi), cpu 0.5 → 500m. */
export function quantities(resources: ColorSpec['resources']): Record<string, string> {
  const out: Record<string, string> = {};
  if (resources.memory !== undefined) {
    if (!/^\d+(Ki|Mi|Gi)?$/.test(resources.memory)) throw new RuntimeError(`resources.memory "${resources.memory}" is not a size like 256Mi or 1Gi`, 'InvalidResources');
    out.memory = resources.memory;
  }
  if (resources.cpu !== undefined) {
    const cpu = String(resources.cpu);
    if (/^\d+m$/.test(cpu)) out.cpu = cpu;
    else if (/^\d+(\.\d+)?$/.test(cpu) && Number(cpu) > 0) out.cpu = `${Math.round(Number(cpu) * 1000)}m`;
    else throw new RuntimeError(`resources.cpu "${cpu}" is not a number of cores like 0.5 or 500m`, 'InvalidResources');
  }
  return out;
}

export interface ColorObjects {
  deployment: KubeObject;
  configMap: KubeObject;
  secret: KubeObject;
}

export function colorObjects(spec: ColorSpec, opts: { image: string; credentialSecret: string; drainMs: number; replicas: number }): ColorObjects {
  const name = objectName(spec);
  const labels = { ...userLabels(spec.labels), ...colorLabels(spec), 'app.kubernetes.io/name': 'node-red', 'app.kubernetes.io/instance': spec.instance, 'app.kubernetes.io/managed-by': 'redforge-tower' };
  const annotations = { [KUBE_ANNOTATIONS.rev]: spec.rev, [KUBE_ANNOTATIONS.flowsHash]: spec.flowsHash, [KUBE_ANNOTATIONS.nodeRedVersion]: spec.nodeRedVersion };
  // What start scales to: create makes the Deployment at 0.
  const deploymentAnnotations = { ...annotations, [KUBE_ANNOTATIONS.replicas]: String(opts.replicas) };
  const resources = quantities(spec.resources);
  const secretNames = new Set(spec.secretEnv ?? []);
  const credentials = extractCredentials(spec.flows);
  const settings = renderSettings({
    port: NODE_RED_PORT,
    // The pod's own address: the Service and the kubelet's probe reach it there.
    host: '0.0.0.0',
    admin: spec.admin,
    credentialSecret: '',
    settings: spec.settings,
    secretsFromEnv: { credentialSecret: ENV_CREDENTIAL_SECRET, adminPasswordHash: ENV_ADMIN_HASH, adminTokenSha256: ENV_ADMIN_TOKEN_SHA },
    seedFromSettingsDir: credentials ? ['flows.json', 'flows_cred.json'] : ['flows.json'],
  });
  const secretData: Record<string, string> = {
    [ENV_CREDENTIAL_SECRET]: opts.credentialSecret,
    [ENV_ADMIN_HASH]: bcrypt.hashSync(spec.admin.password, 8),
    [ENV_ADMIN_TOKEN_SHA]: createHash('sha256').update(adminToken(spec.admin.password)).digest('hex'),
  };
  for (const k of secretNames) if (k in spec.env) secretData[k] = spec.env[k]!;
  if (credentials) secretData['flows_cred.json'] = JSON.stringify(encryptCredentials(opts.credentialSecret, credentials));
  const secretRef = (key: string) => ({ name: key, valueFrom: { secretKeyRef: { name, key } } });
  // The kubelet expands $(VAR) in env values (and $$ to $): a value is passed as written by doubling each $.
  const literal = (v: string) => v.replaceAll('$', '$$$$');
  const env = [
    ...(opts.replicas > 1 ? [{ name: ENV_POD_NAME, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } }] : []),
    ...Object.entries({ ...spec.env, ...replicaEnv(spec, opts.replicas) }).map(([k, v]) => (secretNames.has(k) ? secretRef(k) : { name: k, value: REPLICA_ENV.has(k) && opts.replicas > 1 ? v : literal(v) })),
    secretRef(ENV_CREDENTIAL_SECRET),
    secretRef(ENV_ADMIN_HASH),
    secretRef(ENV_ADMIN_TOKEN_SHA),
  ];
  const drainSeconds = Math.max(1, Math.ceil(opts.drainMs / 1000));
  const deployment: KubeObject = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, labels, annotations: deploymentAnnotations },
    spec: {
      replicas: 0,
      // One pod of a colour at a time; a colour's Deployment is replaced, never rolled.
      strategy: { type: 'Recreate' },
      selector: { matchLabels: colorLabels(spec) },
      template: {
        metadata: { labels, annotations },
        spec: {
          // preStop sleeps drainTimeout, then Node-RED gets SIGTERM and time to close its nodes.
          terminationGracePeriodSeconds: drainSeconds + 15,
          enableServiceLinks: false,
          automountServiceAccountToken: false,
          containers: [
            {
              name: CONTAINER,
              image: opts.image,
              // The official image runs `node-red --userDir /data $FLOWS <args>`.
              args: ['--settings', '/config/settings.js'],
              ports: [{ name: 'http', containerPort: NODE_RED_PORT, protocol: 'TCP' }],
              env,
              resources: Object.keys(resources).length ? { requests: resources, limits: resources } : {},
              // Answers 200 with or without adminAuth, once the editor API (and so the flows) is up.
              readinessProbe: { httpGet: { path: '/auth/login', port: 'http' }, periodSeconds: 2, timeoutSeconds: 2, failureThreshold: 3 },
              lifecycle: { preStop: { exec: { command: ['sleep', String(drainSeconds)] } } },
              volumeMounts: [
                { name: 'config', mountPath: '/config', readOnly: true },
                { name: 'data', mountPath: '/data' },
              ],
            },
          ],
          volumes: [
            {
              name: 'config',
              projected: {
                sources: [{ configMap: { name } }, ...(credentials ? [{ secret: { name, items: [{ key: 'flows_cred.json', path: 'flows_cred.json' }] } }] : [])],
              },
            },
            { name: 'data', emptyDir: {} },
          ],
        },
      },
    },
  };
  const configMap: KubeObject = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, labels, annotations },
    data: { 'settings.js': settings, 'flows.json': JSON.stringify(deployableFlows(spec.flows)) },
  };
  const secret: KubeObject = { apiVersion: 'v1', kind: 'Secret', metadata: { name, labels }, type: 'Opaque', stringData: secretData };
  const size = Buffer.byteLength(JSON.stringify(configMap.data));
  if (size > 1024 * 1024 - 4096) throw new RuntimeError(`kubernetes: the flows and settings of ${name} take ${size} bytes; a ConfigMap holds at most 1 MiB`, 'FlowsTooLarge');
  return { deployment, configMap, secret };
}

/**
 * Replicas in pods: every pod of a Deployment has the same template, so a replica's own env
 * (its deploy gate and MQTT session, see core/instance-env.ts replicaEnvironments) is named
 * after the pod itself — $(TOWER_POD_NAME), from the downward API, expanded by the kubelet.
 * The engine finds each pod's by the same name (ReplicaView.key). A pod that Kubernetes
 * replaces has a new name: a new gate (the engine opens it on its next pass) and a new session.
 */
const ENV_POD_NAME = 'TOWER_POD_NAME';
const REPLICA_ENV = new Set(['TOWER_REPLICA', 'TOWER_GATE_TOPIC', 'TOWER_MQTT_CLIENT_ID']);
function replicaEnv(spec: ColorSpec, replicas: number): Record<string, string> {
  if (replicas <= 1) return {};
  const pod = `$(${ENV_POD_NAME})`;
  return { TOWER_REPLICA: pod, TOWER_GATE_TOPIC: gateTopicFor(spec.fleet, spec.instance, spec.color, pod), TOWER_MQTT_CLIENT_ID: consumerClientIdFor(spec.fleet, spec.instance, spec.color, pod) };
}

/** The ConfigMap or Secret, owned by its colour's Deployment: deleting the Deployment (by hand too) takes them along. */
export function ownedBy(obj: KubeObject, deployment: KubeObject): KubeObject {
  return { ...obj, metadata: { ...obj.metadata, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name, uid: deployment.metadata.uid!, controller: true, blockOwnerDeletion: false }] } };
}

/** fleet.yaml labels that are valid Kubernetes labels (others are Tower's own business and stay out). */
function userLabels(labels: Record<string, string>): Record<string, string> {
  const ok = (v: string) => v.length <= 63 && /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/.test(v);
  return Object.fromEntries(Object.entries(labels).filter(([k, v]) => ok(k.split('/').pop() ?? '') && ok(v) && !k.startsWith(`${DOMAIN}/`)));
}
