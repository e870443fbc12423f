/**
 * The page's HTML building blocks: the `html` tag (every interpolated value is escaped unless
 * it is already SafeHtml — commit messages, error texts and file names come from users), the
 * formatting of times, revisions and durations, and the badges.
 */
import type { RolloutRecord } from '../../engine/ports.js';
import type { FleetStatus } from '../../core/status.js';
import type { HealthSample } from '../health-ring.js';

export type StatusPageModel = FleetStatus & {
  history: RolloutRecord[];
  version: string;
  /** Health samples per instance (the server's ring), for the pictures; absent in the API's JSON. */
  health?: Record<string, readonly HealthSample[]>;
};

export interface RenderOptions {
  /** The clock for relative times ("3 min ago"); rendering itself reads no clock. */
  now: Date;
}

// ---------------------------------------------------------------------------------------
// Escaping

export class SafeHtml {
  constructor(readonly html: string) {}
  toString(): string {
    return this.html;
  }
}

export type Value = SafeHtml | string | number | boolean | null | undefined | readonly Value[];

export const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

export function toHtml(v: Value): string {
  // Booleans render nothing, so that `cond && html`...`` reads naturally.
  if (v === null || v === undefined || typeof v === 'boolean') return '';
  if (v instanceof SafeHtml) return v.html;
  if (Array.isArray(v)) return v.map((x: Value) => toHtml(x)).join('');
  return escapeHtml(String(v));
}

/** Escapes every interpolation that is not SafeHtml; attributes are always double-quoted. */
export function html(strings: TemplateStringsArray, ...values: Value[]): SafeHtml {
  let out = strings[0] ?? '';
  values.forEach((v, i) => {
    out += toHtml(v) + (strings[i + 1] ?? '');
  });
  return new SafeHtml(out);
}

// ---------------------------------------------------------------------------------------
// Small formatters

export function shortRev(rev: string | undefined): string {
  if (!rev) return '';
  return /^[0-9a-f]{12,}$/i.test(rev) ? rev.slice(0, 7) : rev.length > 20 ? `${rev.slice(0, 19)}…` : rev;
}

export function revCode(rev: string | undefined, none = 'none'): SafeHtml {
  if (!rev) return html`<span class="muted">${none}</span>`;
  return html`<code class="rev" title="${rev}">${shortRev(rev)}</code>`;
}

export function absolute(d: Date): string {
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

export function relativeTime(then: Date, now: Date): string {
  const s = Math.round((now.getTime() - then.getTime()) / 1000);
  const a = Math.abs(s);
  const say = (n: number, unit: string) => (s >= 0 ? `${n} ${unit} ago` : `in ${n} ${unit}`);
  if (a < 5) return 'just now';
  if (a < 60) return say(a, 's');
  if (a < 3600) return say(Math.round(a / 60), 'min');
  if (a < 86400) return say(Math.round(a / 3600), 'h');
  return say(Math.round(a / 86400), 'd');
}

/** Relative text, the absolute time in the title and in datetime. */
export function when(iso: string | undefined, opts: RenderOptions, none = '—'): SafeHtml {
  if (!iso) return html`<span class="muted">${none}</span>`;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return html`<span>${iso}</span>`;
  return html`<time datetime="${d.toISOString()}" title="${absolute(d)}">${relativeTime(d, opts.now)}</time>`;
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function firstLine(text: string): string {
  return text.split(/\r?\n/, 1)[0]!.trim();
}

export function plural(n: number, word: string): string {
  return `${n.toLocaleString('en-US')} ${word}${n === 1 ? '' : 's'}`;
}

export type Tone = 'ok' | 'warn' | 'bad' | 'info' | 'neutral';

/** A badge never relies on colour alone: it carries an icon and a word. */
export function badge(tone: Tone, icon: string, text: string, title?: string): SafeHtml {
  return html`<span class="badge tone-${tone}"${title ? html` title="${title}"` : ''}><span class="icon" aria-hidden="true">${icon}</span>${text}</span>`;
}

export const SYNC: Record<string, [Tone, string]> = {
  Synced: ['ok', '✓'],
  OutOfSync: ['warn', '≠'],
  Progressing: ['info', '↻'],
  Unknown: ['neutral', '?'],
};

export const HEALTH: Record<string, [Tone, string]> = {
  Healthy: ['ok', '✓'],
  Progressing: ['info', '↻'],
  Degraded: ['bad', '✕'],
  Missing: ['warn', '∅'],
  Suspended: ['neutral', '⏸'],
  Unknown: ['neutral', '?'],
};

export const OUTCOME: Record<string, [Tone, string, string]> = {
  running: ['info', '↻', 'running'],
  succeeded: ['ok', '✓', 'succeeded'],
  failed: ['bad', '✕', 'failed'],
  'rolled-back': ['warn', '↩', 'rolled back'],
  superseded: ['neutral', '⤳', 'superseded'],
  interrupted: ['warn', '⏹', 'interrupted'],
  invalid: ['bad', '✕', 'invalid'],
};

export function outcomeBadge(outcome: string): SafeHtml {
  const [tone, icon, text] = OUTCOME[outcome] ?? ['neutral', '?', outcome];
  return badge(tone, icon, text);
}

export function colorBadge(color: string | undefined): SafeHtml {
  if (!color) return html`<span class="muted">—</span>`;
  const known = color === 'blue' || color === 'green' ? color : 'other';
  return html`<span class="colour colour-${known}"><span class="dot" aria-hidden="true"></span>${color}</span>`;
}

