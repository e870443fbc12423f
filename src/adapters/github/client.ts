/**
 * The GitHub client: one Octokit with retries and rate-limit handling, authenticated by a
 * token or as a GitHub App installation, pointed at github.com or a GitHub Enterprise Server.
 *
 * Credentials never leave this file in clear: every error and log line that passes through
 * the client is redacted (the token, the App's private key, installation tokens, JWTs).
 *
 * App authentication: octokit's `App` (@octokit/auth-app) exchanges a JWT signed with the
 * private key for an installation token on the first request and caches it for 59 minutes —
 * GitHub's tokens live 60 — so the next request after that fetches a fresh one before the old
 * one expires; a 401 right after a token was created is retried (GitHub's replication delay).
 * test/integration/github.test.ts checks both against the contract server.
 */
import { createPrivateKey } from 'node:crypto';
import type { Logger } from 'pino';
import { App, Octokit, RequestError } from 'octokit';

export const DEFAULT_API_URL = 'https://api.github.com';

export const TOKEN_ONLY_NOTICE = 'check runs need a GitHub App; only commit statuses and comments are reported';

export interface GithubAppCredentials {
  appId: number | string;
  /** PEM; `\n` written as two characters (as in an environment variable) is accepted. */
  privateKey: string;
  installationId: number;
}

export interface GithubClientOptions {
  /** A personal access token or Actions' GITHUB_TOKEN: statuses and comments. */
  token?: string;
  /** A GitHub App installation: statuses, comments and check runs. Wins over `token`. */
  app?: GithubAppCredentials;
  /** https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server. */
  apiUrl?: string;
  log: Logger;
  /** Retries of one request on 5xx and network errors (1 s, 4 s, 9 s …). The reporter's queue asks for none per request. */
  retries?: number;
  /** A rate-limited request is retried at most this many times, and only when GitHub asks to wait at most maxRateLimitWaitSeconds. */
  rateLimitRetries?: number;
  maxRateLimitWaitSeconds?: number;
  /** Per HTTP attempt: a GitHub that accepts the connection and never answers must not hold anyone. */
  requestTimeoutMs?: number;
  fetch?: typeof fetch;
}

export interface GithubClient {
  readonly octokit: Octokit;
  readonly auth: 'token' | 'app';
  /** Check runs can only be written by a GitHub App. */
  readonly checksEnabled: boolean;
  readonly apiUrl: string;
  /** Removes every credential this client knows of (and anything shaped like a GitHub token) from text. */
  redact(text: string): string;
  /** An error as one line for logs and stderr: method, path, status and GitHub's message; credentials removed. */
  describeError(err: unknown): string;
}

/** Shapes of GitHub credentials, redacted even when this client did not issue them. */
const TOKEN_PATTERNS = [/\bgh[pousr]_[A-Za-z0-9_]{16,}/g, /\bgithub_pat_[A-Za-z0-9_]{20,}/g, /\bv1\.[0-9a-f]{40}\b/g, /\beyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/g, /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g];

export function makeRedactor(secrets: readonly (string | undefined)[]): (text: string) => string {
  const known = secrets
    .filter((s): s is string => typeof s === 'string' && s.length >= 6)
    .flatMap((s) => [s, ...s.split(/\r?\n|\\n/).filter((line) => line.length >= 16 && !/^-----/.test(line))])
    .sort((a, b) => b.length - a.length);
  return (text: string) => {
    let out = text;
    for (const s of known) out = out.split(s).join('[REDACTED]');
    for (const p of TOKEN_PATTERNS) out = out.replace(p, '[REDACTED]');
    return out;
  };
}

function normalizeKey(privateKey: string): string {
  return privateKey.includes('\\n') && !privateKey.includes('\n') ? privateKey.replace(/\\n/g, '\n') : privateKey;
}

