/**
 * Node-RED Admin API client: the flow list (API v2, whose `rev` is Node-RED's optimistic
 * lock), the runtime state, health, and adminAuth bearer tokens.
 *
 * Errors are AdminApiError values built here from the status, Node-RED's error code, the
 * method and the path — never axios errors, which carry the request config (Authorization
 * header, the password in the token request body).
 */
import http from 'node:http';
import https from 'node:https';
import axios, { type AxiosInstance, type AxiosResponse, type Method } from 'axios';
import type { FlowNode } from '../../core/model.js';

export interface NodeRedAdminOptions {
  /** Where the Admin API answers, e.g. http://127.0.0.1:1881 (httpAdminRoot is /). */
  baseUrl: string;
  /** adminAuth user; without it requests are sent unauthenticated. */
  credentials?: { username: string; password: string };
  /** Timeout of each request; default 5 s. */
  timeoutMs?: number;
  /**
   * A token Node-RED takes in a header of its own (adminAuth.tokens / tokenHeader) instead of a
   * login: for a Node-RED behind a proxy that authenticates with the Authorization header itself
   * (the Kubernetes API server's pod and service proxies). Never logged.
   */
  tokenHeader?: { name: string; value: string };
  /** How each request reaches baseUrl when it is not plain HTTP to Node-RED (an HTTPS proxy with its own login): agent and headers. */
  transport?: () => Promise<RequestTransport>;
}

export interface RequestTransport {
  httpsAgent?: https.Agent;
  headers?: Record<string, string>;
}

export type DeploymentType = 'full' | 'flows' | 'nodes' | 'reload';
export type FlowsState = 'start' | 'stop';

export interface Flows {
  rev: string;
  flows: FlowNode[];
}

/** One tab as GET /flow/:id returns it. */
export interface TabFlow {
  id: string;
  label?: string;
  nodes: FlowNode[];
  configs?: FlowNode[];
  subflows?: FlowNode[];
  [property: string]: unknown;
}

/** Up: Node-RED answered GET /settings (401 means it runs with adminAuth). Down: no answer. */
export type AdminHealth = { up: true; status: number; authRequired: boolean } | { up: false; reason: string };

export class AdminApiError extends Error {
  constructor(
    message: string,
    readonly method: string,
    readonly path: string,
    /** HTTP status; absent when Node-RED did not answer (see code). */
    readonly status?: number,
    /** Node-RED's error code (version_mismatch, invalid_api_version, invalid_grant...) or the network error code (ECONNREFUSED, ETIMEDOUT...). */
    readonly code?: string,
  ) {
    super(message);
    this.name = 'AdminApiError';
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, message: this.message, method: this.method, path: this.path, status: this.status, code: this.code };
  }
}

/** POST /flows was refused because the live rev is not the one the caller based its change on. Re-read and re-decide. */
export class FlowsConflictError extends AdminApiError {
  constructor(
    path: string,
    readonly expectedRev: string | undefined,
    /** The rev Node-RED runs now, when it could be read right after the refusal. */
    readonly liveRev: string | undefined,
  ) {
    super(`POST ${path}: flows changed underneath (expected rev ${short(expectedRev)}, live rev ${short(liveRev)})`, 'POST', path, 409, 'version_mismatch');
    this.name = 'FlowsConflictError';
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), expectedRev: this.expectedRev, liveRev: this.liveRev };
  }
}

const API_V2 = { 'Node-RED-API-Version': 'v2' };
/** Renew a token this long before Node-RED says it expires (default lifetime: a week). */
const TOKEN_MARGIN_MS = 60_000;

interface Session {
  token: string;
  expiresAt: number;
}

interface RequestOptions {
  data?: unknown;
  headers?: Record<string, string>;
  /** false: never send a token (health, login). */
  auth?: boolean;
  timeoutMs?: number;
}

export class NodeRedAdmin {
  readonly baseUrl: string;
  private readonly timeoutMs: number;
  // Kept out of enumerable fields so that inspecting the client shows no secret.
  readonly #credentials: { username: string; password: string } | undefined;
  readonly #tokenHeader: { name: string; value: string } | undefined;
  readonly #transport: (() => Promise<RequestTransport>) | undefined;
  readonly #http: AxiosInstance;
  #session: Session | undefined;
  #login: Promise<Session> | undefined;

