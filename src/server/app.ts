/**
 * The daemon's HTTP face, as a value: createApp(deps) builds it, tests call app.request().
 * Read-only by design — the only route that accepts a body is the verified webhook, and it
 * can do nothing but queue a reconcile pass. Everything else that is not a GET gets 405.
 */
import { Hono } from 'hono';
import type { DaemonStatus } from '../engine/daemon.js';
import type { RolloutRecord } from '../engine/store.js';

export interface WebhookResult {
  status: number;
  body: Record<string, unknown>;
}

export interface AppDeps {
  status(): DaemonStatus;
  history(limit: number): Promise<RolloutRecord[]>;
  /** Verifies and handles a GitHub webhook delivery; absent when no secret is configured. */
  webhook?: (request: { body: string; signature?: string; event?: string; delivery?: string }) => Promise<WebhookResult>;
  version: string;
}

export function createApp(deps: AppDeps): Hono {
  const app = new Hono();

  app.get('/healthz', (c) => c.json({ ok: true }));

  app.get('/api/v1/status', async (c) => {
    const status = deps.status();
    const history = await deps.history(10).catch(() => []);
    return c.json({ version: deps.version, ...status, history }, 200, { 'cache-control': 'no-store' });
  });

  app.get('/api/v1/history', async (c) => {
    const limit = Math.min(Math.max(Number(c.req.query('limit') ?? 20) || 20, 1), 200);
    return c.json({ history: await deps.history(limit) });
  });

  app.post('/hooks/github', async (c) => {
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
  app.all('*', (c) => {
    if (c.req.method === 'GET' || c.req.method === 'HEAD') return c.json({ error: 'not found' }, 404);
    return c.json({ error: `${c.req.method} is not allowed: the status page and API are read-only` }, 405, { allow: 'GET, HEAD' });
  });

  return app;
}
