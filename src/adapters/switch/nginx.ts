/**
 * nginx as the traffic switch: one generated file per instance in a directory that nginx
 * includes in its `http {}` block (`include <confDir>/*.conf;`), and a reload per change.
 *
 * How it maps onto TrafficSwitch, and its limits:
 * - route(): rewrites the instance's file and reloads. nginx starts new workers on the new
 *   configuration and tells the old ones to finish what they have and exit, so requests in
 *   flight finish on the old colour. route() returns once a fresh connection to the stable
 *   port is answered by the new configuration (it serves `GET /__tower/switch` for that)
 *   and — with `pidFile` — every worker from before the reload has stopped accepting;
 *   without it, after a fixed settle time (old workers share the listening socket until
 *   they start shutting down, so a new connection may still land on the old file).
 *   A reload that nginx refuses (bad configuration, port taken) therefore fails route()
 *   after reloadTimeoutMs instead of passing silently.
 * - In-flight counts are not observable: status().inflight is always {}. drain() waits for
 *   nginx's graceful worker shutdown — with `pidFile`, until no worker of the master is
 *   "shutting down" (any instance's old requests count, so it is conservative), and
 *   `inflight` is then the number of such workers; without `pidFile` it waits a fixed grace
 *   period and cannot tell, so it reports drained. Old workers keep WebSockets open until
 *   they close: set nginx's `worker_shutdown_timeout` to bound that.
 * - A reload closes idle keep-alive client connections of the old workers; a client that
 *   sends on such a connection at that instant sees a reset (retrying idempotent requests is
 *   the client's business). The built-in switch has no such window.
 * - Other files in confDir and the main nginx.conf are the operator's; one broken file fails
 *   every reload.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Color } from '../runtime/types.js';
import type { SwitchLog } from './builtin.js';
import type { DrainResult, SwitchStatus, TrafficSwitch, Upstream } from './types.js';

export interface NginxSwitchOptions {
  /** A directory nginx includes inside `http {}`: `include <confDir>/*.conf;`. */
  confDir: string;
  /** Makes nginx load its configuration again (`nginx -s reload`, or SIGHUP to the master). */
  reload: () => Promise<void>;
  /** The nginx master's pid file; lets drain() watch the old workers exit. */
  pidFile?: string;
  /** Without pidFile, drain() waits this long (at most its timeout). Default 5 s. */
  graceMs?: number;
  /** Without pidFile, route() waits this long after the new configuration first answers, for the old workers to stop accepting. Default 1 s. */
  settleMs?: number;
  /** How long nginx may take to serve a new configuration. Default 10 s. */
  reloadTimeoutMs?: number;
  /** proxy_read_timeout / proxy_send_timeout. Default 5 min. */
  idleTimeoutMs?: number;
  log?: SwitchLog;
}

/** What the generated file records about itself, on its first line. */
export interface Managed {
  instance: string;
  listenPort: number;
  active?: Upstream;
  /** Changes with every write: tells which configuration answered. */
  generation: string;
}

const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const PROBE_PATH = '/__tower/switch';
const MARK = '# tower-switch: ';

