/**
 * GitHub webhook verification with real signatures: HMAC-SHA256 computed here with
 * node:crypto over the exact bytes sent, checked by @octokit/webhooks. Payloads follow
 * GitHub's shapes (trimmed to the fields that matter plus some noise).
 */
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { verifyGithubWebhook, type VerifyWebhookInput } from '../../src/adapters/github/webhook.js';

const SECRET = 'tower-webhook-secret-0f9e8d7c';
const HEAD = '6dcb09b5b57875f334f61aebed695e2e4193db5e';
const BEFORE = '9049f1265b7d61be4a8904a9a27120d2064dab3b';

function sign(body: string | Buffer, secret = SECRET): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

function delivery(event: string, payload: unknown, overrides: Partial<VerifyWebhookInput> = {}): VerifyWebhookInput {
  const body = Buffer.from(JSON.stringify(payload));
  return { secret: SECRET, body, signature: sign(body), event, deliveryId: '72d3162e-cc78-11e3-81ab-4c9367dc0958', ...overrides };
}

const repository = { id: 1296269, name: 'fleet', full_name: 'redforge/fleet', private: true, owner: { login: 'redforge' } };

const push = {
  ref: 'refs/heads/main',
  before: BEFORE,
  after: HEAD,
  created: false,
  deleted: false,
  forced: false,
  base_ref: null,
  compare: 'https://github.com/redforge/fleet/compare/9049f1265b7d...6dcb09b5b578',
  commits: [{ id: HEAD, message: 'Embeddings: batch size 64 — für alle', author: { name: 'Ada', email: 'ada@example.com' } }],
  head_commit: { id: HEAD, message: 'Embeddings: batch size 64 — für alle', timestamp: '2026-01-05T10:00:00Z' },
  repository,
  pusher: { name: 'ada', email: 'ada@example.com' },
  sender: { login: 'ada', id: 1 },
};

const pullRequest = {
  action: 'synchronize',
  number: 42,
  pull_request: {
    number: 42,
    state: 'open',
    title: 'Move storage to wave 2',
    merged: false,
    head: { ref: 'storage-wave', sha: HEAD, repo: repository },
    base: { ref: 'main', sha: BEFORE, repo: repository },
  },
  repository,
  sender: { login: 'ada', id: 1 },
};

describe('verifyGithubWebhook', () => {
  it('accepts a signed push and extracts what the daemon needs', async () => {
    const r = await verifyGithubWebhook(delivery('push', push));
    expect(r).toEqual({
      ok: true,
      deliveryId: '72d3162e-cc78-11e3-81ab-4c9367dc0958',
      event: {
        kind: 'push',
        ref: 'refs/heads/main',
        branch: 'main',
        before: BEFORE,
        after: HEAD,
        deleted: false,
        forced: false,
        repository: 'redforge/fleet',
        pusher: 'ada',
        headCommitMessage: 'Embeddings: batch size 64 — für alle',
      },
      payload: push,
    });
  });

  it('takes the body as a string too, and signs non-ASCII bytes the same way', async () => {
    const body = JSON.stringify(push);
    const r = await verifyGithubWebhook({ secret: SECRET, body, signature: sign(Buffer.from(body, 'utf8')), event: 'push' });
    expect(r.ok).toBe(true);
  });

  it('a branch deletion is a push with no head commit', async () => {
    const deleted = { ...push, after: '0'.repeat(40), deleted: true, head_commit: null, commits: [] };
    const r = await verifyGithubWebhook(delivery('push', deleted));
    expect(r.ok && r.event).toMatchObject({ kind: 'push', deleted: true, after: '0'.repeat(40), headCommitMessage: undefined });
  });

  it('extracts a pull request: action, number, head sha, base ref', async () => {
    const r = await verifyGithubWebhook(delivery('pull_request', pullRequest));
    expect(r.ok && r.event).toEqual({
      kind: 'pull_request',
      action: 'synchronize',
      number: 42,
      headSha: HEAD,
      headRef: 'storage-wave',
      baseRef: 'main',
      repository: 'redforge/fleet',
      merged: false,
      title: 'Move storage to wave 2',
    });
  });

  it('answers a ping, and acknowledges events it does not act on', async () => {
    const ping = await verifyGithubWebhook(delivery('ping', { zen: 'Keep it logically awesome.', hook_id: 7, hook: { type: 'Repository' } }));
    expect(ping.ok && ping.event).toEqual({ kind: 'ping', zen: 'Keep it logically awesome.', hookId: 7 });
    const issues = await verifyGithubWebhook(delivery('issues', { action: 'opened', issue: { number: 1 } }));
    expect(issues.ok && issues.event).toEqual({ kind: 'other', name: 'issues' });
  });

  it('refuses with 401 what is not signed with the secret', async () => {
    const good = delivery('push', push);
    const cases: [string, Partial<VerifyWebhookInput>][] = [
      ['missing signature', { signature: undefined }],
      ['empty signature', { signature: '' }],
      ['another secret', { signature: sign(good.body, 'not-the-secret') }],
      ['sha1 signature', { signature: `sha1=${createHmac('sha1', SECRET).update(good.body).digest('hex')}` }],
      ['truncated signature', { signature: good.signature!.slice(0, 40) }],
      ['upper-case hex', { signature: good.signature!.toUpperCase().replace('SHA256=', 'sha256=') }],
      ['tampered body', { body: Buffer.from(JSON.stringify({ ...push, after: BEFORE })) }],
      ['body with a trailing newline', { body: Buffer.concat([good.body as Buffer, Buffer.from('\n')]) }],
      ['no secret configured', { secret: '' }],
    ];
    for (const [name, override] of cases) {
      const r = await verifyGithubWebhook({ ...good, ...override });
      expect(r, name).toMatchObject({ ok: false, status: 401 });
    }
  });

  it('refuses with 400 a signed delivery that is not a usable event', async () => {
    const signed = (body: string, event: string | null = 'push') => ({ secret: SECRET, body, signature: sign(body), event: event ?? undefined });
    const cases: [string, VerifyWebhookInput, RegExp][] = [
      ['not JSON', signed('payload=%7B%22ref%22%3A1%7D'), /not JSON/],
      ['truncated JSON', signed(JSON.stringify(push).slice(0, 100)), /not JSON/],
      ['JSON array', signed('[1,2]'), /not a JSON object/],
      ['no event header', signed(JSON.stringify(push), null), /X-GitHub-Event/],
      ['push without after', signed(JSON.stringify({ ...push, after: undefined })), /no after/],
      ['push without repository', signed(JSON.stringify({ ...push, repository: undefined })), /repository/],
      ['pull request without head sha', signed(JSON.stringify({ ...pullRequest, pull_request: { ...pullRequest.pull_request, head: {} } }), 'pull_request'), /head\.sha/],
      ['empty body', { secret: SECRET, body: '', signature: sign(''), event: 'push' }, /empty body/],
    ];
    for (const [name, input, reason] of cases) {
      const r = await verifyGithubWebhook(input);
      expect(r, name).toMatchObject({ ok: false, status: 400 });
      expect(!r.ok && r.reason, name).toMatch(reason);
    }
  });
});
