/**
 * The app's answers to callers it cannot trust, in-process (app.request, no socket): nosniff
 * on every response, the methods each route allows, the webhook refused before its body is
 * read, and the event streams counted.
 */
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createApp, type AppDeps } from '../../src/server/app.js';
import { SseReader } from '../helpers/sse-reader.js';
import { statusProvider, syncedStatus, until } from '../helpers/status-fixture.js';

const SECRET = 'hardening-secret';
const sign = (body: string) => `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`;

/** The app with a webhook that records what reached it (the real verification runs in run.ts; here: the HMAC alone). */
function withWebhook(extra: Partial<AppDeps> = {}) {
  const p = statusProvider(syncedStatus());
  const delivered: Buffer[] = [];
  const app = createApp({
    ...p.deps,
    webhook: async (req) => {
      delivered.push(req.body);
      const ok = req.signature === sign(req.body.toString('utf8'));
      return ok ? { status: 202, body: { queued: true } } : { status: 401, body: { error: 'signature does not match' } };
    },
    ...extra,
  });
  return { app, delivered, p };
}

/** A body that fails the test the moment anyone reads it. */
function untouchable(): { body: ReadableStream<Uint8Array>; read: () => boolean } {
  let pulled = false;
  return {
    body: new ReadableStream(
      {
        pull() {
          pulled = true;
          throw new Error('the body was read');
        },
      },
      { highWaterMark: 0 }, // pulled only when someone reads
    ),
    read: () => pulled,
  };
}

const post = (headers: Record<string, string>, body: string | ReadableStream<Uint8Array> | null) => ({ method: 'POST', headers, body, duplex: 'half' }) as RequestInit;

describe('every response', () => {
  it('says X-Content-Type-Options: nosniff — JSON, HTML, events, metrics, errors and refusals', async () => {
    const { app } = withWebhook({ metrics: async () => ({ contentType: 'text/plain; version=0.0.4', body: '# nothing\n' }) });
    const requests: [string, RequestInit?][] = [
      ['/healthz'],
      ['/api/v1/status'],
      ['/api/v1/history'],
      ['/'],
      ['/?fragment=1'],
      ['/metrics'],
      ['/nope'],
      ['/', { method: 'DELETE' }],
      ['/hooks/github', { method: 'PUT' }],
      ['/hooks/github', post({}, 'x')],
      ['/hooks/github', post({ 'x-hub-signature-256': sign('{}'), 'x-github-event': 'ping' }, '{}')],
      ['/api/v1/events', { method: 'HEAD' }],
    ];
    for (const [path, init] of requests) {
      const res = await app.request(path, init);
      expect(res.headers.get('x-content-type-options'), `${init?.method ?? 'GET'} ${path} (${res.status})`).toBe('nosniff');
      await res.body?.cancel();
    }
    const events = await app.request('/api/v1/events');
    expect(events.headers.get('x-content-type-options')).toBe('nosniff');
    await events.body!.cancel();
  });
});

describe('methods', () => {
  it('the webhook takes POST only: anything else is 405 with Allow: POST', async () => {
    const { app, delivered } = withWebhook();
    for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) {
      const res = await app.request('/hooks/github', { method });
      expect(res.status, method).toBe(405);
      expect(res.headers.get('allow')).toBe('POST');
    }
    expect(delivered).toHaveLength(0);
  });

  it('every other route keeps Allow: GET, HEAD', async () => {
    const { app } = withWebhook();
    for (const path of ['/', '/api/v1/status', '/api/v1/events', '/healthz', '/metrics']) {
      const res = await app.request(path, { method: 'PUT' });
      expect(res.status, path).toBe(405);
      expect(res.headers.get('allow')).toBe('GET, HEAD');
    }
  });
});

describe('POST /hooks/github before the body', () => {
  it('is 404 without webhooks configured, and the body is never read', async () => {
    const p = statusProvider(syncedStatus());
    const app = createApp(p.deps);
    const b = untouchable();
    const res = await app.request('/hooks/github', post({ 'x-hub-signature-256': sign('{}') }, b.body));
    expect(res.status).toBe(404);
    expect(res.headers.get('connection')).toBe('close');
    expect(b.read()).toBe(false);
  });

  it.each([
    ['no signature header', {}],
    ['an empty one', { 'x-hub-signature-256': '' }],
    ['sha1', { 'x-hub-signature-256': 'sha1=0123456789abcdef0123456789abcdef01234567' }],
    ['not hex', { 'x-hub-signature-256': `sha256=${'z'.repeat(64)}` }],
    ['too short', { 'x-hub-signature-256': `sha256=${'0'.repeat(63)}` }],
  ])('is 401 with %s, and the body is never read', async (_what, headers: Record<string, string>) => {
    const { app, delivered } = withWebhook();
    const b = untouchable();
    const res = await app.request('/hooks/github', post({ ...headers, 'x-github-event': 'push' }, b.body));
    expect(res.status).toBe(401);
    expect(b.read()).toBe(false);
    expect(delivered).toHaveLength(0);
  });

  it('is 413 when the declared length is over the limit, unread; 411 when the length cannot be read', async () => {
    const { app, delivered } = withWebhook({ limits: { webhook: { maxBytes: 1_000 } } });
    const b = untouchable();
    const res = await app.request('/hooks/github', post({ 'x-hub-signature-256': sign('x'), 'content-length': '1001' }, b.body));
    expect(res.status).toBe(413);
    expect(b.read()).toBe(false);
    const bad = await app.request('/hooks/github', post({ 'x-hub-signature-256': sign('x'), 'content-length': '12abc' }, untouchable().body));
    expect(bad.status).toBe(411);
    expect(delivered).toHaveLength(0);
  });

  it('is 413 when an undeclared body grows past the limit, and stops reading there', async () => {
    const { app, delivered } = withWebhook({ limits: { webhook: { maxBytes: 1_000 } } });
    let pulls = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulls++;
        controller.enqueue(new Uint8Array(300));
      },
    });
    const res = await app.request('/hooks/github', post({ 'x-hub-signature-256': sign('x') }, endless));
    expect(res.status).toBe(413);
    expect(pulls).toBeLessThan(10);
    expect(delivered).toHaveLength(0);
  });

  it('hands a signed body over byte for byte, and its signature decides', async () => {
    const { app, delivered } = withWebhook();
    const body = JSON.stringify({ zen: 'Keep it logically awesome. ünïcödé' });
    const ok = await app.request('/hooks/github', post({ 'x-hub-signature-256': sign(body), 'x-github-event': 'ping', 'content-length': String(Buffer.byteLength(body)) }, body));
    expect(ok.status).toBe(202);
    expect(delivered[0]!.toString('utf8')).toBe(body);
    const forged = await app.request('/hooks/github', post({ 'x-hub-signature-256': sign('other'), 'x-github-event': 'ping' }, body));
    expect(forged.status).toBe(401);
  });
});

