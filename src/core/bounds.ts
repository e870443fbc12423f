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
 * at `itemChars` characters.
 */
export function joinCapped(items: readonly string[], opts: { max: number; itemChars: number; separator: string; what?: string }): string {
  const { shown, more } = capList(items, opts.max);
  const parts = shown.map((s) => capText(s, opts.itemChars));
  if (more) parts.push(`and ${count(more)} more${opts.what ? ` ${opts.what}` : ''}`);
  return parts.join(opts.separator);
}