export async function githubClient(options: GithubClientOptions): Promise<GithubClient> {
  const apiUrl = (options.apiUrl ?? DEFAULT_API_URL).replace(/\/+$/, '');
  const app = options.app;
  const privateKey = app ? normalizeKey(app.privateKey) : undefined;
  const redact = makeRedactor([options.token, app?.privateKey, privateKey]);
  const log = options.log;
  if (!app && !options.token) throw new Error('GitHub: no credentials: set a token (GITHUB_TOKEN) or a GitHub App (app id, private key, installation id)');
  if (app && privateKey) {
    try {
      createPrivateKey(privateKey);
    } catch (err) {
      // The parser's message may quote the key; say only what is wrong.
      throw new Error(`GitHub App ${app.appId}: the private key cannot be read (${redact((err as Error).message).slice(0, 120)}); expected a PEM "-----BEGIN RSA PRIVATE KEY-----" or "-----BEGIN PRIVATE KEY-----"`);
    }
  }
  const rateLimitRetries = options.rateLimitRetries ?? 3;
  const maxWait = options.maxRateLimitWaitSeconds ?? 60;
  const timeoutMs = options.requestTimeoutMs ?? 30_000;
  const baseFetch = options.fetch ?? fetch;
  const octokitLog = {
    debug: (m: string) => log.debug(redact(m)),
    info: (m: string) => log.info(redact(m)),
    warn: (m: string) => log.warn(redact(m)),
    error: (m: string) => log.error(redact(m)),
  };
  const onLimit = (kind: string) => (retryAfter: number, req: { method: string; url: string }, _o: unknown, retryCount: number) => {
    const retry = retryCount < rateLimitRetries && retryAfter <= maxWait;
    log.warn({ method: req.method, url: redact(req.url), retryAfter, retryCount, retry }, `GitHub ${kind}: ${retry ? `retrying after ${retryAfter}s` : 'giving up on this request'}`);
    return retry;
  };
  const TowerOctokit = Octokit.defaults({
    baseUrl: apiUrl,
    userAgent: 'redforge-tower',
    log: octokitLog,
    request: {
      // One timeout per HTTP attempt (not per logical request, which may wait out a retry-after).
      fetch: (url: string | URL | Request, init?: RequestInit) => baseFetch(url, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs) }),
    },
    retry: { retries: options.retries ?? 3, doNotRetry: [400, 401, 403, 404, 410, 422, 429, 451] },
    throttle: { onRateLimit: onLimit('rate limit'), onSecondaryRateLimit: onLimit('secondary rate limit') },
  });

  let octokit: Octokit;
  if (app && privateKey) {
    const gh = new App({ appId: app.appId, privateKey, Octokit: TowerOctokit, log: octokitLog });
    // No request yet: the installation token is fetched (and refreshed) by the auth hook on use.
    octokit = await gh.getInstallationOctokit(app.installationId);
  } else {
    octokit = new TowerOctokit({ auth: options.token });
    log.info(TOKEN_ONLY_NOTICE);
  }
  octokit.hook.error('request', (error) => {
    throw sanitize(error, redact);
  });

  return {
    octokit,
    auth: app ? 'app' : 'token',
    checksEnabled: Boolean(app),
    apiUrl,
    redact,
    describeError: (err) => describeError(err, redact),
  };
}

/** Strips credentials from an error in place (message, request headers, cause) and returns it. */
function sanitize(error: unknown, redact: (s: string) => string): unknown {
  if (!(error instanceof Error)) return new Error(redact(String(error)));
  error.message = redact(error.message);
  if (error.stack) error.stack = redact(error.stack);
  if (error instanceof RequestError) {
    const headers = error.request.headers as Record<string, string | undefined>;
    if (headers.authorization) headers.authorization = headers.authorization.replace(/\s.*$/, ' [REDACTED]');
    error.request.url = redact(error.request.url);
  }
  if (error.cause instanceof Error) sanitize(error.cause, redact);
  return error;
}

export function describeError(err: unknown, redact: (s: string) => string = makeRedactor([])): string {
  if (err instanceof RequestError) {
    const path = err.request.url.replace(/^https?:\/\/[^/]+/, '');
    const data = err.response?.data as { message?: string; errors?: { message?: string; field?: string }[] } | undefined;
    const details = data?.errors?.map((e) => e.message ?? e.field).filter(Boolean).join('; ');
    // Without a response, @octokit/request puts the network error's own cause in the message.
    const what = !err.response ? `network error: ${err.message}` : `${err.status} ${data?.message ?? err.message}${details ? ` (${details})` : ''}`;
    return redact(`${err.request.method} ${path}: ${what}`);
  }
  return redact(err instanceof Error ? err.message : String(err));
}

/** GitHub said: wait this long (retry-after, or a primary rate limit's reset), in ms. */
export function retryAfterMs(err: unknown, now: number): number | undefined {
  if (!(err instanceof RequestError) || !err.response) return undefined;
  const headers = err.response.headers as Record<string, string | number | undefined>;
  const after = Number(headers['retry-after']);
  if (Number.isFinite(after) && after >= 0) return after * 1000;
  if (String(headers['x-ratelimit-remaining']) === '0') {
    const reset = Number(headers['x-ratelimit-reset']) * 1000;
    if (Number.isFinite(reset)) return Math.max(reset - now, 0) + 1000;
  }
  return undefined;
}

/**
 * Worth trying again later: network errors and timeouts (octokit reports them as 500 without
 * a response), 5xx, rate limits. Not: a request GitHub refused as such, nor a bug of ours.
 */
export function isTransient(err: unknown): boolean {
  if (!(err instanceof RequestError)) return false;
  if (err.status >= 500 || err.status === 0 || err.status === 408 || err.status === 429) return true;
  if (err.status === 403) {
    const message = String((err.response?.data as { message?: string } | undefined)?.message ?? err.message);
    return /rate limit/i.test(message) || retryAfterMs(err, Date.now()) !== undefined;
  }
  return false;
}

export function parseRepo(repo: string): { owner: string; repo: string } {
  const m = /^([A-Za-z0-9_.-]+)\/([A-Za-z0-9_.-]+)$/.exec(repo.trim());
  if (!m) throw new Error(`GitHub repository "${repo}" is not owner/name`);
  return { owner: m[1]!, repo: m[2]! };
}
