/**
 * Smoke checks, the deciding half: what request a check sends and whether a response passes.
 * The adapter (src/adapters/smoke.ts) does the talking. Messages are for the person who
 * reads the rollout log, so they say what was expected, what came back, and where.
 */
import type { HttpSmokeCheck, SmokeCheck } from './model.js';

export interface SmokeOutcome {
  ok: boolean;
  message: string;
}

/** What the adapter saw: header names in lower case, the body as text. */
export interface HttpResponseSnapshot {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface HttpRequestSpec {
  method: string;
  path: string;
  headers: Record<string, string>;
  /** Absent: no body. */
  body?: string;
}

const EXCERPT_CHARS = 200;

/** "POST /convert", "MQTT redforge/chunks -> redforge/vectors": a check as a log line names it. */
export function describeCheck(check: SmokeCheck): string {
  if (check.http) return `${(check.http.method ?? 'GET').toUpperCase()} ${check.http.path}`;
  if (check.mqtt) return `MQTT ${check.mqtt.publish.topic} -> ${check.mqtt.expect.topic}`;
  return '(empty check)';
}

/** The check's own name when fleet.yaml gives one, else its description. */
export function checkName(check: SmokeCheck): string {
  return check.name ?? describeCheck(check);
}

/**
 * Strings go as they are (text/plain unless the check sets a Content-Type); anything else
 * (objects, arrays, numbers, booleans) as JSON. No body for undefined or null.
 */
export function buildHttpRequest(check: HttpSmokeCheck): HttpRequestSpec {
  const headers: Record<string, string> = { ...(check.headers ?? {}) };
  const spec: HttpRequestSpec = { method: (check.method ?? 'GET').toUpperCase(), path: check.path, headers };
  if (check.body === undefined || check.body === null) return spec;
  const hasType = Object.keys(headers).some((h) => h.toLowerCase() === 'content-type');
  if (typeof check.body === 'string') {
    spec.body = check.body;
    if (!hasType) headers['Content-Type'] = 'text/plain; charset=utf-8';
  } else {
    spec.body = JSON.stringify(check.body);
    if (!hasType) headers['Content-Type'] = 'application/json';
  }
  return spec;
}

/** MQTT smoke payloads: strings as they are, anything else as JSON, nothing as "". */
export function encodeMqttPayload(payload: unknown): string {
  if (payload === undefined || payload === null) return '';
  return typeof payload === 'string' ? payload : JSON.stringify(payload);
}

/** Does a message received on expect.topic satisfy the check? */
export function mqttMessageMatches(payload: string, payloadContains: string | undefined): boolean {
  return payloadContains === undefined || payload.includes(payloadContains);
}

/**
 * Judge a response against an HTTP check's expectation. The status is checked first (a wrong
 * status makes the body checks meaningless); the body checks then all report, joined by "; ".
 */
export function evaluateHttpExpectation(expect: HttpSmokeCheck['expect'], res: HttpResponseSnapshot, redact: Redact = same): SmokeOutcome {
  const want = expect ?? {};
  const excerpt = (body: string) => bodyExcerpt(body, EXCERPT_CHARS, redact);
  const statusOk = want.status === undefined ? res.status >= 200 && res.status <= 299 : res.status === want.status;
  if (!statusOk) {
    const wanted = want.status === undefined ? 'a 2xx status' : `status ${want.status}`;
    return { ok: false, message: `expected ${wanted}, got ${res.status}: ${excerpt(res.body)}` };
  }
  const failures: string[] = [];
  const passed: string[] = [`HTTP ${res.status}`];

  if (want.body !== undefined) {
    if (res.body === want.body) passed.push('body matches');
    else failures.push(`expected body ${quote(want.body)}, got ${quote(res.body, redact)}`);
  }
  if (want.bodyContains !== undefined) {
    if (res.body.includes(want.bodyContains)) passed.push(`body contains ${quote(want.bodyContains)}`);
    else failures.push(`expected the body to contain ${quote(want.bodyContains)}, got: ${excerpt(res.body)}`);
  }
  if (want.json !== undefined) {
    const r = evaluateJsonExpectation(want.json, res.body, redact);
    (r.ok ? passed : failures).push(r.message);
  }
  return failures.length > 0 ? { ok: false, message: failures.join('; ') } : { ok: true, message: passed.join('; ') };
}

function evaluateJsonExpectation(json: NonNullable<NonNullable<HttpSmokeCheck['expect']>['json']>, body: string, redact: Redact): SmokeOutcome {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    return { ok: false, message: `expected a JSON body (for json path ${json.path}), got: ${bodyExcerpt(body, EXCERPT_CHARS, redact)}` };
  }
  const looked = lookupJsonPath(doc, json.path);
  const found = looked.found ? looked : { found: false as const, why: redact(looked.why) };
  const label = `json path ${json.path}`;
  // Neither equals nor exists: the path must at least be there.
  const mustExist = json.exists ?? (json.equals === undefined ? true : undefined);
  if (mustExist === true && !found.found) return { ok: false, message: `${label}: expected it to exist, but ${found.why}` };
  if (mustExist === false && found.found) return { ok: false, message: `${label}: expected it not to exist, got ${formatValue(found.value, redact)}` };
  if (json.equals !== undefined) {
    if (!found.found) return { ok: false, message: `${label}: expected ${formatValue(json.equals)}, but ${found.why}` };
    if (!deepEqual(found.value, json.equals)) return { ok: false, message: `${label}: expected ${formatValue(json.equals)}, got ${formatValue(found.value, redact)}` };
    return { ok: true, message: `${label} = ${formatValue(json.equals)}` };
  }
  return { ok: true, message: found.found ? `${label} exists` : `${label} is absent` };
}

