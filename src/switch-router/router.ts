/**
 * The built-in traffic switch: a small reverse proxy that serves one instance's stable port
 * and forwards each request to the active colour. Switching is one assignment; requests
 * already forwarded finish on the upstream they started on, and are counted per colour so
 * that a drain knows when the old colour is idle.
 *
 * A control channel (control.ts: HTTP on 127.0.0.1, ephemeral port, bearer token) lets the
 * adapter route, drain and read the state. src/switch-router/main.ts runs this as a detached
 * process.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Color } from '../adapters/runtime/types.js';
import type { Upstream } from '../adapters/switch/types.js';
import { COLORS, handleControl, isUpstream, sendJson, type RouterDrainResult, type RouterState } from './control.js';
import { Accounting, isSplit, Splitter, type RequestEnd, type WeightedUpstream } from './split.js';
import type { TrafficStats } from '../core/traffic.js';
import { replicaPicker, spreads } from './replicas.js';

/** Upstreams are always local: the colours bind loopback only. */
const UPSTREAM_HOST = '127.0.0.1';
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
/** Below Node's default server keepAliveTimeout (5 s), so we never reuse a socket the upstream is closing. */
const FREE_SOCKET_TIMEOUT_MS = 4_000;

export interface RouterOptions {
  instance: string;
  /** The stable port; 0 picks a free one. */
  listenPort: number;
  host?: string;
  /** Where to route from the start (a restarted router resumes its persisted route). */
  active?: Upstream;
  /** An upstream silent for this long is cut off (504 if nothing was sent yet). Default 5 min. */
  idleTimeoutMs?: number;
  /** Control channel bearer token; default: random. */
  token?: string;
  /** Runs before a new route takes effect; throwing refuses the route (main.ts persists it here). */
  onRoute?: (upstream: Upstream) => void;
  /** A weighted split between the routed colour and the other one to resume (see split.ts). */
  split?: WeightedUpstream[];
  /** Runs before a new split (or its end: undefined) takes effect; main.ts persists it here. */
  onSplit?: (split: WeightedUpstream[] | undefined) => void;
  /** Count requests, outcomes and latency per colour (default true; the bench turns it off for its baseline). */
  accounting?: boolean;
  log?: (line: string) => void;
}

export interface RouterHandle {
  readonly listenPort: number;
  readonly controlPort: number;
  readonly token: string;
  state(): RouterState;
  route(upstream: Upstream): void;
  /** Splits new connections between the routed colour and the other by weight; undefined ends the split. */
  split(upstreams: WeightedUpstream[] | undefined): void;
  stats(): TrafficStats;
  drain(color: Color, timeoutMs: number): Promise<RouterDrainResult>;
  /** Stops accepting, lets requests in flight finish for up to graceMs, then closes everything. */
  close(graceMs?: number): Promise<void>;
}

function perColor<T>(make: () => T): Record<Color, T> {
  return { blue: make(), green: make() };
}

/** Headers named by Connection are hop-by-hop too (RFC 9110 §7.6.1). */
function endToEnd(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const named = new Set((headers.connection ?? '').toLowerCase().split(',').map((s) => s.trim()));
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name) && !named.has(name)) out[name] = value;
  }
  return out;
}

function requestHeaders(req: IncomingMessage): OutgoingHttpHeaders {
  const out = endToEnd(req.headers);
  const client = req.socket.remoteAddress ?? 'unknown';
  const prior = req.headers['x-forwarded-for'];
  out['x-forwarded-for'] = prior ? `${String(prior)}, ${client}` : client;
  out['x-forwarded-proto'] = req.headers['x-forwarded-proto'] ?? 'http';
  if (req.headers.host !== undefined) out['x-forwarded-host'] = req.headers['x-forwarded-host'] ?? req.headers.host;
  // Keep the body's framing: without it Node would not chunk the body of, say, a GET.
  if (req.headers['transfer-encoding'] !== undefined) out['transfer-encoding'] = 'chunked';
  return out;
}

function plain(res: ServerResponse, status: number, text: string, extra: OutgoingHttpHeaders = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...extra });
  res.end(`${text}\n`);
}

function errorReason(err: NodeJS.ErrnoException, upstream: Upstream, port = upstream.port): { status: number; text: string } {
  const where = `upstream ${upstream.color} (${UPSTREAM_HOST}:${port})`;
  if (err.code === 'ETIMEDOUT') return { status: 504, text: `gateway timeout: ${where} sent nothing for too long` };
  return { status: 502, text: `bad gateway: ${where}: ${err.code ?? err.message}` };
}

