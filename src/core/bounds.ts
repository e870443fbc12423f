/**
 * Bounds for every text and list Tower shows: the status, the history, the events and what
 * goes to GitHub. A fleet of 5,000 instances that all fail the same way must not make a
 * 2 MB status that is stored, serialised and sent again on every change. What is left out is
 * counted, never dropped silently: "… and 4,980 more".
 */

/** A count as people read it: 4,980. */
export function count(n: number): string {
  return n.toLocaleString('en-US');
}

/**
 * At most `max` characters of text (plus the note saying how many more there were). A cut
 * never splits a surrogate pair.
 */
export function capText(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = Math.max(0, max);
  const code = text.charCodeAt(end - 1);
  if (end > 0 && code >= 0xd800 && code <= 0xdbff) end--;
  return `${text.slice(0, end)}… (and ${count(text.length - end)} more characters)`;
}

/** The first `max` items and how many were left out. */
export function capList<T>(items: readonly T[], max: number): { shown: T[]; more: number } {
  if (items.length <= max) return { shown: [...items], more: 0 };
  return { shown: items.slice(0, Math.max(0, max)), more: items.length - Math.max(0, max) };
}

/**
 * The first `max` items joined, then "and N more <what>" when there were more: each item cut
 * at `itemChars` characters, and — with `maxChars` — no more items than fit in that many
 * characters, the "and N more" included.
 */
export function joinCapped(items: readonly string[], opts: { max: number; itemChars: number; separator: string; what?: (more: number) => string; maxChars?: number }): string {
  const tail = (more: number) => `and ${count(more)} more${opts.what ? ` ${opts.what(more)}` : ''}`;
  const budget = opts.maxChars ?? Infinity;
  if (items.length <= opts.max) {
    const whole = items.map((item) => capText(item, opts.itemChars)).join(opts.separator);
    if (whole.length <= budget) return whole;
  }
  const parts: string[] = [];
  let length = 0;
  for (const item of items.slice(0, Math.max(0, opts.max))) {
    const part = capText(item, opts.itemChars);
    const more = items.length - parts.length - 1;
    const next = length + (parts.length ? opts.separator.length : 0) + part.length;
    // Room for this one, and for the line that counts the rest when there is a rest.
    if (next + (more ? opts.separator.length + tail(more).length : 0) > budget) break;
    parts.push(part);
    length = next;
  }
  const more = items.length - parts.length;
  if (more) parts.push(tail(more));
  return parts.join(opts.separator);
}