export type JsonPathResult = { found: true; value: unknown } | { found: false; why: string };

/**
 * Follow a dotted path (a.b.0.c) through parsed JSON. Numeric segments index arrays; an empty
 * path is the whole document. When the path runs out, `why` says where and what was there.
 */
export function lookupJsonPath(doc: unknown, path: string): JsonPathResult {
  const segments = path === '' ? [] : path.split('.');
  let cur: unknown = doc;
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    const where = i === 0 ? 'the response' : segments.slice(0, i).join('.');
    if (Array.isArray(cur)) {
      const index = /^(0|[1-9][0-9]*)$/.test(seg) ? Number(seg) : -1;
      if (index < 0 || index >= cur.length) {
        return { found: false, why: `it is missing (${where} is a list of ${cur.length} item${cur.length === 1 ? '' : 's'}, no item ${quote(seg)})` };
      }
      cur = cur[index];
    } else if (isPlainObject(cur)) {
      if (!Object.hasOwn(cur, seg)) {
        const keys = Object.keys(cur);
        const has = keys.length === 0 ? 'it is empty' : `it has ${keys.slice(0, 8).map((k) => quote(k)).join(', ')}${keys.length > 8 ? ', …' : ''}`;
        return { found: false, why: `it is missing (${where} has no ${quote(seg)}; ${has})` };
      }
      cur = cur[seg];
    } else {
      return { found: false, why: `it is missing (${where} is ${typeName(cur)}, not an object or list)` };
    }
  }
  return { found: true, value: cur };
}

/** Equality of JSON values: key order does not matter, types do (2 is not "2"). */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((v, i) => deepEqual(v, b[i]));
  }
  if (isPlainObject(a) && isPlainObject(b)) {
    const ka = Object.keys(a);
    if (ka.length !== Object.keys(b).length) return false;
    return ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

/** Takes secrets out of a text from an instance; applied before anything is quoted or cut. */
export type Redact = (text: string) => string;
const same: Redact = (text) => text;

/** The first 200 characters of a body, on one line, for a log message; secrets redacted first. */
export function bodyExcerpt(body: string, max = EXCERPT_CHARS, redact: Redact = same): string {
  const flat = redact(body).replace(/\s+/g, ' ').trim();
  if (flat === '') return '(empty body)';
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

function formatValue(v: unknown, redact: Redact = same): string {
  if (v === undefined) return 'undefined';
  const s = redact(JSON.stringify(v));
  return s.length > 100 ? `${s.slice(0, 100)}…` : s;
}

function quote(text: string, redact: Redact = same): string {
  const s = redact(text);
  return formatValue(s.length > EXCERPT_CHARS ? `${s.slice(0, EXCERPT_CHARS)}…` : s);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return `the string ${formatValue(v)}`;
  return `the ${typeof v} ${formatValue(v)}`;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
