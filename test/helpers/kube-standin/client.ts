/**
 * A few raw HTTPS calls to the stand-in for tests that set things up or look at them directly
 * (not through Tower's client): JSON in and out, the stand-in's CA and token.
 */
import https from 'node:https';
import { readFileSync } from 'node:fs';
import type { Standin } from './server.js';

export interface ApiAnswer<T = unknown> {
  status: number;
  body: T;
  text: string;
}

export function api<T = Record<string, unknown>>(s: Pick<Standin, 'url' | 'token' | 'caFile'>, method: string, path: string, body?: unknown, contentType = 'application/json', timeoutMs = 10_000): Promise<ApiAnswer<T>> {
  const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request(
      `${s.url}${path}`,
      { method, ca: readFileSync(s.caFile), timeout: timeoutMs, headers: { Authorization: `Bearer ${s.token}`, Accept: 'application/json', ...(data !== undefined ? { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(data) } : {}) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON (a proxied answer)
          }
          resolve({ status: res.statusCode ?? 0, body: parsed as T, text });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    if (data !== undefined) req.write(data);
    req.end();
  });
}

/** Polls fn every 100 ms until it returns something truthy; bounded. */
export async function eventually<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`not so after ${timeoutMs} ms: ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