describe('POST /hooks/github with the secret known to the app', () => {
  it('checks the signature as the body arrives: a forged body never reaches the handler, and is logged once', async () => {
    const warnings: object[] = [];
    const { app, delivered } = withWebhook({ webhookSecret: SECRET, log: { warn: (obj) => void warnings.push(obj) } });
    const body = JSON.stringify({ zen: 'forged' });
    const forged = await app.request('/hooks/github', post({ 'x-hub-signature-256': sign('something else'), 'x-github-event': 'ping', 'x-github-delivery': 'd-forged' }, body));
    expect(forged.status).toBe(401);
    expect(await forged.json()).toEqual({ error: 'signature does not match' });
    expect(delivered).toHaveLength(0);
    expect(warnings).toEqual([{ delivery: 'd-forged', bytes: body.length }]);

    const ok = await app.request('/hooks/github', post({ 'x-hub-signature-256': sign(body), 'x-github-event': 'ping' }, body));
    expect(ok.status).toBe(202);
    expect(delivered.map((b) => b.toString())).toEqual([body]);
  });
});

describe('GET /api/v1/events', () => {
  it('opens at most limits.eventStreams streams: beyond, 503 with Retry-After; a freed place is taken again', async () => {
    const p = statusProvider(syncedStatus());
    const app = createApp({ ...p.deps, limits: { eventStreams: 3, retryAfterSeconds: 7 } });
    const open: SseReader[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const res = await app.request('/api/v1/events');
        expect(res.status).toBe(200);
        const reader = new SseReader(res.body!);
        await reader.nextEvent(2_000);
        open.push(reader);
      }
      const refused = await app.request('/api/v1/events');
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('7');
      expect(await refused.json()).toEqual({ error: '3 event streams are open already; try again later' });
      // /healthz, the API and HEAD are not streams: they still answer.
      expect((await app.request('/healthz')).status).toBe(200);
      expect((await app.request('/api/v1/status')).status).toBe(200);
      expect((await app.request('/api/v1/events', { method: 'HEAD' })).status).toBe(200);

      await open.shift()!.cancel();
      let again: Response | undefined;
      await until(async () => {
        again = await app.request('/api/v1/events');
        if (again.status === 200) return true;
        await again.body?.cancel();
        return false;
      }, 2_000, 'a place frees up when a client leaves');
      open.push(new SseReader(again!.body!));
      expect((await open.at(-1)!.nextEvent(2_000)).event).toBe('status');
    } finally {
      for (const r of open) await r.cancel();
    }
    await until(() => p.listeners.size === 0, 2_000, 'every stream unsubscribed');
  });
});

describe('history', () => {
  it('is shown with bounded texts, whatever was stored before the recorder bounded them', async () => {
    const p = statusProvider(syncedStatus(), [{ id: 'old', fleet: 'redforge', revision: 'a'.repeat(40), message: `subject\n\n${'m'.repeat(100_000)}`, startedAt: '2026-01-01T00:00:00Z', finishedAt: '2026-01-01T00:00:01Z', outcome: 'failed', error: 'e'.repeat(2 * 1024 * 1024), instances: { web: { path: 'swap', outcome: 'failed', error: 'x'.repeat(100_000), phases: [] } } }]);
    const app = createApp(p.deps);
    for (const path of ['/api/v1/history', '/api/v1/status']) {
      const res = await app.request(path);
      const text = await res.text();
      expect(text.length, path).toBeLessThan(20_000);
      const [r] = (JSON.parse(text) as { history: { error: string; message: string }[] }).history;
      expect(r!.error).toMatch(/^e+… \(and 2,09\d,\d\d\d more characters\)$/);
      expect(r!.message).toMatch(/^subject\n\nm+… \(and 9\d,\d\d\d more characters\)$/);
    }
    expect((await (await app.request('/')).text()).length).toBeLessThan(60_000);
  });
});

