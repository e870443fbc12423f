/**
 * Tower's connection to a Kubernetes API server, shared by the kubernetes runtime driver, the
 * Service switch and the Lease leadership. @kubernetes/client-node's KubeConfig does what is hard
 * to get right — in-cluster service-account tokens (re-read as they rotate), kubeconfig files with
 * contexts, client certificates, exec plugins — and its applyToHTTPSOptions authenticates each
 * request; the requests themselves are plain JSON over HTTPS, a few verbs on a few paths, so that
 * what Tower sends is exactly what the README's Role allows (and what the tests' stand-in checks).
 *
 * Errors are TowerErrors with the API server's own message (its metav1.Status): 403 and 422 are
 * stalled (a Role or a manifest must change), 409 and the rest retryable.
 */
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import type { ClusterSettings } from '../../core/model.js';
import { TowerError } from '../../engine/ports.js';

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubeEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: KubeObject;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string; labels?: Record<string, string>; annotations?: Record<string, string>; creationTimestamp?: string; deletionTimestamp?: string; ownerReferences?: { apiVersion?: string; uid: string; kind: string; name: string; controller?: boolean; blockOwnerDeletion?: boolean }[] };
  spec?: unknown;
  status?: unknown;
  [key: string]: unknown;
}

export interface KubeList<T = KubeObject> {
  metadata: { resourceVersion?: string };
  items: T[];
}

export interface RequestOptions {
  body?: unknown;
  /** Default application/json; merge patches: application/merge-patch+json. */
  contentType?: string;
  /** Statuses that mean "already so" (404 on delete): resolved as undefined. */
  ok?: number[];
  timeoutMs?: number;
}

export interface KubeApi {
  /** The API server, e.g. https://10.96.0.1:443; colours' proxy URLs start with it. */
  readonly server: string;
  readonly namespace: string;
  readonly inCluster: boolean;
  readonly podAccess: 'proxy' | 'direct';
  /** A namespaced path: core('pods') → /api/v1/namespaces/<ns>/pods. */
  core(path: string): string;
  apps(path: string): string;
  coordination(path: string): string;
  request<T = KubeObject>(method: string, path: string, options?: RequestOptions): Promise<T | undefined>;
  /** Streams a watch until it ends (the server's timeout, or `signal`); 'gone' when resourceVersion is too old (410). */
  watch(path: string, onEvent: (e: KubeEvent) => void, signal: AbortSignal): Promise<'ended' | 'gone'>;
  /** How a request through the API server's proxies authenticates (agent and headers), for the Admin API and smoke checks. */
  via(): Promise<{ httpsAgent: https.Agent; headers: Record<string, string> }>;
}