  constructor(options: NodeRedAdminOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? 5_000;
    this.#credentials = options.credentials;
    this.#tokenHeader = options.tokenHeader;
    this.#transport = options.transport;
    this.#http = axios.create({
      baseURL: this.baseUrl,
      timeout: this.timeoutMs,
      // Status codes are data here (401 = up, 409 = conflict); only network failures throw.
      validateStatus: () => true,
      maxRedirects: 0,
      // Node-RED instances are on loopback: an HTTP(S)_PROXY in the daemon's env must not capture them.
      proxy: false,
      // No pooled sockets: a reused socket to a Node-RED that just exited or closed it idle fails with
      // ECONNRESET instead of an honest ECONNREFUSED or a fresh connection. Loopback connects are cheap.
      httpAgent: new http.Agent({ keepAlive: false }),
      httpsAgent: new https.Agent({ keepAlive: false }),
      transitional: { clarifyTimeoutError: true },
      headers: { Accept: 'application/json' },
    });
  }

  async getFlows(): Promise<Flows> {
    const res = await this.request('GET', '/flows', { headers: API_V2 });
    const body = ok(res, 'GET', '/flows') as Partial<Flows> | undefined;
    if (!body || typeof body.rev !== 'string' || !Array.isArray(body.flows)) {
      throw new AdminApiError('GET /flows: not a v2 flows response ({rev, flows})', 'GET', '/flows', res.status, 'invalid_response');
    }
    return { rev: body.rev, flows: body.flows };
  }

  /**
   * Deploys flows and returns the new rev. With `rev`, Node-RED refuses (FlowsConflictError)
   * if the live flows are not that revision; without it, whatever runs is replaced.
   * `reload` ignores flows and reloads the flow file.
   */
  async setFlows(flows: readonly FlowNode[], options: { rev?: string; type: DeploymentType }): Promise<string> {
    const path = '/flows';
    const data = options.type === 'reload' ? {} : options.rev === undefined ? { flows } : { rev: options.rev, flows };
    const res = await this.request('POST', path, { data, headers: { ...API_V2, 'Node-RED-Deployment-Type': options.type } });
    if (res.status === 409 && errorCode(res) === 'version_mismatch') {
      const liveRev = await this.getFlows().then((f) => f.rev, () => undefined);
      throw new FlowsConflictError(path, options.rev, liveRev);
    }
    const body = ok(res, 'POST', path) as { rev?: unknown } | undefined;
    if (typeof body?.rev !== 'string') throw new AdminApiError(`POST ${path}: no rev in the response`, 'POST', path, res.status, 'invalid_response');
    return body.rev;
  }

  async getFlow(id: string): Promise<TabFlow> {
    const path = `/flow/${encodeURIComponent(id)}`;
    return ok(await this.request('GET', path), 'GET', path) as TabFlow;
  }

  /** Whether flows run; needs runtimeState.enabled (Tower's settings.js sets it). */
  async getFlowsState(): Promise<FlowsState> {
    return state(ok(await this.request('GET', '/flows/state'), 'GET', '/flows/state'), 'GET');
  }

  async setFlowsState(wanted: FlowsState): Promise<FlowsState> {
    return state(ok(await this.request('POST', '/flows/state', { data: { state: wanted } }), 'POST', '/flows/state'), 'POST');
  }

  /** Never throws: an answer (200, or 401 with adminAuth) is up; refused, reset or timed out is down. */
  async health(timeoutMs = this.timeoutMs): Promise<AdminHealth> {
    try {
      const res = await this.request('GET', '/settings', { auth: false, timeoutMs });
      if (res.status === 200 || res.status === 401) return { up: true, status: res.status, authRequired: res.status === 401 };
      return { up: false, reason: `GET /settings answered HTTP ${res.status}` };
    } catch (err) {
      return { up: false, reason: err instanceof AdminApiError ? (err.code ?? err.message) : 'unknown error' };
    }
  }

  /**
   * Polls (every 100 ms, at most timeoutMs) until Node-RED answers and an authenticated
   * GET /flows succeeds; returns those flows. Bad credentials fail at once: waiting will not fix them.
   */
  async waitUntilReady(timeoutMs: number): Promise<Flows> {
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer yet';
    for (;;) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new AdminApiError(`Node-RED at ${this.baseUrl} not ready after ${timeoutMs} ms: ${last}`, 'GET', '/flows', undefined, 'not_ready');
      const health = await this.health(Math.min(remaining, this.timeoutMs));
      if (health.up) {
        try {
          return await this.getFlows();
        } catch (err) {
          if (!(err instanceof AdminApiError) || isAuthFailure(err)) throw err;
          last = err.message;
        }
      } else {
        last = health.reason;
      }
      await sleep(Math.max(0, Math.min(100, deadline - Date.now())));
    }
  }

  /** The current bearer token (logging in if needed), e.g. for Node-RED's /comms websocket. undefined without credentials. */
  async accessToken(): Promise<string | undefined> {
    return this.#credentials && !this.#tokenHeader ? (await this.session()).token : undefined;
  }

  private async request(method: Method, path: string, options: RequestOptions = {}): Promise<AxiosResponse> {
    if (options.auth === false || !this.#credentials) return this.send(method, path, options);
    if (this.#tokenHeader) return this.send(method, path, { ...options, headers: { ...options.headers, [this.#tokenHeader.name]: this.#tokenHeader.value } });
    const res = await this.send(method, path, options, (await this.session()).token);
    if (res.status !== 401) return res;
    // The token expired or was revoked (or Node-RED lost its sessions): log in again, once.
    this.#session = undefined;
    return this.send(method, path, options, (await this.session()).token);
  }

  private async send(method: Method, path: string, options: RequestOptions, token?: string): Promise<AxiosResponse> {
    const headers: Record<string, string> = { ...options.headers };
    if (token) headers.Authorization = `Bearer ${token}`;
    try {
      const via = this.#transport ? await this.#transport() : undefined;
      return await this.#http.request({ method, url: path, data: options.data, headers: { ...via?.headers, ...headers }, timeout: options.timeoutMs ?? this.timeoutMs, ...(via?.httpsAgent ? { httpsAgent: via.httpsAgent } : {}) });
    } catch (err) {
      // Rebuilt from the code and message only: the axios error holds the headers and body sent.
      const code = (err as { code?: unknown }).code;
      const message = err instanceof Error ? err.message : 'request failed';
      throw new AdminApiError(`${method} ${path}: ${message || String(code)}`, method, path, undefined, typeof code === 'string' ? code : 'network_error');
    }
  }

  private async session(): Promise<Session> {
    if (this.#session && this.#session.expiresAt > Date.now()) return this.#session;
    // Concurrent callers share one login.
    this.#login ??= this.logIn().finally(() => {
      this.#login = undefined;
    });
    return this.#login;
  }

  private async logIn(): Promise<Session> {
    const credentials = this.#credentials!;
    const path = '/auth/token';
    const data = { client_id: 'node-red-admin', grant_type: 'password', scope: '*', username: credentials.username, password: credentials.password };
    const res = await this.send('POST', path, { data });
    const body = ok(res, 'POST', path) as { access_token?: unknown; expires_in?: unknown } | undefined;
    if (typeof body?.access_token !== 'string') throw new AdminApiError(`POST ${path}: no access_token in the response`, 'POST', path, res.status, 'invalid_response');
    const lifetimeMs = (typeof body.expires_in === 'number' ? body.expires_in : 3600) * 1000;
    this.#session = { token: body.access_token, expiresAt: Date.now() + Math.max(lifetimeMs - TOKEN_MARGIN_MS, lifetimeMs / 2) };
    return this.#session;
  }
}

