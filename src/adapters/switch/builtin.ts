/**
 * The built-in traffic switch: one router process per instance (src/switch-router/main.ts), started
 * detached so that it keeps serving when the reconciler exits or is killed. Everything about
 * a router is in stateDir/switch/<instance>.json (pid, ports, control token, active route);
 * a new adapter on the same stateDir adopts the routers it finds there instead of starting
 * duplicates, and a router that died is restarted on the route it last had.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PACKAGE_ROOT } from '../../paths.js';
import type { RouterDrainResult, RouterState } from '../../switch-router/control.js';
import { readRecord, type RouterRecord } from '../../switch-router/record.js';
import type { Color } from '../runtime/types.js';
import type { TrafficStats } from '../../core/traffic.js';
import type { SwitchStatus, TrafficSwitch, Upstream, WeightedUpstream } from './types.js';

/** The subset of a pino logger the switch uses. */
export interface SwitchLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface BuiltinSwitchOptions {
  stateDir: string;
  log?: SwitchLog;
  /** Router: an upstream silent for this long gets the request cut (504). Default 5 min. */
  idleTimeoutMs?: number;
  /** Router: on SIGTERM, how long requests in flight may take. Default 10 s. */
  graceMs?: number;
  /** How long a new router may take to serve its port. Default 10 s. */
  startTimeoutMs?: number;
  /** remove(): SIGTERM, then SIGKILL after this. Default graceMs + 5 s. */
  stopTimeoutMs?: number;
  /** Each control call (drain adds its own timeout). Default 5 s. */
  callTimeoutMs?: number;
}

export interface BuiltinSwitchStatus extends SwitchStatus {
  pid?: number;
  /** Open WebSockets, per colour (drain waits for them, and closes them at its timeout). */
  websockets: Partial<Record<Color, number>>;
}

export interface BuiltinSwitch extends TrafficSwitch {
  ensure(instance: string, listenPort: number): Promise<BuiltinSwitchStatus>;
  route(instance: string, upstream: Upstream): Promise<BuiltinSwitchStatus>;
  split(instance: string, upstreams: WeightedUpstream[] | undefined): Promise<BuiltinSwitchStatus>;
  stats(instance: string): Promise<TrafficStats>;
  drain(instance: string, color: Color, timeoutMs: number): Promise<RouterDrainResult>;
  status(instance: string): Promise<BuiltinSwitchStatus | undefined>;
  list(): Promise<BuiltinSwitchStatus[]>;
}

export const ROUTER_MAIN = join(PACKAGE_ROOT, 'dist', 'src', 'switch-router', 'main.js');
const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const EXIT_PORT_IN_USE = 3;

