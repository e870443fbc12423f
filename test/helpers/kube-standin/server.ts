/**
 * A stand-in Kubernetes API server for tests (no cluster is reachable from these machines).
 *
 * HTTPS on loopback with a throwaway CA, bearer-token authentication, and optionally RBAC: given
 * the rules of a Role, a request outside them is 403 Forbidden, and every (resource, verb) asked
 * for is recorded, so that a test can hold Tower's Role to exactly what Tower uses.
 *
 * Served (namespaced): pods (+ status, log, proxy), services (+ proxy), configmaps, secrets,
 * endpoints (kept by the controllers), events, apps/v1 deployments (+ status, scale is not),
 * coordination.k8s.io/v1 leases; namespaces; the discovery documents kubectl reads. Verbs: get,
 * list (labelSelector, fieldSelector), watch (resourceVersion, timeoutSeconds; label-selected
 * watches see an object leave as DELETED), create (dryRun), update (resourceVersion conflicts),
 * patch (merge, strategic as merge, JSON patch), delete (graceful for pods, garbage collection of
 * a deleted Deployment's pods), deletecollection. Every body is checked against the Kubernetes
 * OpenAPI schemas (validate.ts) before anything is stored.
 *
 * The pod proxy (/api/v1/namespaces/N/pods/P:PORT/proxy/...) forwards to the pod's IP, and the
 * service proxy (/api/v1/namespaces/N/services/S:PORT/proxy/...) to one of the Service's ready
 * endpoints, as the real API server does — including dropping the Authorization header, which
 * authenticated the request to the API server and is not for the pod.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makePki, type TestPki } from '../tls-certs.js';
import { Controllers, isReady } from './controllers.js';
import { Kubelet, type ImageBehaviour } from './kubelet.js';
import { clone, iso, matchesLabels, ObjectStore, parseFieldSelector, parseLabelSelector, StatusError, type KubeObject, type StoreEvent } from './store.js';
import { toTable, wantsTable } from './tables.js';
import { applyDefaults, checkSchema, checkSemantics } from './validate.js';

interface ResourceInfo {
  resource: string;
  kind: string;
  group: string;
  version: string;
  namespaced: boolean;
  singular: string;
  shortNames?: string[];
  /** Objects only the server writes (clients read them). */
  readOnly?: boolean;
  subresources: string[];
}

const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];
const RESOURCES: ResourceInfo[] = [
  { resource: 'pods', kind: 'Pod', group: '', version: 'v1', namespaced: true, singular: 'pod', shortNames: ['po'], subresources: ['status', 'log', 'proxy'] },
  { resource: 'services', kind: 'Service', group: '', version: 'v1', namespaced: true, singular: 'service', shortNames: ['svc'], subresources: ['status', 'proxy'] },
  { resource: 'configmaps', kind: 'ConfigMap', group: '', version: 'v1', namespaced: true, singular: 'configmap', shortNames: ['cm'], subresources: [] },
  { resource: 'secrets', kind: 'Secret', group: '', version: 'v1', namespaced: true, singular: 'secret', subresources: [] },
  { resource: 'endpoints', kind: 'Endpoints', group: '', version: 'v1', namespaced: true, singular: 'endpoints', shortNames: ['ep'], subresources: [] },
  { resource: 'events', kind: 'Event', group: '', version: 'v1', namespaced: true, singular: 'event', shortNames: ['ev'], readOnly: true, subresources: [] },
  { resource: 'namespaces', kind: 'Namespace', group: '', version: 'v1', namespaced: false, singular: 'namespace', shortNames: ['ns'], readOnly: true, subresources: [] },
  { resource: 'deployments', kind: 'Deployment', group: 'apps', version: 'v1', namespaced: true, singular: 'deployment', shortNames: ['deploy'], subresources: ['status'] },
  { resource: 'replicasets', kind: 'ReplicaSet', group: 'apps', version: 'v1', namespaced: true, singular: 'replicaset', shortNames: ['rs'], readOnly: true, subresources: [] },
  { resource: 'leases', kind: 'Lease', group: 'coordination.k8s.io', version: 'v1', namespaced: true, singular: 'lease', subresources: [] },
];

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

