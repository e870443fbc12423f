/**
 * The router's control channel: HTTP on 127.0.0.1 (an ephemeral port), a bearer token
 * compared in constant time, and these calls — GET /state, GET /stats (per-colour counters),
 * POST /route {color, port}, POST /split {upstreams: [{color, port, weight}×2] | null},
 * POST /drain {color, timeoutMs}. Bodies are JSON objects of at most 64 KiB; anything else
 * is a 400.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Color } from '../adapters/runtime/types.js';
import type { DrainResult, Upstream } from '../adapters/switch/types.js';
import type { TrafficStats } from '../core/traffic.js';
import type { WeightedUpstream } from './split.js';
import { validReplicaPorts } from './replicas.js';

export const COLORS: readonly Color[] = ['blue', 'green'];
const MAX_CONTROL_BODY = 64 * 1024;

/** What GET /state answers (and POST /route, with the new route). */
export interface RouterState {
  instance: string;
  pid: number;
  listenPort: number;
  active?: Upstream;
  /** A weighted split of new connections between the routed colour and the other, when one is set. */
  split?: WeightedUpstream[];
  inflight: Record<Color, number>;
  websockets: Record<Color, number>;
}

export interface RouterDrainResult extends DrainResult {
  /** WebSockets of the colour still open at the timeout; they were closed. */
  websockets: number;
}

export function isUpstream(value: unknown): value is Upstream {
  const v = value as Partial<Upstream> | null;
  return typeof v === 'object' && v !== null && COLORS.includes(v.color as Color)
    && Number.isInteger(v.port) && (v.port as number) > 0 && (v.port as number) < 65536
    && (v.ports === undefined || validReplicaPorts(v.ports, v.port as number));
}

export interface ControlDeps {
  token: string;
  state: () => RouterState;
  route: (upstream: Upstream) => void;
  /** Throws (a 400) when the split is not one. */
  split: (upstreams: WeightedUpstream[] | undefined) => void;
  stats: () => TrafficStats;
  drain: (color: Color, timeoutMs: number) => Promise<RouterDrainResult>;
}

/** GET /state, POST /route {color, port}, POST /drain {color, timeoutMs}; bearer token required. */
export async function handleControl(req: IncomingMessage, res: ServerResponse, deps: ControlDeps): Promise<void> {
  if (!authorized(req.headers.authorization, deps.token)) return sendJson(res, 401, { error: 'unauthorized' });
  const key = `${req.method} ${req.url}`;
  if (key === 'GET /state') return sendJson(res, 200, deps.state());
  if (key === 'GET /stats') return sendJson(res, 200, deps.stats());
  if (key !== 'POST /route' && key !== 'POST /drain' && key !== 'POST /split') return sendJson(res, 404, { error: `no such endpoint: ${key}` });
  const body = await readJson(req);
  if (body === undefined) return sendJson(res, 400, { error: 'body must be a JSON object of at most 64 KiB' });
  if (key === 'POST /route') {
    if (!isUpstream(body)) return sendJson(res, 400, { error: 'route needs {color: blue|green, port: 1..65535, ports?: [port, …] (at most 64)}' });
    deps.route(body);
    return sendJson(res, 200, deps.state());
  }
  if (key === 'POST /split') {
    const { upstreams } = body as { upstreams?: WeightedUpstream[] | null };
    try {
      deps.split(upstreams ?? undefined);
    } catch (err) {
      return sendJson(res, 400, { error: (err as Error).message });
    }
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

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
