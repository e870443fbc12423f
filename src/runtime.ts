/**
 * The adapters of one state directory, wired once: the runtime drivers, the traffic switch,
 * the fleet's broker and deploy gate, the Redis of shared context, Node-RED's Admin API clients. Commands open it; the
 * engine acts through it (src/engine/ports.ts FleetRuntime) and never builds an adapter.
 */
import type { Agent } from 'node:https';
import Dockerode from 'dockerode';
import { readFileSync } from 'node:fs';
import type { ClusterSettings, RuntimeKind } from './core/model.js';
import { writeAtomic } from './adapters/fs/atomic.js';
import type { AdminClient, FleetRuntime, RuntimeDriver, TrafficSwitch } from './engine/ports.js';
import { connectKube, type KubeApi } from './adapters/kubernetes/api.js';
import { adminToken } from './adapters/runtime/kubernetes-objects.js';
import { kubernetesDriver } from './adapters/runtime/kubernetes.js';
import { ADMIN_TOKEN_HEADER } from './adapters/runtime/settings.js';
import { serviceSwitch } from './adapters/switch/service.js';
import { StateDir } from './adapters/fs/state-dir.js';
import { ensureEmbeddedBroker, stopEmbeddedBroker } from './adapters/mqtt/embedded-broker.js';
import { brokerFromEnv } from './adapters/mqtt/external-broker.js';
import { deployGate } from './adapters/mqtt/gate.js';
import { ensureEmbeddedRedis, findRedisServer, stopEmbeddedRedis } from './adapters/redis/embedded-redis.js';
import { freePort } from './adapters/net.js';
import { NodeRedAdmin } from './adapters/nodered/admin.js';
import { dockerDriver } from './adapters/runtime/docker.js';
import { processDriver } from './adapters/runtime/process.js';
import { runSmokeChecks } from './adapters/smoke.js';
import { queryPrometheus } from './adapters/metrics/prometheus.js';
import { builtinSwitch } from './adapters/switch/builtin.js';
import { nginxFromEnv } from './adapters/switch/nginx-env.js';
import { TowerError } from './engine/ports.js';

export interface RuntimeOptions {
  stateDir: string;
  env: NodeJS.ProcessEnv;
  /** Start (or connect to) the broker right away rather than when a fleet first needs it. */
  needsBroker?: boolean;
  log?: (line: string) => void;
}

/** The runtime of a state directory on this machine: the engine's FleetRuntime, and the directory (for its lock). */
export interface LocalRuntime extends FleetRuntime {
  state: StateDir;
}

