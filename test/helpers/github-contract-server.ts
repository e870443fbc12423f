/**
 * A CONTRACT TEST SERVER for Tower's GitHub adapter — this is not GitHub, and passing against
 * it does not prove that GitHub accepts what Tower sends. It proves that every request Tower
 * makes is one GitHub's published OpenAPI description (npm `@octokit/openapi`) allows: the
 * path and method name an operation, the path and query parameters have that operation's
 * types, and the JSON body validates against its requestBody schema (ajv). On top of the
 * description it enforces the limits GitHub documents only in prose (a status description of
 * at most 140 characters, a comment body of at most 65,536, `conclusion` with
 * `status: completed`, annotation columns only on one-line annotations).
 *
 * An invalid request gets 422 and is recorded in `contractFailures`; a valid one gets a
 * minimal response that is checked against the operation's response schema (a mismatch is the
 * server's own bug, recorded in `responseFailures`). Issue comments, check runs, commit
 * statuses, pull requests and installation tokens live in memory, so list/update/delete work.
 * Every request is recorded. Faults can be injected for the next N requests (403 secondary
 * rate limit with retry-after, 500, a reset connection, a delay), or the server can go down
 * (refuse connections) and come back on the same port. It listens on 127.0.0.1 only.
 */
import { createPublicKey, randomBytes, verify as verifySignature, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';

const SPEC_DIR = join(import.meta.dirname, '..', '..', 'node_modules', '@octokit', 'openapi', 'generated');

type JsonObject = { [key: string]: unknown };

interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header' | 'cookie';
  required?: boolean;
  schema?: JsonObject;
  'x-multi-segment'?: boolean;
}

interface MediaType {
  schema?: JsonObject;
  examples?: Record<string, { value?: unknown; $ref?: string }>;
  example?: unknown;
}

interface Operation {
  operationId: string;
  parameters?: (Parameter | { $ref: string })[];
  requestBody?: { required?: boolean; content?: Record<string, MediaType>; $ref?: string };
  responses: Record<string, { content?: Record<string, MediaType>; $ref?: string }>;
}