export function builtinSwitch(options: BuiltinSwitchOptions): BuiltinSwitch {
  const dir = join(options.stateDir, 'switch');
  const graceMs = options.graceMs ?? 10_000;
  const startTimeoutMs = options.startTimeoutMs ?? 10_000;
  const stopTimeoutMs = options.stopTimeoutMs ?? graceMs + 5_000;
  const callTimeoutMs = options.callTimeoutMs ?? 5_000;
  const log = options.log;
  const file = (instance: string): string => join(dir, `${checkName(instance)}.json`);
  const logFile = (instance: string): string => join(dir, `${instance}.log`);
  /** ensure/remove of one instance run one at a time (within this process). */
  const queues = new Map<string, Promise<unknown>>();

  function serially<T>(instance: string, work: () => Promise<T>): Promise<T> {
    const next = (queues.get(instance) ?? Promise.resolve()).catch(() => undefined).then(work);
    queues.set(instance, next);
    return next.finally(() => {
      if (queues.get(instance) === next) queues.delete(instance);
    });
  }

  function call<T>(record: RouterRecord, method: 'GET' | 'POST', path: string, body?: object, timeoutMs = callTimeoutMs): Promise<T> {
    return controlCall<T>(record, method, path, body, timeoutMs);
  }

  /** The live router recorded for instance: pid alive AND its control channel answers as that instance. */
  async function probe(instance: string): Promise<{ record: RouterRecord; state: RouterState } | undefined> {
    const record = readRecord(file(instance));
    if (!record || !pidAlive(record.pid)) return undefined;
    try {
      const state = await call<RouterState>(record, 'GET', '/state');
      return state.instance === instance && state.pid === record.pid ? { record, state } : undefined;
    } catch {
      return undefined;
    }
  }

  async function start(instance: string, listenPort: number): Promise<RouterState> {
    if (!existsSync(ROUTER_MAIN)) throw new Error(`the switch router is not built: ${ROUTER_MAIN} is missing; run \`npm run build\``);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const args = [ROUTER_MAIN, '--instance', instance, '--listen-port', String(listenPort), '--state-file', file(instance), '--grace-ms', String(graceMs)];
    if (options.idleTimeoutMs !== undefined) args.push('--idle-timeout-ms', String(options.idleTimeoutMs));
    const out = openSync(logFile(instance), 'a', 0o600);
    let exit: { code: number | null; signal: string | null } | undefined;
    let spawnError: Error | undefined;
    try {
      // Detached (own session) and unref'd: the router must outlive us, even a SIGKILL of our process group.
      // A minimal environment: the reconciler's holds fleet secrets the router has no use for.
      const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', out, out], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
      child.on('error', (err) => (spawnError = err));
      child.on('exit', (code, signal) => (exit = { code, signal }));
      child.unref();
      const deadline = Date.now() + startTimeoutMs;
      while (Date.now() < deadline) {
        if (spawnError) throw new Error(`switch for instance ${instance}: cannot start the router: ${spawnError.message}`);
        if (exit) {
          // Another reconciler may have started this instance's router just before us: adopt it.
          const winner = exit.code === EXIT_PORT_IN_USE ? await probe(instance) : undefined;
          if (winner?.state.listenPort === listenPort) return winner.state;
          if (exit.code === EXIT_PORT_IN_USE) throw new Error(`switch for instance ${instance}: port ${listenPort} on 127.0.0.1 is already in use by another process`);
          throw new Error(`switch for instance ${instance}: the router exited (${exit.code ?? exit.signal}) before it served port ${listenPort}: ${lastLine(logFile(instance))}`);
        }
        const live = child.pid !== undefined && readRecord(file(instance))?.pid === child.pid ? await probe(instance) : undefined;
        if (live) {
          await waitForPort(listenPort, deadline, instance);
          log?.info({ instance, pid: live.state.pid, listenPort, active: live.state.active }, 'switch started');
          return live.state;
        }
        await sleep(25);
      }
      if (child.pid !== undefined) kill(child.pid, 'SIGKILL');
      throw new Error(`switch for instance ${instance}: the router did not serve port ${listenPort} within ${startTimeoutMs} ms`);
    } finally {
      closeSync(out);
    }
  }

  async function stop(instance: string, pid: number): Promise<void> {
    kill(pid, 'SIGTERM');
    if (await waitForExit(pid, stopTimeoutMs)) return;
    log?.warn({ instance, pid, stopTimeoutMs }, 'switch router ignored SIGTERM; killing it');
    kill(pid, 'SIGKILL');
    if (!(await waitForExit(pid, 5_000))) throw new Error(`switch for instance ${instance}: router pid ${pid} does not exit`);
  }

  function toStatus(instance: string, record: RouterRecord | undefined, state: RouterState | undefined): BuiltinSwitchStatus {
    if (state) {
      return { instance, listenPort: state.listenPort, active: state.active, ...(state.split ? { split: state.split } : {}), inflight: state.inflight, websockets: state.websockets, running: true, pid: state.pid };
    }
    return { instance, listenPort: record?.listenPort ?? 0, active: record?.active, ...(record?.split ? { split: record.split } : {}), inflight: {}, websockets: {}, running: false };
  }

  /** The instances that have a router record (none before the first switch). */
  function routerNames(): string[] {
    try {
      return readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -'.json'.length)).filter((n) => NAME.test(n));
    } catch {
      return [];
    }
  }

  async function status(instance: string): Promise<BuiltinSwitchStatus | undefined> {
    const record = readRecord(file(instance));
    if (!record) return undefined;
    return toStatus(instance, record, (await probe(instance))?.state);
  }

  async function live(instance: string): Promise<{ record: RouterRecord; state: RouterState }> {
    const found = await probe(instance);
    if (!found) throw new Error(`switch for instance ${instance} is not running; call ensure() first`);
    return found;
  }

  return {
    kind: 'builtin',
    url: (listenPort) => `http://127.0.0.1:${listenPort}`,

    async ensure(instance, listenPort) {
      checkName(instance);
      if (!Number.isInteger(listenPort) || listenPort < 1 || listenPort > 65535) throw new Error(`switch for instance ${instance}: invalid port ${listenPort}`);
      return serially(instance, async () => {
        const found = await probe(instance);
        if (found && found.state.listenPort === listenPort) {
          await waitForPort(listenPort, Date.now() + startTimeoutMs, instance);
          return toStatus(instance, found.record, found.state);
        }
        if (found) {
          // The stable port changed: a new router on the new port takes over the persisted route.
          log?.info({ instance, from: found.state.listenPort, to: listenPort }, 'switch port changed; restarting the router');
          await stop(instance, found.record.pid);
        } else {
          const record = readRecord(file(instance));
          // Alive and ours by its command line, but deaf: it still holds the port, so it has to go.
          if (record && pidAlive(record.pid) && isRouterProcess(record.pid, instance)) {
            log?.warn({ instance, pid: record.pid }, 'switch router does not answer; killing it');
            kill(record.pid, 'SIGKILL');
            await waitForExit(record.pid, 5_000);
          }
        }
        return toStatus(instance, undefined, await start(instance, listenPort));
      });
    },

    async route(instance, upstream) {
      const { record } = await live(instance);
      const ports = upstream.ports && upstream.ports.length > 1 ? { ports: upstream.ports } : {};
      const state = await call<RouterState>(record, 'POST', '/route', { color: upstream.color, port: upstream.port, ...ports });
      log?.info({ instance, color: upstream.color, port: upstream.port, ...ports }, 'switch routed');
      return toStatus(instance, record, state);
    },

    async split(instance, upstreams) {
      const { record } = await live(instance);
      const state = await call<RouterState>(record, 'POST', '/split', { upstreams: upstreams ?? null });
      log?.info({ instance, split: upstreams ?? null }, 'switch split');
      return toStatus(instance, record, state);
    },

    async stats(instance) {
      const { record } = await live(instance);
      return call<TrafficStats>(record, 'GET', '/stats');
    },

    async drain(instance, color, timeoutMs) {
      const { record } = await live(instance);
      const result = await call<RouterDrainResult>(record, 'POST', '/drain', { color, timeoutMs }, timeoutMs + callTimeoutMs);
      log?.info({ instance, color, timeoutMs, ...result }, 'switch drained');
      return result;
    },

    status,

    async list() {
      const names = routerNames();
      const all = await Promise.all(names.sort().map((name) => status(name)));
      return all.filter((s): s is BuiltinSwitchStatus => s !== undefined);
    },

    watch(onExit) {
      // Routers are detached processes a restarted Tower adopts: their pids are polled (one
      // signal-0 per router every half second), not waited on.
      const alive = new Map<string, number>();
      const tick = () => {
        const names = routerNames();
        for (const name of names) {
          const record = readRecord(file(name));
          if (!record) continue;
          if (pidAlive(record.pid)) alive.set(name, record.pid);
          else if (alive.get(name) === record.pid && !queues.has(name)) {
            alive.delete(name);
            onExit(name); // not while ensure() or remove() work on it: those were asked for
          }
        }
        for (const name of [...alive.keys()]) if (!names.includes(name)) alive.delete(name);
      };
      tick();
      const timer = setInterval(tick, 500);
      timer.unref();
      return () => clearInterval(timer);
    },

    async remove(instance) {
      checkName(instance);
      return serially(instance, async () => {
        const record = readRecord(file(instance));
        if (record && pidAlive(record.pid) && ((await probe(instance)) || isRouterProcess(record.pid, instance))) {
          await stop(instance, record.pid);
        }
        rmSync(file(instance), { force: true });
        rmSync(logFile(instance), { force: true });
        log?.info({ instance }, 'switch removed');
      });
    },
  };
}

