/**
 * analysis.prometheus's query against a stand-in for Prometheus's HTTP API (GET /api/v1/query,
 * the JSON Prometheus answers): a scalar, a one-sample vector, and what is refused.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryPrometheus } from '../../src/adapters/metrics/prometheus.js';

let server: http.Server;
let base: string;
const seen: { query: string | null; authorization?: string }[] = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const query = url.searchParams.get('query');
    seen.push({ query, ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) });
    const answers: Record<string, [number, unknown]> = {
      scalar: [200, { status: 'success', data: { resultType: 'scalar', result: [1700000000, '0.25'] } }],
      one: [200, { status: 'success', data: { resultType: 'vector', result: [{ metric: {}, value: [1700000000, '3'] }] } }],
      two: [200, { status: 'success', data: { resultType: 'vector', result: [{ metric: { a: '1' }, value: [1, '1'] }, { metric: { a: '2' }, value: [1, '2'] }] } }],
      bad: [400, { status: 'error', errorType: 'bad_data', error: 'parse error' }],
      nan: [200, { status: 'success', data: { resultType: 'scalar', result: [1, 'NaN'] } }],
    };
    const [status, body] = answers[query ?? ''] ?? [404, { status: 'error', error: 'no such query' }];
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('queryPrometheus', () => {
  it('reads a scalar and a one-sample vector', async () => {
    expect(await queryPrometheus(base, 'scalar')).toBe(0.25);
    expect(await queryPrometheus(`${base}/`, 'one')).toBe(3);
  });

  it('refuses several series, errors and non-numbers, naming only the server', async () => {
    await expect(queryPrometheus(base, 'two')).rejects.toThrow(/gives 2 series; the check needs exactly one number/);
    await expect(queryPrometheus(base, 'bad')).rejects.toThrow(/HTTP 400/);
    await expect(queryPrometheus(base, 'nan')).rejects.toThrow(/"NaN" is not a number/);
    const withLogin = base.replace('http://', 'http://reader:s3cret@');
    const err = await queryPrometheus(withLogin, 'two').catch((e: Error) => e);
    expect(String(err)).not.toContain('s3cret');
    expect(seen.at(-1)?.authorization).toBe(`Basic ${Buffer.from('reader:s3cret').toString('base64')}`);
  });
});
