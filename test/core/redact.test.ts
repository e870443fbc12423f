import { describe, expect, it } from 'vitest';
import { diffConfig } from '../../src/core/diff.js';
import { maskUrlPassword, REDACTED, redactor, SECRET_NAME } from '../../src/core/redact.js';
import { evaluateHttpExpectation } from '../../src/core/smoke.js';
import { configFor } from '../helpers/engine-fixtures.js';

const SECRETS: [string, string][] = [
  ['plain', 'sup3r-s3cret-api-key'],
  ['a double quote', 'pa"ss"word42'],
  ['a backslash', 'c:\\keys\\prod-key'],
  ['unicode', 'pässwörd-ключ-🔑'],
  ['a newline', 'line one\nline two'],
  ['a long prefix of another text', 'x'.repeat(150) + 'tail-secret'],
  ['URL metacharacters', 'a b&c=d/e?f#g%h+i'],
];

/** The ways a secret shows up in what Node-RED answers or Tower writes. */
const ENCODINGS: [string, (s: string) => string][] = [
  ['as is', (s) => `error: ${s} rejected`],
  ['JSON-escaped in a body', (s) => JSON.stringify({ error: 'bad key', key: s })],
  ['JSON inside JSON', (s) => JSON.stringify({ body: JSON.stringify({ key: s }) })],
  ['URL-encoded', (s) => `GET /callback?token=${encodeURIComponent(s)}&x=1`],
  ['form-encoded', (s) => `token=${encodeURIComponent(s).replace(/%20/g, '+')}`],
  ['base64 alone', (s) => `X-Key: ${Buffer.from(s).toString('base64')}`],
  ['base64 after a user (Basic auth)', (s) => `authorization: Basic ${Buffer.from(`admin:${s}`).toString('base64')}`],
  ['base64 after two bytes', (s) => `blob ${Buffer.from(`ab${s}`).toString('base64')}`],
];

describe('redaction', () => {
  const cases = SECRETS.flatMap(([what, secret]) => ENCODINGS.map(([how, encode]) => [what, how, secret, encode] as const));
  it.each(cases)('a secret with %s, %s, is redacted', (_what, _how, secret, encode) => {
    const text = encode(secret);
    const out = redactor([secret])(text);
    expect(out).toContain(REDACTED);
    // Nothing of the secret's distinctive middle survives, in any of the forms.
    const middle = secret.slice(Math.floor(secret.length / 3), Math.floor((2 * secret.length) / 3));
    for (const form of [middle, JSON.stringify(middle).slice(1, -1), encodeURIComponent(middle)]) {
      if (form.length >= 4) expect(out).not.toContain(form);
    }
  });

  it('redacts before a smoke report cuts the body, so a cut secret does not leak either', () => {
    const secret = 'tok-ABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789';
    const body = `${'.'.repeat(185)}${secret} and more`; // the 200-character excerpt ends inside the secret
    const plain = evaluateHttpExpectation({ status: 200 }, { status: 500, headers: {}, body });
    expect(plain.message).toContain('tok-ABCDEFGH'); // what the cut would have let through
    const redacted = evaluateHttpExpectation({ status: 200 }, { status: 500, headers: {}, body }, redactor([secret]));
    expect(redacted.message).not.toMatch(/tok-ABC/);
    const json = evaluateHttpExpectation({ json: { path: 'key', equals: 'x' } }, { status: 200, headers: {}, body: JSON.stringify({ key: 'pa"ss"word42' }) }, redactor(['pa"ss"word42']));
    expect(json.message).not.toContain('pa\\"ss');
    expect(json.message).toContain(REDACTED);
  });

  it('leaves text alone without secrets, and ignores secrets too short to mean anything', () => {
    expect(redactor([])('nothing here')).toBe('nothing here');
    expect(redactor(['ab'])('a cab')).toBe('a cab');
  });

  it.each([
    ['postgres://tower:s3cr3t@db:5432/fleet', 'postgres://tower:***@db:5432/fleet'],
    ['mqtts://user:p%40ss@broker:8883', 'mqtts://user:***@broker:8883'],
    ['https://example.com/path?x=1', 'https://example.com/path?x=1'],
    ['redis://:onlypassword@cache:6379', 'redis://:***@cache:6379'],
    ['not a url user:pw@host', 'not a url user:pw@host'],
  ])('masks the password of %s', (value, masked) => {
    expect(maskUrlPassword(value)).toBe(masked);
  });

  it.each(['DB_PASSWORD', 'API_KEY', 'GITHUB_TOKEN', 'SERVICE_CREDS', 'SENTRY_DSN', 'AUTH_HEADER', 'SESSION_SECRET', 'DB_PWD'])('%s names a secret', (name) => {
    expect(SECRET_NAME.test(name)).toBe(true);
  });

  it('never shows secret env values in a plan, and masks URL passwords in the others', () => {
    const before = configFor(1, { SERVICE_CREDS: 'old-creds', DATABASE_URL: 'postgres://u:oldpw@h/db', LOG_LEVEL: 'info' });
    const after = configFor(1, { SERVICE_CREDS: 'new-creds', DATABASE_URL: 'postgres://u:newpw@h/db', LOG_LEVEL: 'debug' });
    const shown = JSON.stringify(diffConfig(after, before));
    expect(shown).not.toMatch(/old-creds|new-creds|oldpw|newpw/);
    expect(shown).toContain('postgres://u:***@h/db');
    expect(shown).toContain('debug');
  });
});
