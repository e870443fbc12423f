/**
 * The built-in traffic switch: a small reverse proxy that serves one instance's stable port
 * and forwards each request to the active colour. Switching is one assignment; requests
 * already forwarded finish on the upstream they started on, and are counted per colour so
 * that a drain knows when the old colour is idle.
 *
 * A control channel (HTTP on 127.0.0.1, ephemeral port, bearer token) lets the adapter
 * route, drain and read the state. src/switch-router/main.ts runs this as a detached process.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Color } from '../adapters/runtime/types.js';
import type { DrainResult, Upstream } from '../adapters/switch/types.js';

export const COLORS: readonly Color[] = ['blue', 'green'];
/** Upstreams are always local: the colours bind loopback only. */
const UPSTREAM_HOST = '127.0.0.1';
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
/** Below Node's default server keepAliveTimeout (5 s), so we never reuse a socket the upstream is closing. */
const FREE_SOCKET_TIMEOUT_MS = 4_000;
const MAX_CONTROL_BODY = 64 * 1024;

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
  log?: (line: string) => void;
}

export interface RouterState {
  instance: string;
  pid: number;
  listenPort: number;
  active?: Upstream;
  inflight: Record<Color, number>;
  websockets: Record<Color, number>;
}

export interface RouterDrainResult extends DrainResult {
  /** WebSockets of the colour still open at the timeout; they were closed. */
  websockets: number;
}

export interface RouterHandle {
  readonly listenPort: number;
  readonly controlPort: number;
  readonly token: string;
  state(): RouterState;
  route(upstream: Upstream): void;
  drain(color: Color, timeoutMs: number): Promise<RouterDrainResult>;
  /** Stops accepting, lets requests in flight finish for up to graceMs, then closes everything. */
  close(graceMs?: number): Promise<void>;
}

/** What main.ts keeps in stateDir/switch/<instance>.json (mode 0600) and the adapter reads. */
export interface RouterRecord {
  instance: string;
  pid: number;
  listenPort: number;
  controlPort: number;
  token: string;
  active?: Upstream;
  startedAt: string;
}

export function readRecord(file: string): RouterRecord | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as RouterRecord;
  } catch {
    return undefined;
  }
}

/** tmp + rename: a reader (or a crash) never sees half a file. */
export function writeRecord(file: string, record: RouterRecord): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}

export function isUpstream(value: unknown): value is Upstream {
  const v = value as Partial<Upstream> | null;
  return typeof v === 'object' && v !== null && COLORS.includes(v.color as Color)
    && Number.isInteger(v.port) && (v.port as number) > 0 && (v.port as number) < 65536;
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

function errorReason(err: NodeJS.ErrnoException, upstream: Upstream): { status: number; text: string } {
  const where = `upstream ${upstream.color} (${UPSTREAM_HOST}:${upstream.port})`;
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

  function proxy(req: IncomingMessage, res: ServerResponse): void {
    const upstream = active; // read once: this request stays on this colour
    if (!upstream) {
      plain(res, 503, `no upstream for instance ${instance} yet`, { 'retry-after': '1' });
      return;
    }
    const { color } = upstream;
    inflight[color] += 1;
    res.once('close', () => {
      inflight[color] -= 1;
      notify();
    });
    const forward = http.request({
      host: UPSTREAM_HOST, port: upstream.port, method: req.method, path: req.url,
      headers: requestHeaders(req), agent: agents[color],
    });
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
        if (!answer.complete) res.destroy(); // upstream died mid-body: the client must not see a short body as complete
      });
    });
    forward.on('error', (err) => {
      if (res.destroyed) return; // the client left first; nobody to tell
      const { status, text } = errorReason(err, upstream);
      log(`${req.method} ${req.url}: ${text}`);
      // The rest of the request body is unread: close the connection after answering.
      plain(res, status, text, { connection: 'close' });
    });
    req.on('error', () => forward.destroy());
    res.on('close', () => {
      if (!res.writableFinished) forward.destroy(); // the client went away
    });
    req.pipe(forward);
  }

  function upgrade(req: IncomingMessage, client: Duplex, head: Buffer): void {
    client.on('error', () => client.destroy());
    const upstream = active;
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
    const forward = http.request({ host: UPSTREAM_HOST, port: upstream.port, method: req.method, path: req.url, headers, agent: false });
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
      inflight: { ...inflight },
      websockets: { blue: websockets.blue.size, green: websockets.green.size },
    };
  }

  function route(upstream: Upstream): void {
    if (!isUpstream(upstream)) throw new Error('route needs {color: blue|green, port: 1..65535}');
    options.onRoute?.(upstream);
    active = { color: upstream.color, port: upstream.port }; // the switch: one assignment
    log(`route -> ${upstream.color} (${UPSTREAM_HOST}:${upstream.port})`);
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
    handleControl(req, res, { token, state, route, drain }).catch((err: Error) => sendJson(res, 500, { error: err.message }));
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
    token, state, route, drain, close,
  };
}

interface ControlDeps {
  token: string;
  state: () => RouterState;
  route: (upstream: Upstream) => void;
  drain: (color: Color, timeoutMs: number) => Promise<RouterDrainResult>;
}

/** GET /state, POST /route {color, port}, POST /drain {color, timeoutMs}; bearer token required. */
async function handleControl(req: IncomingMessage, res: ServerResponse, deps: ControlDeps): Promise<void> {
  if (!authorized(req.headers.authorization, deps.token)) return sendJson(res, 401, { error: 'unauthorized' });
  const key = `${req.method} ${req.url}`;
  if (key === 'GET /state') return sendJson(res, 200, deps.state());
  if (key !== 'POST /route' && key !== 'POST /drain') return sendJson(res, 404, { error: `no such endpoint: ${key}` });
  const body = await readJson(req);
  if (body === undefined) return sendJson(res, 400, { error: 'body must be a JSON object of at most 64 KiB' });
  if (key === 'POST /route') {
    if (!isUpstream(body)) return sendJson(res, 400, { error: 'route needs {color: blue|green, port: 1..65535}' });
    deps.route(body);
    return sendJson(res, 200, deps.state());
  }
  const { color, timeoutMs } = body as { color?: unknown; timeoutMs?: unknown };
  if (!COLORS.includes(color as Color) || typeof timeoutMs !== 'number' || !(timeoutMs >= 0 && timeoutMs <= 24 * 3_600_000)) {
    return sendJson(res, 400, { error: 'drain needs {color: blue|green, timeoutMs: 0..86400000}' });
  }
  return sendJson(res, 200, await deps.drain(color as Color, timeoutMs));
}

function authorized(header: string | undefined, token: string): boolean {
  const given = Buffer.from(header ?? '');
  const expected = Buffer.from(`Bearer ${token}`);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function readJson(req: IncomingMessage): Promise<object | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_CONTROL_BODY) {
        req.destroy();
        resolve(undefined);
      } else chunks.push(chunk);
    });
    req.on('error', () => resolve(undefined));
    req.on('end', () => {
      try {
        const value: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        resolve(typeof value === 'object' && value !== null && !Array.isArray(value) ? value : undefined);
      } catch {
        resolve(undefined);
      }
    });
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
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
