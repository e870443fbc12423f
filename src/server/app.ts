/**
 * The daemon's HTTP face, as a value: createApp(deps) builds it, tests call app.request().
 * Read-only by design — the only route that accepts a body is the verified webhook, and it
 * can do nothing but queue a reconcile pass. Everything else that is not a GET gets 405.
 */
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { streamSSE } from 'hono/streaming';
import type { FleetStatus } from '../core/status.js';
import type { RolloutRecord } from '../engine/ports.js';
import { renderStatusMain, renderStatusPage, STATUS_PAGE_CSP, type StatusPageModel } from './page.js';
import { pumpStatus } from './sse.js';

export interface WebhookResult {
  status: number;
  body: Record<string, unknown>;
}

export interface AppDeps {
  status(): FleetStatus;
  history(limit: number): Promise<RolloutRecord[]>;
  /** Verifies and handles a GitHub webhook delivery; absent when no secret is configured. */
  webhook?: (request: { body: string; signature?: string; event?: string; delivery?: string }) => Promise<WebhookResult>;
  version: string;
  /** Calls listener whenever the status changes (the daemon's 'status' events); returns unsubscribe. */
  subscribe(listener: () => void): () => void;
  /** Prometheus exposition of the daemon's metrics. */
  metrics?: () => Promise<{ contentType: string; body: string }>;
}

/** How many rollouts the status API, the page and the events carry. */
const HISTORY_ON_PAGE = 10;

export function createApp(deps: AppDeps): Hono {
  const app = new Hono();

  /** What the status API, the page and the events show: one shape for all three. */
  async function snapshot(): Promise<StatusPageModel> {
    const status = deps.status();
    const history = await deps.history(HISTORY_ON_PAGE).catch(() => []);
    return { version: deps.version, ...status, history };
  }

  app.get('/healthz', (c) => c.json({ ok: true }));

  // The status page; `?fragment=1` is its <main> alone, which the page's script swaps in live.
  app.get('/', async (c) => {
    const model = await snapshot();
    const opts = { now: new Date() };
    const headers = { 'cache-control': 'no-store', 'content-security-policy': STATUS_PAGE_CSP, 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' };
    if (c.req.query('fragment') !== undefined) return c.html(renderStatusMain(model, opts), 200, headers);
    return c.html(renderStatusPage(model, opts), 200, headers);
  });

  app.get('/api/v1/status', async (c) => c.json(await snapshot(), 200, { 'cache-control': 'no-store' }));

  // Server-sent events: `event: status` with the same JSON as /api/v1/status on every change.
  app.get('/api/v1/events', (c) => {
    // HEAD gets the headers only: a stream nobody reads would never end.
    if (c.req.method === 'HEAD') return c.body(null, 200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    return streamSSE(c, async (stream) => {
      // The Node server aborts the request's signal when the client goes away.
      const signal = c.req.raw.signal;
      const onAbort = () => stream.abort();
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        await pumpStatus(stream, { subscribe: deps.subscribe, snapshot });
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    });
  });

  app.get('/api/v1/history', async (c) => {
    const limit = Math.min(Math.max(Number(c.req.query('limit') ?? 20) || 20, 1), 200);
    return c.json({ history: await deps.history(limit) });
  });

  // An unauthenticated sender must not make us buffer more than GitHub ever sends (25 MB).
  const webhookLimit = bodyLimit({ maxSize: 25 * 1024 * 1024, onError: (c) => c.json({ error: 'payload too large' }, 413) });
  app.post('/hooks/github', webhookLimit, async (c) => {
    if (!deps.webhook) return c.json({ error: 'webhooks are not configured (set TOWER_WEBHOOK_SECRET)' }, 404);
    const body = await c.req.text();
    const r = await deps.webhook({
      body,
      ...(c.req.header('x-hub-signature-256') ? { signature: c.req.header('x-hub-signature-256')! } : {}),
      ...(c.req.header('x-github-event') ? { event: c.req.header('x-github-event')! } : {}),
      ...(c.req.header('x-github-delivery') ? { delivery: c.req.header('x-github-delivery')! } : {}),
    });
    return c.json(r.body, r.status as 200);
  });

  // Read-only: nothing but GET (and the webhook above) is accepted anywhere.
  app.get('/metrics', async (c) => {
    if (!deps.metrics) return c.json({ error: 'metrics are not available' }, 404);
    const m = await deps.metrics();
    return c.body(m.body, 200, { 'content-type': m.contentType });
  });

  app.all('*', (c) => {
    if (c.req.method === 'GET' || c.req.method === 'HEAD') return c.json({ error: 'not found' }, 404);
    return c.json({ error: `${c.req.method} is not allowed: the status page and API are read-only` }, 405, { allow: 'GET, HEAD' });
  });

  return app;
}