export function nginxSwitch(options: NginxSwitchOptions): TrafficSwitch {
  const { confDir } = options;
  const graceMs = options.graceMs ?? 5_000;
  const settleMs = options.settleMs ?? 1_000;
  const reloadTimeoutMs = options.reloadTimeoutMs ?? 10_000;
  const idleSeconds = Math.ceil((options.idleTimeoutMs ?? 300_000) / 1000);
  const log = options.log;
  const file = (instance: string): string => join(confDir, `tower-${checkName(instance)}.conf`);
  /** Reloads are global to nginx: one change at a time. */
  let queue: Promise<unknown> = Promise.resolve();
  const serially = <T>(work: () => Promise<T>): Promise<T> => {
    const next = queue.catch(() => undefined).then(work);
    queue = next;
    return next;
  };

  function read(instance: string): Managed | undefined {
    try {
      const first = readFileSync(file(instance), 'utf8').split('\n', 1)[0] ?? '';
      return first.startsWith(MARK) ? (JSON.parse(first.slice(MARK.length)) as Managed) : undefined;
    } catch {
      return undefined;
    }
  }

  /** Writes the file, reloads, and waits until a fresh connection gets the new configuration. */
  async function apply(next: Omit<Managed, 'generation'>, previous: Managed | undefined): Promise<Managed> {
    const managed = { ...next, generation: randomBytes(8).toString('hex') };
    mkdirSync(confDir, { recursive: true });
    // The temporary name does not match *.conf: a concurrent reload never reads half a file.
    const tmp = join(confDir, `.tower-${next.instance}.tmp`);
    writeFileSync(tmp, renderConf(managed, idleSeconds));
    renameSync(tmp, file(next.instance));
    try {
      const master = options.pidFile ? readPid(options.pidFile) : undefined;
      const before = master === undefined ? undefined : workers(master).filter((w) => !w.shuttingDown).map((w) => w.pid);
      await options.reload();
      // Old and new workers accept on the same listening socket until the old ones start shutting
      // down (that is when they close it): only then does every new connection get the new file.
      await waitFor(async () => (await probe(managed.listenPort))?.generation === managed.generation
        && (master === undefined || !workers(master).some((w) => !w.shuttingDown && before?.includes(w.pid))), reloadTimeoutMs);
      if (master === undefined) await sleep(settleMs);
    } catch (err) {
      // Put the last good file back so that the next reload does not trip over this one.
      if (previous) writeFileSync(file(next.instance), renderConf(previous, idleSeconds));
      else rmSync(file(next.instance), { force: true });
      await options.reload().catch(() => undefined);
      throw new Error(`nginx switch for instance ${next.instance}: nginx did not serve the new configuration on 127.0.0.1:${next.listenPort} `
        + `within ${reloadTimeoutMs} ms (see nginx's error log; \`nginx -t\` checks the configuration): ${(err as Error).message}`);
    }
    return managed;
  }

  async function status(instance: string): Promise<SwitchStatus | undefined> {
    const managed = read(instance);
    if (!managed) return undefined;
    const seen = await probe(managed.listenPort);
    return { instance, listenPort: managed.listenPort, active: managed.active, inflight: {}, running: seen?.instance === instance };
  }

  return {
    kind: 'nginx',
    url: (listenPort) => `http://127.0.0.1:${listenPort}`,

    async ensure(instance, listenPort) {
      checkName(instance);
      return serially(async () => {
        const current = read(instance);
        if (current?.listenPort === listenPort && (await probe(listenPort))?.generation === current.generation) {
          return (await status(instance)) as SwitchStatus;
        }
        if (current?.listenPort !== listenPort && !(await portFree(listenPort))) {
          throw new Error(`nginx switch for instance ${instance}: port ${listenPort} on 127.0.0.1 is already in use by another process`);
        }
        await apply({ instance, listenPort, active: current?.active }, current);
        log?.info({ instance, listenPort }, 'nginx switch serving');
        return (await status(instance)) as SwitchStatus;
      });
    },

    async route(instance, upstream) {
      return serially(async () => {
        const current = read(instance);
        if (!current) throw new Error(`nginx switch for instance ${instance} is not configured; call ensure() first`);
        const ports = upstream.ports && upstream.ports.length > 1 ? { ports: [...upstream.ports] } : {};
        await apply({ instance, listenPort: current.listenPort, active: { color: upstream.color, port: upstream.port, ...ports } }, current);
        log?.info({ instance, color: upstream.color, port: upstream.port, ...ports }, 'nginx switch routed');
        return (await status(instance)) as SwitchStatus;
      });
    },

    async drain(instance, color: Color, timeoutMs): Promise<DrainResult> {
      if (!read(instance)) throw new Error(`nginx switch for instance ${instance} is not configured; call ensure() first`);
      const master = options.pidFile ? readPid(options.pidFile) : undefined;
      if (master === undefined) {
        await sleep(Math.min(graceMs, timeoutMs));
        return { drained: true, inflight: 0 }; // not observable: assumed after the grace period
      }
      const deadline = Date.now() + timeoutMs;
      const shuttingDown = (): number => workers(master).filter((w) => w.shuttingDown).length;
      let old = shuttingDown();
      while (old > 0 && Date.now() < deadline) {
        await sleep(Math.min(50, Math.max(1, deadline - Date.now())));
        old = shuttingDown();
      }
      log?.info({ instance, color, oldWorkers: old }, 'nginx switch drained');
      return { drained: old === 0, inflight: old };
    },

    status,

    async list() {
      let names: string[] = [];
      try {
        names = readdirSync(confDir).map((f) => /^tower-([a-z0-9-]+)\.conf$/.exec(f)?.[1]).filter((n): n is string => n !== undefined && NAME.test(n));
      } catch {
        return [];
      }
      const all = await Promise.all(names.sort().map(status));
      return all.filter((s): s is SwitchStatus => s !== undefined);
    },

    async remove(instance) {
      checkName(instance);
      return serially(async () => {
        const current = read(instance);
        if (!existsSync(file(instance))) return;
        rmSync(file(instance), { force: true });
        await options.reload();
        if (current) await waitFor(() => portFree(current.listenPort), reloadTimeoutMs).catch(() => {
          throw new Error(`nginx switch for instance ${instance}: nginx still serves 127.0.0.1:${current.listenPort} after the reload`);
        });
        log?.info({ instance }, 'nginx switch removed');
      });
    },
  };
}

