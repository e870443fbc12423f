/**
 * Splitting Markdown that is too long for one GitHub comment (65,536 characters) into
 * several, the way Atlantis does — but structure-aware: at a split point every open code
 * fence and <details> block is closed and reopened at the top of the next part (a table's
 * header row is repeated), so each part renders on its own. A ```mermaid block is never cut:
 * a part holds all of a diagram or none of it (half a diagram is a syntax error GitHub shows
 * instead of a drawing); one larger than a whole part is replaced by a note. Pure; tested in
 * test/integration/github.test.ts and test/core/plan-diagrams.test.ts.
 */

export const COMMENT_LIMIT = 65_536;

interface Fence {
  char: '`' | '~';
  length: number;
  opening: string;
}

interface State {
  /** Opening lines of the <details> blocks that are open, outermost first. */
  details: string[];
  fence?: Fence;
  /** A table's header and delimiter rows, while inside the table. */
  table?: { header: string; delimiter: string };
  previous?: string;
}

const EMPTY: State = { details: [] };
const FENCE = /^ {0,3}(`{3,}|~{3,})(.*)$/;
const TABLE_DELIMITER = /^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$/;
const DETAILS_TAG = /<details\b[^>]*>|<\/details\s*>/gi;
const MERMAID_FENCE = /^ {0,3}(`{3,}|~{3,})\s*mermaid\s*$/i;

function advance(state: State, line: string): State {
  const fence = state.fence;
  if (fence) {
    const m = FENCE.exec(line);
    const closes = m && m[1]![0] === fence.char && m[1]!.length >= fence.length && m[2]!.trim() === '';
    return closes ? { details: state.details, previous: line } : { ...state, previous: line };
  }
  const open = FENCE.exec(line);
  if (open && !(open[1]![0] === '`' && open[2]!.includes('`'))) {
    return { details: state.details, fence: { char: open[1]![0] as '`' | '~', length: open[1]!.length, opening: line }, previous: line };
  }
  let details = state.details;
  for (const tag of line.match(DETAILS_TAG) ?? []) {
    details = tag.startsWith('</') ? details.slice(0, -1) : [...details, line];
  }
  let table: State['table'];
  const isRow = line.trimStart().startsWith('|');
  if (isRow && state.table) table = state.table;
  else if (TABLE_DELIMITER.test(line) && state.previous?.trimStart().startsWith('|')) table = { header: state.previous, delimiter: line };
  return { details, ...(table ? { table } : {}), previous: line };
}

/** The text that reopens a <details> block: its tag and summary, marked as continued. */
function reopenDetails(line: string): string {
  const start = line.search(/<details\b/i);
  const rest = line.slice(Math.max(start, 0));
  const summary = /^<details\b[^>]*>\s*<summary\b[^>]*>[\s\S]*?<\/summary>/i.exec(rest);
  if (summary) return summary[0].replace(/<\/summary>$/i, ' (continued)</summary>');
  const tag = /^<details\b[^>]*>/i.exec(rest)?.[0] ?? '<details>';
  return `${tag}<summary>(continued)</summary>`;
}

function openers(state: State): string {
  let out = state.details.map((d) => `${reopenDetails(d)}\n\n`).join('');
  if (state.table) out += `${state.table.header}\n${state.table.delimiter}\n`;
  if (state.fence) out += `${state.fence.opening}\n`;
  return out;
}

function closers(state: State, endsWithNewline: boolean): string {
  let out = endsWithNewline ? '' : '\n';
  if (state.fence) out += `${state.fence.char.repeat(state.fence.length)}\n`;
  // A blank line first, so that the closing tag never reads as part of a list or paragraph.
  if (state.details.length) out += '\n' + state.details.map(() => '</details>\n').join('');
  return out === '\n' ? '' : out;
}

export function partHeader(index: number, count: number): string {
  return index === 1 ? `<sub>part 1/${count}</sub>\n\n` : `<sub>part ${index}/${count}, continued from the previous comment</sub>\n\n`;
}

export function partFooter(index: number, count: number): string {
  return index < count ? `\n<sub>continued in the next comment (part ${index + 1}/${count})</sub>\n` : '';
}

const RESERVE = partHeader(9999, 9999).length + partFooter(9998, 9999).length;

/**
 * Splits `markdown` into parts of at most `limit` characters (UTF-16 code units, which is at
 * least GitHub's count). Text that fits is returned unchanged as the only part. Parts are cut
 * between lines when possible; a line longer than a part is cut inside (never inside a
 * surrogate pair). Each part is marked "part i/n".
 */