export async function openRuntime(options: RuntimeOptions): Promise<LocalRuntime> {
  const state = new StateDir(options.stateDir);
  const credentials = state.adminCredentials();
  // One client per Node-RED: every login is a session Node-RED stores, so reuse the token.
  const admins = new Map<string, AdminClient>();
  const drivers: Partial<Record<RuntimeKind, RuntimeDriver>> = { process: processDriver({ stateDir: state.root }) };
  const docker = () => (drivers.docker ??= dockerDriver({ docker: new Dockerode(), stateDir: state.root }));
  if (options.env.DOCKER_HOST || usesRuntime(state, 'docker')) docker();
  const builtin = builtinSwitch({ stateDir: state.root });
  const nginx = nginxFromEnv(options.env);
  // runtime: kubernetes is wired when a fleet asks for it (useCluster), never otherwise.
  let cluster: { key: string; api?: KubeApi; service?: TrafficSwitch; error?: TowerError } | undefined;
  const clusterError = () => cluster?.error ?? new TowerError('runtime: kubernetes needs to know where the cluster is: fleet.yaml spec.kubernetes (namespace, access) — Tower was not told', 'KubernetesNotConfigured', 'stalled');
  const via = clusterTransport(() => cluster?.api);
  const rt: LocalRuntime = {
    state,
    registry: state,
    adminCredentials: credentials,
    drivers: () => Object.values(drivers),
    useCluster(fleet, settings) {
      const key = JSON.stringify([fleet, settings ?? {}]);
      if (cluster?.key === key && !cluster.error) return;
      // Remembered, so that tower status, logs and destroy (which read no fleet.yaml) reach the cluster too.
      if (cluster?.key !== key) writeAtomic(state.path(CLUSTER_FILE), JSON.stringify({ fleet, settings: settings ?? {} }), 0o600);
      delete drivers.kubernetes;
      try {
        const api = connectKube(settings, options.env);
        drivers.kubernetes = kubernetesDriver({ api, stateDir: state.root, ...(options.log ? { log: options.log } : {}) });
        cluster = { key, api, service: serviceSwitch({ api, fleet }) };
      } catch (err) {
        // Stalled with the reason (no kubeconfig, no such context). The driver stays, failing: a pass
        // must not take a cluster it cannot see for an empty one.
        cluster = { key, error: err instanceof TowerError ? err : new TowerError(`kubernetes: ${(err as Error).message}`, 'KubeConfigInvalid', 'stalled') };
        drivers.kubernetes = unreachableDriver(cluster.error!);
      }
    },
    driverFor(kind) {
      if (kind === 'kubernetes') {
        if (!drivers.kubernetes) throw clusterError();
        return drivers.kubernetes;
      }
      return kind === 'docker' ? docker() : drivers.process!;
    },
    switchFor(kind) {
      if (kind === 'builtin') return builtin;
      if (kind === 'service') {
        if (!cluster?.service) throw clusterError();
        return cluster.service;
      }
      if (!nginx) throw new TowerError('switch: nginx needs the nginx Tower writes to: set TOWER_NGINX_CONF_DIR (a directory that nginx includes inside http {}), and TOWER_NGINX_RELOAD if `nginx -s reload` is not how it reloads', 'NginxNotConfigured', 'stalled');
      return nginx;
    },
    switches: () => [builtin, ...(nginx ? [nginx] : []), ...(cluster?.service ? [cluster.service] : [])],
    async ensureBroker() {
      if (!rt.broker) {
        // MQTT_URL, with MQTT_CA_FILE, MQTT_CERT_FILE, MQTT_KEY_FILE, MQTT_REJECT_UNAUTHORIZED for mqtts.
        rt.broker = brokerFromEnv(options.env) ?? (await ensureEmbeddedBroker(state.path('broker'), options.log));
        rt.gate = deployGate(rt.broker);
      } else if (rt.broker.embedded) {
        // It is ours to keep running: start it again (same port) if it died.
        await ensureEmbeddedBroker(state.path('broker'), options.log);
      }
      return rt.broker;
    },
    admin(url) {
      let client = admins.get(url);
      if (!client) {
        // Through the API server's proxies: its login is the Authorization header, Tower's admin token goes in its own.
        const proxied = cluster?.api && url.startsWith(`${cluster.api.server}/`);
        client = new NodeRedAdmin({ baseUrl: url, credentials, timeoutMs: 10_000, ...(proxied ? { transport: via, tokenHeader: { name: ADMIN_TOKEN_HEADER, value: adminToken(credentials.password) } } : {}) });
        admins.set(url, client);
      }
      return client;
    },
    smoke: (opts) => runSmokeChecks({ ...opts, ...(cluster?.api && opts.baseUrl.startsWith(`${cluster.api.server}/`) ? { transport: via } : {}) }),
    readMetric: queryPrometheus,
    freePort,
    ...(options.env.REDIS_URL ? { redisUrl: options.env.REDIS_URL } : {}),
    async ensureSharedContext() {
      if (options.env.REDIS_URL) return (rt.redisUrl = options.env.REDIS_URL);
      const binary = findRedisServer();
      if (!binary) return undefined; // the engine warns: context stays in each colour's memory
      // Ours to keep running: started again (same port, same password) if it died.
      return (rt.redisUrl = (await ensureEmbeddedRedis(state.path('redis'), binary, options.log)).url);
    },
    async stopEmbedded() {
      stopEmbeddedBroker(state.path('broker'));
      await stopEmbeddedRedis(state.path('redis'));
    },
    async close() {
      await rt.gate?.end();
    },
  };
  // Colours on a cluster are recorded: reach it (tower status, logs, destroy read no fleet.yaml) — but only then.
  const remembered = readCluster(state);
  if (remembered && usesRuntime(state, 'kubernetes')) rt.useCluster!(remembered.fleet, remembered.settings);
  // A broker given by URL costs nothing to know about; the gate client connects on first use.
  if (options.env.MQTT_URL || options.needsBroker) await rt.ensureBroker();
  return rt;
}

/** The kubernetes driver when the cluster cannot be reached at all: every call fails with why. */
function unreachableDriver(error: TowerError): RuntimeDriver {
  const fail = (): Promise<never> => Promise.reject(error);
  return {
    kind: 'kubernetes',
    list: fail,
    create: fail,
    start: fail,
    stop: fail,
    remove: fail,
    inspect: fail,
    cannotRun: fail,
    // eslint-disable-next-line require-yield
    logs: async function* () {
      throw error;
    },
    watch: () => () => {},
  };
}

/** Where the fleet's cluster is (fleet.yaml spec.kubernetes, no secret in it), once a fleet used runtime: kubernetes. */
const CLUSTER_FILE = 'kubernetes.json';

export function readCluster(state: StateDir): { fleet: string; settings: ClusterSettings } | undefined {
  try {
    const saved = JSON.parse(readFileSync(state.path(CLUSTER_FILE), 'utf8')) as { fleet?: unknown; settings?: unknown };
    return typeof saved.fleet === 'string' && saved.settings && typeof saved.settings === 'object' ? { fleet: saved.fleet, settings: saved.settings as ClusterSettings } : undefined;
  } catch {
    return undefined;
  }
}

/** How a request through the API server authenticates (its agent and Authorization), renewed every 30 s: tokens rotate. */
function clusterTransport(api: () => KubeApi | undefined): () => Promise<{ httpsAgent: Agent; headers: Record<string, string> }> {
  let cached: { at: number; of: KubeApi; value: Promise<{ httpsAgent: Agent; headers: Record<string, string> }> } | undefined;
  return () => {
    const of = api();
    if (!of) return Promise.reject(new TowerError('kubernetes: not connected', 'KubernetesNotConfigured', 'stalled'));
    if (!cached || cached.of !== of || Date.now() - cached.at > 30_000) {
      cached = { at: Date.now(), of, value: of.via() };
      cached.value.catch(() => (cached = undefined));
    }
    return cached.value;
  };
}

function usesRuntime(state: StateDir, kind: RuntimeKind): boolean {
  return Object.values(state.read().instances).some((i) => Object.values(i.colors).some((c) => c?.config.runtime === kind));
}