export async function startRouter(options: RouterOptions): Promise<RouterHandle> {
  const { instance } = options;
  const host = options.host ?? '127.0.0.1';
  const idleTimeoutMs = options.idleTimeoutMs ?? 5 * 60_000;
  const token = options.token ?? randomBytes(32).toString('hex');
  const log = options.log ?? (() => {});
  let active: Upstream | undefined = options.active;
  const inflight = perColor(() => 0);
  /** Each WebSocket is its pair of sockets; destroying one side closes both. */
  const websockets = perColor(() => new Set<Duplex>());
  const agents = perColor(() => new http.Agent({ keepAlive: true, timeout: FREE_SOCKET_TIMEOUT_MS, maxFreeSockets: 64 }));
  const waiters = new Set<() => void>();
  const notify = (): void => waiters.forEach((check) => check());
  const splitter = new Splitter();
  const accounting = options.accounting === false ? undefined : new Accounting(`${process.pid}@${new Date().toISOString()}`);
  if (options.split && active && isSplit(options.split) && options.split.some((u) => u.color === active!.color)) splitter.set(options.split);

  /** Where a new request on this connection goes: its share of a split, else the route. */
  const choose = (connection: object): Upstream | undefined => (active ? (splitter.pick(connection) ?? active) : undefined);
  const replicas = replicaPicker();

  function proxy(req: IncomingMessage, res: ServerResponse): void {
    const upstream = choose(req.socket); // chosen once: this request stays on this colour
    if (!upstream) {
      plain(res, 503, `no upstream for instance ${instance} yet`, { 'retry-after': '1' });
      return;
    }
    const { color } = upstream;
    inflight[color] += 1;
    const startedAt = accounting ? performance.now() : 0;
    /** failed: the colour gave no (whole) answer — the switch answered for it, or cut the body. */
    const outcome = { failed: false };
    res.once('close', () => {
      inflight[color] -= 1;
      if (accounting) {
        const end: RequestEnd = outcome.failed ? 'failed' : res.writableFinished ? { status: res.statusCode } : 'aborted';
        accounting.record(color, end, performance.now() - startedAt);
      }
      notify();
    });
    send(req, res, upstream, replicas.pick(req.socket, upstream), new Set(), outcome);
  }

  /** Forwards to one replica (the colour's one port, or one of its replicas' ports); a refused replica passes the request on. */
  function send(req: IncomingMessage, res: ServerResponse, upstream: Upstream, port: number, tried: Set<number>, outcome: { failed: boolean }): void {
    const { color } = upstream;
    tried.add(port);
    const forward = http.request({
      host: UPSTREAM_HOST, port, method: req.method, path: req.url,
      headers: requestHeaders(req), agent: agents[color],
    });
    // Over replicas, the body waits for the connection: a replica that refuses has read none of it, so another may take it.
    let connected = !spreads(upstream);
    const pipeBody = (): void => {
      connected = true;
      req.pipe(forward);
    };
    if (!connected) forward.once('socket', (s) => (s.connecting ? s.once('connect', pipeBody) : pipeBody()));
    forward.setTimeout(idleTimeoutMs, () => forward.destroy(Object.assign(new Error('upstream timed out'), { code: 'ETIMEDOUT' })));
    forward.on('response', (answer) => {
      try {
        res.writeHead(answer.statusCode ?? 502, answer.statusMessage, endToEnd(answer.headers));
      } catch (err) {
        forward.destroy(err as Error); // a head Node will not send (e.g. an invalid status): 502, not a crash
        return;
      }
      answer.pipe(res);
      answer.on('close', () => {
        if (answer.complete) return;
        outcome.failed = !res.destroyed; // upstream died mid-body (not the client leaving)
        res.destroy(); // the client must not see a short body as complete
      });
    });
    forward.on('error', (err: NodeJS.ErrnoException) => {
      if (res.destroyed) return; // the client left first; nobody to tell
      if (!connected && err.code === 'ECONNREFUSED') {
        const other = replicas.refused(req.socket, upstream, port, tried);
        if (other !== undefined) return send(req, res, upstream, other, tried, outcome);
      }
      outcome.failed = true;
      const { status, text } = errorReason(err, upstream, port);
      log(`${req.method} ${req.url}: ${text}`);
      // The rest of the request body is unread: close the connection after answering.
      plain(res, status, text, { connection: 'close' });
    });
    req.on('error', () => forward.destroy());
    res.on('close', () => {
      if (!res.writableFinished) forward.destroy(); // the client went away
    });
    if (connected) req.pipe(forward);
  }

  function upgrade(req: IncomingMessage, client: Duplex, head: Buffer): void {
    client.on('error', () => client.destroy());
    const upstream = choose(client);
    if (!upstream) {
      client.end('HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    const { color } = upstream;
    const open = websockets[color];
    open.add(client);
    client.once('close', () => {
      open.delete(client);
      notify();
    });
    const headers = { ...requestHeaders(req), connection: 'Upgrade', upgrade: req.headers.upgrade ?? 'websocket' };
    const forward = http.request({ host: UPSTREAM_HOST, port: replicas.pick(client, upstream), method: req.method, path: req.url, headers, agent: false });
    forward.setTimeout(idleTimeoutMs, () => forward.destroy(Object.assign(new Error('upstream timed out'), { code: 'ETIMEDOUT' })));
    forward.on('upgrade', (answer, socket, upHead) => {
      if (client.destroyed) {
        socket.destroy();
        return;
      }
      forward.setTimeout(0);
      socket.setTimeout(0);
      (client as Socket).setTimeout(0); // WebSockets may be quiet for long
      client.write(rawHead(answer));
      if (upHead.length > 0) client.write(upHead);
      socket.on('error', () => client.destroy());
      socket.once('close', () => client.destroy());
      client.once('close', () => socket.destroy());
      socket.pipe(client);
      client.pipe(socket);
    });
    forward.on('response', (answer) => {
      // The upstream refused the upgrade: relay its answer, then close.
      const headers = endToEnd(answer.headers);
      client.write(rawHead(answer, { ...headers, connection: 'close' }));
      answer.pipe(client);
    });
    forward.on('error', (err) => {
      const { status, text } = errorReason(err, upstream);
      log(`upgrade ${req.url}: ${text}`);
      client.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(text)}\r\n\r\n${text}`);
    });
    client.once('close', () => forward.destroy());
    if (head.length > 0) forward.write(head);
    forward.end();
  }

  function state(): RouterState {
    return {
      instance, pid: process.pid, listenPort: address(server).port, active,
      ...(splitter.current ? { split: splitter.current } : {}),
      inflight: { ...inflight },
      websockets: { blue: websockets.blue.size, green: websockets.green.size },
    };
  }

  function route(upstream: Upstream): void {
    if (!isUpstream(upstream)) throw new Error('route needs {color: blue|green, port: 1..65535}');
    options.onRoute?.(upstream);
    active = { color: upstream.color, port: upstream.port, ...(spreads(upstream) ? { ports: [...upstream.ports!] } : {}) }; // the switch: one assignment
    if (splitter.current) splitter.set(undefined); // a route sends everything to one colour: a split ends
    log(`route -> ${upstream.color} (${UPSTREAM_HOST}:${active.ports?.join(', ') ?? upstream.port})`);
  }

  function split(upstreams: WeightedUpstream[] | undefined): void {
    if (upstreams !== undefined) {
      if (!isSplit(upstreams)) throw new Error('split needs two colours {color, port, weight: 0..100} whose weights add up to 100');
      const routed = upstreams.find((u) => u.color === active?.color);
      if (!routed || routed.port !== active?.port) throw new Error(`split needs the routed colour ${active ? `${active.color} (port ${active.port})` : '(none yet)'} as one of its two`);
    }
    options.onSplit?.(upstreams);
    splitter.set(upstreams);
    log(upstreams ? `split -> ${upstreams.map((u) => `${u.color} ${u.weight}%`).join(', ')}` : 'split ended');
  }

  function stats(): TrafficStats {
    return accounting?.snapshot() ?? { since: 'off', colors: {} };
  }

  function drain(color: Color, timeoutMs: number): Promise<RouterDrainResult> {
    return new Promise((resolve) => {
      const finish = (drained: boolean): void => {
        clearTimeout(timer);
        waiters.delete(check);
        const open = [...websockets[color]];
        open.forEach((socket) => socket.destroy()); // at the timeout, WebSockets are closed
        resolve({ drained, inflight: inflight[color], websockets: open.length });
      };
      const check = (): void => {
        if (inflight[color] === 0 && websockets[color].size === 0) finish(true);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      waiters.add(check);
      check();
    });
  }

  const server = http.createServer({ requestTimeout: 0 }, proxy); // long uploads are bounded by idleness, not a total
  server.timeout = idleTimeoutMs + 1_000; // after the upstream's idle timeout, so the client gets the 504 first
  server.on('upgrade', upgrade);
  server.on('clientError', (_err, socket) => socket.destroy());

  const control = http.createServer((req, res) => {
    handleControl(req, res, { token, state, route, split, stats, drain }).catch((err: Error) => sendJson(res, 500, { error: err.message }));
  });
  control.on('clientError', (_err, socket) => socket.destroy());

  await listen(server, options.listenPort, host);
  try {
    await listen(control, 0, '127.0.0.1');
  } catch (err) {
    server.close();
    throw err;
  }

  async function close(graceMs = 10_000): Promise<void> {
    const closed = Promise.all([new Promise((r) => server.close(r)), new Promise((r) => control.close(r))]);
    server.closeIdleConnections();
    control.closeIdleConnections();
    await Promise.all(COLORS.map((color) => drain(color, graceMs)));
    server.closeAllConnections();
    control.closeAllConnections();
    COLORS.forEach((color) => agents[color].destroy());
    await closed;
  }

  return {
    listenPort: address(server).port,
    controlPort: address(control).port,
    token, state, route, split, stats, drain, close,
  };
}

function rawHead(answer: IncomingMessage, headers?: OutgoingHttpHeaders): string {
  const lines = [`HTTP/1.1 ${answer.statusCode ?? 502} ${answer.statusMessage ?? ''}`];
  if (headers) {
    for (const [name, value] of Object.entries(headers)) {
      for (const v of Array.isArray(value) ? value : [value]) if (v !== undefined) lines.push(`${name}: ${String(v)}`);
    }
  } else {
    for (let i = 0; i + 1 < answer.rawHeaders.length; i += 2) lines.push(`${answer.rawHeaders[i]}: ${answer.rawHeaders[i + 1]}`);
  }
  return `${lines.join('\r\n')}\r\n\r\n`;
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function address(server: Server): AddressInfo {
  return server.address() as AddressInfo;
}
