/**
 * Keeping secrets out of every text Tower builds: errors, smoke-check reports, logs, the
 * status, GitHub. A secret is looked for as it is and in the encodings it travels in — JSON
 * string escapes, URL encoding, base64 (at each of its three alignments, as inside a Basic
 * authorization header) — and redaction runs on the raw text, before anything quotes,
 * escapes or cuts it (a cut secret is no longer found).
 */

export const REDACTED = '[redacted]';

/** Secrets shorter than this are not looked for: they would redact ordinary words. */
export const MIN_SECRET_LENGTH = 4;

/** The secret and the forms it takes in the encodings it is likely to appear in. */
export function secretForms(secret: string): string[] {
  const forms = new Set<string>([secret]);
  forms.add(JSON.stringify(secret).slice(1, -1));
  forms.add(JSON.stringify(JSON.stringify(secret)).slice(3, -3)); // escaped twice (JSON inside a JSON string)
  forms.add(encodeURIComponent(secret));
  forms.add(encodeURIComponent(secret).replace(/%20/g, '+'));
  const bytes = new TextEncoder().encode(secret);
  for (let shift = 0; shift < 3; shift++) {
    // base64 of the secret preceded by `shift` other bytes: the characters that depend only on the secret.
    const padded = new Uint8Array(shift + bytes.length);
    padded.set(bytes, shift);
    const b64 = base64(padded);
    const start = shift === 0 ? 0 : shift === 1 ? 2 : 3;
    const tail = (shift + bytes.length) % 3 === 0 ? 0 : 3; // the last group mixes in what follows
    const core = b64.slice(start, b64.length - tail);
    if (core.length >= 6) forms.add(core);
    if (shift === 0) forms.add(b64.replace(/=+$/, ''));
  }
  return [...forms].filter((f) => f.length >= MIN_SECRET_LENGTH);
}

/** A function that replaces every form of every secret with [redacted]; longest forms first. */
export function redactor(secrets: readonly string[]): (text: string) => string {
  const forms = [...new Set(secrets.filter((s) => s.length >= MIN_SECRET_LENGTH).flatMap(secretForms))].sort((a, b) => b.length - a.length);
  if (forms.length === 0) return (text) => text;
  const pattern = new RegExp(forms.map(escapeRegExp).join('|'), 'g');
  return (text) => text.replace(pattern, REDACTED);
}

/** A URL with its userinfo password masked: postgres://u:***@h/db. Anything else as it is. */
export function maskUrlPassword(value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/?#:@\s]*):([^/?#@\s]*)@/i, (_m, user: string, pw: string) => (pw ? `${user}:***@` : `${user}:@`));
}

/** Names of environment variables whose values are secret (they are never shown). */
export const SECRET_NAME = /(pass|pwd|secret|token|key|cred|auth|private|cookie|session|dsn|signature|salt)/i;

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

function base64(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const [a, b, c] = [bytes[i]!, bytes[i + 1], bytes[i + 2]];
    const n = (a << 16) | ((b ?? 0) << 8) | (c ?? 0);
    out += B64[(n >> 18) & 63]! + B64[(n >> 12) & 63]! + (b === undefined ? '=' : B64[(n >> 6) & 63]!) + (c === undefined ? '=' : B64[n & 63]!);
  }
  return out;
}