/** The body of a 2xx response, or an AdminApiError with Node-RED's code and message. */
function ok(res: AxiosResponse, method: string, path: string): unknown {
  if (res.status >= 200 && res.status < 300) return res.data;
  const code = errorCode(res) ?? (res.status === 401 ? 'unauthorized' : `http_${res.status}`);
  const body = res.data as { message?: unknown; error_description?: unknown } | undefined;
  const detail = typeof body?.message === 'string' && body.message ? body.message : typeof body?.error_description === 'string' ? body.error_description : '';
  throw new AdminApiError(`${method} ${path}: HTTP ${res.status} ${code}${detail ? `: ${detail.slice(0, 200)}` : ''}`, method, path, res.status, code);
}

/** Node-RED answers {code, message}; its OAuth endpoint {error, error_description}. */
function errorCode(res: AxiosResponse): string | undefined {
  const body = res.data as { code?: unknown; error?: unknown } | undefined;
  if (body && typeof body === 'object') {
    if (typeof body.code === 'string') return body.code;
    if (typeof body.error === 'string') return body.error;
  }
  return undefined;
}

function state(body: unknown, method: string): FlowsState {
  const value = (body as { state?: unknown } | undefined)?.state;
  if (value === 'start' || value === 'stop') return value;
  throw new AdminApiError(`${method} /flows/state: unexpected state ${JSON.stringify(value)}`, method, '/flows/state', undefined, 'invalid_response');
}

function isAuthFailure(err: AdminApiError): boolean {
  return err.path === '/auth/token' || err.status === 401 || err.status === 403;
}

function short(rev: string | undefined): string {
  return rev ? rev.slice(0, 12) : 'unknown';
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