interface OpenApiDocument {
  paths: Record<string, Record<string, Operation | Parameter[]>>;
  components: { schemas: Record<string, unknown>; parameters: Record<string, Parameter>; examples: Record<string, { value?: unknown }>; responses: Record<string, unknown> };
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;

interface Route {
  method: string;
  template: string;
  regex: RegExp;
  names: string[];
  literals: number;
  operation: Operation;
  parameters: Parameter[];
}

export interface RecordedRequest {
  seq: number;
  at: number;
  method: string;
  /** The path without the API prefix and query, e.g. /repos/o/r/statuses/abc. */
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  body: unknown;
  /** The matched operation (`repos/create-commit-status`), when the path and method named one. */
  operationId?: string;
  template?: string;
  status: number;
  fault?: string;
  /** Empty when the request kept the contract. */
  contractErrors: string[];
}

export interface ContractFailure {
  seq: number;
  method: string;
  path: string;
  operationId?: string;
  errors: string[];
}

export type Fault =
  | { kind: 'secondary-rate-limit'; retryAfterSeconds: number; status?: 403 | 429 }
  | { kind: 'rate-limit'; resetInSeconds: number }
  | { kind: 'status'; status: number; message?: string }
  /** The connection is dropped without an answer (the client sees a network error). */
  | { kind: 'reset' }
  /** Answered normally, after a delay. */
  | { kind: 'delay'; ms: number };

export interface StoredComment {
  id: number;
  repo: string;
  issue: number;
  body: string;
  user: string;
  createdAt: string;
  updatedAt: string;
  updates: number;
}

export interface StoredAnnotation {
  path: string;
  start_line: number;
  end_line: number;
  start_column?: number;
  end_column?: number;
  annotation_level: string;
  message: string;
  title?: string;
  raw_details?: string;
}

export interface StoredCheckRun {
  id: number;
  repo: string;
  name: string;
  headSha: string;
  status: string;
  conclusion: string | null;
  startedAt: string | null;
  completedAt: string | null;
  detailsUrl: string | null;
  externalId: string | null;
  output: { title: string | null; summary: string | null; text: string | null };
  annotations: StoredAnnotation[];
  /** Every body sent to create or update it, in order. */
  history: JsonObject[];
}

export interface StoredStatus {
  id: number;
  repo: string;
  sha: string;
  state: string;
  description: string | null;
  targetUrl: string | null;
  context: string;
  createdAt: string;
}

export interface StoredPull {
  number: number;
  title: string;
  state: 'open' | 'closed';
  headSha: string;
  headRef: string;
  baseRef: string;
  draft: boolean;
  updatedAt: string;
  createdAt: string;
}

export interface ContractServerOptions {
  /** Which description to check against: api.github.com (default) or e.g. ghes-3.19. */
  description?: string;
  /** Where the API lives on the server: '' (api.github.com) or '/api/v3' (GitHub Enterprise Server). */
  prefix?: string;
  /** Personal access tokens (or Actions' GITHUB_TOKEN) the server accepts. */
  tokens?: string[];
  /** A GitHub App the server knows: JWTs are verified with its public key. */
  app?: { appId: number; publicKey: string | KeyObject; installationId: number; tokenLifetimeSeconds?: number };
}

export interface GithubContractServer {
  readonly url: string;
  readonly port: number;
  readonly requests: RecordedRequest[];
  readonly contractFailures: ContractFailure[];
  /** Responses this server built that do not match the description: bugs of the server, not the client. */
  readonly responseFailures: ContractFailure[];
  readonly comments: StoredComment[];
  readonly checkRuns: StoredCheckRun[];
  readonly statuses: StoredStatus[];
  readonly pulls: Map<string, StoredPull[]>;
  /** Installation tokens issued, in order. */
  readonly issuedTokens: { token: string; expiresAt: string }[];
  /** The next `count` requests get this fault. */
  inject(count: number, fault: Fault): void;
  /** Stop accepting connections (clients see ECONNREFUSED) until up(). */
  down(): Promise<void>;
  up(): Promise<void>;
  addPull(repo: string, pull: Partial<StoredPull> & { number: number; headSha: string }): StoredPull;
  addComment(repo: string, issue: number, body: string, user?: string): StoredComment;
  /** Requests of one operation, e.g. 'repos/create-commit-status'. */
  calls(operationId: string): RecordedRequest[];
  /** A readable summary of contract failures, for assertion messages. */
  describeFailures(): string;
  close(): Promise<void>;
}

/** Loaded once per process: the description is 13 MB of JSON. */
const loaded = new Map<string, { doc: OpenApiDocument; routes: Route[]; ajv: ContractAjv }>();

interface ContractAjv {
  body(operation: Operation): ValidateFunction | undefined;
  params(operation: Route, where: 'path' | 'query'): ValidateFunction;
  response(operation: Operation, status: string): ValidateFunction | undefined;
}

function load(description: string): { doc: OpenApiDocument; routes: Route[]; ajv: ContractAjv } {
  const cached = loaded.get(description);
  if (cached) return cached;
  const doc = JSON.parse(readFileSync(join(SPEC_DIR, `${description}.json`), 'utf8')) as OpenApiDocument;
  const routes: Route[] = [];
  for (const [template, item] of Object.entries(doc.paths)) {
    const shared = (Array.isArray(item.parameters) ? item.parameters : []).map((p) => resolveParameter(doc, p));
    for (const method of METHODS) {
      const operation = item[method] as Operation | undefined;
      if (!operation || Array.isArray(operation)) continue;
      const own = (operation.parameters ?? []).map((p) => resolveParameter(doc, p));
      const parameters = [...shared.filter((s) => !own.some((o) => o.name === s.name && o.in === s.in)), ...own];
      const names: string[] = [];
      let literals = 0;
      const pattern = template
        .split('/')
        .map((segment) => {
          const m = /^\{(.+)\}$/.exec(segment);
          if (!m) {
            if (segment) literals++;
            return escapeRegex(segment);
          }
          names.push(m[1]!);
          const p = parameters.find((q) => q.in === 'path' && q.name === m[1]);
          return p?.['x-multi-segment'] ? '(.+)' : '([^/]+)';
        })
        .join('/');
      routes.push({ method: method.toUpperCase(), template, regex: new RegExp(`^${pattern}$`), names, literals, operation, parameters });
    }
  }
  // The most specific template wins: /repos/{owner}/{repo}/issues/comments/{id} before /repos/{owner}/{repo}/issues/{n}/{x}.
  routes.sort((a, b) => b.literals - a.literals);
  const entry = { doc, routes, ajv: contractAjv(doc) };
  loaded.set(description, entry);
  return entry;
}

function resolveParameter(doc: OpenApiDocument, p: Parameter | { $ref: string }): Parameter {
  if ('$ref' in p) {
    const name = p.$ref.replace('#/components/parameters/', '');
    const found = doc.components.parameters[name];
    if (!found) throw new Error(`unresolved parameter ${p.$ref}`);
    return found;
  }
  return p;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * OpenAPI 3.0 schemas made JSON Schema (draft-07) for ajv: `nullable` becomes a null type,
 * `$ref`s point into one registered definitions document. With `closed`, plain object
 * schemas reject properties they do not name, so that a misspelt field is a contract failure
 * (GitHub would silently ignore it); objects combined with allOf/anyOf/oneOf stay open.
 */
function toJsonSchema(node: unknown, closed: boolean, inCombinator = false): unknown {
  if (Array.isArray(node)) return node.map((n) => toJsonSchema(n, closed, inCombinator));
  if (!node || typeof node !== 'object') return node;
  const src = node as JsonObject;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(src)) {
    if (key === '$ref' && typeof value === 'string') out.$ref = value.replace('#/components/schemas/', 'gh#/definitions/');
    else if (key === 'properties' && value && typeof value === 'object') {
      out.properties = Object.fromEntries(Object.entries(value as JsonObject).map(([k, v]) => [k, toJsonSchema(v, closed)]));
    } else if (key === 'allOf' || key === 'anyOf' || key === 'oneOf') out[key] = toJsonSchema(value, closed, true);
    else if (key === 'example' || key === 'examples' || key === 'description' || key.startsWith('x-')) continue;
    else out[key] = toJsonSchema(value, closed);
  }
  const combined = 'allOf' in out || 'anyOf' in out || 'oneOf' in out;
  if (closed && !inCombinator && !combined && out.properties && out.additionalProperties === undefined) out.additionalProperties = false;
  if (out.nullable === true) {
    delete out.nullable;
    if (typeof out.type === 'string') {
      out.type = [out.type, 'null'];
      if (Array.isArray(out.enum) && !out.enum.includes(null)) out.enum = [...(out.enum as unknown[]), null];
    } else if (!Array.isArray(out.type)) {
      return { anyOf: [out, { type: 'null' }] };
    }
  } else if (out.nullable !== undefined) delete out.nullable;
  return out;
}

function contractAjv(doc: OpenApiDocument): ContractAjv {
  const make = (closed: boolean, coerceTypes: boolean | 'array') => {
    const ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false, coerceTypes, logger: false });
    addFormats.default(ajv);
    for (const f of ['repo.nwo', 'timestamp', 'uri-template']) ajv.addFormat(f, true);
    ajv.addSchema({ $id: 'gh', definitions: toJsonSchema(doc.components.schemas, closed) as JsonObject });
    return ajv;
  };
  const requests = make(true, false);
  const params = make(false, 'array');
  const responses = make(false, false);
  const bodyCache = new Map<Operation, ValidateFunction | undefined>();
  const paramCache = new Map<string, ValidateFunction>();
  const responseCache = new Map<string, ValidateFunction | undefined>();
  return {
    body(operation) {
      if (!bodyCache.has(operation)) {
        const schema = jsonContent(resolveRequestBody(doc, operation))?.schema;
        bodyCache.set(operation, schema ? requests.compile(toJsonSchema(schema, true) as JsonObject) : undefined);
      }
      return bodyCache.get(operation);
    },
    params(route, where) {
      const key = `${route.method} ${route.template} ${where}`;
      let v = paramCache.get(key);
      if (!v) {
        const list = route.parameters.filter((p) => p.in === where);
        v = params.compile({
          type: 'object',
          properties: Object.fromEntries(list.map((p) => [p.name, toJsonSchema(p.schema ?? {}, false)])),
          required: list.filter((p) => p.required || where === 'path').map((p) => p.name),
          // Octokit puts every parameter an endpoint does not name in the query: an unknown one is a mistake.
          additionalProperties: false,
        });
        paramCache.set(key, v);
      }
      return v;
    },
    response(operation, status) {
      const key = `${operation.operationId} ${status}`;
      if (!responseCache.has(key)) {
        const schema = jsonContent(resolveResponse(doc, operation, status)?.content)?.schema;
        responseCache.set(key, schema ? responses.compile(toJsonSchema(schema, false) as JsonObject) : undefined);
      }
      return responseCache.get(key);
    },
  };
}

