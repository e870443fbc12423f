/**
 * Runs an instance's smoke checks against one colour: HTTP against its own port, MQTT through
 * the fleet's broker. A check that cannot even be attempted (connection refused, timeout, no
 * broker) is a failed check with a message, never an exception: the rollout decides.
 */
import type { Agent } from 'node:https';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import axios, { AxiosError } from 'axios';
import mqtt from 'mqtt';
import type { MqttClient } from 'mqtt';
import type { HttpSmokeCheck, MqttSmokeCheck, SmokeCheck } from '../core/model.js';
import { formatDuration, parseDuration } from '../core/duration.js';
import type { BrokerLogin } from '../core/broker-credentials.js';
import { maskUrlPassword } from '../core/redact.js';
import { mqttLoginOptions } from './mqtt/external-broker.js';
import {
  bodyExcerpt,
  buildHttpRequest,
  checkName,
  encodeMqttPayload,
  evaluateHttpExpectation,
  mqttMessageMatches,
  type SmokeOutcome,
} from '../core/smoke.js';

export { parseDuration } from '../core/duration.js';

export interface SmokeResult {
  name: string;
  ok: boolean;
  message: string;
  durationMs: number;
}

export interface RunSmokeChecksOptions {
  /** The colour's own address, e.g. http://127.0.0.1:41881 (no trailing path). */
  baseUrl: string;
  checks: SmokeCheck[];
  /** The fleet's broker, e.g. mqtt://127.0.0.1:1883, and its login; without it MQTT checks fail. */
  mqtt?: { url: string } & BrokerLogin;
  /** For checks without their own `timeout`. Default 5 s. */
  defaultTimeoutMs?: number;
  /** Takes the instance's secrets out of what the checks quote of its answers (before quoting and cutting). */
  redact?: (text: string) => string;
  /** How HTTP checks reach baseUrl when it is behind an HTTPS proxy with its own login (the Kubernetes API server's pod proxy): agent and headers. */
  transport?: () => Promise<{ httpsAgent?: Agent; headers?: Record<string, string> }>;
}

const DEFAULT_TIMEOUT_MS = 5000;
// A smoke response is small; a runaway one must not fill Tower's memory.
const MAX_BODY_BYTES = 10 * 1024 * 1024;

/** One after another, in fleet.yaml order: checks may depend on what an earlier one did. */
export async function runSmokeChecks(opts: RunSmokeChecksOptions): Promise<SmokeResult[]> {
  const results: SmokeResult[] = [];
  const redact = opts.redact ?? ((text: string) => text);
  for (const check of opts.checks) {
    const started = performance.now();
    let outcome: SmokeOutcome;
    try {
      const timeoutMs = check.timeout !== undefined ? parseDuration(check.timeout) : (opts.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS);
      if (check.http) outcome = await runHttpCheck(opts.baseUrl, check.http, timeoutMs, redact, opts.transport);
      else if (check.mqtt) outcome = opts.mqtt ? await runMqttCheck(opts.mqtt, check.mqtt, timeoutMs, redact) : { ok: false, message: 'MQTT check, but the fleet has no MQTT broker configured' };
      else outcome = { ok: false, message: 'the check has neither http nor mqtt' };
    } catch (err) {
      // Only a bug gets here (e.g. an invalid timeout that validation should have caught).
      outcome = { ok: false, message: errorText(err) };
    }
    results.push({ name: checkName(check), ok: outcome.ok, message: redact(outcome.message), durationMs: Math.round(performance.now() - started) });
  }
  return results;
}

async function runHttpCheck(baseUrl: string, check: HttpSmokeCheck, timeoutMs: number, redact: (text: string) => string, transport: RunSmokeChecksOptions['transport']): Promise<SmokeOutcome> {
  const req = buildHttpRequest(check);
  const url = baseUrl.replace(/\/+$/, '') + req.path;
  try {
    const via = transport ? await transport() : undefined;
    const res = await axios.request<string>({
      method: req.method,
      url,
      // The check's own headers go to Node-RED; the proxy's login (its Authorization) stays the proxy's.
      headers: { ...req.headers, ...via?.headers },
      ...(via?.httpsAgent ? { httpsAgent: via.httpsAgent, proxy: false as const } : {}),
      data: req.body,
      timeout: timeoutMs,
      validateStatus: () => true,
      responseType: 'text',
      // Keep the body exactly as it came: the expectation parses it when it asks for JSON.
      transformResponse: [(data: unknown) => data],
      transformRequest: [(data: unknown) => data],
      maxContentLength: MAX_BODY_BYTES,
      maxRedirects: 0,
    });
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(res.headers)) {
      if (v !== undefined && v !== null) headers[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : String(v);
    }
    const body = typeof res.data === 'string' ? res.data : res.data === undefined || res.data === null ? '' : String(res.data);
    return evaluateHttpExpectation(check.expect, { status: res.status, headers, body }, redact);
  } catch (err) {
    return { ok: false, message: `${req.method} ${url}: ${httpErrorText(err, timeoutMs)}` };
  }
}