export interface StandinOptions {
  /** The bearer token clients must send (a ServiceAccount's). Default: generated. */
  token?: string;
  /** Images the stand-in's registry has, and what each runs (kubelet.ts). Default: nodered/node-red:4.1 and :4.1.8 run Node-RED. */
  images?: Record<string, ImageBehaviour>;
  /** false: pods are ready without a process (bench). Default true. */
  run?: boolean;
  /** The node's allocatable; default 2 CPUs, 8 GiB. */
  node?: { cpu?: number; memoryBytes?: number };
  crashBackoffMs?: number;
  /** Enforce these RBAC rules (a Role's) for the token's user; default: everything allowed. */
  rules?: PolicyRule[];
  log?: (line: string) => void;
}

export interface Standin {
  /** https://127.0.0.1:PORT */
  url: string;
  token: string;
  /** The CA that signed the server's certificate (PEM file). */
  caFile: string;
  store: ObjectStore;
  kubelet: Kubelet;
  /** (group/resource[/subresource], verb) pairs requested so far, e.g. "apps/deployments create". */
  used: Set<string>;
  /** Requests served, by verb, resource and whether they were rejected; reset with requests.clear(). */
  requests: Map<string, number>;
  /** Proxied requests, by "METHOD pods/NAME /path" or "METHOD services/NAME /path" (without the query): an observer's count, for tests. */
  proxied: Map<string, number>;
  /** Writes a kubeconfig for this server (cluster, user with the token, context `standin` with namespace). */
  kubeconfig(file: string, namespace?: string): string;
  /** Runs the real kubectl against this server (in a child: this process serves its requests); resolves to stdout, rejects with stderr. */
  kubectl(args: string[], namespace?: string): Promise<string>;
  /** Creates a namespace (namespaces are otherwise made on first use). */
  namespace(name: string): void;
  stop(): Promise<void>;
}

export const NODE_RED_IMAGES: Record<string, ImageBehaviour> = {
  'nodered/node-red:4.1': 'node-red',
  'nodered/node-red:4.1.8': 'node-red',
};