export function connectKube(settings: ClusterSettings | undefined, env: NodeJS.ProcessEnv): KubeApi {
  const kc = new KubeConfig();
  const inCluster = (settings?.access ?? (env.KUBERNETES_SERVICE_HOST ? 'in-cluster' : 'kubeconfig')) === 'in-cluster';
  let namespace = settings?.namespace;
  try {
    if (inCluster) {
      if (!env.KUBERNETES_SERVICE_HOST) throw new Error('KUBERNETES_SERVICE_HOST is not set: Tower does not run in a pod');
      kc.loadFromCluster();
      namespace ??= readNamespace();
    } else {
      // KUBECONFIG may list several files; the first holds the context (as kubectl reads it, without merging).
      const file = env.KUBECONFIG?.split(':').find(Boolean) ?? join(env.HOME ?? homedir(), '.kube', 'config');
      kc.loadFromFile(file);
      if (settings?.context) {
        if (!kc.getContextObject(settings.context)) throw new Error(`${file} has no context "${settings.context}" (it has: ${kc.getContexts().map((c) => c.name).join(', ') || 'none'})`);
        kc.setCurrentContext(settings.context);
      }
      namespace ??= kc.getContextObject(kc.getCurrentContext())?.namespace;
    }
  } catch (err) {
    throw new TowerError(`kubernetes: cannot load ${inCluster ? 'the in-cluster service account' : 'the kubeconfig'}: ${(err as Error).message}`, 'KubeConfigInvalid', 'stalled', { cause: err });
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new TowerError('kubernetes: the kubeconfig names no cluster for its current context', 'KubeConfigInvalid', 'stalled');
  const server = cluster.server.replace(/\/+$/, '');
  const ns = namespace ?? 'default';
  const base = `/api/v1/namespaces/${ns}`;

  async function options(method: string, extra: Record<string, string>): Promise<https.RequestOptions> {
    const opts: https.RequestOptions = { method, headers: { Accept: 'application/json', 'User-Agent': 'redforge-tower', ...extra } };
    await kc.applyToHTTPSOptions(opts);
    return opts;
  }

  function send(method: string, path: string, headers: Record<string, string>, body: string | undefined, timeoutMs: number, onResponse: (res: http.IncomingMessage) => void): Promise<void> {
    return options(method, headers).then(
      (opts) =>
        new Promise<void>((resolve, reject) => {
          const url = new URL(server + path);
          const lib = url.protocol === 'http:' ? http : https;
          const req = lib.request(url, { ...opts, timeout: timeoutMs }, (res) => {
            onResponse(res);
            res.once('end', () => resolve());
            res.once('close', () => resolve());
            res.once('error', reject);
          });
          req.once('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
          req.once('error', reject);
          if (body !== undefined) req.write(body);
          req.end();
        }),
    );
  }

  const api: KubeApi = {
    server,
    namespace: ns,
    inCluster,
    podAccess: settings?.podAccess ?? (inCluster ? 'direct' : 'proxy'),
    core: (path) => `${base}/${path}`,
    apps: (path) => `/apis/apps/v1/namespaces/${ns}/${path}`,
    coordination: (path) => `/apis/coordination.k8s.io/v1/namespaces/${ns}/${path}`,

    async request<T>(method: string, path: string, o: RequestOptions = {}): Promise<T | undefined> {
      const body = o.body === undefined ? undefined : JSON.stringify(o.body);
      const headers: Record<string, string> = body === undefined ? {} : { 'Content-Type': o.contentType ?? 'application/json', 'Content-Length': String(Buffer.byteLength(body)) };
      let status = 0;
      let text = '';
      try {
        await send(method, path, headers, body, o.timeoutMs ?? 30_000, (res) => {
          status = res.statusCode ?? 0;
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
        });
      } catch (err) {
        throw new TowerError(`kubernetes: ${method} ${path}: ${(err as Error).message} (${server})`, 'KubeUnreachable', 'retryable', { cause: err });
      }
      if (status >= 200 && status < 300) return text ? (JSON.parse(text) as T) : undefined;
      if (o.ok?.includes(status)) return undefined;
      throw statusError(method, path, status, text);
    },

    async watch(path, onEvent, signal) {
      let gone = false;
      let buf = '';
      const sep = path.includes('?') ? '&' : '?';
      await send('GET', `${path}${sep}watch=true&allowWatchBookmarks=true&timeoutSeconds=300`, {}, undefined, 330_000, (res) => {
        if ((res.statusCode ?? 0) === 410) gone = true;
        if ((res.statusCode ?? 0) !== 200) return void res.resume();
        const abort = () => res.destroy();
        signal.addEventListener('abort', abort, { once: true });
        res.once('close', () => signal.removeEventListener('abort', abort));
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          buf += c;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (!line) continue;
            const e = JSON.parse(line) as KubeEvent;
            if (e.type === 'ERROR' && (e.object as { code?: number }).code === 410) gone = true;
            else onEvent(e);
          }
        });
      }).catch((err: Error) => {
        if (!signal.aborted) throw new TowerError(`kubernetes: watch ${path}: ${err.message}`, 'KubeUnreachable', 'retryable', { cause: err });
      });
      return gone ? 'gone' : 'ended';
    },

    async via() {
      const opts = await options('GET', {});
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(opts.headers ?? {})) if (typeof v === 'string' && k.toLowerCase() !== 'accept' && k.toLowerCase() !== 'user-agent') headers[k] = v;
      return {
        // Connections to the API server are kept (a TLS handshake per Admin API call through the
        // proxy cost more CPU than the call with hundreds of instances), at most 64, idle ones closed after 15 s.
        httpsAgent: new https.Agent({ keepAlive: true, maxSockets: 64, timeout: 15_000, ...(opts.ca ? { ca: opts.ca } : {}), ...(opts.cert ? { cert: opts.cert } : {}), ...(opts.key ? { key: opts.key } : {}), ...(opts.rejectUnauthorized === false ? { rejectUnauthorized: false } : {}) }),
        headers,
      };
    },
  };
  return api;
}

function readNamespace(): string | undefined {
  try {
    return readFileSync(join(SA_DIR, 'namespace'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

function statusError(method: string, path: string, status: number, text: string): TowerError {
  let message = text.slice(0, 500);
  let reason = `Http${status}`;
  try {
    const s = JSON.parse(text) as { message?: string; reason?: string };
    if (s.message) message = s.message;
    if (s.reason) reason = s.reason;
  } catch {
    // not a Status
  }
  const kind = status === 403 || status === 422 || status === 400 ? 'stalled' : 'retryable';
  return new TowerError(`kubernetes: ${method} ${path}: HTTP ${status} ${reason}: ${message}`, `Kube${reason}`, kind);
}
