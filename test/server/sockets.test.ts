/**
 * The app served on a real loopback socket (listen(), as `tower run` serves it), driven by raw
 * TCP clients that behave badly: uploads that trickle, bodies that never come, clients that
 * never read, headers that never end. Each case is bounded in count and in time.
 */
import { createHmac } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp, type AppDeps } from '../../src/server/app.js';
import { listen, type Listening, type ServerTimeouts } from '../../src/server/listen.js';
import { statusProvider, syncedStatus, until } from '../helpers/status-fixture.js';

const SECRET = 'sockets-secret';
const sign = (body: string) => `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`;

const servers: Listening[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(resolve))));
});

async function serveApp(deps: Partial<AppDeps> = {}, timeouts: Partial<ServerTimeouts> = {}) {
  const p = statusProvider(syncedStatus());
  const delivered: Buffer[] = [];
  const app = createApp({
    ...p.deps,
    webhook: async (req) => {
      delivered.push(req.body);
      return req.signature === sign(req.body.toString('utf8')) ? { status: 202, body: { queued: true } } : { status: 401, body: { error: 'signature does not match' } };
    },
    ...deps,
  });
  const server = await listen(app.fetch, '127.0.0.1', 0, timeouts);
  servers.push(server);
  return { port: server.port, p, delivered };
}

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  /** What arrived after the head (until close, or so far). */
  body: string;
}

/** A raw HTTP/1.1 client: writes `head`, then whatever the test writes; collects the answer. */
class Raw {
  readonly socket: Socket;
  private data = '';
  closed = false;
  readonly connected: Promise<void>;

  constructor(port: number, head: string) {
    this.socket = connect(port, '127.0.0.1');
    sockets.push(this.socket);
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('error', reject);
    });
    this.socket.on('error', () => {});
    this.socket.setEncoding('latin1');
    this.socket.on('data', (c: string) => (this.data += c));
    this.socket.on('close', () => (this.closed = true));
    this.socket.write(head);
  }

  /** The response head (and what followed so far), once it arrived; bounded by timeoutMs. */
  async response(timeoutMs: number): Promise<RawResponse> {
    await until(() => this.data.includes('\r\n\r\n') || this.closed, timeoutMs, 'a response head');
    const end = this.data.indexOf('\r\n\r\n');
    if (end < 0) throw new Error(`closed without a response (got ${JSON.stringify(this.data)})`);
    const [statusLine, ...lines] = this.data.slice(0, end).split('\r\n');
    const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
    return { status: Number(statusLine!.split(' ')[1]), headers, body: this.data.slice(end + 4) };
  }
}