function httpErrorText(err: unknown, timeoutMs: number): string {
  if (err instanceof AxiosError) {
    if (err.code === 'ECONNABORTED' || err.code === 'ETIMEDOUT') return `no answer within ${formatDuration(timeoutMs)}`;
    if (err.code === 'ECONNREFUSED') return 'connection refused (is the instance running on this port?)';
    if (err.code === 'ECONNRESET') return 'the connection was reset before an answer came';
    if (err.code === 'ERR_BAD_RESPONSE' && /maxContentLength/.test(err.message)) return `the answer is larger than ${MAX_BODY_BYTES} bytes`;
    return err.code ? `${err.code}: ${err.message}` : err.message;
  }
  return errorText(err);
}

/**
 * Subscribe to expect.topic first, then publish, then wait for a matching message — all within
 * one deadline. Retained messages are ignored: they are old news, not an answer to this check.
 */
async function runMqttCheck(broker: { url: string } & BrokerLogin, check: MqttSmokeCheck, timeoutMs: number, redact: (text: string) => string): Promise<SmokeOutcome> {
  const deadline = performance.now() + timeoutMs;
  const left = () => Math.max(0, deadline - performance.now());
  let client: MqttClient | undefined;
  let seen = 0;
  let lastSeen: string | undefined;
  try {
    client = await connect(broker, timeoutMs);
    const c = client;
    let matched: (payload: string) => void = () => undefined;
    const answer = new Promise<string>((resolve) => {
      matched = resolve;
    });
    c.on('message', (_topic, payload, packet) => {
      if (packet.retain) return;
      const text = payload.toString('utf8');
      if (mqttMessageMatches(text, check.expect.payloadContains)) matched(text);
      else {
        seen++;
        lastSeen = text;
      }
    });
    const stage = async <T>(what: string, p: Promise<T>): Promise<T> => withTimeout(p, left(), `${what}: no answer from the broker within ${formatDuration(timeoutMs)}`);
    await stage(`subscribing to ${check.expect.topic}`, c.subscribeAsync(check.expect.topic, { qos: 1 }));
    await stage(`publishing to ${check.publish.topic}`, c.publishAsync(check.publish.topic, encodeMqttPayload(check.publish.payload), { qos: check.publish.qos ?? 1 }));
    const got = await withTimeout(answer, left(), '');
    return { ok: true, message: `got a message on ${check.expect.topic}: ${bodyExcerpt(got, 120, redact)}` };
  } catch (err) {
    if (err instanceof DeadlineError && err.message === '') {
      const wanted = check.expect.payloadContains === undefined ? '' : ` containing ${JSON.stringify(check.expect.payloadContains)}`;
      const others = seen === 0 ? 'nothing else arrived' : `${seen} other message${seen === 1 ? '' : 's'} arrived, the last: ${bodyExcerpt(lastSeen ?? '', 120, redact)}`;
      return { ok: false, message: `no message on ${check.expect.topic}${wanted} within ${formatDuration(timeoutMs)} after publishing to ${check.publish.topic} (${others})` };
    }
    return { ok: false, message: errorText(err) };
  } finally {
    if (client) await disconnect(client);
  }
}

/** Connect once, no retries: a broker that is not there is the check's answer. */
function connect(broker: { url: string } & BrokerLogin, timeoutMs: number): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(broker.url, {
      ...mqttLoginOptions(broker),
      clientId: `tower-smoke-${randomBytes(6).toString('hex')}`,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: timeoutMs,
      protocolVersion: 4,
    });
    const fail = (why: string) => {
      client.removeAllListeners();
      client.on('error', () => undefined);
      client.end(true);
      reject(new Error(`cannot connect to the MQTT broker at ${maskUrlPassword(broker.url)}: ${why}`));
    };
    const timer = setTimeout(() => fail(`no answer within ${formatDuration(timeoutMs)}`), timeoutMs);
    client.once('connect', () => {
      clearTimeout(timer);
      client.removeAllListeners('error');
      client.removeAllListeners('close');
      client.on('error', () => undefined); // late socket errors end the check through its deadline
      resolve(client);
    });
    client.once('error', (err) => {
      clearTimeout(timer);
      fail(errorText(err));
    });
    client.once('close', () => {
      clearTimeout(timer);
      fail('the connection was closed');
    });
  });
}

async function disconnect(client: MqttClient): Promise<void> {
  await withTimeout(client.endAsync(), 1000, 'end').catch(() => client.end(true));
}

class DeadlineError extends Error {}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(message)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}