export async function startStandin(options: StandinOptions = {}): Promise<Standin> {
  const dir = mkdtempSync(join(tmpdir(), 'kube-standin-'));
  const pki: TestPki = makePki(dir);
  const token = options.token ?? `standin-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
  const store = new ObjectStore();
  const log = options.log ?? (() => {});
  const kubelet = new Kubelet({
    store,
    root: join(dir, 'pods'),
    images: options.images ?? NODE_RED_IMAGES,
    run: options.run ?? true,
    node: { name: 'standin-node', cpu: options.node?.cpu ?? 2, memoryBytes: options.node?.memoryBytes ?? 8 * 2 ** 30 },
    crashBackoffMs: options.crashBackoffMs ?? 10_000,
    log,
  });
  const deletePod = (namespace: string, name: string, graceSeconds?: number) => {
    const pod = store.get('pods', namespace, name);
    if (!pod || pod.metadata.deletionTimestamp) return;
    const grace = graceSeconds ?? (pod.spec as { terminationGracePeriodSeconds?: number }).terminationGracePeriodSeconds ?? 30;
    pod.metadata.deletionTimestamp = iso(new Date(Date.now() + grace * 1000));
    pod.metadata.deletionGracePeriodSeconds = grace;
    store.replace('pods', 'Pod', pod, { ignoreVersion: true });
  };
  const controllers = new Controllers(store, { deletePod });
  const used = new Set<string>();
  const requests = new Map<string, number>();
  const proxied = new Map<string, number>();
  const watches = new Set<http.ServerResponse>();
  let clusterIp = 10;
  const ensureNamespace = (name: string) => {
    if (!store.get('namespaces', undefined, name)) store.create('namespaces', 'Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'kubernetes.io/metadata.name': name } }, spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' } });
  };
  ensureNamespace('default');

  const server = https.createServer({ cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      const e = err instanceof StatusError ? err : new StatusError(500, 'InternalError', `stand-in: ${(err as Error).stack ?? String(err)}`);
      if (!(err instanceof StatusError)) log(`stand-in: ${(err as Error).stack ?? String(err)}`);
      if (!res.headersSent) send(res, e.code, e.status());
      else res.destroy();
    });
  });
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const port = (server.address() as AddressInfo).port;
  const url = `https://127.0.0.1:${port}`;

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', url);
    const path = u.pathname.replace(/\/+$/, '') || '/';
    if ((req.headers.authorization ?? '') !== `Bearer ${token}`) {
      count('unauthenticated');
      throw new StatusError(401, 'Unauthorized', 'Unauthorized');
    }
    // The API server authenticated the request with it; nothing behind it (a proxied pod) sees it.
    delete req.headers.authorization;
    if (req.method === 'GET') {
      const doc = discovery(path);
      if (doc) {
        count('discovery');
        return send(res, 200, doc);
      }
    }
    const route = parse(path);
    if (!route) throw new StatusError(404, 'NotFound', 'the server could not find the requested resource');
    const info = route.info;
    const verb = verbOf(req.method ?? 'GET', route, u);
    const rbacResource = route.subresource ? `${info.resource}/${route.subresource}` : info.resource;
    used.add(`${info.group ? `${info.group}/` : ''}${rbacResource} ${verb}`);
    if (options.rules && !allowed(options.rules, info.group, rbacResource, verb, route.name)) {
      count(`${verb} ${rbacResource} forbidden`);
      throw new StatusError(403, 'Forbidden', `${info.resource}${route.name ? ` "${route.name}"` : ''} is forbidden: User "system:serviceaccount:tower" cannot ${verb} resource "${rbacResource}" in API group "${info.group}"${route.namespace ? ` in the namespace "${route.namespace}"` : ''}`, { name: route.name, group: info.group, kind: info.resource });
    }
    count(`${verb} ${rbacResource}`);
    if (route.subresource === 'proxy') return proxy(req, res, route);
    if (route.subresource === 'log') {
      const text = kubelet.logs(route.namespace!, route.name!);
      if (text === undefined) throw notFound(info, route.name!);
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      return void res.end(text);
    }
    if (route.namespace && req.method !== 'GET') ensureNamespace(route.namespace);
    switch (verb) {
      case 'get': {
        const o = store.get(info.resource, route.namespace, route.name!);
        if (!o) throw notFound(info, route.name!);
        return send(res, 200, wantsTable(req.headers.accept) ? toTable(info.kind, [o], store.resourceVersion) : o);
      }
      case 'list': {
        const items = select(info, route.namespace, u);
        if (wantsTable(req.headers.accept)) return send(res, 200, toTable(info.kind, items, store.resourceVersion));
        return send(res, 200, { kind: `${info.kind}List`, apiVersion: info.group ? `${info.group}/${info.version}` : info.version, metadata: { resourceVersion: store.resourceVersion }, items });
      }
      case 'watch':
        return watch(req, res, info, route.namespace, u);
      case 'create':
        return create(req, res, info, route.namespace, u);
      case 'update':
        return update(req, res, info, route, u);
      case 'patch':
        return patch(req, res, info, route, u);
      case 'delete':
        return remove(req, res, info, route.namespace, route.name!);
      case 'deletecollection': {
        if (info.readOnly) throw methodNotAllowed();
        for (const o of select(info, route.namespace, u)) await removeOne(info, o, {});
        return send(res, 200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success' });
      }
    }
    throw new StatusError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
  }

  function count(what: string): void {
    requests.set(what, (requests.get(what) ?? 0) + 1);
  }

  function select(info: ResourceInfo, namespace: string | undefined, u: URL): KubeObject[] {
    const labels = parseLabelSelector(u.searchParams.get('labelSelector'));
    const fields = parseFieldSelector(u.searchParams.get('fieldSelector'));
    if (info.resource === 'replicasets') return []; // pods come straight from Deployments here
    return store.list(info.resource, namespace, (o) => matchesLabels(o.metadata.labels, labels) && fields(o));
  }

  async function create(req: http.IncomingMessage, res: http.ServerResponse, info: ResourceInfo, namespace: string | undefined, u: URL): Promise<void> {
    if (info.readOnly) throw methodNotAllowed();
    const body = await readBody(req);
    const obj = typed(info, body, namespace);
    checkSchema(info.kind, obj);
    applyDefaults(obj, () => `10.96.${Math.floor(clusterIp / 250)}.${(clusterIp++ % 250) + 1}`);
    if (info.kind === 'Pod' || info.kind === 'Deployment') obj.status ??= {};
    checkSemantics(obj);
    if (u.searchParams.get('dryRun') === 'All') return send(res, 201, obj);
    return send(res, 201, store.create(info.resource, info.kind, obj));
  }

  async function update(req: http.IncomingMessage, res: http.ServerResponse, info: ResourceInfo, route: Route, u: URL): Promise<void> {
    if (info.readOnly) throw methodNotAllowed();
    const old = store.get(info.resource, route.namespace, route.name!);
    if (!old) throw notFound(info, route.name!);
    const obj = typed(info, await readBody(req), route.namespace);
    if (obj.metadata.name !== route.name) throw new StatusError(400, 'BadRequest', `the name of the object (${obj.metadata.name}) does not match the name on the URL (${route.name})`);
    checkSchema(info.kind, obj);
    return store_(res, info, route, old, obj, u);
  }

  function store_(res: http.ServerResponse, info: ResourceInfo, route: Route, old: KubeObject, obj: KubeObject, u: URL): void {
    if (route.subresource !== 'status') {
      applyDefaults(obj, () => (old.spec as { clusterIP?: string } | undefined)?.clusterIP ?? '');
      checkSemantics(obj, old);
    }
    if (u.searchParams.get('dryRun') === 'All') return send(res, 200, obj);
    const saved = store.replace(info.resource, info.kind, obj, route.subresource === 'status' ? { subresource: 'status' } : {});
    send(res, 200, saved);
  }

  async function patch(req: http.IncomingMessage, res: http.ServerResponse, info: ResourceInfo, route: Route, u: URL): Promise<void> {
    if (info.readOnly) throw methodNotAllowed();
    const old = store.get(info.resource, route.namespace, route.name!);
    if (!old) throw notFound(info, route.name!);
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
    const body = await readBody(req);
    let next: KubeObject;
    if (type === 'application/json-patch+json') {
      if (!Array.isArray(body)) throw new StatusError(400, 'BadRequest', 'a JSON patch is an array of operations');
      next = jsonPatch(clone(old), body as JsonPatchOp[]);
    } else if (type === 'application/merge-patch+json' || type === 'application/strategic-merge-patch+json') {
      if (!isObject(body)) throw new StatusError(400, 'BadRequest', 'a merge patch is a JSON object');
      next = mergePatch(clone(old), body) as KubeObject;
    } else {
      throw new StatusError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got "${type}")`);
    }
    next.metadata.resourceVersion = next.metadata.resourceVersion ?? old.metadata.resourceVersion;
    checkSchema(info.kind, next);
    return store_(res, info, route, old, next, u);
  }

  async function remove(req: http.IncomingMessage, res: http.ServerResponse, info: ResourceInfo, namespace: string | undefined, name: string): Promise<void> {
    if (info.readOnly) throw methodNotAllowed();
    const body = await readBody(req);
    if (body !== undefined) checkSchema('DeleteOptions', { apiVersion: 'v1', kind: 'DeleteOptions', ...(body as object) });
    const o = store.get(info.resource, namespace, name);
    if (!o) throw notFound(info, name);
    const opts = (body ?? {}) as { gracePeriodSeconds?: number; propagationPolicy?: string; preconditions?: { uid?: string; resourceVersion?: string } };
    if (opts.preconditions?.uid && opts.preconditions.uid !== o.metadata.uid) throw new StatusError(409, 'Conflict', `Precondition failed: UID in precondition: ${opts.preconditions.uid}, UID in object meta: ${o.metadata.uid}`);
    if (opts.preconditions?.resourceVersion && opts.preconditions.resourceVersion !== o.metadata.resourceVersion) throw new StatusError(409, 'Conflict', 'Precondition failed: resourceVersion');
    const out = await removeOne(info, o, opts);
    send(res, 200, out);
  }

  async function removeOne(info: ResourceInfo, o: KubeObject, opts: { gracePeriodSeconds?: number; propagationPolicy?: string }): Promise<KubeObject | Record<string, unknown>> {
    const ns = o.metadata.namespace;
    if (info.kind === 'Pod') {
      deletePod(ns!, o.metadata.name, opts.gracePeriodSeconds);
      return store.get('pods', ns, o.metadata.name) ?? o;
    }
    if (info.kind === 'Deployment' && opts.propagationPolicy === 'Orphan') {
      for (const p of store.list('pods', ns, (p) => (p.metadata.ownerReferences ?? []).some((r) => r.uid === o.metadata.uid))) {
        p.metadata.ownerReferences = (p.metadata.ownerReferences ?? []).filter((r) => r.uid !== o.metadata.uid);
        store.replace('pods', 'Pod', p, { ignoreVersion: true });
      }
    }
    // Background (the default) and Foreground alike: the object goes now, the garbage collector takes its pods.
    store.remove(info.resource, ns, o.metadata.name);
    return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name: o.metadata.name, group: info.group, kind: info.resource, uid: o.metadata.uid } };
  }

  function watch(req: http.IncomingMessage, res: http.ServerResponse, info: ResourceInfo, namespace: string | undefined, u: URL): void {
    const labels = parseLabelSelector(u.searchParams.get('labelSelector'));
    const fields = parseFieldSelector(u.searchParams.get('fieldSelector'));
    const matches = (o: KubeObject) => (namespace === undefined || o.metadata.namespace === namespace) && matchesLabels(o.metadata.labels, labels) && fields(o);
    const rv = u.searchParams.get('resourceVersion');
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    watches.add(res);
    const inSet = new Set<string>();
    const write = (type: string, object: unknown) => res.write(`${JSON.stringify({ type, object })}\n`);
    const deliver = (e: StoreEvent) => {
      if (e.resource !== info.resource) return;
      const uid = e.object.metadata.uid!;
      const m = e.type !== 'DELETED' && matches(e.object);
      if (e.type === 'DELETED') {
        if (inSet.delete(uid) || matches(e.object)) write('DELETED', e.object);
      } else if (m) {
        write(inSet.has(uid) ? 'MODIFIED' : 'ADDED', e.object);
        inSet.add(uid);
      } else if (inSet.delete(uid)) write('DELETED', e.object); // no longer selected: gone from this watch
    };
    if (!rv || rv === '0') {
      for (const o of store.list(info.resource, namespace, matches)) {
        inSet.add(o.metadata.uid!);
        write('ADDED', o);
      }
    } else {
      const past = store.since(info.resource, Number(rv));
      if (!past) {
        write('ERROR', new StatusError(410, 'Expired', `too old resource version: ${rv} (${store.resourceVersion})`).status());
        watches.delete(res);
        return void res.end();
      }
      // What the client knew at rv: everything that matched then is in its set.
      for (const o of store.list(info.resource, namespace, matches)) if (Number(o.metadata.resourceVersion) <= Number(rv)) inSet.add(o.metadata.uid!);
      for (const e of past) deliver(e);
    }
    store.events.on('event', deliver);
    const end = () => {
      store.events.off('event', deliver);
      watches.delete(res);
      clearTimeout(timer);
      if (!res.writableEnded) res.end();
    };
    const timeout = Number(u.searchParams.get('timeoutSeconds') ?? 1800);
    const timer = setTimeout(end, timeout * 1000);
    timer.unref();
    req.once('close', end);
    res.once('close', end);
  }

  /** pods/NAME[:PORT]/proxy/... → the pod's IP; services/NAME[:PORT]/proxy/... → a ready endpoint. */
  function proxy(req: http.IncomingMessage, res: http.ServerResponse, route: Route): void {
    const ns = route.namespace!;
    const [name, portText] = route.name!.split(':') as [string, string | undefined];
    let target: { ip: string; port: number } | undefined;
    if (route.info.kind === 'Pod') {
      const pod = store.get('pods', ns, name);
      if (!pod) throw notFound(route.info, name);
      const ip = (pod.status as { podIP?: string } | undefined)?.podIP;
      const containerPort = (pod.spec as { containers: { ports?: { containerPort: number }[] }[] }).containers.flatMap((c) => c.ports ?? [])[0]?.containerPort;
      const p = portText ? Number(portText) : containerPort;
      if (!ip || !p) throw new StatusError(503, 'ServiceUnavailable', `pod ${name} has no IP or port yet`);
      target = { ip, port: p };
    } else {
      const svc = store.get('services', ns, name);
      if (!svc) throw notFound(route.info, name);
      const ports = (svc.spec as { ports: { name?: string; port: number }[] }).ports;
      const sp = portText ? ports.find((p) => p.name === portText || String(p.port) === portText) : ports[0];
      if (!sp) throw new StatusError(503, 'ServiceUnavailable', `no service port "${portText}" found for service "${name}"`);
      const ep = store.get('endpoints', ns, name);
      const choices = ((ep?.subsets ?? []) as { addresses?: { ip: string }[]; ports?: { name?: string; port: number }[] }[]).flatMap((s) => {
        const port = (s.ports ?? []).find((p) => (sp.name ? p.name === sp.name : true))?.port;
        return port ? (s.addresses ?? []).map((a) => ({ ip: a.ip, port })) : [];
      });
      if (!choices.length) throw new StatusError(503, 'ServiceUnavailable', `no endpoints available for service "${name}"`);
      target = choices[Math.floor(Math.random() * choices.length)]!;
    }
    const seen = `${req.method ?? 'GET'} ${route.info.resource}/${name} ${route.rest || '/'}`;
    proxied.set(seen, (proxied.get(seen) ?? 0) + 1);
    const headers = { ...req.headers, host: `${target.ip}:${target.port}` };
    delete headers.authorization;
    const upstream = http.request({ host: target.ip, port: target.port, method: req.method, path: `${route.rest || '/'}${new URL(req.url ?? '/', url).search}`, headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', (err) => {
      if (res.headersSent) return void res.destroy();
      const e = new StatusError(503, 'ServiceUnavailable', `error trying to reach service: dial tcp ${target!.ip}:${target!.port}: ${(err as NodeJS.ErrnoException).code === 'ECONNREFUSED' ? 'connect: connection refused' : err.message}`);
      send(res, 503, e.status());
    });
    req.pipe(upstream);
  }

  function discovery(path: string): unknown {
    if (path === '/version') return { major: '1', minor: '27', gitVersion: 'v1.27.1-standin', gitCommit: 'standin', gitTreeState: 'clean', buildDate: '2023-04-14T00:00:00Z', goVersion: 'go1.20.3', compiler: 'gc', platform: 'linux/amd64' };
    if (path === '/api') return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${port}` }] };
    const groups = [...new Set(RESOURCES.filter((r) => r.group).map((r) => r.group))];
    if (path === '/apis') {
      return { kind: 'APIGroupList', apiVersion: 'v1', groups: groups.map((g) => ({ name: g, versions: [{ groupVersion: `${g}/v1`, version: 'v1' }], preferredVersion: { groupVersion: `${g}/v1`, version: 'v1' } })) };
    }
    const m = /^\/(?:api\/v1|apis\/([^/]+)\/v1)$/.exec(path);
    if (!m) {
      const g = /^\/apis\/([^/]+)$/.exec(path);
      if (g && groups.includes(g[1]!)) return { kind: 'APIGroup', apiVersion: 'v1', name: g[1], versions: [{ groupVersion: `${g[1]}/v1`, version: 'v1' }], preferredVersion: { groupVersion: `${g[1]}/v1`, version: 'v1' } };
      return undefined;
    }
    const group = m[1] ?? '';
    if (group && !groups.includes(group)) return undefined;
    const resources = RESOURCES.filter((r) => r.group === group).flatMap((r) => [
      { name: r.resource, singularName: r.singular, namespaced: r.namespaced, kind: r.kind, verbs: r.readOnly ? ['get', 'list', 'watch'] : VERBS, ...(r.shortNames ? { shortNames: r.shortNames } : {}) },
      ...r.subresources.map((s) => ({ name: `${r.resource}/${s}`, singularName: '', namespaced: r.namespaced, kind: s === 'proxy' ? `${r.kind}ProxyOptions` : s === 'log' ? 'Pod' : r.kind, verbs: s === 'proxy' ? ['create', 'delete', 'get', 'patch', 'update'] : s === 'log' ? ['get'] : ['get', 'patch', 'update'] })),
    ]);
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/v1` : 'v1', resources };
  }

  const standin: Standin = {
    url,
    token,
    caFile: pki.ca,
    store,
    kubelet,
    used,
    requests,
    proxied,
    kubeconfig(file, namespace = 'default') {
      const text = [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: standin',
        '  cluster:',
        `    server: ${url}`,
        `    certificate-authority: ${pki.ca}`,
        'users:',
        '- name: tower',
        '  user:',
        `    token: ${token}`,
        'contexts:',
        '- name: standin',
        '  context:',
        '    cluster: standin',
        '    user: tower',
        `    namespace: ${namespace}`,
        'current-context: standin',
        '',
      ].join('\n');
      writeFileSync(file, text, { mode: 0o600 });
      return file;
    },
    kubectl(args, namespace = 'default') {
      const config = standin.kubeconfig(join(dir, `kubeconfig-${namespace}`), namespace);
      // HOME apart: kubectl's discovery cache must not be shared with a real cluster's, nor between stand-ins.
      return new Promise((resolve, reject) => {
        execFile('kubectl', ['--kubeconfig', config, ...args], { encoding: 'utf8', timeout: 30_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir } }, (err, stdout, stderr) => {
          if (err) reject(new Error(`kubectl ${args.join(' ')} failed (${err.code ?? err.signal}): ${stderr || err.message}`));
          else resolve(stdout);
        });
      });
    },
    namespace: ensureNamespace,
    async stop() {
      for (const w of watches) w.destroy();
      controllers.close();
      await kubelet.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((done) => server.close(() => done()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return standin;
}

interface Route {
  info: ResourceInfo;
  namespace?: string;
  name?: string;
  subresource?: string;
  /** After /proxy: the path on the pod or service. */
  rest?: string;
}

function parse(path: string): Route | undefined {
  const m = /^\/(?:api\/v1|apis\/([^/]+)\/v1)(?:\/namespaces\/([^/]+))?\/([a-z]+)(?:\/([^/]+))?(?:\/([a-z]+))?(\/.*)?$/.exec(path);
  if (!m) {
    const ns = /^\/api\/v1\/namespaces(?:\/([^/]+))?$/.exec(path);
    if (ns) return { info: RESOURCES.find((r) => r.resource === 'namespaces')!, ...(ns[1] ? { name: ns[1] } : {}) };
    return undefined;
  }
  const [, group = '', namespace, resource, name, subresource, rest] = m;
  const info = RESOURCES.find((r) => r.group === group && r.resource === resource);
  if (!info) return undefined;
  if (subresource && !info.subresources.includes(subresource)) return undefined;
  if (rest && subresource !== 'proxy') return undefined;
  if (info.namespaced && !namespace && name) return undefined;
  return { info, ...(namespace ? { namespace: decodeURIComponent(namespace) } : {}), ...(name ? { name: decodeURIComponent(name) } : {}), ...(subresource ? { subresource } : {}), ...(subresource === 'proxy' ? { rest: rest ?? '' } : {}) };
}

function verbOf(method: string, route: Route, u: URL): string {
  if (route.subresource === 'proxy') return { GET: 'get', HEAD: 'get', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' }[method] ?? 'get';
  const watch = u.searchParams.get('watch');
  if (method === 'GET') return route.name ? 'get' : watch === 'true' || watch === '1' ? 'watch' : 'list';
  if (method === 'POST' && !route.name) return 'create';
  if (method === 'PUT' && route.name) return 'update';
  if (method === 'PATCH' && route.name) return 'patch';
  if (method === 'DELETE') return route.name ? 'delete' : 'deletecollection';
  return method.toLowerCase();
}

function allowed(rules: PolicyRule[], group: string, resource: string, verb: string, name?: string): boolean {
  return rules.some((r) => (r.apiGroups.includes(group) || r.apiGroups.includes('*')) && (r.resources.includes(resource) || r.resources.includes('*')) && (r.verbs.includes(verb) || r.verbs.includes('*')) && (!r.resourceNames?.length || (name !== undefined && r.resourceNames.includes(name))));
}

function typed(info: ResourceInfo, body: unknown, namespace: string | undefined): KubeObject {
  if (!isObject(body)) throw new StatusError(400, 'BadRequest', 'the body must be a JSON object');
  const apiVersion = info.group ? `${info.group}/${info.version}` : info.version;
  const obj = { ...body, apiVersion: body.apiVersion ?? apiVersion, kind: body.kind ?? info.kind } as KubeObject;
  if (obj.apiVersion !== apiVersion || obj.kind !== info.kind) throw new StatusError(400, 'BadRequest', `the API version in the data (${String(obj.apiVersion)}) does not match the expected API version (${apiVersion}), or kind ${String(obj.kind)} is not ${info.kind}`);
  obj.metadata = { ...((obj.metadata ?? {}) as KubeObject['metadata']) };
  if (info.namespaced) {
    if (obj.metadata.namespace && obj.metadata.namespace !== namespace) throw new StatusError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
    obj.metadata.namespace = namespace!;
  }
  return obj;
}

async function readBody(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    // The API server's limit on a request body is 3 MiB.
    if (size > 3 * 1024 * 1024) throw new StatusError(413, 'RequestEntityTooLarge', 'the request body is too large (limit 3 MiB)');
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text.trim()) return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new StatusError(400, 'BadRequest', `the body is not JSON: ${(err as Error).message}`);
  }
}

function send(res: http.ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function notFound(info: ResourceInfo, name: string): StatusError {
  return new StatusError(404, 'NotFound', `${info.resource}${info.group ? `.${info.group}` : ''} "${name}" not found`, { name, ...(info.group ? { group: info.group } : {}), kind: info.resource });
}

function methodNotAllowed(): StatusError {
  return new StatusError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** RFC 7386. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

interface JsonPatchOp {
  op: string;
  path: string;
  value?: unknown;
}

/** RFC 6902: add, replace, remove, test. */
function jsonPatch(doc: KubeObject, ops: JsonPatchOp[]): KubeObject {
  for (const op of ops) {
    const parts = op.path.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop();
    if (last === undefined) throw new StatusError(422, 'Invalid', `invalid JSON patch path ${op.path}`);
    let parent: unknown = doc;
    for (const p of parts) {
      parent = (parent as Record<string, unknown> | undefined)?.[p];
      if (parent === undefined) throw new StatusError(422, 'Invalid', `the JSON patch path ${op.path} does not exist`);
    }
    const container = parent as Record<string, unknown>;
    if (op.op === 'test') {
      if (JSON.stringify(container[last]) !== JSON.stringify(op.value)) throw new StatusError(422, 'Invalid', `testing value ${op.path} failed`);
    } else if (op.op === 'remove') {
      if (Array.isArray(container)) (container as unknown[]).splice(Number(last), 1);
      else delete container[last];
    } else if (op.op === 'add' || op.op === 'replace') {
      if (Array.isArray(container)) {
        const list = container as unknown[];
        const i = last === '-' ? list.length : Number(last);
        if (op.op === 'add') list.splice(i, 0, op.value);
        else list[i] = op.value;
      } else container[last] = op.value;
    } else {
      throw new StatusError(422, 'Invalid', `unsupported JSON patch operation ${op.op}`);
    }
  }
  return doc;
}

export { isReady };