/** The server block for one instance. Bodies stream both ways (no buffering); WebSockets pass. */
export function renderConf(managed: Managed, idleSeconds: number): string {
  const id = managed.instance.replace(/-/g, '_'); // names have no underscores: no collisions
  const { active } = managed;
  const probeBody = JSON.stringify({ instance: managed.instance, generation: managed.generation, active: active ?? null });
  const lines = [
    `${MARK}${JSON.stringify(managed)}`,
    `# Generated by RedForge Tower for instance ${managed.instance}; edits are overwritten.`,
    `map $http_upgrade $tower_${id}_connection {`,
    '  default upgrade;',
    "  ''      '';",
    '}',
  ];
  if (active) {
    lines.push(
      `upstream tower_${id} {`,
      // Replicas: one server each; nginx spreads requests round-robin and passes a request whose
      // connection is refused (nothing sent yet) to the next server.
      ...(active.ports && active.ports.length > 1 ? active.ports : [active.port]).map((port, i, all) => `  server 127.0.0.1:${port};  # ${active.color}${all.length > 1 ? ` replica ${i + 1}` : ''}`),
      '  keepalive 16;',
      '}',
    );
  }
  lines.push(
    'server {',
    `  listen 127.0.0.1:${managed.listenPort};`,
    '  default_type text/plain;',
    `  location = ${PROBE_PATH} {`,
    '    default_type application/json;',
    `    return 200 '${probeBody}\\n';`,
    '  }',
    '  location / {',
  );
  if (active) {
    lines.push(
      `    proxy_pass http://tower_${id};`,
      '    proxy_http_version 1.1;',
      '    proxy_set_header Host $http_host;',
      '    proxy_set_header Upgrade $http_upgrade;',
      `    proxy_set_header Connection $tower_${id}_connection;`,
      '    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
      '    proxy_set_header X-Forwarded-Proto $scheme;',
      '    proxy_set_header X-Forwarded-Host $http_host;',
      '    proxy_request_buffering off;',
      '    proxy_buffering off;',
      '    client_max_body_size 0;',
      '    proxy_connect_timeout 5s;',
      `    proxy_read_timeout ${idleSeconds}s;`,
      `    proxy_send_timeout ${idleSeconds}s;`,
      `    error_page 502 504 = @tower_${id}_down;`,
      '  }',
      `  location @tower_${id}_down {`,
      `    return 502 'bad gateway: upstream ${active.color} (127.0.0.1:${active.port}) unreachable or silent\\n';`,
      '  }',
    );
  } else {
    lines.push(
      '    add_header Retry-After 1 always;',
      `    return 503 'no upstream for instance ${managed.instance} yet\\n';`,
      '  }',
    );
  }
  lines.push('}', '');
  return lines.join('\n');
}

function checkName(instance: string): string {
  if (!NAME.test(instance)) throw new Error(`invalid instance name ${JSON.stringify(instance)}: lower case letters, digits and dashes`);
  return instance;
}

/** What the probe location of the configuration nginx runs says, on a fresh connection. */
function probe(port: number): Promise<{ instance?: string; generation?: string } | undefined> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: PROBE_PATH, agent: false, timeout: 1_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        try {
          resolve(res.statusCode === 200 ? (JSON.parse(body) as { instance?: string; generation?: string }) : undefined);
        } catch {
          resolve(undefined);
        }
      });
      res.on('error', () => resolve(undefined));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() >= deadline) throw new Error(`not done within ${timeoutMs} ms`);
    await sleep(25);
  }
}

function readPid(pidFile: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The master's worker processes, and whether a reload told them to finish and exit (Linux /proc). */
function workers(master: number): { pid: number; shuttingDown: boolean }[] {
  const found: { pid: number; shuttingDown: boolean }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== master) continue;
      const title = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (title.includes('worker process')) found.push({ pid: Number(entry), shuttingDown: title.includes('shutting down') });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}
