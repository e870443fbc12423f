/**
 * tower run: the daemon. The composition root — reads the configuration once, wires the
 * adapters, serves the status API and webhooks, and runs the reconcile loop until SIGTERM.
 */
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, relative, sep } from 'node:path';
import pino, { type Logger } from 'pino';
import { credentialsFromEnv } from '../adapters/source/git-credentials.js';
import { gitSource } from '../adapters/source/git.js';
import { redisLease, type Lease } from '../adapters/redis/lease.js';
import { openStore } from '../adapters/store/index.js';
import { directorySource } from '../adapters/source/directory.js';
import { verifyGithubWebhook } from '../adapters/github/webhook.js';
import { githubClient, githubReporter, pollPullRequests, type GithubClient, type GithubReporter } from '../adapters/github/index.js';
import { PullRequestPlanner } from '../engine/pull-requests.js';
import { directoryReader } from '../adapters/fs/repo-reader.js';
import { connectKube } from '../adapters/kubernetes/api.js';
import { kubeLeaseLeadership } from '../adapters/kubernetes/lease.js';
import type { RepoReader } from '../core/load.js';
import { RevisionLoader } from '../engine/revisions.js';
import { chosenLeadership, fleetIdentity } from './leadership.js';
import { parseRunConfig, type RunConfig, type RunFlags } from './run-config.js';
import { Daemon } from '../engine/daemon.js';
import type { FleetSource, Leadership } from '../engine/ports.js';
import { openRuntime, readCluster, type LocalRuntime } from '../runtime.js';
import type { ColorView } from '../server/instance-page.js';
import { lastLogLines } from './logs.js';
import { LIBRARY_DIR, VERSION } from '../paths.js';
import { createApp } from '../server/app.js';
import { listen } from '../server/listen.js';
import { HealthRing } from '../server/health-ring.js';
import { FleetMetrics } from '../server/metrics.js';
import type { Io } from './io.js';

