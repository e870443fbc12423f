/**
 * GitHub webhooks: the signature check (X-Hub-Signature-256, HMAC-SHA256 of the raw body,
 * compared in constant time by @octokit/webhooks) and the few facts Tower needs from the
 * events it acts on. A push tells the daemon to fetch now instead of at the next poll; a
 * pull request gets a plan comment. The result is data — the HTTP status to answer with
 * and why — never an exception.
 */
import { Webhooks } from '@octokit/webhooks';

export interface PushEvent {
  kind: 'push';
  /** refs/heads/main */
  ref: string;
  /** main, when ref is a branch; undefined for tags. */
  branch?: string;
  before: string;
  /** The new head: the revision to roll out. All zeros when the branch was deleted. */
  after: string;
  deleted: boolean;
  forced: boolean;
  /** owner/name */
  repository: string;
  pusher?: string;
  /** The head commit's message; undefined when the push deleted the branch. */
  headCommitMessage?: string;
}

export interface PullRequestEvent {
  kind: 'pull_request';
  /** opened, synchronize, reopened, closed, … */
  action: string;
  number: number;
  headSha: string;
  headRef: string;
  baseRef: string;
  repository: string;
  merged: boolean;
  title?: string;
}

export interface PingEvent {
  kind: 'ping';
  zen?: string;
  hookId?: number;
}

/** An event Tower does not act on; acknowledged (2xx) so GitHub does not count it as failed. */
export interface OtherEvent {
  kind: 'other';
  name: string;
}

export type WebhookEvent = PushEvent | PullRequestEvent | PingEvent | OtherEvent;

export type WebhookResult =
  | { ok: true; event: WebhookEvent; deliveryId?: string; payload: unknown }
  | { ok: false; status: 400 | 401; reason: string };

export interface VerifyWebhookInput {
  secret: string;
  /** The raw request body, exactly as received: the signature covers these bytes. */
  body: string | Buffer;
  /** X-Hub-Signature-256: sha256=<hex> */
  signature: string | undefined;
  /** X-GitHub-Event */
  event: string | undefined;
  /** X-GitHub-Delivery */
  deliveryId?: string;
}

/** Limits what an unauthenticated sender can make us hash. GitHub caps payloads at 25 MB. */
export const MAX_WEBHOOK_BYTES = 25 * 1024 * 1024;

export async function verifyGithubWebhook(input: VerifyWebhookInput): Promise<WebhookResult> {
  if (!input.secret) return { ok: false, status: 401, reason: 'no webhook secret is configured; every delivery is refused' };
  const size = typeof input.body === 'string' ? Buffer.byteLength(input.body) : input.body.length;
  if (size > MAX_WEBHOOK_BYTES) return { ok: false, status: 400, reason: `body too large (${size} bytes)` };
  if (!input.signature) return { ok: false, status: 401, reason: 'missing X-Hub-Signature-256' };
  if (!input.signature.startsWith('sha256=')) return { ok: false, status: 401, reason: 'X-Hub-Signature-256 is not a sha256= signature' };
  if (size === 0) return { ok: false, status: 400, reason: 'empty body' };
  const body = typeof input.body === 'string' ? input.body : input.body.toString('utf8');
  // A body that is not UTF-8 changes when decoded, so it fails the check: GitHub sends UTF-8 JSON.
  const webhooks = new Webhooks({ secret: input.secret });
  let valid: boolean;
  try {
    valid = await webhooks.verify(body, input.signature);
  } catch {
    valid = false;
  }
  if (!valid) return { ok: false, status: 401, reason: 'signature does not match' };

  // Signed from here on: the sender has the secret.
  if (!input.event) return { ok: false, status: 400, reason: 'missing X-GitHub-Event' };
  let payload: unknown;
  try {
    payload = JSON.parse(body);
  } catch {
    return { ok: false, status: 400, reason: 'body is not JSON (is the webhook content type application/json?)' };
  }
  if (!isObject(payload)) return { ok: false, status: 400, reason: 'payload is not a JSON object' };
  const event = extract(input.event, payload);
  if (typeof event === 'string') return { ok: false, status: 400, reason: `${input.event} payload: ${event}` };
  return { ok: true, event, deliveryId: input.deliveryId, payload };
}

/** The event's facts, or what is missing from it. */
function extract(name: string, p: Record<string, unknown>): WebhookEvent | string {
  switch (name) {
    case 'ping': {
      const hookId = p.hook_id;
      return { kind: 'ping', zen: str(p.zen), hookId: typeof hookId === 'number' ? hookId : undefined };
    }
    case 'push': {
      const ref = str(p.ref);
      const before = str(p.before);
      const after = str(p.after);
      const repository = str(obj(p.repository)?.full_name);
      if (ref === undefined) return 'no ref';
      if (after === undefined || !/^[0-9a-f]{40,64}$/.test(after)) return 'no after (the new head commit)';
      if (repository === undefined) return 'no repository.full_name';
      const head = obj(p.head_commit);
      return {
        kind: 'push',
        ref,
        branch: ref.startsWith('refs/heads/') ? ref.slice('refs/heads/'.length) : undefined,
        before: before ?? '',
        after,
        deleted: p.deleted === true,
        forced: p.forced === true,
        repository,
        pusher: str(obj(p.pusher)?.name),
        headCommitMessage: head ? str(head.message) : undefined,
      };
    }
    case 'pull_request': {
      const pr = obj(p.pull_request);
      const action = str(p.action);
      const number = typeof p.number === 'number' ? p.number : pr?.number;
      const headSha = str(obj(pr?.head)?.sha);
      const headRef = str(obj(pr?.head)?.ref);
      const baseRef = str(obj(pr?.base)?.ref);
      const repository = str(obj(p.repository)?.full_name);
      if (!pr) return 'no pull_request';
      if (action === undefined) return 'no action';
      if (typeof number !== 'number' || !Number.isInteger(number)) return 'no number';
      if (headSha === undefined) return 'no pull_request.head.sha';
      if (baseRef === undefined) return 'no pull_request.base.ref';
      if (repository === undefined) return 'no repository.full_name';
      return { kind: 'pull_request', action, number, headSha, headRef: headRef ?? '', baseRef, repository, merged: pr.merged === true, title: str(pr.title) };
    }
    default:
      return { kind: 'other', name };
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function obj(v: unknown): Record<string, unknown> | undefined {
  return isObject(v) ? v : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}
