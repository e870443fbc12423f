/**
 * The pieces of `tower logs` that need no Node-RED: the last lines of a real file and
 * following it (appends, a partial last line, truncation, the writer stopping, abort), cutting
 * bytes into lines (long lines, multi-byte characters across chunks), Docker's multiplexed
 * frames, and what the colour redactor takes out.
 */
import { appendFileSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { colorRedactor, envOfList, LineSplitter, MAX_LINE_CHARS, maskUrlPasswords, redactedLines, tailFile, type Line } from '../../src/adapters/runtime/logs.js';

const dir = mkdtempSync(join(tmpdir(), 'tower-log-tail-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function collect(lines: AsyncIterable<Line>): Promise<string[]> {
  const out: string[] = [];
  for await (const l of lines) out.push(l.text);
  return out;
}

const notRunning = async () => false;

describe('tailFile', () => {
  it('gives the last N lines, all of a shorter file, nothing of a missing one', async () => {
    const file = join(dir, 'a.log');
    writeFileSync(file, Array.from({ length: 50 }, (_, i) => `line ${i + 1}`).join('\n') + '\n');
    expect(await collect(tailFile(file, { lines: 3, running: notRunning }))).toEqual(['line 48', 'line 49', 'line 50']);
    expect(await collect(tailFile(file, { lines: 1, running: notRunning }))).toEqual(['line 50']);
    expect(await collect(tailFile(file, { lines: 500, running: notRunning }))).toHaveLength(50);
    expect(await collect(tailFile(join(dir, 'missing.log'), { lines: 10, running: notRunning }))).toEqual([]);
    expect(await collect(tailFile(join(dir, 'missing.log'), { lines: 10, follow: true, running: notRunning }))).toEqual([]);
  });

  it('counts a last line without a newline, and blank lines; scans back over many chunks', async () => {
    const file = join(dir, 'b.log');
    writeFileSync(file, 'one\n\nthree\r\nfour');
    expect(await collect(tailFile(file, { lines: 3, running: notRunning }))).toEqual(['', 'three', 'four']);
    // 20,000 lines of 100 bytes: ~2 MB, the start found by reading back from the end.
    const big = join(dir, 'big.log');
    writeFileSync(big, Array.from({ length: 20_000 }, (_, i) => `${String(i).padStart(5, '0')} ${'x'.repeat(94)}`).join('\n') + '\n');
    const last = await collect(tailFile(big, { lines: 10_000, running: notRunning }));
    expect(last).toHaveLength(10_000);
    expect(last[0]).toMatch(/^10000 x/);
    expect(last.at(-1)).toMatch(/^19999 x/);
  });

  it('follows appends (a line finished in two writes is one line) until aborted', async () => {
    const file = join(dir, 'c.log');
    writeFileSync(file, 'old 1\nold 2\nhalf');
    const controller = new AbortController();
    const got: string[] = [];
    const done = (async () => {
      // The last two lines are "old 2" and the unfinished "half", which waits for its end.
      for await (const l of tailFile(file, { lines: 2, follow: true, signal: controller.signal, running: async () => true })) got.push(l.text);
    })();
    await until(() => got.length === 1);
    expect(got).toEqual(['old 2']);
    appendFileSync(file, ' and the rest\nnew 1\n');
    await until(() => got.length === 3);
    expect(got).toEqual(['old 2', 'half and the rest', 'new 1']);
    const t = Date.now();
    controller.abort();
    await done;
    expect(Date.now() - t).toBeLessThan(1_000);
  });

  it('reads a truncated or replaced file from its start, and ends after a last read when the writer stops', async () => {
    const file = join(dir, 'd.log');
    writeFileSync(file, 'first life\n');
    let running = true;
    const got: string[] = [];
    const done = (async () => {
      for await (const l of tailFile(file, { lines: 10, follow: true, running: async () => running })) got.push(l.text);
    })();
    await until(() => got.length === 1);
    // Truncated (to less than was read: a truncation followed by more than that before the next look goes unseen, as with tail -f).
    truncateSync(file, 0);
    appendFileSync(file, '2nd\n');
    await until(() => got.length === 2);
    rmSync(file);
    writeFileSync(file, 'third life\n');
    await until(() => got.length === 3);
    appendFileSync(file, 'last words');
    running = false;
    await done;
    expect(got).toEqual(['first life', '2nd', 'third life', 'last words']);
  });
});

describe('LineSplitter', () => {
  it('keeps a multi-byte character split across chunks whole', () => {
    const s = new LineSplitter();
    const bytes = Buffer.from('grüße\n');
    expect(s.push(bytes.subarray(0, 3))).toEqual([]);
    expect(s.push(bytes.subarray(3))).toEqual([{ text: 'grüße' }]);
  });

  it('cuts a line that goes on and on, skips the rest of it, and goes on with the next', () => {
    const s = new LineSplitter();
    const out: Line[] = [];
    for (let i = 0; i < 40; i++) out.push(...s.push(Buffer.from('y'.repeat(4096))));
    out.push(...s.push(Buffer.from('y\nnext\n')));
    expect(out).toHaveLength(2);
    expect(out[0]!.cut).toBe(true);
    expect(out[1]).toEqual({ text: 'next' });
  });

  it('redactedLines bounds what it gives: a cut line says so', async () => {
    async function* source(): AsyncGenerator<Line> {
      yield { text: 'z'.repeat(MAX_LINE_CHARS + 10) };
      yield { text: 'short' };
    }
    const out: string[] = [];
    for await (const l of redactedLines(source(), (t) => t)) out.push(l);
    expect(out[0]).toMatch(/^z+ … \(line cut at 65,536 characters\)$/);
    expect(out[0]!.length).toBeLessThan(MAX_LINE_CHARS + 50);
    expect(out[1]).toBe('short');
  });
});

describe('colorRedactor', () => {
  const redact = colorRedactor({
    env: { API_KEY: 'k-1234567890', TOWER_COLOR: 'blue', DB_PASSWORD: 'hunter2-hunter2', AUTH_ENABLED: 'true', PLAIN: 'visible-value', REF_NAMED_PLAINLY: 'ref-secret-value' },
    credentials: { 'node-1': { user: 'broker-user', password: 'cred-pw-42' }, 'node-2': { key: '-----BEGIN KEY-----\nAAAAsecretline\n-----END KEY-----' } },
    credentialSecret: 'c0ffee-secret',
    secretEnv: ['REF_NAMED_PLAINLY'],
    secrets: ['admin-password-1'],
  });

  it('takes out referenced env values, secret-looking ones, credentials (each line of a multi-line one), the credential secret and given secrets', () => {
    const text = 'k-1234567890 hunter2-hunter2 ref-secret-value broker-user cred-pw-42 AAAAsecretline c0ffee-secret admin-password-1';
    expect(redact(text)).toBe(Array(8).fill('[redacted]').join(' '));
    // In the encodings secrets travel in: base64 inside a Basic header, URL encoding.
    const basic = Buffer.from('bob:cred-pw-42').toString('base64');
    expect(redact(`Authorization: Basic ${basic}`)).not.toContain(basic.slice(4, 14));
  });

  it('leaves what is not secret, and does not guess from short or plain values', () => {
    expect(redact('blue visible-value true')).toBe('blue visible-value true');
  });

  it('masks the password of any URL', () => {
    expect(maskUrlPasswords('connect redis://:p4ss@127.0.0.1:6379 and mqtt://u:pw@h:1883/x')).toBe('connect redis://:[redacted]@127.0.0.1:6379 and mqtt://u:[redacted]@h:1883/x');
    expect(redact('http://user@host/ ok')).toBe('http://user@host/ ok');
  });

  it('envOfList reads Docker\'s NAME=value list', () => {
    expect(envOfList(['A=1', 'B=x=y', 'C=', 'junk'])).toEqual({ A: '1', B: 'x=y', C: '' });
  });
});

async function until(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}
