/**
 * The adapters of one state directory, wired once: the runtime drivers, the traffic switch,
 * the fleet's broker and deploy gate, the Redis of shared context, Node-RED's Admin API clients. Commands open it; the
 * engine acts through it (src/engine/ports.ts FleetRuntime) and never builds an adapter.
 */
import Dockerode from 'dockerode';
import type { RuntimeKind } from './core/model.js';
import type { AdminClient, FleetRuntime, RuntimeDriver } from './engine/ports.js';
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
  if (options.env.DOCKER_HOST || usesDocker(state)) docker();
  const builtin = builtinSwitch({ stateDir: state.root });
  const nginx = nginxFromEnv(options.env);
  const rt: LocalRuntime = {
    state,
    registry: state,
    adminCredentials: credentials,
    drivers: () => Object.values(drivers),
    driverFor: (kind) => (kind === 'docker' ? docker() : drivers.process!),
    switchFor(kind) {
      if (kind === 'builtin') return builtin;
      if (!nginx) throw new TowerError('switch: nginx needs the nginx Tower writes to: set TOWER_NGINX_CONF_DIR (a directory that nginx includes inside http {}), and TOWER_NGINX_RELOAD if `nginx -s reload` is not how it reloads', 'NginxNotConfigured', 'stalled');
      return nginx;
    },
    switches: () => (nginx ? [builtin, nginx] : [builtin]),
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
        client = new NodeRedAdmin({ baseUrl: url, credentials, timeoutMs: 10_000 });
        admins.set(url, client);
      }
      return client;
    },
    smoke: (opts) => runSmokeChecks(opts),
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
  // A broker given by URL costs nothing to know about; the gate client connects on first use.
  if (options.env.MQTT_URL || options.needsBroker) await rt.ensureBroker();
  return rt;
}

function usesDocker(state: StateDir): boolean {
  return Object.values(state.read().instances).some((i) => Object.values(i.colors).some((c) => c?.config.runtime === 'docker'));
}