function checkName(instance: string): string {
  if (!NAME.test(instance)) throw new Error(`invalid instance name ${JSON.stringify(instance)}: lower case letters, digits and dashes`);
  return instance;
}

/** One control request. Errors name the endpoint and the reason, never the token. */
function controlCall<T>(record: RouterRecord, method: string, path: string, body: object | undefined, timeoutMs: number): Promise<T> {
  const what = `switch for instance ${record.instance}: control ${method} ${path}`;
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({
      host: '127.0.0.1', port: record.controlPort, method, path, agent: false,
      headers: { authorization: `Bearer ${record.token}`, ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) },
    });
    const timer = setTimeout(() => req.destroy(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${what}: ${err.message}`));
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err) => req.destroy(err));
      res.on('end', () => {
        clearTimeout(timer);
        let parsed: unknown;
        try {
          parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          return reject(new Error(`${what}: answered ${res.statusCode} with a body that is not JSON`));
        }
        if (res.statusCode !== 200) return reject(new Error(`${what}: ${res.statusCode} ${(parsed as { error?: string }).error ?? ''}`.trim()));
        resolve(parsed as T);
      });
    });
    req.end(payload);
  });
}

/** A pid that exists and is not a zombie (an unreaped router is dead to us). */
function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc: trust kill(0)
  }
}

// A router's main script: ROUTER_MAIN's tail, and dist/src/switch/main.js where a Tower built
// before the move to src/switch-router/ started it (routers outlive an upgrade of Tower).
const ROUTER_SCRIPTS = [join('switch-router', 'main.js'), join('switch', 'main.js')];

/** Is pid a router for instance, judging by its command line? (Linux; elsewhere: don't know, so no.) */
function isRouterProcess(pid: number, instance: string): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const at = argv.indexOf('--instance');
    return argv.some((a) => ROUTER_SCRIPTS.some((script) => a.endsWith(script))) && at >= 0 && argv[at + 1] === instance;
  } catch {
    return false;
  }
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (pidAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await sleep(25);
  }
  return true;
}

async function waitForPort(port: number, deadline: number, instance: string): Promise<void> {
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port, timeout: 1_000 });
      const done = (connected: boolean): void => {
        socket.destroy();
        resolve(connected);
      };
      socket.once('connect', () => done(true));
      socket.once('error', () => done(false));
      socket.once('timeout', () => done(false));
    });
    if (ok) return;
    if (Date.now() >= deadline) throw new Error(`switch for instance ${instance}: port ${port} does not accept connections`);
    await sleep(25);
  }
}

function lastLine(path: string): string {
  try {
    const lines = readFileSync(path, 'utf8').trim().split('\n');
    return lines[lines.length - 1] ?? '(empty log)';
  } catch {
    return `(no log at ${path})`;
  }
}
