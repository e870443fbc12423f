/**
 * runSmokeChecks against a real HTTP server and a private mosquitto. The MQTT "instance" is a
 * client that answers on smoke/out what it gets on smoke/in, as an embeddings colour would.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSmokeChecks } from '../../src/adapters/smoke.js';
import { freePort, startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';

let broker: Mosquitto | undefined;
let server: Server | undefined;
let baseUrl = '';
let responder: MqttClient | undefined;
const seenRequests: string[] = [];

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => resolve(body));
  });
}

beforeAll(async () => {
  broker = await startMosquitto();
  server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      seenRequests.push(`${req.method} ${req.url}`);
      if (req.url === '/echo') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ method: req.method, contentType: req.headers['content-type'] ?? null, auth: req.headers['x-token'] ?? null, body }));
      } else if (req.url === '/slow') {
        setTimeout(() => res.end('late'), 1500);
      } else if (req.url === '/broken') {
        res.writeHead(502);
        res.end('upstream embeddings did not answer');
      } else if (req.url === '/redirect') {
        res.writeHead(302, { location: '/echo' });
        res.end();
      } else {
        res.writeHead(404);
        res.end(`Cannot ${req.method} ${req.url}`);
      }
    })();
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  responder = await mqtt.connectAsync(broker.url, { clientId: 'smoke-responder', reconnectPeriod: 0 });
  await responder.subscribeAsync('smoke/in', { qos: 1 });
  responder.on('message', (_t, payload) => {
    const text = payload.toString();
    const reply = text.includes('"noise"') ? '{"docId":"someone-else"}' : text.includes('"ignore"') ? null : JSON.stringify({ echoed: JSON.parse(text) as unknown });
    if (reply) void responder!.publishAsync('smoke/out', reply, { qos: 1 });
  });
  // A stale retained message on the expect topic must not pass for an answer.
  await responder.publishAsync('smoke/out', '{"echoed":{"docId":"tower-smoke"}}', { qos: 1, retain: true });
});

afterAll(async () => {
  await responder?.endAsync().catch(() => undefined);
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  await broker?.stop();
});

describe('runSmokeChecks over HTTP', () => {
  it('sends strings as text, objects as JSON, headers as given, and judges the answer', async () => {
    const results = await runSmokeChecks({
      baseUrl,
      defaultTimeoutMs: 2000,
      checks: [
        { name: 'text body', http: { method: 'POST', path: '/echo', body: '  hello \r\n', expect: { status: 200, json: { path: 'body', equals: '  hello \r\n' } } } },
        { http: { method: 'POST', path: '/echo', body: { docId: 'smoke' }, expect: { json: { path: 'contentType', equals: 'application/json' } } } },
        { http: { method: 'PUT', path: '/echo', headers: { 'Content-Type': 'text/csv', 'X-Token': 't0k' }, body: 'a,b', expect: { bodyContains: '"auth":"t0k"', json: { path: 'contentType', equals: 'text/csv' } } } },
        { http: { path: '/echo', expect: { json: { path: 'body', equals: '' } } } },
      ],
    });
    expect(results.map((r) => [r.name, r.ok, r.message])).toEqual([
      ['text body', true, 'HTTP 200; json path body = "  hello \\r\\n"'],
      ['POST /echo', true, 'HTTP 200; json path contentType = "application/json"'],
      ['PUT /echo', true, 'HTTP 200; body contains "\\"auth\\":\\"t0k\\""; json path contentType = "text/csv"'],
      ['GET /echo', true, 'HTTP 200; json path body = ""'],
    ]);
    for (const r of results) expect(r.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('fails with messages a person understands, and never throws', async () => {
    const closedPort = await freePort();
    const results = await runSmokeChecks({
      baseUrl,
      defaultTimeoutMs: 2000,
      checks: [
        { http: { method: 'POST', path: '/broken', expect: { status: 200 } } },
        { http: { path: '/missing' } },
        { http: { path: '/redirect' } },
        { name: 'slow', timeout: '300ms', http: { path: '/slow' } },
        { http: { method: 'POST', path: '/echo', body: { a: 1 }, expect: { json: { path: 'body.a', equals: 1 } } } },
      ],
    });
    expect(results.map((r) => [r.ok, r.message])).toEqual([
      [false, 'expected status 200, got 502: upstream embeddings did not answer'],
      [false, 'expected a 2xx status, got 404: Cannot GET /missing'],
      [false, 'expected a 2xx status, got 302: (empty body)'],
      [false, `GET ${baseUrl}/slow: no answer within 300 ms`],
      // the echo's body is a JSON string, not an object: the path stops there
      [false, 'json path body.a: expected 1, but it is missing (body is the string "{\\"a\\":1}", not an object or list)'],
    ]);
    expect(results[3]!.durationMs).toBeLessThan(1400);

    const refused = await runSmokeChecks({ baseUrl: `http://127.0.0.1:${closedPort}`, checks: [{ http: { path: '/healthz' } }] });
    expect(refused).toEqual([{ name: 'GET /healthz', ok: false, message: `GET http://127.0.0.1:${closedPort}/healthz: connection refused (is the instance running on this port?)`, durationMs: expect.any(Number) as number }]);
  });

  it('runs the checks one after another, in order', async () => {
    seenRequests.length = 0;
    await runSmokeChecks({ baseUrl, checks: ['/echo?1', '/echo?2', '/missing?3', '/echo?4'].map((path) => ({ http: { path } })) });
    expect(seenRequests).toEqual(['GET /echo?1', 'GET /echo?2', 'GET /missing?3', 'GET /echo?4']);
  });
});

describe('runSmokeChecks over MQTT', () => {
  it('publishes, then waits for the answer on expect.topic (ignoring retained messages)', async () => {
    const results = await runSmokeChecks({
      baseUrl,
      mqtt: { url: broker!.url },
      checks: [
        {
          name: 'chunk -> vector',
          timeout: '5s',
          mqtt: { publish: { topic: 'smoke/in', qos: 1, payload: { docId: 'tower-smoke', smoke: true } }, expect: { topic: 'smoke/out', payloadContains: '"docId":"tower-smoke"' } },
        },
        { mqtt: { publish: { topic: 'smoke/in', payload: '{"plain":"text"}' }, expect: { topic: 'smoke/out' } } },
      ],
    });
    expect(results.map((r) => [r.name, r.ok, r.message])).toEqual([
      ['chunk -> vector', true, 'got a message on smoke/out: {"echoed":{"docId":"tower-smoke","smoke":true}}'],
      ['MQTT smoke/in -> smoke/out', true, 'got a message on smoke/out: {"echoed":{"plain":"text"}}'],
    ]);
  });

  it('fails clearly: nothing matching within the timeout, no broker, broker down', async () => {
    const closedPort = await freePort();
    const noise = { mqtt: { publish: { topic: 'smoke/in', payload: { kind: 'noise' } }, expect: { topic: 'smoke/out', payloadContains: '"docId":"tower-smoke"' } }, timeout: '700ms' };
    const silence = { mqtt: { publish: { topic: 'smoke/in', payload: { kind: 'ignore' } }, expect: { topic: 'smoke/out' } }, timeout: '500ms' };
    const [a, b] = await runSmokeChecks({ baseUrl, mqtt: { url: broker!.url }, checks: [noise, silence] });
    expect(a!.message).toBe('no message on smoke/out containing "\\"docId\\":\\"tower-smoke\\"" within 700 ms after publishing to smoke/in (1 other message arrived, the last: {"docId":"someone-else"})');
    expect(a!.ok).toBe(false);
    expect(a!.durationMs).toBeGreaterThanOrEqual(650);
    expect(a!.durationMs).toBeLessThan(3000);
    expect(b).toMatchObject({ ok: false, message: 'no message on smoke/out within 500 ms after publishing to smoke/in (nothing else arrived)' });

    const [c] = await runSmokeChecks({ baseUrl, checks: [silence] });
    expect(c).toMatchObject({ ok: false, message: 'MQTT check, but the fleet has no MQTT broker configured' });

    const [d] = await runSmokeChecks({ baseUrl, mqtt: { url: `mqtt://127.0.0.1:${closedPort}` }, checks: [silence] });
    expect(d!.ok).toBe(false);
    expect(d!.message).toMatch(new RegExp(`^cannot connect to the MQTT broker at mqtt://127\\.0\\.0\\.1:${closedPort}: .*ECONNREFUSED`));
    expect(d!.durationMs).toBeLessThan(2000);
  });

  it('leaves no client connected behind', async () => {
    await runSmokeChecks({ baseUrl, mqtt: { url: broker!.url }, checks: [{ mqtt: { publish: { topic: 'smoke/in', payload: { a: 1 } }, expect: { topic: 'smoke/out' } } }] });
    // Every smoke client that connected (as its log says) has disconnected again.
    const ids = () => [...broker!.log().matchAll(/New client connected from \S+ as (tower-smoke-[0-9a-f]+)/g)].map((m) => m[1]!);
    const gone = (id: string) => broker!.log().includes(`Client ${id} disconnected`);
    for (let i = 0; i < 50 && !ids().every(gone); i++) await new Promise((r) => setTimeout(r, 50));
    expect(ids().length).toBeGreaterThanOrEqual(4);
    expect(ids().filter((id) => !gone(id))).toEqual([]);
  });
});