export async function runCommand(flags: RunFlags, io: Io, signals: NodeJS.EventEmitter = process): Promise<number> {
  const { config, errors } = parseRunConfig(flags, io.env, (f) => readFileSync(f, 'utf8'));
  if (!config) {
    for (const e of errors) io.stderr(`tower run: ${e}\n`);
    io.stderr('tower run: the configuration is invalid; nothing was started (see tower run --help)\n');
    return 2;
  }
  const log = pino({ level: config.logLevel, base: { service: 'tower' }, redact: { paths: ['*.password', '*.token', '*.secret', 'headers.authorization'], censor: '[redacted]' } }, pino.destination({ fd: 1, sync: false }));
  const rt = await openRuntime({ stateDir: config.stateDir, env: io.env, log: (line) => log.info(line) });

  let unlock: (() => void) | undefined;
  let lease: Lease | undefined;
  const openRedisLease = () => (lease ??= redisLease({ url: config.redisUrl!, key: `tower:${leaseName(config)}:leader`, holder: `${hostname()}:${process.pid}`, ttlMs: 10_000, log: (l) => log.debug(l) }));
  // The state-dir lock: one daemon per directory, unless a lease between daemons is asked for (or Redis gives one).
  if (config.leader === 'lock' || (config.leader === 'auto' && !config.redisUrl)) {
    try {
      unlock = rt.state.lock('tower run');
    } catch (err) {
      io.stderr(`tower run: ${(err as Error).message}\n`);
      await rt.close();
      return 1;
    }
  }

  const store = await openStore({ databaseUrl: config.databaseUrl, dir: join(config.stateDir, 'store'), log: { warn: (obj: object, msg: string) => log.warn(obj, msg), info: (obj: object, msg: string) => log.info(obj, msg) } });
  await store.migrate();
  const source = openSource(config, io.env, log);
  const library = existsSync(LIBRARY_DIR) ? directoryReader(LIBRARY_DIR) : undefined;
  const leadership = chooseLeadership(config, io.env, source, library, rt, log, () => leaseLeadership(openRedisLease(), log));
  const metrics = new FleetMetrics();
  const fleetName = () => daemon.state.fleet ?? rt.registry.read().fleet;
  const publicUrl = () => config.publicUrl ?? url;
  let url = '';

  // GitHub: statuses and check runs per revision, plan comments on pull requests.
  let client: GithubClient | undefined;
  let reporter: GithubReporter | undefined;
  if (config.github) {
    if (source.kind !== 'git') log.warn('GitHub reporting needs a Git source; a directory has no commits to report on');
    client = await githubClient({ ...(config.github.token ? { token: config.github.token } : {}), ...(config.github.app ? { app: config.github.app } : {}), ...(config.github.apiUrl ? { apiUrl: config.github.apiUrl } : {}), log });
  }
  // The commit status context names the fleet, known once the first revision is loaded.
  // Created once the fleet's name is known: it is part of the status context and the comment marker.
  const reporterNow = (): GithubReporter | undefined => {
    if (!client || source.kind !== 'git') return undefined;
    const fleet = fleetName();
    if (!fleet) return undefined;
    return (reporter ??= githubReporter({ client, repo: config.github!.repo, fleet, statusPageUrl: publicUrl(), log, pathPrefix: config.path }));
  };
  const planner = client && source.kind === 'git'
    ? new PullRequestPlanner({ source, runtime: rt, reporter: { pullRequestPlan: (e) => reporterNow()?.pullRequestPlan(e) }, log, fleetName, ...(existsSync(LIBRARY_DIR) ? { library: directoryReader(LIBRARY_DIR) } : {}) })
    : undefined;
  // Every open status page listens for changes.
  const MAX_PAGES = 256;
  const daemon = new Daemon({
    source,
    runtime: rt,
    store,
    log,
    intervalMs: config.intervalMs,
    env: io.env,
    ...(library ? { library } : {}),
    ...(leadership ? { leadership } : {}),
    metrics,
    ...(client
      ? {
          reporter: {
            rolloutStarted: (e) => reporterNow()?.rolloutStarted(e),
            rolloutFinished: (e) => reporterNow()?.rolloutFinished(e),
            revisionRejected: (e) => reporterNow()?.revisionRejected(e),
          },
        }
      : {}),
  });
  daemon.setMaxListeners(MAX_PAGES);

  // Health over time for the page's pictures: sampled on every status change (bounded ring).
  const health = new HealthRing();
  daemon.on('status', () => health.record(daemon.state, Date.now()));
  const app = createApp({
    status: () => daemon.state,
    health,
    pages: {
      observed: () => daemon.observed,
      loadRevision: (revision) => daemon.loadRevision(revision),
      rolloutBase: (revision) => daemon.rolloutBase(revision),
      pullRequestHead: (sha) => planner?.plannedHead(sha),
      colors: (instance) => colorsOf(rt, fleetName(), instance),
      logs: async (instance, lines) => {
        const fleet = fleetName();
        const got = fleet ? await lastLogLines(rt, fleet, instance, lines, io.env) : undefined;
        return got ?? { lines: [] };
      },
    },
    history: (limit) => (daemon.state.fleet ? store.history(daemon.state.fleet, limit) : Promise.resolve([])),
    subscribe: (listener) => {
      daemon.on('status', listener);
      return () => daemon.off('status', listener);
    },
    metrics: async () => {
      metrics.leader(daemon.state.leader);
      await daemon.recordUsage();
      return metrics.render();
    },
    version: VERSION,
    log,
    ...(config.webhookSecret
      ? {
          webhookSecret: config.webhookSecret,
          webhook: async (req) => {
            const r = await verifyGithubWebhook({ secret: config.webhookSecret!, body: req.body, signature: req.signature, event: req.event, ...(req.delivery ? { deliveryId: req.delivery } : {}) });
            if (!r.ok) {
              log.warn({ delivery: req.delivery, reason: r.reason }, 'webhook refused');
              return { status: r.status, body: { error: r.reason } };
            }
            const e = r.event;
            if (e.kind === 'push' && e.branch === config.branch && !e.deleted) {
              daemon.trigger(`webhook: push ${e.after.slice(0, 12)}`);
              return { status: 202, body: { queued: true, revision: e.after } };
            }
            if (e.kind === 'ping') return { status: 200, body: { pong: true } };
            if (e.kind === 'pull_request' && planner && e.baseRef === config.branch && ['opened', 'synchronize', 'reopened', 'ready_for_review'].includes(e.action)) {
              planner.enqueue({ number: e.number, headSha: e.headSha });
              return { status: 202, body: { planning: e.number } };
            }
            return { status: 202, body: { queued: false, reason: e.kind === 'push' ? `not branch ${config.branch}` : `${e.kind} events do not change the fleet` } };
          },
        }
      : {}),
  });
  const server = await listen(app.fetch, config.listen.host, config.listen.port).catch((err: Error) => err);
  if (server instanceof Error) {
    io.stderr(`tower run: cannot listen on ${config.listen.host}:${config.listen.port}: ${server.message}\n`);
    unlock?.();
    await Promise.allSettled([store.close(), rt.close(), lease?.close()]);
    return 1;
  }
  url = `http://${config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host}:${server.port}/`;
  io.stderr(`tower: watching ${source.describe()}; status ${url} (API ${url}api/v1/status)\n`);
  log.info({ source: source.describe(), url, store: store.kind, stateDir: config.stateDir, leader: config.leader === 'auto' ? 'auto (chosen from fleet.yaml before the first pass)' : config.leader }, 'tower run started');

  const stop = new Promise<void>((resolve) => {
    const onSignal = (sig: string) => {
      log.info({ signal: sig }, 'stopping: the current rollout ends at its next safe point');
      resolve();
    };
    signals.once('SIGTERM', () => onSignal('SIGTERM'));
    signals.once('SIGINT', () => onSignal('SIGINT'));
    signals.on('SIGHUP', () => daemon.trigger('SIGHUP'));
  });
  // Without a webhook, open pull requests are polled for new heads.
  let pollTimer: NodeJS.Timeout | undefined;
  if (planner && client && !config.webhookSecret) {
    let since: Date | undefined;
    const poll = async () => {
      const started = new Date();
      try {
        for (const pr of await pollPullRequests({ client: client!, repo: config.github!.repo, ...(since ? { since } : {}), base: config.branch })) planner.enqueue({ number: pr.number, headSha: pr.headSha });
        since = started;
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'cannot list pull requests');
      }
    };
    void poll();
    pollTimer = setInterval(() => void poll(), Math.max(config.intervalMs * 2, 30_000));
  }

  const running = daemon.start();
  await Promise.race([stop, running]);
  if (pollTimer) clearInterval(pollTimer);
  await daemon.stop();
  if (reporter) {
    await reporter.flush(5_000);
    reporter.close();
  }
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await Promise.allSettled([store.close(), rt.close(), lease?.close()]);
  unlock?.();
  log.info('tower run stopped');
  log.flush();
  return 0;
}

