/**
 * What the stand-in API server checks in every body it is sent, and how it defaults what it stores.
 *
 * The schema check is kubernetes-models' (JSON Schemas generated from the OpenAPI description
 * Kubernetes publishes, v1.27): types, required fields, enums, formats. Like the real API server,
 * the stand-in then checks what the OpenAPI description cannot say — names (DNS-1123 / DNS-1035),
 * label and annotation syntax and sizes, the 1 MiB limit of a ConfigMap or Secret, a Deployment's
 * selector matching its template and staying as it was, quantities (requests ≤ limits), port names —
 * with the messages the API server gives (422 Invalid with causes).
 * Unknown fields are not rejected (the real server's default is to drop them with a warning).
 */
import { ConfigMap, Endpoints, Pod, Secret, Service } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Lease } from 'kubernetes-models/coordination.k8s.io/v1';
import { DeleteOptions } from '@kubernetes-models/apimachinery/apis/meta/v1/DeleteOptions';
import { StatusError, type KubeObject } from './store.js';

type Validatable = { validate(): void };
const MODELS: Record<string, new (data: never) => Validatable> = {
  Pod: Pod as never,
  Service: Service as never,
  ConfigMap: ConfigMap as never,
  Secret: Secret as never,
  Endpoints: Endpoints as never,
  Deployment: Deployment as never,
  Lease: Lease as never,
  DeleteOptions: DeleteOptions as never,
};

export interface Cause {
  reason: string;
  message: string;
  field: string;
}