function resolveRequestBody(doc: OpenApiDocument, operation: Operation): Record<string, MediaType> | undefined {
  const body = operation.requestBody;
  if (!body) return undefined;
  if (body.$ref) {
    // Not used by api.github.com today; resolve it like the other component kinds if it ever is.
    const name = body.$ref.replace('#/components/requestBodies/', '');
    const shared = (doc.components as unknown as { requestBodies?: Record<string, { content?: Record<string, MediaType> }> }).requestBodies?.[name];
    if (!shared) throw new Error(`unresolved requestBody ${body.$ref} (${operation.operationId})`);
    return shared.content;
  }
  return body.content;
}

function jsonContent(content: Record<string, MediaType> | undefined): MediaType | undefined {
  if (!content) return undefined;
  return content['application/json'] ?? Object.entries(content).find(([type]) => type.endsWith('json'))?.[1];
}

function ajvErrors(errors: ErrorObject[] | null | undefined, where: string): string[] {
  return (errors ?? []).slice(0, 20).map((e) => {
    const extra = e.keyword === 'additionalProperties' ? ` (${String((e.params as { additionalProperty?: string }).additionalProperty)})` : '';
    return `${where}${e.instancePath || ''} ${e.message ?? e.keyword}${extra}`;
  });
}

/** GitHub's example for an operation's response, to start a plausible answer from. */
function resolveResponse(doc: OpenApiDocument, operation: Operation, status: string): { content?: Record<string, MediaType> } | undefined {
  const response = operation.responses[status];
  if (!response?.$ref) return response;
  return doc.components.responses[response.$ref.replace('#/components/responses/', '')] as { content?: Record<string, MediaType> } | undefined;
}

function exampleFor(doc: OpenApiDocument, operation: Operation, status: string): unknown {
  const media = jsonContent(resolveResponse(doc, operation, status)?.content);
  if (!media) return undefined;
  if (media.example !== undefined) return structuredClone(media.example);
  const first = Object.values(media.examples ?? {})[0];
  if (!first) return undefined;
  if (first.$ref) return structuredClone(doc.components.examples[first.$ref.replace('#/components/examples/', '')]?.value);
  return structuredClone(first.value);
}