/** Every colour of an instance the drivers know, with its CPU and memory when the driver can tell. */
async function colorsOf(rt: LocalRuntime, fleet: string | undefined, instance: string): Promise<ColorView[]> {
  if (!fleet) return [];
  const out: ColorView[] = [];
  for (const driver of rt.drivers()) {
    for (const c of (await driver.list(fleet)).filter((x) => x.instance === instance)) {
      const usage = c.status === 'running' ? await driver.usage?.(c).catch(() => undefined) : undefined;
      const replicas = c.replicas && c.replicas.length > 1 ? { running: c.replicas.filter((r) => r.status === 'running').length, total: c.replicas.length } : undefined;
      out.push({ color: c.color, runtime: c.runtime, status: c.status, port: c.port, ...(c.startedAt ? { startedAt: c.startedAt } : {}), ...(usage ? { usage: { cpuSeconds: usage.cpuSeconds, rssBytes: usage.rssBytes } } : {}), ...(replicas ? { replicas } : {}) });
    }
  }
  return out.sort((a, b) => a.color.localeCompare(b.color));
}

function openSource(config: RunConfig, env: NodeJS.ProcessEnv, log: Logger): FleetSource {
  if (config.sourceKind === 'directory') {
    // A state directory inside the watched directory must not count as an edit.
    const stateRel = relative(join(config.repo, config.path), config.stateDir);
    const inside = stateRel && !stateRel.startsWith('..') && !stateRel.startsWith(sep);
    return directorySource(config.repo, { path: config.path, ...(inside ? { ignore: (rel: string) => rel === stateRel || rel.startsWith(`${stateRel}/`) } : {}) });
  }
  const creds = credentialsFromEnv(env);
  return gitSource({ url: config.repo, branch: config.branch, path: config.path, workDir: join(config.stateDir, 'git'), ...(creds ? { credentials: creds } : {}), log: (l) => log.debug(l) });
}