/** The body against the kind's schema; throws 422 Invalid (or 400 for a body of the wrong kind). */
export function checkSchema(kind: string, body: unknown): void {
  const Model = MODELS[kind];
  if (!Model) throw new StatusError(500, 'InternalError', `the stand-in has no schema for ${kind}`);
  try {
    new Model(body as never).validate();
  } catch (err) {
    const message = (err as Error).message;
    const causes: Cause[] = message.split(', data').map((m, i) => {
      const text = i === 0 ? m.replace(/^data/, '') : m;
      const space = text.indexOf(' ');
      return { reason: 'FieldValueInvalid', field: text.slice(0, space).replace(/^\//, '').replace(/\//g, '.'), message: text.slice(space + 1) };
    });
    throw invalid(kind, (body as KubeObject | undefined)?.metadata?.name ?? '', causes);
  }
}

export function invalid(kind: string, name: string, causes: Cause[]): StatusError {
  const list = causes.map((c) => `${c.field}: ${c.message}`).join(', ');
  return new StatusError(422, 'Invalid', `${kind} "${name}" is invalid: ${list}`, { name, kind, causes });
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/;
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
const IANA_SVC_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const QUANTITY = /^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$/;
const MAX_DATA = 1024 * 1024;
const MAX_ANNOTATIONS = 256 * 1024;

/** What the API server validates beyond the schema, for one object about to be stored (`old`: on update). */
export function checkSemantics(obj: KubeObject, old?: KubeObject): void {
  const causes: Cause[] = [];
  const add = (field: string, message: string, reason = 'FieldValueInvalid') => causes.push({ field, message, reason });
  const meta = obj.metadata;
  const nameRule = obj.kind === 'Service' ? DNS1035_LABEL : DNS1123_SUBDOMAIN;
  if (!meta.name) add('metadata.name', 'name or generateName is required', 'FieldValueRequired');
  else if (!nameRule.test(meta.name) || meta.name.length > (obj.kind === 'Service' ? 63 : 253)) {
    add('metadata.name', obj.kind === 'Service' ? `Invalid value: "${meta.name}": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character` : `Invalid value: "${meta.name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`);
  }
  checkLabels(meta.labels, 'metadata.labels', add);
  checkAnnotations(meta.annotations, 'metadata.annotations', add);
  switch (obj.kind) {
    case 'ConfigMap':
    case 'Secret':
      checkData(obj, add);
      break;
    case 'Deployment':
      checkDeployment(obj, old, add);
      break;
    case 'Pod':
      checkPodSpec(obj.spec as PodSpec, 'spec', add);
      break;
    case 'Service':
      checkService(obj, old, add);
      break;
  }
  if (causes.length) throw invalid(obj.kind, meta.name ?? '', causes);
}

type Add = (field: string, message: string, reason?: string) => void;

function checkLabels(labels: Record<string, string> | undefined, field: string, add: Add): void {
  for (const [k, v] of Object.entries(labels ?? {})) {
    checkKey(k, `${field}`, add);
    if (typeof v !== 'string' || v.length > 63 || !LABEL_VALUE.test(v)) {
      add(field, `Invalid value: "${String(v)}": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character, and must be no more than 63 characters`);
    }
  }
}

function checkKey(k: string, field: string, add: Add): void {
  const slash = k.lastIndexOf('/');
  const prefix = slash >= 0 ? k.slice(0, slash) : undefined;
  const name = slash >= 0 ? k.slice(slash + 1) : k;
  if (prefix !== undefined && (!DNS1123_SUBDOMAIN.test(prefix) || prefix.length > 253)) add(field, `Invalid value: "${k}": prefix part must be a lowercase RFC 1123 subdomain`);
  if (!QUALIFIED_NAME.test(name) || name.length > 63) add(field, `Invalid value: "${k}": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character, at most 63 characters`);
}

function checkAnnotations(annotations: Record<string, string> | undefined, field: string, add: Add): void {
  let size = 0;
  for (const [k, v] of Object.entries(annotations ?? {})) {
    checkKey(k, field, add);
    size += k.length + String(v).length;
  }
  if (size > MAX_ANNOTATIONS) add(field, `Too long: must have at most ${MAX_ANNOTATIONS} bytes`, 'FieldValueTooLong');
}

function checkData(obj: KubeObject, add: Add): void {
  let size = 0;
  for (const field of ['data', 'binaryData', 'stringData'] as const) {
    const data = obj[field] as Record<string, string> | undefined;
    for (const [k, v] of Object.entries(data ?? {})) {
      if (!CONFIG_KEY.test(k) || k.length > 253) add(`${field}[${k}]`, `Invalid value: "${k}": a valid config key must consist of alphanumeric characters, '-', '_' or '.'`);
      const binary = field === 'binaryData' || (obj.kind === 'Secret' && field === 'data');
      if (binary && !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) add(`${field}[${k}]`, 'Invalid value: illegal base64 data');
      size += binary ? Buffer.from(v, 'base64').length : Buffer.byteLength(v);
    }
  }
  if (size > MAX_DATA) add('data', `Too long: must have at most ${MAX_DATA} bytes`, 'FieldValueTooLong');
}

interface Container {
  name: string;
  image?: string;
  ports?: { name?: string; containerPort: number }[];
  env?: { name: string }[];
  resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  readinessProbe?: { httpGet?: { port: string | number } };
  livenessProbe?: { httpGet?: { port: string | number } };
}
interface PodSpec {
  containers: Container[];
  restartPolicy?: string;
  terminationGracePeriodSeconds?: number;
}

function checkPodSpec(spec: PodSpec, field: string, add: Add): void {
  const names = new Set<string>();
  spec.containers.forEach((c, i) => {
    const at = `${field}.containers[${i}]`;
    if (!DNS1123_LABEL.test(c.name)) add(`${at}.name`, `Invalid value: "${c.name}": a lowercase RFC 1123 label`);
    if (names.has(c.name)) add(`${at}.name`, `Duplicate value: "${c.name}"`, 'FieldValueDuplicate');
    names.add(c.name);
    if (!c.image) add(`${at}.image`, 'Required value', 'FieldValueRequired');
    for (const [j, p] of (c.ports ?? []).entries()) {
      if (p.containerPort < 1 || p.containerPort > 65535) add(`${at}.ports[${j}].containerPort`, `Invalid value: ${p.containerPort}: must be between 1 and 65535, inclusive`);
      if (p.name !== undefined && !validPortName(p.name)) add(`${at}.ports[${j}].name`, `Invalid value: "${p.name}": must be no more than 15 characters, lower case alphanumeric or '-', with at least one letter`);
    }
    for (const [j, e] of (c.env ?? []).entries()) if (!ENV_NAME.test(e.name)) add(`${at}.env[${j}].name`, `Invalid value: "${e.name}": a valid environment variable name`);
    const req = c.resources?.requests ?? {};
    const lim = c.resources?.limits ?? {};
    for (const [kind, q] of [...Object.entries(req), ...Object.entries(lim)]) {
      if (!QUANTITY.test(String(q)) || Number.isNaN(quantity(q))) add(`${at}.resources`, `Invalid value: "${String(q)}" for ${kind}: quantities must match the regular expression '${QUANTITY.source}'`);
    }
    for (const [kind, q] of Object.entries(req)) {
      const l = lim[kind];
      if (l !== undefined && quantity(q) > quantity(l)) add(`${at}.resources.requests`, `Invalid value: "${String(q)}": must be less than or equal to ${kind} limit of ${String(l)}`);
    }
    for (const probe of ['readinessProbe', 'livenessProbe'] as const) {
      const port = c[probe]?.httpGet?.port;
      if (typeof port === 'string' && !validPortName(port)) add(`${at}.${probe}.httpGet.port`, `Invalid value: "${port}": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)`);
    }
  });
  if (spec.restartPolicy !== undefined && !['Always', 'OnFailure', 'Never'].includes(spec.restartPolicy)) add(`${field}.restartPolicy`, `Unsupported value: "${spec.restartPolicy}"`, 'FieldValueNotSupported');
  if (spec.terminationGracePeriodSeconds !== undefined && spec.terminationGracePeriodSeconds < 0) add(`${field}.terminationGracePeriodSeconds`, 'must be greater than or equal to 0');
}

function checkDeployment(obj: KubeObject, old: KubeObject | undefined, add: Add): void {
  const spec = obj.spec as { replicas?: number; selector: { matchLabels?: Record<string, string> }; template: { metadata?: { labels?: Record<string, string> }; spec: PodSpec } };
  const labels = spec.template.metadata?.labels ?? {};
  const sel = spec.selector.matchLabels ?? {};
  if (Object.keys(sel).length === 0) add('spec.selector', 'Invalid value: empty selector is invalid for deployment');
  if (Object.entries(sel).some(([k, v]) => labels[k] !== v)) add('spec.template.metadata.labels', `Invalid value: ${JSON.stringify(labels)}: \`selector\` does not match template \`labels\``);
  checkLabels(labels, 'spec.template.metadata.labels', add);
  if (spec.replicas !== undefined && spec.replicas < 0) add('spec.replicas', 'must be greater than or equal to 0');
  if (spec.template.spec.restartPolicy !== undefined && spec.template.spec.restartPolicy !== 'Always') add('spec.template.spec.restartPolicy', `Unsupported value: "${spec.template.spec.restartPolicy}": supported values: "Always"`, 'FieldValueNotSupported');
  checkPodSpec(spec.template.spec, 'spec.template.spec', add);
  const before = old?.spec as { selector?: unknown } | undefined;
  if (before && JSON.stringify(before.selector) !== JSON.stringify(spec.selector)) add('spec.selector', 'Invalid value: field is immutable');
}

function checkService(obj: KubeObject, old: KubeObject | undefined, add: Add): void {
  const spec = obj.spec as { ports?: { name?: string; port: number; targetPort?: string | number }[]; clusterIP?: string };
  const ports = spec.ports ?? [];
  if (ports.length === 0) add('spec.ports', 'Required value', 'FieldValueRequired');
  ports.forEach((p, i) => {
    if (ports.length > 1 && !p.name) add(`spec.ports[${i}].name`, 'Required value', 'FieldValueRequired');
    if (p.port < 1 || p.port > 65535) add(`spec.ports[${i}].port`, `Invalid value: ${p.port}: must be between 1 and 65535, inclusive`);
    if (typeof p.targetPort === 'string' && !validPortName(p.targetPort)) add(`spec.ports[${i}].targetPort`, `Invalid value: "${p.targetPort}"`);
  });
  const was = (old?.spec as { clusterIP?: string } | undefined)?.clusterIP;
  if (was && spec.clusterIP && spec.clusterIP !== was) add('spec.clusterIP', 'Invalid value: field is immutable');
}

function validPortName(name: string): boolean {
  return name.length <= 15 && IANA_SVC_NAME.test(name) && /[a-z]/.test(name) && !name.includes('--');
}

/** A Kubernetes quantity as a number (cores, bytes). */
export function quantity(q: string | number): number {
  if (typeof q === 'number') return q;
  const m = QUANTITY.exec(q);
  if (!m) return NaN;
  const n = Number(m[1]);
  const suffix = m[2] ?? '';
  const binary: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50 };
  const decimal: Record<string, number> = { '': 1, n: 1e-9, u: 1e-6, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15 };
  if (suffix in binary) return n * binary[suffix]!;
  if (suffix in decimal) return n * decimal[suffix]!;
  const e = /^[eE]([-+]?\d+)$/.exec(suffix);
  return e ? n * 10 ** Number(e[1]) : NaN;
}

/** What the API server fills in on create, so that what kubectl shows and what a client reads back is what a cluster would say. */
export function applyDefaults(obj: KubeObject, allocateClusterIP: () => string): void {
  if (obj.kind === 'Deployment') {
    const spec = obj.spec as Record<string, unknown> & { template: { spec: Record<string, unknown> } };
    spec.replicas ??= 1;
    spec.revisionHistoryLimit ??= 10;
    spec.progressDeadlineSeconds ??= 600;
    spec.strategy ??= { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } };
    defaultPodSpec(spec.template.spec);
  } else if (obj.kind === 'Pod') {
    defaultPodSpec(obj.spec as Record<string, unknown>);
  } else if (obj.kind === 'Service') {
    const spec = obj.spec as Record<string, unknown> & { ports?: Record<string, unknown>[] };
    spec.type ??= 'ClusterIP';
    spec.sessionAffinity ??= 'None';
    spec.clusterIP ??= allocateClusterIP();
    spec.clusterIPs ??= [spec.clusterIP];
    spec.ipFamilies ??= ['IPv4'];
    spec.ipFamilyPolicy ??= 'SingleStack';
    spec.internalTrafficPolicy ??= 'Cluster';
    for (const p of spec.ports ?? []) {
      p.protocol ??= 'TCP';
      p.targetPort ??= p.port;
    }
    obj.status ??= { loadBalancer: {} };
  } else if (obj.kind === 'Secret') {
    obj.type ??= 'Opaque';
    const stringData = obj.stringData as Record<string, string> | undefined;
    if (stringData) {
      const data = (obj.data ??= {}) as Record<string, string>;
      for (const [k, v] of Object.entries(stringData)) data[k] = Buffer.from(v).toString('base64');
      delete obj.stringData;
    }
  }
}

function defaultPodSpec(spec: Record<string, unknown>): void {
  spec.restartPolicy ??= 'Always';
  spec.terminationGracePeriodSeconds ??= 30;
  spec.dnsPolicy ??= 'ClusterFirst';
  spec.schedulerName ??= 'default-scheduler';
  spec.securityContext ??= {};
  for (const c of (spec.containers ?? []) as Record<string, unknown>[]) {
    c.terminationMessagePath ??= '/dev/termination-log';
    c.terminationMessagePolicy ??= 'File';
    c.imagePullPolicy ??= String(c.image).endsWith(':latest') || !String(c.image).includes(':') ? 'Always' : 'IfNotPresent';
    c.resources ??= {};
    for (const p of (c.ports ?? []) as Record<string, unknown>[]) p.protocol ??= 'TCP';
    for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe'] as const) {
      const pr = c[probe] as Record<string, unknown> | undefined;
      if (!pr) continue;
      pr.timeoutSeconds ??= 1;
      pr.periodSeconds ??= 10;
      pr.successThreshold ??= 1;
      pr.failureThreshold ??= 3;
      const get = pr.httpGet as Record<string, unknown> | undefined;
      if (get) {
        get.path ??= '/';
        get.scheme ??= 'HTTP';
      }
    }
  }
}