function successStatus(operation: Operation): string {
  return Object.keys(operation.responses).find((s) => /^2\d\d$/.test(s)) ?? '200';
}

function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function base64urlJson(part: string): JsonObject | undefined {
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as JsonObject;
  } catch {
    return undefined;
  }
}

class HttpAnswer {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly headers: Record<string, string> = {},
  ) {}
}

const MAX_BODY_BYTES = 32 * 1024 * 1024;

/** Operations with state and answers built here; every other operation is answered with GitHub's example. */
const MODELLED = new Set([
  'apps/create-installation-access-token',
  'repos/create-commit-status',
  'checks/create',
  'checks/update',
  'checks/get',
  'checks/list-for-ref',
  'issues/list-comments',
  'issues/create-comment',
  'issues/get-comment',
  'issues/update-comment',
  'issues/delete-comment',
  'pulls/list',
]);

export async function startGithubContractServer(options: ContractServerOptions = {}): Promise<GithubContractServer> {
  const description = options.description ?? 'api.github.com';
  const prefix = options.prefix ?? '';
  const { doc, routes, ajv } = load(description);
  const tokens = new Set(options.tokens ?? []);
  const appKey = options.app ? (typeof options.app.publicKey === 'string' ? createPublicKey(options.app.publicKey) : options.app.publicKey) : undefined;
  const installationTokens = new Map<string, number>();

  const requests: RecordedRequest[] = [];
  const contractFailures: ContractFailure[] = [];
  const responseFailures: ContractFailure[] = [];
  const comments: StoredComment[] = [];
  const checkRuns: StoredCheckRun[] = [];
  const statuses: StoredStatus[] = [];
  const pulls = new Map<string, StoredPull[]>();
  const issuedTokens: { token: string; expiresAt: string }[] = [];
  const faults: { count: number; fault: Fault }[] = [];
  let nextId = 1000;
  let seq = 0;
  let baseUrl = '';

  function takeFault(): Fault | undefined {
    const head = faults[0];
    if (!head) return undefined;
    head.count--;
    if (head.count <= 0) faults.shift();
    return head.fault;
  }

  function webUrl(path: string): string {
    return `https://github.example${path}`;
  }

  function userObject(login: string): JsonObject {
    const u = `${baseUrl}/users/${encodeURIComponent(login)}`;
    return {
      login,
      id: 41898282,
      node_id: 'MDM6Qm90NDE4OTgyODI=',
      avatar_url: 'https://avatars.example/u/41898282',
      gravatar_id: '',
      url: u,
      html_url: webUrl(`/${encodeURIComponent(login)}`),
      followers_url: `${u}/followers`,
      following_url: `${u}/following{/other_user}`,
      gists_url: `${u}/gists{/gist_id}`,
      starred_url: `${u}/starred{/owner}{/repo}`,
      subscriptions_url: `${u}/subscriptions`,
      organizations_url: `${u}/orgs`,
      repos_url: `${u}/repos`,
      events_url: `${u}/events{/privacy}`,
      received_events_url: `${u}/received_events`,
      type: login.endsWith('[bot]') ? 'Bot' : 'User',
      site_admin: false,
    };
  }

  function commentJson(c: StoredComment): JsonObject {
    return {
      id: c.id,
      node_id: Buffer.from(`IssueComment${c.id}`).toString('base64'),
      url: `${baseUrl}/repos/${c.repo}/issues/comments/${c.id}`,
      html_url: webUrl(`/${c.repo}/pull/${c.issue}#issuecomment-${c.id}`),
      issue_url: `${baseUrl}/repos/${c.repo}/issues/${c.issue}`,
      body: c.body,
      user: userObject(c.user),
      created_at: c.createdAt,
      updated_at: c.updatedAt,
      author_association: 'NONE',
    };
  }

  function checkRunJson(r: StoredCheckRun, operation: Operation): JsonObject {
    const example = (exampleFor(doc, operation, successStatus(operation)) ?? {}) as JsonObject;
    return {
      ...example,
      id: r.id,
      node_id: Buffer.from(`CheckRun${r.id}`).toString('base64'),
      head_sha: r.headSha,
      name: r.name,
      url: `${baseUrl}/repos/${r.repo}/check-runs/${r.id}`,
      html_url: webUrl(`/${r.repo}/runs/${r.id}`),
      details_url: r.detailsUrl,
      external_id: r.externalId,
      status: r.status,
      conclusion: r.conclusion,
      started_at: r.startedAt,
      completed_at: r.completedAt,
      output: { title: r.output.title, summary: r.output.summary, text: r.output.text, annotations_count: r.annotations.length, annotations_url: `${baseUrl}/repos/${r.repo}/check-runs/${r.id}/annotations` },
      pull_requests: [],
    };
  }

  function authenticate(req: IncomingMessage, route: Route | undefined): { user: string; app: boolean; installation: boolean } | HttpAnswer {
    const header = req.headers.authorization ?? '';
    const m = /^(token|bearer)\s+(.+)$/i.exec(header);
    const unauthorized = new HttpAnswer(401, { message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest' });
    if (!m) return new HttpAnswer(401, { message: 'Requires authentication', documentation_url: 'https://docs.github.com/rest' });
    const credential = m[2]!;
    if (route?.template.startsWith('/app/') || route?.template === '/app') {
      if (!appKey || !options.app) return unauthorized;
      const [h, p, s] = credential.split('.');
      const header64 = h && base64urlJson(h);
      const payload = p && base64urlJson(p);
      if (!header64 || !payload || !s || header64.alg !== 'RS256') return new HttpAnswer(401, { message: 'A JSON web token could not be decoded' });
      const ok = verifySignature('RSA-SHA256', Buffer.from(`${h}.${p}`), appKey, Buffer.from(s, 'base64url'));
      const now = Date.now() / 1000;
      if (!ok || String(payload.iss) !== String(options.app.appId)) return new HttpAnswer(401, { message: 'A JSON web token could not be decoded' });
      if (typeof payload.exp !== 'number' || payload.exp < now || typeof payload.iat !== 'number' || payload.iat > now + 60 || payload.exp - payload.iat > 600 + 60) {
        return new HttpAnswer(401, { message: "'Expiration time' claim ('exp') is too far in the future or expired" });
      }
      return { user: `app-${options.app.appId}[bot]`, app: true, installation: false };
    }
    const expiry = installationTokens.get(credential);
    if (expiry !== undefined) {
      if (expiry <= Date.now()) return unauthorized;
      return { user: 'tower[bot]', app: false, installation: true };
    }
    if (tokens.has(credential)) return { user: 'tower-bot', app: false, installation: false };
    return unauthorized;
  }

  /** GitHub's limits that the description states only in prose. */
  function runtimeRules(operationId: string, body: unknown): string[] {
    const errors: string[] = [];
    const b = (body ?? {}) as JsonObject;
    if (operationId === 'repos/create-commit-status' && typeof b.description === 'string' && b.description.length > 140) {
      errors.push(`body/description is ${b.description.length} characters; GitHub allows 140`);
    }
    if ((operationId === 'issues/create-comment' || operationId === 'issues/update-comment') && typeof b.body === 'string' && b.body.length > 65_536) {
      errors.push(`body/body is ${b.body.length} characters; GitHub allows 65536`);
    }
    if (operationId === 'checks/create' || operationId === 'checks/update') {
      if ((b.status === 'completed' || b.completed_at !== undefined) && b.conclusion === undefined) errors.push('body: conclusion is required with status completed or completed_at');
      const output = b.output as JsonObject | undefined;
      for (const [i, a] of ((output?.annotations as JsonObject[] | undefined) ?? []).entries()) {
        if ((a.start_column !== undefined || a.end_column !== undefined) && a.start_line !== a.end_line) errors.push(`body/output/annotations/${i}: start_column and end_column need start_line == end_line`);
        if (typeof a.start_line === 'number' && typeof a.end_line === 'number' && a.end_line < a.start_line) errors.push(`body/output/annotations/${i}: end_line before start_line`);
      }
    }
    return errors;
  }

  function repoOf(params: JsonObject): string {
    return `${String(params.owner)}/${String(params.repo)}`;
  }

  function notFound(): HttpAnswer {
    return new HttpAnswer(404, { message: 'Not Found', documentation_url: 'https://docs.github.com/rest' });
  }

  /** Builds the answer of a valid request, keeping state. */
  function answer(route: Route, params: JsonObject, query: JsonObject, body: JsonObject, who: { user: string; app: boolean; installation: boolean }): HttpAnswer {
    const op = route.operation;
    const now = isoSeconds(Date.now());
    const repo = () => repoOf(params);
    switch (op.operationId) {
      case 'apps/create-installation-access-token': {
        if (Number(params.installation_id) !== options.app?.installationId) return notFound();
        const token = `ghs_${randomBytes(18).toString('hex')}`;
        const expires = Date.now() + (options.app.tokenLifetimeSeconds ?? 3600) * 1000;
        installationTokens.set(token, expires);
        issuedTokens.push({ token, expiresAt: isoSeconds(expires) });
        return new HttpAnswer(201, { token, expires_at: isoSeconds(expires), permissions: { checks: 'write', statuses: 'write', pull_requests: 'write', issues: 'write', metadata: 'read' }, repository_selection: 'all' });
      }
      case 'repos/create-commit-status': {
        const s: StoredStatus = {
          id: nextId++,
          repo: repo(),
          sha: String(params.sha),
          state: String(body.state),
          description: (body.description as string | null | undefined) ?? null,
          targetUrl: (body.target_url as string | null | undefined) ?? null,
          context: (body.context as string | undefined) ?? 'default',
          createdAt: now,
        };
        statuses.push(s);
        return new HttpAnswer(201, {
          url: `${baseUrl}/repos/${s.repo}/statuses/${s.sha}`,
          avatar_url: 'https://avatars.example/u/41898282',
          id: s.id,
          node_id: Buffer.from(`Status${s.id}`).toString('base64'),
          state: s.state,
          description: s.description,
          target_url: s.targetUrl,
          context: s.context,
          created_at: now,
          updated_at: now,
          creator: userObject(who.user),
        });
      }
      case 'checks/create':
      case 'checks/update': {
        if (!who.installation) return new HttpAnswer(403, { message: 'You must authenticate via a GitHub App.', documentation_url: 'https://docs.github.com/rest/checks/runs' });
        let run: StoredCheckRun | undefined;
        if (op.operationId === 'checks/create') {
          run = {
            id: nextId++,
            repo: repo(),
            name: String(body.name),
            headSha: String(body.head_sha),
            status: 'queued',
            conclusion: null,
            startedAt: now,
            completedAt: null,
            detailsUrl: null,
            externalId: null,
            output: { title: null, summary: null, text: null },
            annotations: [],
            history: [],
          };
          checkRuns.push(run);
        } else {
          run = checkRuns.find((r) => r.id === Number(params.check_run_id) && r.repo === repo());
          if (!run) return notFound();
        }
        run.history.push(body);
        if (typeof body.name === 'string') run.name = body.name;
        if (typeof body.status === 'string') run.status = body.status;
        if (typeof body.conclusion === 'string') {
          run.conclusion = body.conclusion;
          run.status = 'completed';
          run.completedAt = typeof body.completed_at === 'string' ? body.completed_at : now;
        }
        if (typeof body.started_at === 'string') run.startedAt = body.started_at;
        if (typeof body.details_url === 'string') run.detailsUrl = body.details_url;
        if (typeof body.external_id === 'string') run.externalId = body.external_id;
        const output = body.output as JsonObject | undefined;
        if (output) {
          if (typeof output.title === 'string') run.output.title = output.title;
          if (typeof output.summary === 'string') run.output.summary = output.summary;
          if (typeof output.text === 'string') run.output.text = output.text;
          // GitHub appends annotations on every request.
          run.annotations.push(...((output.annotations as StoredAnnotation[] | undefined) ?? []));
        }
        return new HttpAnswer(op.operationId === 'checks/create' ? 201 : 200, checkRunJson(run, op));
      }
      case 'checks/list-for-ref': {
        if (!who.installation) return new HttpAnswer(403, { message: 'You must authenticate via a GitHub App.' });
        const itemOp = routes.find((r) => r.operation.operationId === 'checks/get')!.operation;
        const found = checkRuns
          .filter((r) => r.repo === repo() && r.headSha === String(params.ref) && (query.check_name === undefined || r.name === query.check_name))
          .sort((a, b) => b.id - a.id)
          .slice(0, Math.min(Number(query.per_page ?? 30), 100));
        return new HttpAnswer(200, { total_count: found.length, check_runs: found.map((r) => checkRunJson(r, itemOp)) });
      }
      case 'checks/get': {
        const run = checkRuns.find((r) => r.id === Number(params.check_run_id) && r.repo === repo());
        return run ? new HttpAnswer(200, checkRunJson(run, op)) : notFound();
      }
      case 'issues/list-comments': {
        const issue = Number(params.issue_number);
        const since = typeof query.since === 'string' ? query.since : undefined;
        const all = comments.filter((c) => c.repo === repo() && c.issue === issue && (!since || c.updatedAt >= since));
        const perPage = Math.min(Number(query.per_page ?? 30), 100);
        const page = Math.max(Number(query.page ?? 1), 1);
        const pages = Math.max(Math.ceil(all.length / perPage), 1);
        const links: string[] = [];
        const link = (p: number, rel: string) => `<${baseUrl}/repos/${repo()}/issues/${issue}/comments?per_page=${perPage}&page=${p}>; rel="${rel}"`;
        if (page < pages) links.push(link(page + 1, 'next'), link(pages, 'last'));
        if (page > 1) links.push(link(1, 'first'), link(page - 1, 'prev'));
        return new HttpAnswer(200, all.slice((page - 1) * perPage, page * perPage).map(commentJson), links.length ? { link: links.join(', ') } : {});
      }
      case 'issues/create-comment': {
        const c: StoredComment = { id: nextId++, repo: repo(), issue: Number(params.issue_number), body: String(body.body), user: who.user, createdAt: now, updatedAt: now, updates: 0 };
        comments.push(c);
        return new HttpAnswer(201, commentJson(c), { location: `${baseUrl}/repos/${c.repo}/issues/comments/${c.id}` });
      }
      case 'issues/get-comment':
      case 'issues/update-comment':
      case 'issues/delete-comment': {
        const i = comments.findIndex((c) => c.id === Number(params.comment_id) && c.repo === repo());
        const c = comments[i];
        if (!c) return notFound();
        if (op.operationId === 'issues/delete-comment') {
          comments.splice(i, 1);
          return new HttpAnswer(204, undefined);
        }
        if (op.operationId === 'issues/update-comment') {
          c.body = String(body.body);
          c.updatedAt = now;
          c.updates++;
        }
        return new HttpAnswer(200, commentJson(c));
      }
      case 'pulls/list': {
        const state = (query.state as string | undefined) ?? 'open';
        const perPage = Math.min(Number(query.per_page ?? 30), 100);
        const page = Math.max(Number(query.page ?? 1), 1);
        const direction = (query.direction as string | undefined) ?? (query.sort === undefined || query.sort === 'created' ? 'desc' : 'asc');
        const sortKey = (query.sort as string | undefined) === 'updated' ? 'updatedAt' : 'createdAt';
        const list = (pulls.get(repo()) ?? [])
          .filter((p) => state === 'all' || p.state === state)
          .sort((a, b) => (a[sortKey] < b[sortKey] ? -1 : a[sortKey] > b[sortKey] ? 1 : a.number - b.number) * (direction === 'asc' ? 1 : -1));
        const pages = Math.max(Math.ceil(list.length / perPage), 1);
        const template = (exampleFor(doc, op, '200') as JsonObject[] | undefined)?.[0] ?? {};
        const items = list.slice((page - 1) * perPage, page * perPage).map((p) => pullJson(template, repo(), p));
        const headers: Record<string, string> = {};
        if (page < pages) {
          const q = `state=${state}${query.sort ? `&sort=${String(query.sort)}` : ''}${query.direction ? `&direction=${String(query.direction)}` : ''}&per_page=${perPage}`;
          headers.link = `<${baseUrl}/repos/${repo()}/pulls?${q}&page=${page + 1}>; rel="next", <${baseUrl}/repos/${repo()}/pulls?${q}&page=${pages}>; rel="last"`;
        }
        return new HttpAnswer(200, items, headers);
      }
      default: {
        // Not modelled: GitHub's own example answer, so a valid call still gets a plausible response.
        const status = successStatus(op);
        return new HttpAnswer(Number(status), exampleFor(doc, op, status));
      }
    }
  }

  function pullJson(template: JsonObject, repo: string, p: StoredPull): JsonObject {
    const head = structuredClone((template.head ?? {}) as JsonObject);
    const base = structuredClone((template.base ?? {}) as JsonObject);
    Object.assign(head, { sha: p.headSha, ref: p.headRef, label: `${repo.split('/')[0]}:${p.headRef}` });
    Object.assign(base, { ref: p.baseRef, label: `${repo.split('/')[0]}:${p.baseRef}` });
    return {
      ...template,
      id: 9_000_000 + p.number,
      number: p.number,
      title: p.title,
      state: p.state,
      draft: p.draft,
      requested_reviewers: [],
      requested_teams: [],
      head,
      base,
      url: `${baseUrl}/repos/${repo}/pulls/${p.number}`,
      html_url: webUrl(`/${repo}/pull/${p.number}`),
      created_at: p.createdAt,
      updated_at: p.updatedAt,
    };
  }

  async function readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) throw new Error(`request body over ${MAX_BODY_BYTES} bytes`);
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = (req.method ?? 'GET').toUpperCase();
    const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : (v ?? '')]));
    const record: RecordedRequest = { seq: ++seq, at: Date.now(), method, path: url.pathname, query: Object.fromEntries(url.searchParams), headers, body: undefined, status: 0, contractErrors: [] };
    requests.push(record);
    const errors = record.contractErrors;
    const send = async (a: HttpAnswer) => {
      record.status = a.status;
      if (errors.length) contractFailures.push({ seq: record.seq, method, path: record.path, ...(record.operationId ? { operationId: record.operationId } : {}), errors: [...errors] });
      res.writeHead(a.status, {
        'content-type': 'application/json; charset=utf-8',
        'x-github-media-type': 'github.v3; format=json',
        'x-ratelimit-limit': '5000',
        'x-ratelimit-remaining': '4999',
        'x-ratelimit-reset': String(Math.floor(Date.now() / 1000) + 3600),
        'x-github-request-id': `CONTRACT:${record.seq}`,
        ...a.headers,
      });
      res.end(a.body === undefined ? undefined : JSON.stringify(a.body));
    };

    let raw = '';
    try {
      raw = await readBody(req);
    } catch (err) {
      errors.push((err as Error).message);
      return send(new HttpAnswer(413, { message: (err as Error).message }));
    }
    if (raw) {
      if (!/json/i.test(headers['content-type'] ?? '')) errors.push(`body sent as ${headers['content-type'] || 'no content-type'}, not JSON`);
      try {
        record.body = JSON.parse(raw);
      } catch {
        errors.push('body is not JSON');
        return send(new HttpAnswer(400, { message: 'Problems parsing JSON' }));
      }
    }

    if (prefix && !url.pathname.startsWith(`${prefix}/`)) {
      errors.push(`path outside the API prefix ${prefix}`);
      return send(notFound());
    }
    const path = url.pathname.slice(prefix.length) || '/';
    record.path = path;
    const candidates = routes.filter((r) => r.regex.test(path));
    const route = candidates.find((r) => r.method === method);
    if (!route) {
      errors.push(candidates.length ? `${method} is not an operation of ${candidates[0]!.template} (only ${[...new Set(candidates.map((c) => c.method))].join(', ')})` : `no operation in the description matches ${method} ${path}`);
      return send(notFound());
    }
    record.operationId = route.operation.operationId;
    record.template = route.template;

    const match = route.regex.exec(path)!;
    const params: JsonObject = Object.fromEntries(route.names.map((n, i) => [n, decodeURIComponent(match[i + 1]!)]));
    const query: JsonObject = { ...record.query };
    const pv = ajv.params(route, 'path');
    if (!pv(params)) errors.push(...ajvErrors(pv.errors, 'path'));
    const qv = ajv.params(route, 'query');
    if (!qv(query)) errors.push(...ajvErrors(qv.errors, 'query'));
    const bodyValidator = ajv.body(route.operation);
    if (route.operation.requestBody?.required && record.body === undefined) errors.push('body: required by the operation, none sent');
    if (record.body !== undefined) {
      if (!bodyValidator && !route.operation.requestBody) errors.push('body: the operation takes no request body');
      else if (bodyValidator && !bodyValidator(record.body)) errors.push(...ajvErrors(bodyValidator.errors, 'body'));
    }
    errors.push(...runtimeRules(route.operation.operationId, record.body));

    const who = authenticate(req, route);
    if (who instanceof HttpAnswer) return send(who);
    if (errors.length) {
      return send(new HttpAnswer(422, { message: 'Validation Failed', errors: errors.map((e) => ({ resource: route.operation.operationId, code: 'invalid', message: e })), documentation_url: 'https://docs.github.com/rest' }));
    }

    const fault = takeFault();
    if (fault) {
      record.fault = fault.kind;
      switch (fault.kind) {
        case 'reset':
          record.status = 0;
          req.socket.destroy();
          return;
        case 'delay':
          await new Promise((r) => setTimeout(r, fault.ms));
          break;
        case 'secondary-rate-limit':
          return send(
            new HttpAnswer(
              fault.status ?? 403,
              { message: 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.', documentation_url: 'https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits' },
              { 'retry-after': String(fault.retryAfterSeconds) },
            ),
          );
        case 'rate-limit':
          return send(
            new HttpAnswer(
              403,
              { message: `API rate limit exceeded for installation ID 1.`, documentation_url: 'https://docs.github.com/rest/overview/rate-limits-for-the-rest-api' },
              { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(Math.ceil(Date.now() / 1000 + fault.resetInSeconds)) },
            ),
          );
        case 'status':
          return send(new HttpAnswer(fault.status, { message: fault.message ?? (fault.status >= 500 ? 'Server Error' : 'Error') }));
      }
    }

    const a = answer(route, params, query, (record.body ?? {}) as JsonObject, who);
    // Only answers this server builds are checked: GitHub's own examples do not always match its schemas.
    if (a.status < 300 && MODELLED.has(route.operation.operationId)) {
      const rv = ajv.response(route.operation, String(a.status));
      if (rv && !rv(a.body)) responseFailures.push({ seq: record.seq, method, path, operationId: route.operation.operationId, errors: ajvErrors(rv.errors, 'response') });
    }
    return send(a);
  }

  const sockets = new Set<Socket>();
  const makeServer = (): Server => {
    const s = createServer((req, res) => {
      handle(req, res).catch((err: Error) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message: `contract server bug: ${err.message}` }));
      });
    });
    s.on('connection', (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    return s;
  };
  let server: Server | undefined = makeServer();
  await new Promise<void>((resolve, reject) => {
    server!.once('error', reject);
    server!.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  baseUrl = `http://127.0.0.1:${port}${prefix}`;

  const closeServer = async () => {
    const s = server;
    server = undefined;
    if (!s) return;
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  };

  return {
    url: baseUrl,
    port,
    requests,
    contractFailures,
    responseFailures,
    comments,
    checkRuns,
    statuses,
    pulls,
    issuedTokens,
    inject(count, fault) {
      if (count > 0) faults.push({ count, fault });
    },
    down: closeServer,
    async up() {
      if (server) return;
      const s = makeServer();
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(port, '127.0.0.1', () => resolve());
      });
      server = s;
    },
    addPull(repo, pull) {
      const now = isoSeconds(Date.now());
      const p: StoredPull = { title: `PR ${pull.number}`, state: 'open', headRef: `branch-${pull.number}`, baseRef: 'main', draft: false, createdAt: now, updatedAt: now, ...pull };
      const list = pulls.get(repo) ?? [];
      list.push(p);
      pulls.set(repo, list);
      return p;
    },
    addComment(repo, issue, body, user = 'someone') {
      const now = isoSeconds(Date.now());
      const c: StoredComment = { id: nextId++, repo, issue, body, user, createdAt: now, updatedAt: now, updates: 0 };
      comments.push(c);
      return c;
    },
    calls(operationId) {
      return requests.filter((r) => r.operationId === operationId);
    },
    describeFailures() {
      return [...contractFailures.map((f) => `#${f.seq} ${f.method} ${f.path} (${f.operationId ?? 'no operation'}): ${f.errors.join('; ')}`), ...responseFailures.map((f) => `server response #${f.seq} ${f.operationId}: ${f.errors.join('; ')}`)].join('\n');
    },
    close: closeServer,
  };
}