const webhookHead = (port: number, headers: Record<string, string>) =>
  `POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;

describe('POST /hooks/github on a socket', () => {
  it('answers 401 to a request without a signature at once, while its 20 MB body has not been sent', async () => {
    const { port, delivered } = await serveApp();
    const raw = new Raw(port, webhookHead(port, { 'content-type': 'application/json', 'content-length': String(20 * 1024 * 1024), 'x-github-event': 'push' }));
    const res = await raw.response(2_000);
    expect(res.status).toBe(401);
    expect(res.headers.connection).toBe('close');
    expect(delivered).toHaveLength(0);
  });

  it('answers 404 without webhooks configured before any body, and 413 for a declared 26 MB', async () => {
    const { port } = await serveApp({ webhook: undefined });
    const none = new Raw(port, webhookHead(port, { 'content-length': '1000', 'x-hub-signature-256': sign('x') }));
    expect((await none.response(2_000)).status).toBe(404);
    const { port: p2 } = await serveApp();
    const big = new Raw(p2, webhookHead(p2, { 'content-length': String(26 * 1024 * 1024), 'x-hub-signature-256': sign('x') }));
    expect((await big.response(2_000)).status).toBe(413);
  });

  it('receives at most `concurrent` unverified bodies: the next gets 503 + Retry-After; a trickle is cut at the deadline; then deliveries go through again', async () => {
    const { port, delivered } = await serveApp({ limits: { webhook: { concurrent: 3, deadlineMs: 1_500 }, retryAfterSeconds: 4 } });
    const started = Date.now();
    const slow = Array.from({ length: 3 }, () => new Raw(port, webhookHead(port, { 'content-length': '100000', 'x-hub-signature-256': sign('x'), 'x-github-event': 'push' })));
    await Promise.all(slow.map((s) => s.connected));
    const trickle = setInterval(() => {
      for (const s of slow) if (!s.closed) s.socket.write('{');
    }, 100);
    try {
      await new Promise((r) => setTimeout(r, 300));
      const refused = new Raw(port, webhookHead(port, { 'content-length': '10', 'x-hub-signature-256': sign('x') }));
      const r = await refused.response(2_000);
      expect(r.status).toBe(503);
      expect(r.headers['retry-after']).toBe('4');

      // Each trickling upload is answered 408 at its deadline and its connection closed.
      for (const s of slow) {
        const res = await s.response(4_000);
        expect(res.status).toBe(408);
        expect(res.headers.connection).toBe('close');
      }
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_400);
      await until(() => slow.every((s) => s.closed), 3_000, 'the cut uploads are disconnected');
    } finally {
      clearInterval(trickle);
    }
    expect(delivered).toHaveLength(0);

    // The places are free again: a whole, signed delivery is handed over.
    const body = '{"zen":"ok"}';
    const ok = new Raw(port, webhookHead(port, { 'content-length': String(body.length), 'x-hub-signature-256': sign(body), 'x-github-event': 'ping' }) + body);
    expect((await ok.response(2_000)).status).toBe(202);
    expect(delivered.map((b) => b.toString())).toEqual([body]);
  });

  it('budgets the bytes of unverified bodies together: declared lengths are reserved up front', async () => {
    const { port } = await serveApp({ limits: { webhook: { budgetBytes: 1_000_000, deadlineMs: 3_000 } } });
    const first = new Raw(port, webhookHead(port, { 'content-length': '600000', 'x-hub-signature-256': sign('x') }));
    await first.connected;
    await new Promise((r) => setTimeout(r, 200));
    const second = new Raw(port, webhookHead(port, { 'content-length': '600000', 'x-hub-signature-256': sign('x') }));
    expect((await second.response(2_000)).status).toBe(503);
    const small = new Raw(port, webhookHead(port, { 'content-length': '2', 'x-hub-signature-256': sign('{}') }) + '{}');
    expect((await small.response(2_000)).status).toBe(202);
  });

  it('counts a chunked body as it comes: 413 past maxBytes', async () => {
    const { port } = await serveApp({ limits: { webhook: { maxBytes: 10_000 } } });
    const raw = new Raw(port, webhookHead(port, { 'transfer-encoding': 'chunked', 'x-hub-signature-256': sign('x') }));
    await raw.connected;
    const chunk = 'a'.repeat(4_000);
    for (let i = 0; i < 4 && !raw.closed; i++) raw.socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
    expect((await raw.response(2_000)).status).toBe(413);
  });
});

describe('the server on a socket', () => {
  it('closes a connection whose headers never end (headersTimeout), and /healthz answers meanwhile', async () => {
    const { port } = await serveApp({}, { headersTimeoutMs: 600, checkIntervalMs: 100 });
    const loris = new Raw(port, `GET /healthz HTTP/1.1\r\nHost: x\r\n`);
    const drip = setInterval(() => !loris.closed && loris.socket.write('X-Drip: 1\r\n'), 100);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2_000) });
      expect(res.status).toBe(200);
      await until(() => loris.closed, 3_000, 'the slow-header connection is closed');
    } finally {
      clearInterval(drip);
    }
  });

  it('does not time out an event stream: requestTimeout covers receiving the request only', async () => {
    const { port } = await serveApp({ events: { heartbeatMs: 200 } }, { requestTimeoutMs: 500, headersTimeoutMs: 400, checkIntervalMs: 100 });
    const raw = new Raw(port, `GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n`);
    const res = await raw.response(2_000);
    expect(res.status).toBe(200);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(raw.closed).toBe(false);
    const after = (await raw.response(100)).body;
    expect(after.match(/: heartbeat/g)!.length).toBeGreaterThanOrEqual(3);
  });

  it('drops event-stream clients that never read a large status, and keeps answering /healthz', async () => {
    const { port, p } = await serveApp({ events: { minIntervalMs: 20, heartbeatMs: 60_000 }, limits: { streamStallMs: 1_000 } });
    // A 4 MB status: each change is a new 4 MB frame, the same bytes for every stream.
    p.status = { ...syncedStatus(), message: 'm'.repeat(4 * 1024 * 1024) };
    const clients = Array.from({ length: 5 }, () => new Raw(port, `GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n`));
    await Promise.all(clients.map((c) => c.connected));
    await until(() => p.listeners.size === 1, 2_000, 'the streams subscribed (one feed for all)');
    for (const c of clients) c.socket.pause(); // never read again
    const latencies: number[] = [];
    const t0 = Date.now();
    // The kernel takes tens of megabytes per socket first; past that, a client is behind, then dropped.
    for (let i = 0; i < 400 && Date.now() - t0 < 20_000 && p.listeners.size > 0; i++) {
      p.status = { ...p.status, lastPassAt: new Date().toISOString() };
      p.emit();
      const start = performance.now();
      const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2_000) });
      latencies.push(performance.now() - start);
      expect(res.status).toBe(200);
      await new Promise((r) => setTimeout(r, 30));
    }
    expect(p.listeners.size, 'every stream ended: the feed let go of the daemon').toBe(0);
    // The server closed each connection: a client that reads again finds the end of it.
    for (const c of clients) c.socket.resume();
    await until(() => clients.every((c) => c.closed), 10_000, 'the dropped connections are closed');
    latencies.sort((a, b) => a - b);
    expect(latencies[Math.floor(latencies.length * 0.99)]!).toBeLessThan(500);
  });
});
