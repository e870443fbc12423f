/**
 * `tower run` as a child process under hostile callers — the wiring as users get it (run.ts
 * serving createApp with the webhook secret and the logger): a webhook without a signature
 * refused before its body, a forged one refused and logged, event streams capped with
 * Retry-After while /healthz answers, 5,000 instances missing a secret making a short status,
 * and the daemon's memory while slow uploads keep coming. Nothing starts Node-RED: every
 * instance misses a secret, so the preflight fails before anything changes.
 */
import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';
import { until } from '../helpers/status-fixture.js';

const SECRET = 'hostile-e2e-webhook-secret';
const INSTANCES = 2_000;
const dirs: string[] = [];
const sockets: Socket[] = [];
let d: DaemonProcess;
let port: number;

function tmp(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

beforeAll(async () => {
  const repo = tmp('tower-hostile-repo-');
  mkdirSync(join(repo, 'flows'));
  writeFileSync(join(repo, 'flows', 'hello.json'), JSON.stringify([{ id: 't', type: 'tab', label: 'hello' }]));
  const lines = ['apiVersion: tower.redforge.dev/v1', 'kind: Fleet', 'metadata: { name: hostile }', 'spec:', '  plan: { order: sequential }', '  instances:'];
  for (let i = 0; i < INSTANCES; i++) lines.push(`    - name: i${i}`, '      flows: [flows/hello.json]', `      port: ${30_000 + i}`, `      env: { API_KEY: { fromEnv: TOWER_E2E_UNSET_${i} } }`);
  writeFileSync(join(repo, 'fleet.yaml'), `${lines.join('\n')}\n`);
  d = await startDaemon(['--repo', repo, '--state-dir', tmp('tower-hostile-state-'), '--interval', '1h'], { ...process.env, TOWER_WEBHOOK_SECRET: SECRET });
  port = Number(new URL(d.url).port);
  await d.waitFor((s) => Boolean(s.lastError?.includes('TOWER_E2E_UNSET_0')), 60_000, 'the preflight failure');
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await d?.kill('SIGTERM');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A raw connection that sends `head` and collects what comes back. */
function raw(head: string): { socket: Socket; text: () => string; closed: () => boolean } {
  const socket = connect(port, '127.0.0.1');
  sockets.push(socket);
  let text = '';
  let closed = false;
  socket.setEncoding('latin1');
  socket.on('data', (c: string) => (text += c));
  socket.on('error', () => {});
  socket.on('close', () => (closed = true));
  socket.write(head);
  return { socket, text: () => text, closed: () => closed };
}

const rssOf = (pid: number) => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

describe('tower run under hostile callers', () => {
  it('keeps a 2,000-instance preflight failure short: twenty problems at most, the rest counted', async () => {
    const s = await d.status();
    expect(s.reason).toBe('RetryPending');
    expect(s.lastError!.length).toBeLessThanOrEqual(1_500);
    expect(s.lastError).toMatch(/\nand 1,9\d\d more problems$/);
    expect(s.message.length).toBeLessThanOrEqual(2_000);
    expect(s.message).toMatch(/more problems$/);
    const text = JSON.stringify(await d.status());
    expect(text.length).toBeLessThan(10_000);
  });

  it('answers a webhook without a signature 401 at once, with its 20 MB body never sent', async () => {
    const r = raw(`POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: ${20 * 1024 * 1024}\r\nX-GitHub-Event: push\r\n\r\n`);
    await until(() => r.text().includes('\r\n\r\n'), 2_000, 'an answer');
    expect(r.text()).toMatch(/^HTTP\/1\.1 401 /);
    expect(r.text().toLowerCase()).toContain('x-content-type-options: nosniff');
    await until(() => r.closed(), 3_000, 'the connection closed');
  });

  it('refuses a forged delivery and logs it once; a signed one is queued', async () => {
    const body = JSON.stringify({ zen: 'Design for failure.', hook_id: 1 });
    const from = d.logs.length;
    const forged = await fetch(`${d.url}hooks/github`, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-github-event': 'ping', 'x-github-delivery': 'forged-1', 'x-hub-signature-256': `sha256=${createHmac('sha256', 'not-the-secret').update(body).digest('hex')}` } });
    expect(forged.status).toBe(401);
    const line = await d.waitForLog((l) => l.msg === 'webhook refused: signature does not match', 5_000, from);
    expect(line).toMatchObject({ delivery: 'forged-1', bytes: body.length });
    const signed = await fetch(`${d.url}hooks/github`, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-github-event': 'ping', 'x-hub-signature-256': `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}` } });
    expect(signed.status).toBe(200);
    expect(await signed.json()).toEqual({ pong: true });
    const put = await fetch(`${d.url}hooks/github`, { method: 'PUT' });
    expect(put.status).toBe(405);
    expect(put.headers.get('allow')).toBe('POST');
  });

  it('opens 256 event streams and answers the next 503 with Retry-After, /healthz answering throughout', async () => {
    const streams = Array.from({ length: 300 }, () => raw(`GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n`));
    await until(() => streams.every((s) => /^HTTP\/1\.1 \d{3}/.test(s.text())), 15_000, 'every stream answered');
    const ok = streams.filter((s) => s.text().startsWith('HTTP/1.1 200'));
    const refused = streams.filter((s) => s.text().startsWith('HTTP/1.1 503'));
    expect(ok).toHaveLength(256);
    expect(refused).toHaveLength(44);
    expect(refused[0]!.text().toLowerCase()).toContain('retry-after: 5');
    const t0 = performance.now();
    const health = await fetch(`${d.url}healthz`, { signal: AbortSignal.timeout(2_000) });
    expect(health.status).toBe(200);
    expect(performance.now() - t0).toBeLessThan(1_000);
    for (const s of streams) s.socket.destroy();
    // The places free up once the clients are gone.
    await until(async () => {
      const res = await fetch(`${d.url}api/v1/events`, { signal: AbortSignal.timeout(2_000) });
      await res.body?.cancel();
      return res.status === 200;
    }, 5_000, 'a stream opens again');
  });

  it('holds its memory while 40 slow unauthenticated uploads keep coming for 12 s', async () => {
    const before = rssOf(d.child.pid!);
    let peak = before;
    let running = true;
    const answers: string[] = [];
    const uploader = () => {
      if (!running) return;
      const r = raw(`POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: ${25 * 1000 * 1000}\r\nX-Hub-Signature-256: sha256=${'0'.repeat(64)}\r\n\r\n`);
      const drip = setInterval(() => !r.closed() && r.socket.write(Buffer.alloc(4096, 0x7b)), 100);
      r.socket.on('close', () => {
        clearInterval(drip);
        answers.push(r.text().slice(9, 12) || 'closed');
        setTimeout(uploader, 100);
      });
      r.socket.on('data', () => r.socket.destroy());
    };
    for (let i = 0; i < 40; i++) uploader();
    const t0 = Date.now();
    while (Date.now() - t0 < 12_000) {
      peak = Math.max(peak, rssOf(d.child.pid!));
      await new Promise((res) => setTimeout(res, 100));
    }
    running = false;
    for (const s of sockets) s.destroy();
    expect(peak - before, `RSS ${before} → peak ${peak}`).toBeLessThan(100 * 1024 * 1024);
    // The budget (64 MiB) admits two declared 25 MB bodies; the rest are refused 503 until a place frees (10 s deadline: 408).
    expect(answers.filter((a) => a === '503').length).toBeGreaterThan(40);
    expect(answers).toContain('408');
    expect((await fetch(`${d.url}healthz`)).status).toBe(200);
  });
});
