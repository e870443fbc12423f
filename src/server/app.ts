/**
 * The daemon's HTTP face, as a value: createApp(deps) builds it, tests call app.request().
 * Read-only by design — the only route that accepts a body is the verified webhook, and it
 * can do nothing but queue a reconcile pass. Everything else that is not a GET gets 405.
 *
 * Anyone who can reach the port can call it, so what a caller can make it hold is bounded
 * (SERVER_LIMITS): event streams are counted, a client that stops reading is written nothing
 * more and, after a while, dropped; a webhook without a signature header is refused before
 * its body is read, unverified bodies are counted, budgeted and timed. Every response says
 * `X-Content-Type-Options: nosniff`.
 */
import { boundRecord } from '../engine/history.js';
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { Hono, type Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import { MAX_WEBHOOK_BYTES } from '../adapters/github/webhook.js';
import type { FleetStatus } from '../core/status.js';
import type { RolloutRecord } from '../engine/ports.js';
import { renderStatusMain, renderStatusPage, STATUS_PAGE_CSP, type StatusPageModel } from './page.js';
import { MAX_BACKLOG_BYTES, pumpStatus, STALL_MS, StatusFeed, type StatusStreamOptions } from './sse.js';
import { readBounded, UploadGate, type UploadLimits } from './upload.js';
import { instanceModel, PlanViews, TooBusy, type PageSources } from './flow-views.js';
import { HealthRing } from './health-ring.js';
import { renderInstanceFacts, renderInstancePage } from './instance-page.js';
import { ASSET_PATHS, FLOW_PAGE_CSP, FLOWS_SCRIPT, rendererAssets } from './page/flow-assets.js';
import { renderPlanPage } from './plan-page.js';

export interface WebhookResult {
  status: number;
  body: Record<string, unknown>;
}

export interface ServerLimits {
  /** Event streams open at once; more are answered 503 with Retry-After. */
  eventStreams: number;
  /** With more than this unsent, an event-stream client is behind: it is written nothing more until it catches up. */
  streamBacklogBytes: number;
  /** An event-stream client behind for this long is dropped (its connection closed). */
  streamStallMs: number;
  /** Webhook bodies before their signature is verified. */
  webhook: UploadLimits;
  /** What a 503 asks the client to wait, in seconds. */
  retryAfterSeconds: number;
  /** Instance pages being made at once (each reads the runtime and a log); more are answered 503. */
  instancePages: number;
}

export const SERVER_LIMITS: ServerLimits = {
  eventStreams: 256,
  streamBacklogBytes: MAX_BACKLOG_BYTES,
  streamStallMs: STALL_MS,
  // GitHub sends one delivery at a time per hook and waits 10 s for the answer.
  webhook: { concurrent: 8, budgetBytes: 64 * 1024 * 1024, maxBytes: MAX_WEBHOOK_BYTES, deadlineMs: 10_000 },
  retryAfterSeconds: 5,
  instancePages: 8,
};

export interface AppDeps {
  status(): FleetStatus;
  history(limit: number): Promise<RolloutRecord[]>;
  /** Verifies and handles a GitHub webhook delivery (the raw body: the signature covers its bytes); absent when no secret is configured. */
  webhook?: (request: { body: Buffer; signature?: string; event?: string; delivery?: string }) => Promise<WebhookResult>;
  /**
   * The webhook's secret, when the app may check signatures itself as bodies arrive: a forged
   * body is then refused with no copy made of it (`webhook` still verifies what passes).
   */
  webhookSecret?: string;
  /** Where refused webhook deliveries are logged (pino's shape). */
  log?: { warn(obj: object, msg: string): void };
  version: string;
  /** Calls listener whenever the status changes (the daemon's 'status' events); returns unsubscribe. */
  subscribe(listener: () => void): () => void;
  /** Prometheus exposition of the daemon's metrics. */
  metrics?: () => Promise<{ contentType: string; body: string }>;
  /** Tighter or looser bounds than SERVER_LIMITS (tests); the event stream's pacing too. */
  limits?: Partial<Omit<ServerLimits, 'webhook'>> & { webhook?: Partial<UploadLimits> };
  events?: Pick<StatusStreamOptions, 'heartbeatMs' | 'minIntervalMs'>;
  /** What the instance and plan pages draw from (flow-views.ts); without it they answer 404. */
  pages?: PageSources;
  /** Health over time per instance; the caller feeds it (run.ts: on every status change). Without it, the app samples when a page is rendered. */
  health?: HealthRing;
  /** The clock of the pages (tests). */
  now?: () => Date;
}

/** A plan page is made again for the same sha after this long at the earliest. */
const PLAN_PAGE_TTL_MS = 2_000;

/** How many rollouts the status API, the page and the events carry. */
const HISTORY_ON_PAGE = 10;

/** What @hono/node-server passes as c.env; absent under app.request(). */
interface NodeBindings {
  outgoing?: ServerResponse;
}

/** X-Hub-Signature-256 as GitHub sends it: anything else cannot verify, so its body is never read. */
const SIGNATURE = /^sha256=[0-9a-f]{64}$/i;

export function createApp(deps: AppDeps): Hono {
  const app = new Hono();
  const limits: ServerLimits = { ...SERVER_LIMITS, ...deps.limits, webhook: { ...SERVER_LIMITS.webhook, ...deps.limits?.webhook } };
  const retryAfter = { 'retry-after': String(limits.retryAfterSeconds) };

  const now = deps.now ?? (() => new Date());
  const health = deps.health ?? new HealthRing();

  /** What the status API, the page and the events show: one shape for all three. */
  async function snapshot(): Promise<StatusPageModel> {
    const status = deps.status();
    const history = (await deps.history(HISTORY_ON_PAGE).catch(() => [])).map(boundRecord);
    return { version: deps.version, ...status, history };
  }

  // Every response, JSON and errors included: a browser must never guess a type.
  app.use('*', async (c, next) => {
    c.header('x-content-type-options', 'nosniff');
    await next();
  });

  app.get('/healthz', (c) => c.json({ ok: true }, 200, { 'cache-control': 'no-store' }));

  // The status page; `?fragment=1` is its <main> alone, which the page's script swaps in live.
  app.get('/', async (c) => {
    const snap = await snapshot();
    health.record(snap, now().getTime());
    const model = { ...snap, health: health.all() };
    const opts = { now: now() };
    const headers = { 'cache-control': 'no-store', 'content-security-policy': STATUS_PAGE_CSP, 'referrer-policy': 'no-referrer' };
    if (c.req.query('fragment') !== undefined) return c.html(renderStatusMain(model, opts), 200, headers);
    return c.html(renderStatusPage(model, opts), 200, headers);
  });

  // An instance, and a revision's plan, drawn (read-only; see flow-views.ts for their bounds).
  const flowHeaders = { 'cache-control': 'no-store', 'content-security-policy': FLOW_PAGE_CSP, 'referrer-policy': 'no-referrer' };
  const plans = deps.pages ? new PlanViews(deps.pages) : undefined;
  // Each instance page asks the runtime (colours, usage) and reads a log: a few at once, the others wait their turn elsewhere.
  let instanceViews = 0;
  app.get('/instances/:name', async (c) => {
    const name = c.req.param('name');
    if (!deps.status().instances.some((i) => i.name === name)) return c.json({ error: `no instance ${name.slice(0, 200)} in this fleet` }, 404);
    if (instanceViews >= limits.instancePages) return c.json({ error: `${limits.instancePages} instance pages are being made already; try again in a moment` }, 503, retryAfter);
    instanceViews++;
    try {
      health.record(deps.status(), now().getTime());
      const history = (await deps.history(50).catch(() => [])).map(boundRecord);
      const factsOnly = c.req.query('fragment') === 'facts';
      const model = await instanceModel(name, { status: deps.status(), version: deps.version, history, health: health.of(name), factsOnly, ...(deps.pages ? { sources: deps.pages } : {}) });
      if (!model) return c.json({ error: `no instance ${name.slice(0, 200)} in this fleet` }, 404);
      // `?fragment=facts`: the facts card alone, which the page's script swaps in on each status event.
      return c.html(factsOnly ? renderInstanceFacts(model, { now: now() }) : renderInstancePage(model, { now: now() }), 200, flowHeaders);
    } finally {
      instanceViews--;
    }
  });
  // A plan page diffs every instance of the revision against what runs: made at most once per
  // PLAN_PAGE_TTL_MS for the same sha, however many ask (those who ask meanwhile share it).
  type PlanAnswer = { page: string } | { status: 404 | 502 | 503; error: string };
  const planPages = new Map<string, { at: number; answer: Promise<PlanAnswer> }>();
  const makePlanPage = async (sha: string): Promise<PlanAnswer> => {
    const history = (await deps.history(50).catch(() => [])).map(boundRecord);
    try {
      const model = await plans!.model(sha, { status: deps.status(), version: deps.version, history });
      if (!model) return { status: 404, error: `Tower knows no revision ${sha}: it shows the revisions it is rolling out, rejected, runs or rolled out lately, and the heads of pull requests it planned since it started` };
      return { page: renderPlanPage(model, { now: now() }) };
    } catch (err) {
      if (err instanceof TooBusy) return { status: 503, error: err.message };
      return { status: 502, error: `the revision cannot be loaded: ${(err as Error).message.slice(0, 500)}` };
    }
  };
  app.get('/revisions/:sha', async (c) => {
    if (!plans) return c.json({ error: 'plans are not available here' }, 404);
    const sha = c.req.param('sha').slice(0, 64).toLowerCase();
    const t = now().getTime();
    let made = planPages.get(sha);
    if (!made || t - made.at >= PLAN_PAGE_TTL_MS) {
      made = { at: t, answer: makePlanPage(sha) };
      planPages.delete(sha);
      planPages.set(sha, made);
      while (planPages.size > 16) planPages.delete(planPages.keys().next().value!);
    }
    const answer = await made.answer;
    if ('page' in answer) return c.html(answer.page, 200, flowHeaders);
    planPages.delete(sha); // an error is not kept: the next ask tries again
    return c.json({ error: answer.error }, answer.status, answer.status === 503 ? retryAfter : {});
  });
  // The renderer (FlowFuse's, from its npm package) and our script: same-origin files, so the CSP needs no inline script.
  const asset = (c: Context, body: string, type: string) => {
    c.header('content-type', type);
    c.header('cache-control', 'public, max-age=3600');
    return c.body(body, 200);
  };
  app.get(ASSET_PATHS.renderer, (c) => asset(c, rendererAssets().js, 'text/javascript; charset=utf-8'));
  app.get(ASSET_PATHS.rendererCss, (c) => asset(c, rendererAssets().css, 'text/css; charset=utf-8'));
  app.get(ASSET_PATHS.script, (c) => asset(c, FLOWS_SCRIPT, 'text/javascript; charset=utf-8'));

  app.get('/api/v1/status', async (c) => c.json(await snapshot(), 200, { 'cache-control': 'no-store' }));

  // Server-sent events: `event: status` with the same JSON as /api/v1/status on every change.
  const feed = new StatusFeed({ subscribe: deps.subscribe, snapshot });
  let streams = 0;
  app.get('/api/v1/events', (c) => {
    // HEAD gets the headers only: a stream nobody reads would never end.
    if (c.req.method === 'HEAD') return c.body(null, 200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    if (streams >= limits.eventStreams) return c.json({ error: `${limits.eventStreams} event streams are open already; try again later` }, 503, retryAfter);
    streams++;
    const outgoing = (c.env as NodeBindings | undefined)?.outgoing;
    return streamSSE(c, async (stream) => {
      // The Node server aborts the request's signal when the client goes away.
      const signal = c.req.raw.signal;
      const onAbort = () => stream.abort();
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        await pumpStatus(stream, {
          subscribe: feed.subscribe,
          frame: feed.frame,
          maxBacklogBytes: limits.streamBacklogBytes,
          stallMs: limits.streamStallMs,
          ...deps.events,
          ...(outgoing ? { buffered: () => outgoing.writableLength, drop: () => outgoing.destroy() } : {}),
        });
      } finally {
        streams--;
        signal.removeEventListener('abort', onAbort);
      }
    });
  });

  app.get('/api/v1/history', async (c) => {
    const limit = Math.min(Math.max(Number(c.req.query('limit') ?? 20) || 20, 1), 200);
    return c.json({ history: (await deps.history(limit)).map(boundRecord) });
  });

  // GitHub's webhook. Until the signature is checked the sender is anyone: nothing is read of
  // a request that cannot verify, and what can is bounded (limits.webhook).
  const uploads = new UploadGate(limits.webhook);
  app.post('/hooks/github', async (c) => {
    // A refused sender's connection is not kept: nothing more is read from it.
    const refuse = (status: 401 | 404 | 408 | 411 | 413 | 503, error: string, headers: Record<string, string> = {}) => c.json({ error }, status, { connection: 'close', ...headers });
    if (!deps.webhook) return refuse(404, 'webhooks are not configured (set TOWER_WEBHOOK_SECRET)');
    const signature = c.req.header('x-hub-signature-256');
    if (!signature) return refuse(401, 'missing X-Hub-Signature-256');
    if (!SIGNATURE.test(signature)) return refuse(401, 'X-Hub-Signature-256 is not a sha256= signature');
    const declared = declaredLength(c);
    if (declared === 'invalid') return refuse(411, 'a webhook needs a valid Content-Length or chunked encoding');
    if (declared !== undefined && declared > limits.webhook.maxBytes) return refuse(413, `payload too large (more than ${limits.webhook.maxBytes} bytes)`);
    const admitted = uploads.admit(declared);
    if (!admitted.ok) return refuse(503, 'too many unverified webhook deliveries at once; try again later', retryAfter);
    try {
      const mac = deps.webhookSecret ? createHmac('sha256', deps.webhookSecret) : undefined;
      const read = await readBounded(c.req.raw.body, admitted.slot, limits.webhook.maxBytes, Date.now() + limits.webhook.deadlineMs, mac && ((chunk) => mac.update(chunk)));
      if (!read.ok) {
        if (read.why === 'too-large') return refuse(413, `payload too large (more than ${limits.webhook.maxBytes} bytes)`);
        if (read.why === 'over-budget') return refuse(503, 'too many unverified webhook bytes at once; try again later', retryAfter);
        if (read.why === 'timeout') return refuse(408, `the body did not arrive within ${limits.webhook.deadlineMs / 1000} s`);
        return refuse(408, 'the body could not be read');
      }
      // Checked as it arrived: a forged body is dropped here, before anything copies or parses it.
      if (mac && !timingSafeEqual(mac.digest(), Buffer.from(signature.slice('sha256='.length), 'hex'))) {
        deps.log?.warn({ delivery: c.req.header('x-github-delivery')?.slice(0, 100), bytes: read.size }, 'webhook refused: signature does not match');
        return refuse(401, 'signature does not match');
      }
      const body = Buffer.concat(read.chunks, read.size);
      read.chunks.length = 0;
      const r = await deps.webhook({
        body,
        signature,
        ...(c.req.header('x-github-event') ? { event: c.req.header('x-github-event')! } : {}),
        ...(c.req.header('x-github-delivery') ? { delivery: c.req.header('x-github-delivery')! } : {}),
      });
      return c.json(r.body, r.status as 200);
    } finally {
      admitted.slot.release();
    }
  });
  app.all('/hooks/github', (c) => c.json({ error: `${c.req.method} is not allowed: GitHub webhooks are POSTed` }, 405, { allow: 'POST' }));

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

/**
 * A history record as the API, the page and the events show it: its texts bounded like the
 * status's (the recorder stores them bounded; records written before it did may not be).
 */

/** The declared body length: undefined when chunked (counted as it comes), 'invalid' when it cannot be read. */
function declaredLength(c: Context): number | undefined | 'invalid' {
  const te = c.req.header('transfer-encoding');
  const cl = c.req.header('content-length');
  if (te !== undefined) return /^\s*chunked\s*$/i.test(te) ? undefined : 'invalid';
  if (cl === undefined) return 0;
  return /^\d{1,15}$/.test(cl.trim()) ? Number(cl.trim()) : 'invalid';
}