export function splitComment(markdown: string, limit: number = COMMENT_LIMIT): string[] {
  if (markdown.length <= limit) return [markdown];
  const parts = cutParts(markdown, limit - RESERVE);
  const count = parts.length;
  return parts.map((p, i) => partHeader(i + 1, count) + p + partFooter(i + 1, count));
}

/**
 * The first `limit` characters of `markdown`, cut between lines with open fences and
 * <details> closed, followed by `note` (which says what was left out). Unchanged when it fits.
 */
export function truncateMarkdown(markdown: string, limit: number, note: (omitted: number) => string): string {
  if (markdown.length <= limit) return markdown;
  const reserve = note(markdown.length).length;
  const first = cutParts(markdown, limit - reserve)[0] ?? '';
  const kept = first.length;
  return first + note(Math.max(markdown.length - kept, 0)).slice(0, limit - first.length);
}

/** Parts of at most `budget` characters, balanced, without part markers. */
function cutParts(markdown: string, budget: number): string[] {
  if (budget < 40) throw new Error(`splitComment: a limit of ${budget} characters leaves no room for text`);
  const lines = markdown.match(/[^\n]*\n|[^\n]+$/g) ?? [];
  const parts: string[] = [];
  let state: State = EMPTY;
  let current = '';
  let hasText = false;

  const cut = (endState: State) => {
    parts.push(current + closers(endState, current.endsWith('\n')));
    // Reopening must leave room for text; a pathological nesting depth is not reopened.
    const reopen = openers(endState);
    if (reopen.length + closers(endState, true).length > budget / 2) {
      state = EMPTY;
      current = '';
    } else {
      current = reopen;
    }
    hasText = false;
  };

  for (let i = 0; i < lines.length; i++) {
    let raw = lines[i]!;
    let line = raw.endsWith('\n') ? raw.slice(0, -1) : raw;
    let next = advance(state, line);
    if (!state.fence && next.fence && MERMAID_FENCE.test(line)) {
      // A diagram goes whole into this part or the next; an unclosed one is text like any fence.
      let end = i;
      let after = next;
      let block = raw;
      while (after.fence && end + 1 < lines.length) {
        const l = lines[++end]!;
        after = advance(after, l.endsWith('\n') ? l.slice(0, -1) : l);
        block += l;
      }
      if (!after.fence) {
        const fits = () => current.length + block.length + closers(after, block.endsWith('\n')).length <= budget;
        if (!fits() && hasText) cut(state);
        if (fits()) {
          current += block;
          state = after;
          hasText = true;
          i = end;
          continue;
        }
        i = end;
        line = `> A diagram of ${block.length.toLocaleString('en-US')} characters did not fit in one comment; \`tower plan --format markdown\` prints it.`;
        raw = `${line}\n`;
        next = advance(state, line);
      }
    }
    if (current.length + raw.length + closers(next, raw.endsWith('\n')).length <= budget) {
      current += raw;
      state = next;
      hasText = true;
      continue;
    }
    if (hasText) {
      cut(state);
      if (current.length + raw.length + closers(next, raw.endsWith('\n')).length <= budget) {
        current += raw;
        state = next;
        hasText = true;
        continue;
      }
    }
    // One line longer than a part: cut inside it; the structure it opens or closes applies after its last piece.
    let rest = raw;
    for (let guard = 0; rest.length > 0 && guard <= markdown.length; guard++) {
      if (current.length + rest.length + closers(next, rest.endsWith('\n')).length <= budget) {
        current += rest;
        hasText = true;
        break;
      }
      // Leave at least one character for the next part, so that the last piece is checked against the state after the line.
      let take = Math.min(budget - current.length - closers(state, false).length, rest.length - 1);
      const code = rest.charCodeAt(take - 1);
      if (take > 1 && code >= 0xd800 && code <= 0xdbff) take--;
      if (take > 0) {
        current += rest.slice(0, take);
        rest = rest.slice(take);
        cut(state);
      } else if (hasText) {
        cut(state);
      } else {
        // Unreachable with sane limits (reopening takes at most half a part): never emit an empty part.
        current += rest;
        hasText = true;
        break;
      }
    }
    state = next;
  }
  if (hasText || parts.length === 0) parts.push(current);
  return parts;
}