/** Daemons pointed at the same fleet share the lease: named after the source, not the host. */
function leaseName(config: RunConfig): string {
  return `${config.repo.replace(/^[a-z]+:\/\/[^@/]*@/, '').replace(/[^A-Za-z0-9._/-]/g, '_')}#${config.branch}:${config.path}`;
}

/** TOWER_LEADER (src/commands/leadership.ts): undefined for the state-dir lock alone. */
function chooseLeadership(config: RunConfig, env: NodeJS.ProcessEnv, source: FleetSource, library: RepoReader | undefined, rt: LocalRuntime, log: Logger, redis: () => Leadership): Leadership | undefined {
  if (config.leader === 'lock') return undefined;
  if (config.leader === 'redis') return redis();
  const lease = config.leaderLeaseSeconds;
  const revisions = new RevisionLoader(source, library, () => new Date());
  return chosenLeadership({
    mode: config.leader,
    async identify() {
      const reading = await revisions.newest();
      const fleet = reading.newest?.repo.fleet;
      if (!fleet) throw new Error(reading.error ?? 'the newest revision has no fleet.yaml that can be read as a fleet');
      return fleetIdentity(fleet);
    },
    remembered() {
      const cluster = readCluster(rt.state);
      if (cluster) return { name: cluster.fleet, kubernetes: cluster.settings, onKubernetes: true };
      const name = rt.registry.read().fleet;
      return name ? { name, onKubernetes: false } : undefined;
    },
    kubernetes: (fleet) =>
      kubeLeaseLeadership({
        api: connectKube(fleet.kubernetes, env),
        name: `tower-${fleet.name}`,
        labels: { 'app.kubernetes.io/managed-by': 'redforge-tower', 'tower.redforge.dev/fleet': fleet.name },
        // client-go's proportions: 15 s lease, 10 s renew deadline, 2 s retry period.
        leaseDurationSeconds: lease,
        renewDeadlineMs: Math.floor((lease * 1000 * 2) / 3),
        retryPeriodMs: Math.floor((lease * 1000 * 2) / 15),
        log,
      }),
    ...(config.redisUrl ? { redis } : {}),
    log,
  });
}

function leaseLeadership(lease: Lease, log: Logger): Leadership {
  let lost = true;
  let stopWatch: (() => void) | undefined;
  return {
    async acquire(isStopping) {
      let waitingLogged = false;
      while (!isStopping()) {
        try {
          const term = await lease.acquire();
          if (term) {
            lost = false;
            stopWatch = lease.watch((reason) => {
              lost = true;
              log.warn({ reason }, 'leader lease lost');
            });
            log.info({ fencingToken: term.token }, 'leader lease acquired');
            return true;
          }
          if (!waitingLogged) log.info('another daemon leads this fleet; waiting to take over');
          waitingLogged = true;
        } catch (err) {
          log.warn({ err: (err as Error).message }, 'Redis unreachable; not acting until the lease can be checked');
        }
        await new Promise((r) => setTimeout(r, Math.max(100, Math.floor((lease.ttlMs / 3) * (0.8 + Math.random() * 0.4)))));
      }
      return false;
    },
    isLeader: () => !lost && lease.isHeld(),
    async stillLeader() {
      if (lost) return false;
      return lease.checkFence().catch(() => false);
    },
    async release() {
      stopWatch?.();
      lost = true;
      await lease.release().catch(() => {});
    },
  };
}
